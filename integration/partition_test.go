package integration

import (
	"regexp"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/commsec/communicator/gateway"
	"github.com/commsec/communicator/internal/jsprobe"
	"github.com/commsec/communicator/internal/metrics"
	"github.com/commsec/communicator/internal/natsauth"
	"github.com/commsec/communicator/internal/natstest"
	"github.com/commsec/communicator/internal/stacktest"
	"github.com/commsec/communicator/relay"
	"github.com/commsec/communicator/streams"
)

// TestGatewayLeavesPartitionedNode is issue 12, item 3: a gateway stayed
// attached to a NATS node cut off from the rest of the cluster, its TCP
// connection up, every JetStream call through it timing out, and its
// clients' sends made no progress. Here the gateway's node is cut off; it
// must move to another node, and a client's send through it must be
// accepted again and delivered. The cut-off node leads the event stream,
// which the probes ask about: it answers for itself, and the probes must
// see that it no longer hears from its replicas; the relay, on a node
// that was not cut off, must wait out the election of a new leader
// without moving.
func TestGatewayLeavesPartitionedNode(t *testing.T) {
	leavesPartitionedNode(t, "gateway", func(c *natstest.Cluster, ks int) int {
		c.LeadElsewhere(t, streams.Events, ks)
		return c.StreamLeader(streams.Events)
	})
}

// TestRelayLeavesPartitionedNode: the same with the relay's node cut
// off: the relay must move for the gateway's requests to reach it. The
// cut-off node is the JetStream meta leader, which keeps answering
// account requests for itself until it notices that it lost its quorum.
func TestRelayLeavesPartitionedNode(t *testing.T) {
	leavesPartitionedNode(t, "relay", func(c *natstest.Cluster, _ int) int { return c.MetaLeader() })
}

// leavesPartitionedNode runs a stack on an in-process three-node cluster
// (R3 streams) whose routes run through proxies the test owns, and cuts
// the node of one part (the gateway or the relay), chosen by pick, off
// from the two others; the keyserver and the other part are on those
// two. The part must leave the node, and a send must be accepted and
// delivered again; the other part must stay where it is.
//
// The time limits are only the test's give-up bounds, far above the
// bound the parts keep (5 s, package jsprobe).
func leavesPartitionedNode(t *testing.T, part string, pick func(c *natstest.Cluster, ks int) int) {
	c := natstest.StartCluster(t, 3)
	c.WaitJetStream(t, 30*time.Second) // a meta leader, before the keyserver's first stream
	ksNode := (c.MetaLeader() + 1) % 3
	s := stacktest.NewCluster(t, c, ksNode)
	lone := pick(c, ksNode)
	if lone < 0 || lone == ksNode {
		t.Fatalf("cutting off node %d, the keyserver's is %d", lone, ksNode)
	}
	other := 3 - lone - ksNode
	relayNode, gatewayNode := lone, other
	if part == "gateway" {
		relayNode, gatewayNode = other, lone
	}
	r3 := streams.Config{Replicas: 3}
	relayNC, gatewayNC := c.Conn(t, relayNode, natsauth.Relay), c.Conn(t, gatewayNode, natsauth.Gateway)
	relayReg, gatewayReg := metrics.NewRegistry(), metrics.NewRegistry()
	var cut atomic.Pointer[time.Time]
	logStates := func(who string) jsprobe.Config {
		return jsprobe.Config{OnState: func(st jsprobe.State) {
			if at := cut.Load(); at != nil {
				t.Logf("the %s's JetStream probe: %v, %v after the cut", who, st, time.Since(*at).Round(100*time.Millisecond))
			}
		}}
	}
	r := s.AddRelayOn(relayNC, relay.Config{Streams: r3, Metrics: relayReg, Probe: logStates("relay")})
	gw := s.AddGatewayOn(gatewayNC, gateway.Config{Streams: r3, Metrics: gatewayReg, Probe: logStates("gateway")})
	nc, reg, probe, bystander := gatewayNC, gatewayReg, gw.JetStream(), r.JetStream()
	if part == "relay" {
		nc, reg, probe, bystander = relayNC, relayReg, r.JetStream(), gw.JetStream()
	}
	alice, bob := s.Register("alice"), s.Register("bob")
	g := s.Group("ops", alice, bob)
	ca, cb := s.Dial(alice, 0), s.Dial(bob, 0)
	waitKeys(t, g, ca, cb)
	if err := ca.Send(ctxFor(t, 20*time.Second), g, []byte("before")); err != nil {
		t.Fatalf("send before the cut: %v", err)
	}
	if got := expect(t, cb, 1); got[0] != "before" {
		t.Fatalf("bob got %q", got)
	}

	c.Isolate(lone)
	now := time.Now()
	cut.Store(&now)
	t.Logf("cut off %s; the %s is connected to it", c.Nodes[lone].Name(), part)
	if err := ca.Send(ctxFor(t, 60*time.Second), g, []byte("after")); err != nil {
		t.Fatalf("send after the cut: %v (the %s is on %s)", err, part, nc.ConnectedServerName())
	}
	t.Logf("a send was accepted %v after the cut; the %s is on %s",
		time.Since(now).Round(100*time.Millisecond), part, nc.ConnectedServerName())
	m, err := stacktest.Receive(t, cb, 60*time.Second)
	if err != nil || string(m.Payload) != "after" {
		t.Fatalf("bob after the cut: %q, %v", m.Payload, err)
	}
	if at := c.NodeOf(nc); at == lone || at < 0 {
		t.Errorf("the %s is on node %d (%s), the cut-off node is %d", part, at, nc.ConnectedServerName(), lone)
	}
	if n := counter(t, reg, "comm_"+part+"_jetstream_moves_total"); n < 1 {
		t.Errorf("comm_%s_jetstream_moves_total %d, want at least 1", part, n)
	}
	natstest.CheckFor(t, 30*time.Second, 50*time.Millisecond, probe.Ready)
	if n := bystander.Moves(); n != 0 {
		t.Errorf("the part on a node that was not cut off moved %d times", n)
	}
}

// counter reads a counter without labels from reg's text.
func counter(t *testing.T, reg *prometheus.Registry, name string) int {
	t.Helper()
	text, err := metrics.Text(reg)
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(name) + ` (\d+)$`).FindStringSubmatch(text)
	if m == nil {
		t.Fatalf("no %s in the metrics:\n%s", name, text)
	}
	n, _ := strconv.Atoi(m[1])
	return n
}
