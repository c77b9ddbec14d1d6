package integration

import (
	"fmt"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/commsec/communicator/gateway"
	"github.com/commsec/communicator/internal/natsauth"
	"github.com/commsec/communicator/internal/natstest"
	"github.com/commsec/communicator/internal/stacktest"
	"github.com/commsec/communicator/keyserver"
	"github.com/commsec/communicator/protocol"
	"github.com/commsec/communicator/relay"
	"github.com/commsec/communicator/streams"
)

// checkFor polls ok until it holds, failing after within.
func checkFor(t *testing.T, within time.Duration, what string, ok func() bool) {
	t.Helper()
	for deadline := time.Now().Add(within); !ok(); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("no %s within %v", what, within)
		}
	}
}

// addNamedGateway starts a gateway of stack s on a NATS connection of
// its own, named name on the server, and returns both.
func addNamedGateway(t *testing.T, s *stacktest.Stack, name string, cfg ...gateway.Config) (*gateway.Gateway, *nats.Conn) {
	t.Helper()
	var nc *nats.Conn
	if s.Open != nil {
		var err error
		if nc, err = s.Open.Connect(nats.Name(name), nats.CustomInboxPrefix(natsauth.InboxPrefix(natsauth.Gateway)+"."+name),
			nats.ReconnectWait(300*time.Millisecond), nats.MaxReconnects(-1)); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(nc.Close)
	} else {
		nc = s.NATS.Conn(t, natsauth.Gateway, nats.Name(name))
	}
	return s.AddGatewayOn(nc, append(cfg, gateway.Config{})[0]), nc
}

func hasSub(subs []string, subject string) bool { return slices.Contains(subs, subject) }

