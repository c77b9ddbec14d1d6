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

// electionWorld is a 3-node cluster with the production accounts, a
// gateway on node 1, the clients named in one group "ops", and the first
// of them (bob) connected raw to the gateway, his session set up.
type electionWorld struct {
	c       *natstest.Cluster
	s       *stacktest.Stack
	gw      *gateway.Gateway
	clients []*stacktest.Client
	g       protocol.GroupID
	e       protocol.Epoch // the group's epoch in the gateway's view
	conn    *channel.Conn  // the first client's
}

func newElectionWorld(t *testing.T, names ...string) *electionWorld {
	t.Helper()
	w := &electionWorld{c: natstest.StartCluster(t, 3)}
	w.c.WaitJetStream(t, 30*time.Second)
	w.s = stacktest.NewCluster(t, w.c, 0)
	w.gw = w.s.AddGatewayOn(w.c.Conn(t, 1, natsauth.Gateway, nats.Name("gw")), gateway.Config{})
	for _, n := range names {
		w.clients = append(w.clients, w.s.Register(n))
	}
	w.g = w.s.Group("ops", w.clients...)
	w.s.Sync()
	checkFor(t, 10*time.Second, "the group in the gateway's view", func() bool {
		w.gw.Projection().Read(func(st *fold.State) {
			if gr := st.Groups[w.g]; gr != nil {
				w.e = gr.Epoch
			}
		})
		return w.e > 0
	})
	w.conn = rawConn(t, w.s, w.clients[0], 0)
	checkFor(t, 10*time.Second, "the session set up", func() bool { return w.gw.Metrics.Costs().Connects == 1 })
	return w
}

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
	w := newElectionWorld(t, "bob", "alice", "carol")
	c, s, gw, conn, g, e := w.c, w.s, w.gw, w.conn, w.g, w.e
	alice, carol := w.clients[1], w.clients[2] // bob is clients[0], on conn
	k, err := streams.LoadShards(t.Context(), s.JS)
	if err != nil {
		t.Fatal(err)
	}
	stream := k.Stream(g)
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
	w := newElectionWorld(t, "bob", "alice")
	c, s, conn, g, e := w.c, w.s, w.conn, w.g, w.e
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
