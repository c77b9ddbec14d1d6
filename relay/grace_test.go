package relay

import (
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/commsec/communicator/internal/natstest"
	"github.com/commsec/communicator/keyserver"
	"github.com/commsec/communicator/protocol/envelope"
	"github.com/commsec/communicator/protocol/replay"
	"github.com/commsec/communicator/streams"
)

// TestGraceNeverTwoEpochsBack: the worker screens an envelope against
// the relay's view of the log, then storeCounted re-reads the current
// epoch for the grace. If the log moved twice in between (two rekeys
// applied while the envelope sat in the worker's queue), an envelope of
// epoch E is stored while the group is at E+2: the count of E+2 is open,
// and storeCounted only asks "older than current". Clients that have
// seen E+2 have dropped E's key (PROTOCOL.md §8.3 step 3), so the relay
// stores what they refuse, against §8.1 rule 5.
func TestGraceNeverTwoEpochsBack(t *testing.T) {
	w := newWorldTTL(t, 10*time.Second)
	r := w.relay(Config{Grace: time.Hour})
	for range 2 {
		if _, err := w.k.Rekey(t.Context(), keyserver.Actor{}, "ops", ""); err != nil {
			t.Fatal(err)
		}
	}
	natstest.CheckFor(t, 5*time.Second, 10*time.Millisecond, func() error {
		if e := r.currentEpoch(w.group); e != 3 {
			return fmt.Errorf("relay at epoch %d", e)
		}
		return nil
	})
	e := env(w.alice, w.group, 1, 1)
	h, _ := envelope.ParseHeader(e)
	m := nats.NewMsg("direct")
	m.Data = e
	var next replay.Window
	next.Accept(1)
	reason, err := r.storeCounted(t.Context(), &job{msg: m, header: h}, last{}, next)
	if err != nil {
		t.Fatal(err)
	}
	if reason != streams.ReasonOldEpoch {
		t.Fatalf("an envelope of epoch 1 with the group at epoch 3: reason %q, stored %d", reason, w.stored())
	}
}
