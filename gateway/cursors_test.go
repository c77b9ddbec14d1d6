package gateway

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/commsec/communicator/internal/natstest"
	"github.com/commsec/communicator/protocol"
	"github.com/commsec/communicator/streams"
)

// TestCursorsBatchedAndNeverBack: a second's cursors are written as one
// atomic batch (counted on the server: the bucket's stream grows by all
// of them at once), a vector per client; stopping writes the pending
// ones, and no cursor is overwritten by an older one.
func TestCursorsBatchedAndNeverBack(t *testing.T) {
	_, nc := natstest.Open(t)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	kv, err := js.CreateKeyValue(ctx, streams.CursorsConfig(streams.Config{}))
	if err != nil {
		t.Fatal(err)
	}
	if err := streams.AllowAtomic(ctx, js, streams.KVStream(streams.Cursors)); err != nil {
		t.Fatal(err)
	}
	g := &Gateway{js: js, log: zerolog.Nop(), Metrics: newMetrics(nil)}
	c, err := openCursors(ctx, g)
	if err != nil {
		t.Fatal(err)
	}
	ids := make([]protocol.ClientID, 50)
	for i := range ids {
		ids[i] = protocol.ClientID{0xc5, byte(i)}
	}
	read := func() (values []string) {
		for _, id := range ids {
			e, err := kv.Get(ctx, id.String())
			if err != nil {
				values = append(values, "")
				continue
			}
			values = append(values, string(e.Value()))
		}
		return values
	}
	all := func(v string) bool { return !slices.ContainsFunc(read(), func(x string) bool { return x != v }) }
	for _, id := range ids {
		c.mark(id, saved{cursor: cursorVec{100, 0, 7}})
	}
	for deadline := time.Now().Add(10 * time.Second); !all("100,0,7"); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("cursors: %v, want every one 100,0,7", read())
		}
	}
	for deadline := time.Now().Add(5 * time.Second); g.Metrics.Costs().CursorBatches == 0 && time.Now().Before(deadline); {
		time.Sleep(5 * time.Millisecond) // the counters follow the acknowledgement
	}
	if costs := g.Metrics.Costs(); costs.CursorBatches != 1 || costs.CursorsWritten != 50 {
		t.Errorf("%d batches, %d cursors written; want 1 batch of 50", costs.CursorBatches, costs.CursorsWritten)
	}
	if info, err := js.Stream(ctx, streams.KVStream(streams.Cursors)); err != nil {
		t.Fatal(err)
	} else if n := info.CachedInfo().State.Msgs; n != 50 {
		t.Errorf("the bucket holds %d messages, want 50", n)
	}
	for _, id := range ids {
		c.mark(id, saved{cursor: cursorVec{150, 0, 7}}) // a session marks its whole vector
		c.mark(id, saved{cursor: cursorVec{120, 3, 7}})
	}
	c.stop()
	if !all("150,3,7") {
		t.Errorf("cursors after stop: %v; want every one 150,3,7 (the highest of each shard)", read())
	}
}

// TestCursorVector: the stored form of a cursor, and a cursor written
// before sharding read as shard 0's.
func TestCursorVector(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want cursorVec
		ok   bool
	}{
		{"42", cursorVec{42}, true}, // before sharding
		{"42,0,9", cursorVec{42, 0, 9}, true},
		{"0", cursorVec{0}, true},
		{"", nil, false},
		{"4,x", nil, false},
		{"-1", nil, false},
		{"1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17", nil, false},
	} {
		got, ok := parseCursor(tc.in)
		if ok != tc.ok || !slices.Equal(got, tc.want) {
			t.Errorf("parseCursor(%q) = %v %v, want %v %v", tc.in, got, ok, tc.want, tc.ok)
		}
		if ok && got.String() != strings.TrimSuffix(tc.in, ",0") {
			t.Errorf("%v.String() = %q, want %q", got, got.String(), tc.in)
		}
	}
	if s := (cursorVec{5, 0, 0}).String(); s != "5" {
		t.Errorf("trailing zeros written: %q", s)
	}
}

// TestCursorsWithoutAtomicPublish: a bucket whose stream does not allow
// atomic batches yet (a keyserver of a version before) still gets every
// cursor, one by one.
func TestCursorsWithoutAtomicPublish(t *testing.T) {
	_, nc := natstest.Open(t)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	kv, err := js.CreateKeyValue(ctx, streams.CursorsConfig(streams.Config{}))
	if err != nil {
		t.Fatal(err)
	}
	g := &Gateway{js: js, log: zerolog.Nop(), Metrics: newMetrics(nil)}
	c, err := openCursors(ctx, g)
	if err != nil {
		t.Fatal(err)
	}
	ids := []protocol.ClientID{{0xc6, 1}, {0xc6, 2}, {0xc6, 3}}
	for _, id := range ids {
		c.mark(id, saved{cursor: cursorVec{9, 4}})
	}
	c.stop()
	for _, id := range ids {
		e, err := kv.Get(ctx, id.String())
		if err != nil || string(e.Value()) != "9,4" {
			t.Fatalf("%s: %v %v, want 9,4", id.Short(), e, err)
		}
	}
	if info, err := js.Stream(ctx, streams.KVStream(streams.Cursors)); err != nil || info.CachedInfo().State.Msgs != 3 {
		t.Fatalf("the bucket's stream holds other than the 3 cursors: %v", err)
	}
}
