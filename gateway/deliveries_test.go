package gateway

import (
	"maps"
	"testing"

	"github.com/commsec/communicator/protocol"
)

// TestDeliveries: numbering from 1, cumulative acknowledgements mapped
// back to each shard's highest sequence, skipped messages acknowledged
// with the delivery before them, acknowledgements past the last number
// refused, the bound, and bundles confirmed by a later acknowledgement.
func TestDeliveries(t *testing.T) {
	var d deliveries
	got := map[int]uint64{}
	acked := func(shard int, seq uint64) { got[shard] = max(got[shard], seq) }
	want := func(step string, w map[int]uint64) {
		t.Helper()
		if !maps.Equal(got, w) {
			t.Fatalf("%s: acknowledged %v, want %v", step, got, w)
		}
	}
	d.skip(1, 3, acked) // 1. nothing unacknowledged: a skip is acknowledged at once
	want("1", map[int]uint64{1: 3})
	d.bundleQueued(40, nil, protocol.ClientID{})
	for i, e := range []struct {
		shard int
		seq   uint64
	}{{0, 10}, {1, 5}, {0, 12}, {1, 9}} {
		if n, ok := d.add(e.shard, e.seq); !ok || n != uint64(i+1) {
			t.Fatalf("2. delivery %d numbered %d %v", i, n, ok)
		}
		if i == 1 {
			d.skip(0, 11, acked) // after delivery 2: acknowledged with it
			d.bundleQueued(41, nil, protocol.ClientID{})
		}
	}
	want("3. skips wait for the delivery before them", map[int]uint64{1: 3})
	if d.ack(5, acked) {
		t.Fatal("4. an acknowledgement past the last number was taken")
	}
	want("4", map[int]uint64{1: 3})
	if !d.ack(2, acked) {
		t.Fatal("5. refused")
	}
	want("5. cumulative, with the skip after 2", map[int]uint64{0: 11, 1: 5})
	if d.confirmedBundle() != 40 {
		t.Fatalf("6. confirmed bundle %d, want 40 (41 was queued after delivery 2)", d.confirmedBundle())
	}
	if !d.ack(1, acked) {
		t.Fatal("7. an old acknowledgement refused")
	}
	want("7. an old acknowledgement changes nothing", map[int]uint64{0: 11, 1: 5})
	d.ack(4, acked)
	want("8", map[int]uint64{0: 12, 1: 9})
	if d.confirmedBundle() != 41 {
		t.Fatalf("9. confirmed bundle %d, want 41", d.confirmedBundle())
	}
	if n, _ := d.add(0, 13); n != 5 {
		t.Fatalf("10. numbered %d after 4, want 5", n)
	}
	for range maxUnacked - 1 {
		if _, ok := d.add(0, 14); !ok {
			t.Fatal("11. refused below the bound")
		}
	}
	if _, ok := d.add(0, 15); ok {
		t.Fatal("12. a delivery past maxUnacked unacknowledged was taken")
	}
	if !d.ack(d.last, acked) {
		t.Fatal("13")
	}
	if _, ok := d.add(0, 16); !ok {
		t.Fatal("14. refused after the acknowledgement")
	}
}
