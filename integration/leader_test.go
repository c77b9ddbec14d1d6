package integration

import (
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/commsec/communicator/events/fold"
	"github.com/commsec/communicator/gateway"
	"github.com/commsec/communicator/internal/natsauth"
	"github.com/commsec/communicator/internal/natstest"
	"github.com/commsec/communicator/internal/stacktest"
	"github.com/commsec/communicator/keyserver"
	"github.com/commsec/communicator/protocol"
	"github.com/commsec/communicator/protocol/bundle"
	"github.com/commsec/communicator/protocol/channel"
	"github.com/commsec/communicator/streams"
)

// TestLeaderElectionCatchesLostLastMessage: on a 3-node cluster with the
// production accounts, alice's message is stored but not republished (as
// when its shard's leader is cut off right after storing it), and it is
// the last of her subject: no later message of hers shows the gap.
// Carol's message after it comes live, and bob acknowledges it (his
// cursor passes alice's). When the shard gets a new leader, the gateway
// reads what the shard stored of its groups shortly before (the
// leader's advisory crosses into the gateway's account), finds alice's
// message its feed did not see, and delivers it to bob, who stays
// connected. Before, it reached bob only when alice sent again (not on
// his next connection: his cursor had passed it). A first version read
// only the group's last sequence, and missed it behind carol's.
func TestLeaderElectionCatchesLostLastMessage(t *testing.T) {
	c := natstest.StartCluster(t, 3)
	c.WaitJetStream(t, 30*time.Second)
	s := stacktest.NewCluster(t, c, 0)
	gw := s.AddGatewayOn(c.Conn(t, 1, natsauth.Gateway, nats.Name("gw")), gateway.Config{})
	alice, bob, carol := s.Register("alice"), s.Register("bob"), s.Register("carol")
	g := s.Group("ops", alice, bob, carol)
	s.Sync()
	k, err := streams.LoadShards(t.Context(), s.JS)
	if err != nil {
		t.Fatal(err)
	}
	stream := k.Stream(g)
	var e protocol.Epoch
	checkFor(t, 10*time.Second, "the group in the gateway's view", func() bool {
		gw.Projection().Read(func(st *fold.State) {
			if gr := st.Groups[g]; gr != nil {
				e = gr.Epoch
			}
		})
		return e > 0
	})
	conn := rawConn(t, s, bob, 0)
	checkFor(t, 10*time.Second, "bob's session set up", func() bool { return gw.Metrics.Costs().Connects == 1 })
	relay := c.Conn(t, 2, natsauth.Relay)
	store := func(from *stacktest.Client, env string) {
		t.Helper()
		m := nats.NewMsg(k.Subject(g, from.ID.ID()))
		m.Header.Set(streams.HeaderEpoch, fmt.Sprint(uint64(e)))
		m.Data = []byte(env)
		if _, err := relay.RequestMsg(m, 5*time.Second); err != nil {
			t.Fatal(err)
		}
	}
	store(alice, "m0")
	envs, cursors := readDeliveries(t, conn, 1)
	if envs[0] != "m0" {
		t.Fatalf("got %v", envs)
	}
	ack(t, conn, cursors[0])
	setRePublish(t, s, stream, false)
	store(alice, "m1") // never republished, and the last of alice's subject
	setRePublish(t, s, stream, true)
	store(carol, "c1") // comes live
	envs, cursors = readDeliveries(t, conn, 1)
	if envs[0] != "c1" {
		t.Fatalf("got %v, want c1", envs)
	}
	ack(t, conn, cursors[0])
	before := gw.Metrics.Costs().LeaderRechecks
	c.LeadElsewhere(t, stream, c.StreamLeader(stream))
	envs, _ = readDeliveries(t, conn, 1)
	if envs[0] != "m1" {
		t.Fatalf("got %v, want m1", envs)
	}
	if gw.Metrics.Costs().LeaderRechecks == before {
		t.Error("no check after the leader election counted")
	}
}

// TestLeaderElectionCatchesLostBundle: as above for the bundles' stream:
// the bundle of bob's group's next epoch is stored but not republished,
// and no later bundle of his follows. When the stream gets a new
// leader, the gateway reads what it stored of its members shortly
// before and pushes bob the bundle he missed.
func TestLeaderElectionCatchesLostBundle(t *testing.T) {
	c := natstest.StartCluster(t, 3)
	c.WaitJetStream(t, 30*time.Second)
	s := stacktest.NewCluster(t, c, 0)
	gw := s.AddGatewayOn(c.Conn(t, 1, natsauth.Gateway, nats.Name("gw")), gateway.Config{})
	alice, bob := s.Register("alice"), s.Register("bob")
	g := s.Group("ops", alice, bob)
	s.Sync()
	var e protocol.Epoch
	checkFor(t, 10*time.Second, "the group in the gateway's view", func() bool {
		gw.Projection().Read(func(st *fold.State) {
			if gr := st.Groups[g]; gr != nil {
				e = gr.Epoch
			}
		})
		return e > 0
	})
	conn := rawConn(t, s, bob, 0)
	checkFor(t, 10*time.Second, "bob's session set up", func() bool { return gw.Metrics.Costs().Connects == 1 })
	setBundleRePublish(t, s, false)
	if _, err := s.Keyserver.Rekey(t.Context(), keyserver.Actor{}, "ops", "test"); err != nil {
		t.Fatal(err)
	}
	setBundleRePublish(t, s, true)
	c.LeadElsewhere(t, streams.Bundles, c.StreamLeader(streams.Bundles))
	conn.NetConn().SetReadDeadline(time.Now().Add(15 * time.Second))
	for {
		f, err := conn.ReadFrame()
		if err != nil {
			t.Fatalf("no bundle of epoch %d: %v", e+1, err)
		}
		if f.Type != channel.TypeKeyBundle {
			continue
		}
		if b, err := bundle.Parse(f.Body); err == nil && b.Group == g && b.Epoch == e+1 {
			break
		}
	}
}
