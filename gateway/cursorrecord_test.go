package gateway

import (
	"maps"
	"slices"
	"testing"

	"github.com/commsec/communicator/protocol"
	"github.com/commsec/communicator/protocol/bundle"
)

// TestRecord: a record's stored form reads back; the forms written before
// it (one number, a vector) still read; anything else is refused whole.
func TestRecord(t *testing.T) {
	g1, g2 := protocol.GroupID{1}, protocol.GroupID{2, 0xff}
	for _, sv := range []saved{
		{cursor: cursorVec{7}},
		{cursor: cursorVec{100, 0, 7}, bundle: 42},
		{cursor: cursorVec{0}, epochs: groupEpochs{g1: 3}},
		{cursor: cursorVec{5, 6}, bundle: 9, epochs: groupEpochs{g1: 3, g2: 1 << 31}},
	} {
		got, ok := parseRecord(sv.record())
		if !ok || !slices.Equal(got.cursor, sv.cursor) || got.bundle != sv.bundle || !maps.Equal(got.epochs, sv.epochs) {
			t.Errorf("%q read back as %+v %v", sv.record(), got, ok)
		}
	}
	for s, want := range map[string]cursorVec{"12": {12}, "12,0,5": {12, 0, 5}} {
		if got, ok := parseRecord(s); !ok || !slices.Equal(got.cursor, want) || got.bundle != 0 || got.epochs != nil {
			t.Errorf("old form %q: %+v %v", s, got, ok)
		}
	}
	for _, bad := range []string{"", "x", "1;", "1;bx", "1;e", "1;e01.2", "1;e" + g1.String() + ".x",
		"1;e" + g1.String(), "1;q5", "1;e" + g1.String() + ".4294967296"} {
		if sv, ok := parseRecord(bad); ok {
			t.Errorf("%q read as %+v", bad, sv)
		}
	}
}

// TestDeliveriesConfirmEpochs: a queued bundle's group and epoch are
// confirmed by the acknowledgement of a delivery queued after it, not
// before; a body that is not a bundle, or another member's, confirms no
// group.
func TestDeliveriesConfirmEpochs(t *testing.T) {
	var d deliveries
	g1, g2 := protocol.GroupID{1}, protocol.GroupID{2}
	d.startEpochs(groupEpochs{g2: 4})
	me := protocol.ClientID{0xa1}
	b := func(g protocol.GroupID, e protocol.Epoch) []byte {
		return (&bundle.Bundle{Group: g, Epoch: e, Member: me}).Marshal()
	}
	nop := func(int, uint64) {}
	d.bundleQueued(10, b(g1, 1), me)
	n1, _ := d.add(0, 100)
	d.bundleQueued(11, b(g1, 2), me)
	d.bundleQueued(12, []byte("not a bundle"), me)
	d.bundleQueued(13, b(g1, 9), protocol.ClientID{0xb0}) // another member's: confirms nothing
	n2, _ := d.add(0, 101)
	d.ack(n1, nop)
	if got := d.confirmedEpochs(); !maps.Equal(got, groupEpochs{g1: 1, g2: 4}) {
		t.Fatalf("after the first ack: %v", got)
	}
	d.ack(n2, nop)
	if got := d.confirmedEpochs(); !maps.Equal(got, groupEpochs{g1: 2, g2: 4}) || d.confirmedBundle() != 13 {
		t.Fatalf("after the second ack: %v, bundle %d", got, d.confirmedBundle())
	}
}
