package integration

import (
	"testing"
	"time"

	"github.com/commsec/communicator/events/fold"
	"github.com/commsec/communicator/internal/stacktest"
	"github.com/commsec/communicator/keyserver"
	"github.com/commsec/communicator/protocol"
	"github.com/commsec/communicator/protocol/bundle"
	"github.com/commsec/communicator/protocol/channel"
	"github.com/commsec/communicator/streams"
)

// TestLiveBundleLossKeepsEpochOrder: bob is connected; the bundle of his
// group's next epoch is lost on the live feed (its republish is off
// during that rekey), and the one of the epoch after comes live: its gap
// makes the gateway read the lost one from the stream. Bob must get them
// in epoch order: a client takes the messages of an epoch below the
// newest key it holds as never to open (PROTOCOL.md 5.6), so a later
// bundle first would make it drop the messages of the lost one. Before,
// the gateway queued the live bundle at once and the one it read after.
func TestLiveBundleLossKeepsEpochOrder(t *testing.T) {
	s := stacktest.NewOpen(t, 1)
	gw, _ := addNamedGateway(t, s, "gw")
	alice, bob := s.Register("alice"), s.Register("bob")
	g := s.Group("ops", alice, bob)
	s.Sync()
	var e protocol.Epoch
	gw.Projection().Read(func(st *fold.State) { e = st.Groups[g].Epoch })
	conn := rawConn(t, s, bob, 0)
	checkFor(t, 10*time.Second, "bob's session set up", func() bool { return gw.Metrics.Costs().Connects == 1 })
	setBundleRePublish(t, s, false)
	if _, err := s.Keyserver.Rekey(t.Context(), keyserver.Actor{}, "ops", "test"); err != nil {
		t.Fatal(err)
	}
	setBundleRePublish(t, s, true)
	if _, err := s.Keyserver.Rekey(t.Context(), keyserver.Actor{}, "ops", "test"); err != nil {
		t.Fatal(err)
	}
	var got []protocol.Epoch // bob's bundles of the new epochs, in the order they came
	conn.NetConn().SetReadDeadline(time.Now().Add(15 * time.Second))
	for !containsEpoch(got, e+2) || !containsEpoch(got, e+1) {
		f, err := conn.ReadFrame()
		if err != nil {
			t.Fatalf("bundles of the new epochs received %v: %v", got, err)
		}
		if f.Type != channel.TypeKeyBundle {
			continue
		}
		b, err := bundle.Parse(f.Body)
		if err != nil {
			t.Fatal(err)
		}
		if b.Group == g && b.Epoch > e {
			got = append(got, b.Epoch)
		}
	}
	if got[0] != e+1 {
		t.Fatalf("bundles of epochs %v after epoch %d: epoch %d came before %d", got, e, e+2, e+1)
	}
	if gw.Metrics.Costs().LiveLost == 0 {
		t.Error("the loss was not counted")
	}
}

func containsEpoch(es []protocol.Epoch, e protocol.Epoch) bool {
	for _, x := range es {
		if x == e {
			return true
		}
	}
	return false
}

// setBundleRePublish turns the republishing of the bundles off or on.
func setBundleRePublish(t *testing.T, s *stacktest.Stack, on bool) {
	t.Helper()
	st, err := s.JS.Stream(t.Context(), streams.Bundles)
	if err != nil {
		t.Fatal(err)
	}
	cfg := st.CachedInfo().Config
	cfg.RePublish = nil
	if on {
		cfg.RePublish = streams.BundlesConfig(streams.Config{}).RePublish
	}
	if _, err := s.JS.UpdateStream(t.Context(), cfg); err != nil {
		t.Fatal(err)
	}
}
