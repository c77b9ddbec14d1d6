package gateway

import (
	"slices"
	"strconv"
	"testing"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/commsec/communicator/internal/natstest"
)

// TestNextStored reads one subject's messages of a real stream one after
// the other, from a sequence on, and finds nothing past the last.
func TestNextStored(t *testing.T) {
	_, nc := natstest.Open(t)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "T", Subjects: []string{"t.>"}}); err != nil {
		t.Fatal(err)
	}
	for i := range 10 { // t.a.x gets the even sequences 2, 4, ... 10
		subject := "t.b.x"
		if i%2 == 1 {
			subject = "t.a.x"
		}
		if _, err := js.Publish(ctx, subject, []byte(strconv.Itoa(i+1))); err != nil {
			t.Fatal(err)
		}
	}
	g := &Gateway{nc: nc, js: js}
	for _, c := range []struct {
		subject string
		from    uint64
		want    []uint64
	}{
		{"t.a.*", 0, []uint64{2, 4, 6, 8, 10}},
		{"t.a.*", 5, []uint64{6, 8, 10}},
		{"t.c.*", 1, nil},
		{"t.a.*", 11, nil},
	} {
		var got []uint64
		for from, i := c.from, 0; i < 20; i++ {
			seq, data, found, err := g.nextStored(ctx, "T", c.subject, from)
			if err != nil {
				t.Fatalf("%s from %d: %v", c.subject, from, err)
			}
			if !found {
				break
			}
			if string(data) != strconv.FormatUint(seq, 10) {
				t.Errorf("message %d holds %q", seq, data)
			}
			got, from = append(got, seq), seq+1
		}
		if !slices.Equal(got, c.want) {
			t.Errorf("%s from %d: read %v, want %v", c.subject, c.from, got, c.want)
		}
	}
}
