package gateway

import (
	"slices"
	"strconv"
	"testing"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/commsec/communicator/internal/natstest"
)

// TestDirectBatch reads one subject's messages of a real stream in
// batches: from a sequence on, stopping early, and with nothing to read.
func TestDirectBatch(t *testing.T) {
	_, nc := natstest.Start(t)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "T", Subjects: []string{"t.>"}, AllowDirect: true}); err != nil {
		t.Fatal(err)
	}
	for i := range 10 { // t.a gets the even sequences 2, 4, ... 10 (one message each)
		subject := "t.b"
		if i%2 == 1 {
			subject = "t.a"
		}
		if _, err := js.Publish(ctx, subject, []byte(strconv.Itoa(i+1))); err != nil {
			t.Fatal(err)
		}
	}
	g := &Gateway{nc: nc, js: js}
	read := func(subject string, from uint64, batch, stopAfter int) ([]uint64, int) {
		t.Helper()
		var seqs []uint64
		n, err := g.directBatch(ctx, "T", subject, from, batch, func(seq uint64, data []byte) bool {
			if string(data) != strconv.FormatUint(seq, 10) {
				t.Errorf("message %d holds %q", seq, data)
			}
			seqs = append(seqs, seq)
			return len(seqs) < stopAfter
		})
		if err != nil {
			t.Fatalf("directBatch(%s, from %d, batch %d): %v", subject, from, batch, err)
		}
		return seqs, n
	}
	for _, c := range []struct {
		subject          string
		from             uint64
		batch, stopAfter int
		want             []uint64
	}{
		{"t.a", 1, 256, 100, []uint64{2, 4, 6, 8, 10}},
		{"t.a", 5, 256, 100, []uint64{6, 8, 10}},
		{"t.a", 0, 2, 100, []uint64{2, 4}},
		{"t.a", 1, 256, 3, []uint64{2, 4, 6}},
		{"t.c", 1, 256, 100, nil},
		{"t.a", 11, 256, 100, nil},
	} {
		got, n := read(c.subject, c.from, c.batch, c.stopAfter)
		if !slices.Equal(got, c.want) || n != len(c.want) {
			t.Errorf("%s from %d batch %d stop after %d: read %v (n %d), want %v", c.subject, c.from, c.batch, c.stopAfter, got, n, c.want)
		}
	}
}