// TestLiveInterestCrossesAccountsAndRoutes: with the production accounts
// on a 3-node cluster, a gateway's subscription to one group's live
// subject, on another node than the stream's leader, gets that group's
// republished envelopes, through the stream import and across the
// routes, and nothing of another group: the leader's node holds, in the
// stream's account, interest in that group's subject only.
func TestLiveInterestCrossesAccountsAndRoutes(t *testing.T) {
	c := natstest.StartCluster(t, 3)
	c.WaitJetStream(t, 30*time.Second)
	s := stacktest.NewCluster(t, c, 0)
	leader := c.StreamLeader(streams.AcceptedStream)
	elsewhere := (leader + 1) % 3
	gw := c.Conn(t, elsewhere, natsauth.Gateway)
	ours, other, sender := protocol.GroupID{0x01}, protocol.GroupID{0x02}, protocol.ClientID{0x5e}
	sub, err := gw.SubscribeSync(streams.LiveGroup(ours))
	if err != nil {
		t.Fatal(err)
	}
	bundles, err := gw.SubscribeSync(streams.LiveMemberBundles(sender))
	if err != nil {
		t.Fatal(err)
	}
	if err := gw.Flush(); err != nil {
		t.Fatal(err)
	}
	live := func(g protocol.GroupID) string { return streams.LiveMsgPrefix + g.String() + "." + sender.String() }
	node := c.Nodes[leader]
	checkFor(t, 10*time.Second, "interest on the leader's node", func() bool {
		return node.HasInterest(streams.AcceptedStream, live(ours)) && node.HasInterest(streams.Bundles, streams.LiveBundlePrefix+sender.String()+"."+ours.String())
	})
	if node.HasInterest(streams.AcceptedStream, live(other)) {
		t.Error("the stream's account has interest in a group no gateway asked for")
	}
	relayConn := c.Conn(t, leader, natsauth.Relay)
	for _, g := range []protocol.GroupID{other, ours, other} {
		m := nats.NewMsg(streams.AcceptedSubject(g, sender))
		m.Header.Set(streams.HeaderEpoch, "1")
		m.Data = []byte(g.String())
		if _, err := relayConn.RequestMsg(m, 5*time.Second); err != nil {
			t.Fatal(err)
		}
	}
	msg, err := sub.NextMsg(5 * time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if msg.Subject != live(ours) || msg.Header.Get(streams.HeaderNatsStream) != streams.AcceptedStream || msg.Header.Get(streams.HeaderNatsSequence) != "2" {
		t.Errorf("got %s %v", msg.Subject, msg.Header)
	}
	if m, err := sub.NextMsg(300 * time.Millisecond); err == nil {
		t.Errorf("another group's message arrived: %s", m.Subject)
	}
	// A bundle, republished by the keyserver's stream, arrives the same way.
	ks := s.NC
	if _, err := ks.Request(streams.BundleSubject(ours, sender), []byte("bundle"), 5*time.Second); err != nil {
		t.Fatal(err)
	}
	if m, err := bundles.NextMsg(5 * time.Second); err != nil || m.Header.Get(streams.HeaderNatsStream) != streams.Bundles {
		t.Fatalf("bundle: %v %v", m, err)
	}
}

// TestGatewayReceivesOnlyItsGroups: two gateways, each with the clients
// of its own group; what each gateway's NATS connection receives while
// the other's clients send is not their messages (counted by the
// connection), its live feeds count only its group's messages, and the
// server holds each connection's subscription to its own group only.
func TestGatewayReceivesOnlyItsGroups(t *testing.T) {
	s := stacktest.New(t)
	s.AddRelay(relay.Config{})
	gwA, ncA := addNamedGateway(t, s, "gw-a")
	gwB, ncB := addNamedGateway(t, s, "gw-b")
	a1, a2, b1, b2 := s.Register("a1"), s.Register("a2"), s.Register("b1"), s.Register("b2")
	ga, gb := s.Group("ga", a1, a2), s.Group("gb", b1, b2)
	ca1, ca2 := s.Dial(a1, 0), s.Dial(a2, 0)
	cb1, cb2 := s.Dial(b1, 1), s.Dial(b2, 1)
	waitKeys(t, ga, ca1, ca2)
	waitKeys(t, gb, cb1, cb2)
	subsA, _ := s.NATS.Subscriptions("gw-a")
	subsB, _ := s.NATS.Subscriptions("gw-b")
	if !hasSub(subsA, streams.LiveGroup(ga)) || hasSub(subsA, streams.LiveGroup(gb)) ||
		!hasSub(subsB, streams.LiveGroup(gb)) || hasSub(subsB, streams.LiveGroup(ga)) {
		t.Errorf("subscriptions on the server: gw-a %v, gw-b %v", subsA, subsB)
	}
	if !hasSub(subsA, streams.LiveMemberBundles(a1.ID.ID())) || hasSub(subsA, streams.LiveMemberBundles(b1.ID.ID())) {
		t.Errorf("gw-a's bundle subscriptions: %v", subsA)
	}
	const n = 40
	ctx := ctxFor(t, 60*time.Second)
	inA, inB := ncA.Stats().InMsgs, ncB.Stats().InMsgs
	for i := range n {
		if err := cb1.Send(ctx, gb, []byte(fmt.Sprint("b", i))); err != nil {
			t.Fatal(err)
		}
	}
	expect(t, cb2, n)
	dA, dB := ncA.Stats().InMsgs-inA, ncB.Stats().InMsgs-inB
	t.Logf("while gb's clients sent %d: gw-a's connection received %d messages, gw-b's %d", n, dA, dB)
	if dA >= n/4 {
		t.Errorf("gw-a received %d messages while another gateway's group sent %d", dA, n)
	}
	if dB < 2*n { // each message live, and each verdict
		t.Errorf("gw-b received %d messages for %d sent", dB, n)
	}
	for i := range n {
		if err := ca1.Send(ctx, ga, []byte(fmt.Sprint("a", i))); err != nil {
			t.Fatal(err)
		}
	}
	expect(t, ca2, n)
	if a, b := gwA.Metrics.Costs().MessagesIn, gwB.Metrics.Costs().MessagesIn; a != n || b != n {
		t.Errorf("live messages received: gw-a %d, gw-b %d; want %d each (its own group's)", a, b, n)
	}
}

// TestMembershipChangeMovesInterest: a client connected to gateway A is
// added to a group whose only other member is on gateway B: A subscribes
// to the group's live feed (as the server sees it) and the client gets
// its messages; removed, A's subscription goes and A receives no more.
func TestMembershipChangeMovesInterest(t *testing.T) {
	s := stacktest.New(t)
	s.AddRelay(relay.Config{})
	gwA, _ := addNamedGateway(t, s, "gw-a")
	addNamedGateway(t, s, "gw-b")
	c, x := s.Register("carol"), s.Register("xavier")
	gx := s.Group("gx", x)
	s.Group("home", c)
	cc, cx := s.Dial(c, 0), s.Dial(x, 1)
	waitKeys(t, gx, cx)
	subs := func() []string { l, _ := s.NATS.Subscriptions("gw-a"); return l }
	if hasSub(subs(), streams.LiveGroup(gx)) {
		t.Fatal("gw-a subscribes to a group none of its clients is in")
	}
	s.Add("gx", c)
	checkFor(t, 10*time.Second, "subscription of gw-a to gx", func() bool { return hasSub(subs(), streams.LiveGroup(gx)) })
	waitKeys(t, gx, cc, cx)
	ctx := ctxFor(t, 30*time.Second)
	if err := cx.Send(ctx, gx, []byte("hello carol")); err != nil {
		t.Fatal(err)
	}
	if got := expect(t, cc, 1); got[0] != "hello carol" {
		t.Fatalf("carol got %q", got)
	}
	if _, err := s.Keyserver.RemoveMembers(ctx, keyserver.Actor{}, "gx", []string{"carol"}, "test"); err != nil {
		t.Fatal(err)
	}
	s.Sync()
	checkFor(t, 10*time.Second, "end of gw-a's subscription to gx", func() bool { return !hasSub(subs(), streams.LiveGroup(gx)) })
	before := gwA.Metrics.Costs().MessagesIn
	waitEpoch(t, cx, gx, 2)
	if err := cx.Send(ctx, gx, []byte("carol is gone")); err != nil {
		t.Fatal(err)
	}
	expectNothing(t, cc, 300*time.Millisecond)
	if after := gwA.Metrics.Costs().MessagesIn; after != before {
		t.Errorf("gw-a received %d live messages of a group it left", after-before)
	}
}

// apiWatch counts, on a server without accounts, the JetStream API
// requests a gateway's connection (its inbox prefix) makes, and the
// consumers created on the server, leaving out the gateway's reads of
// the event log (its follower, its JetStream probe).
type apiWatch struct {
	calls, consumers atomic.Int64
	nc               *nats.Conn
}

func watchAPI(t *testing.T, s *stacktest.Stack, name string) *apiWatch {
	t.Helper()
	w := &apiWatch{nc: s.Conn("watch")}
	_, err := w.nc.Subscribe("$JS.API.>", func(m *nats.Msg) {
		if strings.HasPrefix(m.Reply, natsauth.InboxPrefix(natsauth.Gateway)+"."+name+".") && !strings.Contains(m.Subject, streams.Events) {
			w.calls.Add(1)
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.nc.Subscribe("$JS.EVENT.ADVISORY.CONSUMER.CREATED.>", func(m *nats.Msg) {
		if !strings.Contains(m.Subject, streams.Events) {
			w.consumers.Add(1)
		}
	}); err != nil {
		t.Fatal(err)
	}
	if err := w.nc.Flush(); err != nil {
		t.Fatal(err)
	}
	return w
}

// TestReconnectWithNothingPendingCreatesNoConsumer: a client that has
// acknowledged everything disconnects and reconnects to the same
// gateway: no consumer is created on the server (its advisories are
// counted), and the gateway makes at most one JetStream API call for the
// connect (counted on the server as requests, and by the gateway). To
// another gateway: its record and its group's last sequence. To the
// same gateway after a graceful restart: at most one per reconnect.
func TestReconnectWithNothingPendingCreatesNoConsumer(t *testing.T) {
	s := stacktest.NewOpen(t, 1)
	s.AddRelay(relay.Config{})
	gw, gwConn := addNamedGateway(t, s, "gw", gateway.Config{Name: "gw"})
	alice, bob, carol := s.Register("alice"), s.Register("bob"), s.Register("carol")
	g := s.Group("ops", alice, bob, carol)
	ca, cb, cc := s.Dial(alice, 0), s.Dial(bob, 0), s.Dial(carol, 0)
	waitKeys(t, g, ca, cb, cc)
	ctx := ctxFor(t, 60*time.Second)
	for i := range 5 {
		if err := ca.Send(ctx, g, []byte(fmt.Sprint("m", i))); err != nil {
			t.Fatal(err)
		}
	}
	expect(t, cb, 5)
	expect(t, cc, 5)
	last := lastStored(t, s, streams.AcceptedShard(0))
	checkFor(t, 10*time.Second, "bob's cursor stored", func() bool { return storedCursor(s, bob) == fmt.Sprint(last) })
	for round := range 3 {
		cb.Close()
		checkFor(t, 10*time.Second, "bob's session end", func() bool { return gw.Metrics.Connections() == 2 })
		w := watchAPI(t, s, "gw")
		before := gw.Metrics.Costs()
		cb = s.Dial(bob, 0)
		checkFor(t, 10*time.Second, "bob's session set up", func() bool { return gw.Metrics.Costs().Connects > before.Connects })
		if err := w.nc.Flush(); err != nil {
			t.Fatal(err)
		}
		after := gw.Metrics.Costs()
		t.Logf("reconnect %d: %d JetStream API calls on the server, %d by the gateway's count, %d consumers created",
			round, w.calls.Load(), after.ConnectAPICalls-before.ConnectAPICalls, w.consumers.Load())
		if w.consumers.Load() != 0 || after.Consumers != before.Consumers {
			t.Errorf("reconnect %d with nothing pending created %d consumers", round, w.consumers.Load())
		}
		if w.calls.Load() > 1 || after.ConnectAPICalls-before.ConnectAPICalls > 1 {
			t.Errorf("reconnect %d: %d API calls, want at most 1", round, w.calls.Load())
		}
		w.nc.Close()
	}
	// Still delivering: a new message reaches the reconnected bob.
	if err := ca.Send(ctx, g, []byte("after")); err != nil {
		t.Fatal(err)
	}
	if got := expect(t, cb, 1); got[0] != "after" {
		t.Fatalf("bob got %q", got)
	}
	expect(t, cc, 1)
	// To another gateway, where nothing is warm: the cursor's read and
	// the group's last sequence; no bundle read (bob's record says he
	// confirmed the group's current epoch), still no consumer.
	last = lastStored(t, s, streams.AcceptedShard(0))
	checkFor(t, 10*time.Second, "bob's cursor stored", func() bool { return storedCursor(s, bob) == fmt.Sprint(last) })
	cb.Close()
	gw2, _ := addNamedGateway(t, s, "gw2")
	w2 := watchAPI(t, s, "gw2")
	cb = s.Dial(bob, 1)
	checkFor(t, 10*time.Second, "bob's session on gw2 set up", func() bool { return gw2.Metrics.Costs().Connects == 1 })
	w2.nc.Flush()
	t.Logf("reconnect to a cold gateway: %d JetStream API calls (%d by its count), %d consumers",
		w2.calls.Load(), gw2.Metrics.Costs().ConnectAPICalls, w2.consumers.Load())
	if w2.consumers.Load() != 0 || w2.calls.Load() > 2 {
		t.Errorf("reconnect to a cold gateway: %d consumers, %d API calls; want none and at most 2", w2.consumers.Load(), w2.calls.Load())
	}
	// The sender's cursor passed its own messages: nothing pending for
	// alice either. (Her bundles are read again: with no delivery since
	// they came, she never confirmed them; a duplicate is a no-op.)
	ca.Close()
	checkFor(t, 10*time.Second, "alice's session end", func() bool { return gw.Metrics.Connections() == 1 })
	w := watchAPI(t, s, "gw")
	before := gw.Metrics.Costs()
	ca = s.Dial(alice, 0)
	checkFor(t, 10*time.Second, "alice's session set up", func() bool { return gw.Metrics.Costs().Connects > before.Connects })
	w.nc.Flush()
	t.Logf("the sender's reconnect: %d API calls, %d consumers", w.calls.Load(), w.consumers.Load())
	if w.consumers.Load() != 0 {
		t.Errorf("the sender's reconnect created %d consumers", w.consumers.Load())
	}
	w.nc.Close()
	// A graceful restart of gw: its snapshot carries bob's and carol's
	// records, and both confirmed the group's current epoch; their
	// reconnects cost the group's last sequence, once for both.
	cb.Close()
	checkFor(t, 10*time.Second, "bob's session end on gw2", func() bool { return gw2.Metrics.Connections() == 0 })
	ca.Close()
	cc.Close()
	checkFor(t, 10*time.Second, "the sessions' end on gw", func() bool { return gw.Metrics.Connections() == 0 })
	addr := gw.Addr().String()
	gw.Close()
	gwR := s.AddGatewayOn(gwConn, gateway.Config{Listen: addr, Name: "gw"})
	restarted := len(s.Gateways) - 1
	if n := gwR.Metrics.Costs().SnapshotLoaded; n < 2 {
		t.Errorf("the restarted gateway loaded %d clients from its snapshot, want bob's and carol's at least", n)
	}
	wR := watchAPI(t, s, "gw")
	cb, cc = s.Dial(bob, restarted), s.Dial(carol, restarted)
	checkFor(t, 10*time.Second, "bob's and carol's sessions set up", func() bool { return gwR.Metrics.Costs().Connects == 2 })
	wR.nc.Flush()
	t.Logf("2 reconnects to the restarted gateway: %d JetStream API calls (%d by its count), %d consumers",
		wR.calls.Load(), gwR.Metrics.Costs().ConnectAPICalls, wR.consumers.Load())
	if wR.consumers.Load() != 0 || gwR.Metrics.Costs().Consumers != 0 {
		t.Errorf("reconnects to the restarted gateway created %d consumers", wR.consumers.Load())
	}
	if wR.calls.Load() > 2 {
		t.Errorf("2 reconnects to the restarted gateway: %d API calls, want at most 1 each", wR.calls.Load())
	}
	ca = s.Dial(alice, restarted)
	if err := ca.Send(ctx, g, []byte("restarted")); err != nil {
		t.Fatal(err)
	}
	if got := expect(t, cb, 1); got[0] != "restarted" {
		t.Fatalf("bob got %q", got)
	}
	expect(t, cc, 1)
}

// TestSnapshotNeverMovesCursorBackward: bob leaves gateway A, acknowledges
// more on gateway B, then A restarts gracefully: A's snapshot holds his
// older cursor, yet his reconnect to A starts from B's: no pass (nothing
// is pending), and his stored cursor is B's or later.
func TestSnapshotNeverMovesCursorBackward(t *testing.T) {
	s := stacktest.NewOpen(t, 1)
	s.AddRelay(relay.Config{})
	gwA, ncA := addNamedGateway(t, s, "gw-a", gateway.Config{Name: "gw-a"})
	addNamedGateway(t, s, "gw-b", gateway.Config{Name: "gw-b"})
	alice, bob := s.Register("alice"), s.Register("bob")
	g := s.Group("ops", alice, bob)
	ca, cb := s.Dial(alice, 1), s.Dial(bob, 0)
	waitKeys(t, g, ca, cb)
	ctx := ctxFor(t, 60*time.Second)
	send := func(prefix string) {
		for i := range 3 {
			if err := ca.Send(ctx, g, []byte(fmt.Sprint(prefix, i))); err != nil {
				t.Fatal(err)
			}
		}
		expect(t, cb, 3)
		last := lastStored(t, s, streams.AcceptedShard(0))
		checkFor(t, 10*time.Second, "bob's cursor stored", func() bool { return storedCursor(s, bob) == fmt.Sprint(last) })
	}
	send("on a ")
	cb.Close()
	checkFor(t, 10*time.Second, "bob's session end on A", func() bool { return gwA.Metrics.Connections() == 0 })
	cb = s.Dial(bob, 1)
	send("on b ")
	onB := storedCursor(s, bob)
	cb.Close()
	addr := gwA.Addr().String()
	gwA.Close()
	gwA2 := s.AddGatewayOn(ncA, gateway.Config{Listen: addr, Name: "gw-a"})
	if n := gwA2.Metrics.Costs().SnapshotLoaded; n != 1 {
		t.Fatalf("A loaded %d clients from its snapshot, want bob", n)
	}
	cb = s.Dial(bob, len(s.Gateways)-1)
	checkFor(t, 10*time.Second, "bob's session on A set up", func() bool { return gwA2.Metrics.Costs().Connects == 1 })
	if n := gwA2.Metrics.Costs().Consumers; n != 0 {
		t.Errorf("bob's reconnect to A passed %d times: his cursor went back to A's snapshot", n)
	}
	expectNothing(t, cb, 300*time.Millisecond)
	cb.Close()
	checkFor(t, 10*time.Second, "bob's session end on A", func() bool { return gwA2.Metrics.Connections() == 0 })
	time.Sleep(1500 * time.Millisecond) // A's next cursor batch, if it had anything to write
	if got := storedCursor(s, bob); got != onB {
		t.Errorf("bob's stored cursor %q after A's restart, want B's %q", got, onB)
	}
}

// TestMissedRekeyBundleAfterRestart: bob confirmed the group's epoch,
// disconnected, the group was rekeyed and the gateway restarted; his
// snapshot entry says he confirmed the old epoch only, so his reconnect
// pushes the new epoch's bundle, and he reads what follows.
func TestMissedRekeyBundleAfterRestart(t *testing.T) {
	s := stacktest.NewOpen(t, 1)
	s.AddRelay(relay.Config{})
	gw, nc := addNamedGateway(t, s, "gw", gateway.Config{Name: "gw"})
	alice, bob := s.Register("alice"), s.Register("bob")
	g := s.Group("ops", alice, bob)
	ca, cb := s.Dial(alice, 0), s.Dial(bob, 0)
	waitKeys(t, g, ca, cb)
	ctx := ctxFor(t, 60*time.Second)
	if err := ca.Send(ctx, g, []byte("epoch 1")); err != nil {
		t.Fatal(err)
	}
	expect(t, cb, 1)
	last := lastStored(t, s, streams.AcceptedShard(0))
	checkFor(t, 10*time.Second, "bob's record with his epoch", func() bool { return strings.HasPrefix(storedRecord(s, bob), fmt.Sprint(last)+";b") })
	cb.Close()
	ca.Close()
	checkFor(t, 10*time.Second, "the sessions' end", func() bool { return gw.Metrics.Connections() == 0 })
	if _, err := s.Keyserver.Rekey(ctx, keyserver.Actor{}, "ops", "test"); err != nil {
		t.Fatal(err)
	}
	s.Sync()
	addr := gw.Addr().String()
	gw.Close()
	gwR := s.AddGatewayOn(nc, gateway.Config{Listen: addr, Name: "gw"})
	if n := gwR.Metrics.Costs().SnapshotLoaded; n < 1 {
		t.Fatalf("the restarted gateway loaded %d clients from its snapshot", n)
	}
	cb, ca = s.Dial(bob, len(s.Gateways)-1), s.Dial(alice, len(s.Gateways)-1)
	waitEpoch(t, cb, g, 2)
	waitEpoch(t, ca, g, 2)
	if err := ca.Send(ctx, g, []byte("epoch 2")); err != nil {
		t.Fatal(err)
	}
	if got := expect(t, cb, 1); got[0] != "epoch 2" {
		t.Fatalf("bob got %q", got)
	}
}

// lastStored is the last sequence of a stream.
func lastStored(t *testing.T, s *stacktest.Stack, stream string) uint64 {
	t.Helper()
	st, err := s.JS.Stream(ctxFor(t, 5*time.Second), stream)
	if err != nil {
		t.Fatal(err)
	}
	return st.CachedInfo().State.LastSeq
}

// storedCursor is the stored cursor of c ("" if none): its record's
// first field.
func storedCursor(s *stacktest.Stack, c *stacktest.Client) string {
	cursor, _, _ := strings.Cut(storedRecord(s, c), ";")
	return cursor
}

// storedRecord is the stored record of c ("" if none).
func storedRecord(s *stacktest.Stack, c *stacktest.Client) string {
	kv, err := s.JS.KeyValue(ctxFor(s.T.(*testing.T), 5*time.Second), streams.Cursors)
	if err != nil {
		return ""
	}
	e, err := kv.Get(ctxFor(s.T.(*testing.T), 5*time.Second), c.ID.ID().String())
	if err != nil {
		return ""
	}
	return string(e.Value())
}
