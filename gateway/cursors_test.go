package gateway

import (
	"strconv"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/commsec/communicator/internal/natstest"
	"github.com/commsec/communicator/protocol"
	"github.com/commsec/communicator/streams"
)

// TestCursorsPacedAndNeverBack: a second's cursors are written spread
// over the next second, not in one burst; and stopping writes the
// pending ones before those acknowledged since, so that no cursor is
// overwritten by an older one.
func TestCursorsPacedAndNeverBack(t *testing.T) {
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
	c, err := openCursors(ctx, &Gateway{js: js, log: zerolog.Nop()})
	if err != nil {
		t.Fatal(err)
	}
	ids := make([]protocol.ClientID, 50)
	for i := range ids {
		ids[i] = protocol.ClientID{0xc5, byte(i)}
	}
	// read returns each cursor's value and when the server stored it.
	read := func() (values []uint64, first, last time.Time) {
		for _, id := range ids {
			e, err := kv.Get(ctx, id.String())
			if err != nil {
				values = append(values, 0)
				continue
			}
			v, _ := strconv.ParseUint(string(e.Value()), 10, 64)
			values = append(values, v)
			if first.IsZero() || e.Created().Before(first) {
				first = e.Created()
			}
			if e.Created().After(last) {
				last = e.Created()
			}
		}
		return values, first, last
	}
	waitFor := func(what string, ok func([]uint64) bool) {
		t.Helper()
		for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
			if values, _, _ := read(); ok(values) {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("cursors: no %s within 10 s", what)
			}
		}
	}
	all := func(v uint64) func([]uint64) bool {
		return func(values []uint64) bool {
			for _, x := range values {
				if x != v {
					return false
				}
			}
			return true
		}
	}
	anyIs := func(v uint64) func([]uint64) bool {
		return func(values []uint64) bool {
			for _, x := range values {
				if x == v {
					return true
				}
			}
			return false
		}
	}

	for _, id := range ids {
		c.mark(id, 100)
	}
	waitFor("write of every cursor", all(100))
	if _, first, last := read(); last.Sub(first) < 500*time.Millisecond {
		t.Errorf("50 cursors written within %v: a burst, want them spread over about a second", last.Sub(first))
	}

	for _, id := range ids {
		c.mark(id, 150)
	}
	waitFor("first slice of the new cursors", anyIs(150)) // the rest are pending now
	for _, id := range ids {
		c.mark(id, 200)
	}
	c.stop()
	if values, _, _ := read(); !all(200)(values) {
		t.Errorf("cursors after stop: %v; want every one 200 (a pending older cursor written last?)", values)
	}
}
