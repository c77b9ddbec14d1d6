package gateway

import (
	"slices"
	"testing"
)

// msgs are in-memory messages at stream sequences seqs.
func msgs(seqs ...uint64) []message {
	out := make([]message, len(seqs))
	for i, s := range seqs {
		out[i] = message{seq: s}
	}
	return out
}

func seqs(ms []message) []uint64 {
	out := make([]uint64, len(ms))
	for i, m := range ms {
		out[i] = m.seq
	}
	return out
}

// TestDeliveryTransitions runs every transition of deliverystate.go's
// table from in-memory messages.
func TestDeliveryTransitions(t *testing.T) {
	t.Run("catchUp keeps live messages, then hands them over and goes live", func(t *testing.T) {
		var d delivery
		d.init(10)
		if d.from() != 11 {
			t.Fatalf("a pass starts at %d, want 11", d.from())
		}
		for _, m := range msgs(14, 15) {
			if got := d.offer(m, true); got != offerKept {
				t.Fatalf("offer during catch-up: %v", got)
			}
		}
		for _, m := range msgs(11, 12, 13, 14) { // the pass reads the stream
			if !d.take(m) {
				t.Fatalf("the pass could not take %d", m.seq)
			}
		}
		batch, isLive := d.passEnd()
		if isLive || !slices.Equal(seqs(batch), []uint64{14, 15}) {
			t.Fatalf("pass end: %v live %v, want the kept 14, 15 first", seqs(batch), isLive)
		}
		var handed []uint64
		for _, m := range batch {
			if d.take(m) {
				handed = append(handed, m.seq)
			}
		}
		if !slices.Equal(handed, []uint64{15}) {
			t.Fatalf("handed over %v, want only 15 (14 was read by the pass)", handed)
		}
		if _, isLive := d.passEnd(); !isLive || d.current() != live {
			t.Fatalf("after the kept messages: live %v, state %v", isLive, d.current())
		}
	})
	t.Run("live delivers in order, never twice", func(t *testing.T) {
		var d delivery
		d.init(0)
		d.passEnd()
		if d.offer(message{seq: 3}, true) != offerDeliver || d.offer(message{seq: 3}, true) != offerKept ||
			d.offer(message{seq: 2}, true) != offerKept || d.offer(message{seq: 4}, true) != offerDeliver {
			t.Fatal("live offers out of order or twice were delivered")
		}
	})
	t.Run("live: an epoch not in view starts a pass from next", func(t *testing.T) {
		var d delivery
		d.init(0)
		d.passEnd()
		d.offer(message{seq: 5}, true)
		if got := d.offer(message{seq: 6}, false); got != offerStartPass || d.current() != catchUpNext {
			t.Fatalf("offer not in view: %v, state %v", got, d.current())
		}
		if d.offer(message{seq: 7}, true) != offerKept {
			t.Fatal("an offer while a pass must follow was delivered")
		}
		if batch, isLive := d.passEnd(); batch != nil || isLive || d.current() != catchUp || d.from() != 6 {
			t.Fatalf("pass end: %v %v state %v from %d, want another pass from 6", batch, isLive, d.current(), d.from())
		}
	})
	t.Run("catchUp: pending overflow asks for another pass", func(t *testing.T) {
		var d delivery
		d.init(0)
		for i := range maxPending + 1 {
			d.offer(message{seq: uint64(100 + i)}, true)
		}
		if d.current() != catchUpNext || len(d.pending) != 0 {
			t.Fatalf("state %v with %d pending, want catchUpNext and none", d.current(), len(d.pending))
		}
		d.take(message{seq: 50})
		if _, isLive := d.passEnd(); isLive || d.from() != 51 {
			t.Fatalf("live %v from %d, want another pass from 51", isLive, d.from())
		}
	})
	t.Run("groups changed during catch-up: another pass from the cursor", func(t *testing.T) {
		for _, start := range []func(*delivery){
			func(*delivery) {},
			func(d *delivery) { // catchUpNext first
				for i := range maxPending + 1 {
					d.offer(message{seq: uint64(100 + i)}, true)
				}
			},
		} {
			var d delivery
			d.init(7)
			start(&d)
			d.take(message{seq: 20})
			d.groupsChanged()
			d.offer(message{seq: 30}, true)
			if d.current() != catchUpAll {
				t.Fatalf("state %v, want catchUpAll", d.current())
			}
			if _, isLive := d.passEnd(); isLive || d.from() != 8 || d.current() != catchUp {
				t.Fatalf("live %v from %d state %v, want a pass from 8", isLive, d.from(), d.current())
			}
		}
	})
	t.Run("groups changed while live changes nothing", func(t *testing.T) {
		var d delivery
		d.init(0)
		d.passEnd()
		d.groupsChanged()
		if d.current() != live {
			t.Fatalf("state %v", d.current())
		}
	})
	t.Run("closed takes nothing and ends passes", func(t *testing.T) {
		var d delivery
		d.init(0)
		d.close()
		if d.take(message{seq: 1}) || d.offer(message{seq: 2}, true) != offerKept {
			t.Fatal("a closed delivery took a message")
		}
		if batch, isLive := d.passEnd(); batch != nil || isLive {
			t.Fatal("a closed delivery asked for more")
		}
	})
	t.Run("restart: from live a pass from the acknowledged cursor, during a pass another one", func(t *testing.T) {
		var d delivery
		d.init(3)
		d.passEnd()
		d.offer(message{seq: 9}, true)
		d.acked(5)
		if !d.restart() || d.current() != catchUp || d.from() != 6 {
			t.Fatalf("restart from live: state %v from %d, want a pass from 6 (after the acknowledged 5)", d.current(), d.from())
		}
		if d.offer(message{seq: 10}, true) != offerKept || len(d.pending) != 1 {
			t.Fatal("an offer during the pass was not kept")
		}
		d.offer(message{seq: 11}, true)
		if d.restart() || d.current() != catchUpAll || len(d.pending) != 0 {
			t.Fatalf("restart during a pass: state %v, %d pending", d.current(), len(d.pending))
		}
	})
	t.Run("acknowledged never goes back", func(t *testing.T) {
		var d delivery
		d.init(40)
		d.acked(30)
		d.acked(55)
		d.acked(50)
		if d.acknowledged() != 55 {
			t.Fatalf("acknowledged %d, want 55", d.acknowledged())
		}
	})
}
