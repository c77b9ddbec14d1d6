package integration

import (
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/commsec/communicator/gateway"
	"github.com/commsec/communicator/internal/natstest"
	"github.com/commsec/communicator/internal/stacktest"
	"github.com/commsec/communicator/keyserver"
	"github.com/commsec/communicator/protocol/channel"
	"github.com/commsec/communicator/relay"
)

// TestOfflineClientCatchesUpExactlyOnce: bob is offline while alice sends
// 30 messages across a rekey; when he reconnects he receives all of them,
// each exactly once, in order, with the keys of both epochs.
func TestOfflineClientCatchesUpExactlyOnce(t *testing.T) {
	s := stacktest.New(t)
	s.AddRelay(relay.Config{})
	s.AddGateway(gateway.Config{})
	alice, bob := s.Register("alice"), s.Register("bob")
	g := s.Group("ops", alice, bob)
	ca, cb := s.Dial(alice, 0), s.Dial(bob, 0)
	waitKeys(t, g, ca, cb)
	ctx := ctxFor(t, 60*time.Second)
	if err := ca.Send(ctx, g, []byte("m00")); err != nil {
		t.Fatal(err)
	}
	expect(t, cb, 1)
	cb.Close()
	for i := 1; i <= 30; i++ {
		if i == 15 {
			if _, err := s.Keyserver.Rekey(ctx, keyserver.Actor{}, "ops", "while bob is away"); err != nil {
				t.Fatal(err)
			}
			waitEpoch(t, ca, g, 2)
		}
		if err := ca.Send(ctx, g, []byte(fmt.Sprintf("m%02d", i))); err != nil {
			t.Fatal(err)
		}
	}
	cb = s.Dial(bob, 0)
	got := expect(t, cb, 30)
	for i, p := range got {
		if want := fmt.Sprintf("m%02d", i+1); p != want {
			t.Fatalf("message %d is %q, want %q", i, p, want)
		}
	}
	expectNothing(t, cb, 500*time.Millisecond)
}

// TestSlowClientDoesNotSlowOthers: bob connects but never reads; alice
// sends until the gateway has disconnected bob for it, and carol receives
// every message meanwhile and is never dropped.
func TestSlowClientDoesNotSlowOthers(t *testing.T) {
	s := stacktest.New(t)
	s.AddRelay(relay.Config{})
	gw := s.AddGateway(gateway.Config{QueueSize: 64, WriteTimeout: 300 * time.Millisecond})
	alice, bob, carol := s.Register("alice"), s.Register("bob"), s.Register("carol")
	g := s.Group("ops", alice, bob, carol)
	stuck := rawConn(t, s, bob, 0) // reads nothing from here on
	stuck.NetConn().(*net.TCPConn).SetReadBuffer(4096)
	ca, cc := s.Dial(alice, 0), s.Dial(carol, 0)
	waitKeys(t, g, ca, cc)
	ctx := ctxFor(t, 120*time.Second)
	payload := make([]byte, 60<<10) // fills bob's socket buffers (several MB on loopback)
	var received atomic.Int64
	go func() {
		for range cc.Messages() {
			received.Add(1)
		}
	}()
	sent := 0
	for ; sent < 2000 && drops(gw) == 0; sent++ {
		copy(payload, fmt.Sprint(sent))
		if err := ca.Send(ctx, g, payload); err != nil {
			t.Fatal(err)
		}
	}
	if drops(gw) == 0 {
		t.Fatalf("bob was never disconnected after %d messages", sent)
	}
	for range 10 { // a few more after bob is gone
		if err := ca.Send(ctx, g, payload); err != nil {
			t.Fatal(err)
		}
		sent++
	}
	natstest.CheckFor(t, 30*time.Second, 20*time.Millisecond, func() error {
		if n := received.Load(); n < int64(sent) {
			return fmt.Errorf("carol has %d of %d", n, sent)
		}
		return nil
	})
	_, dropped, _ := gw.Metrics.Snapshot()
	if drops(gw) != 1 {
		t.Fatalf("connections dropped %v: only bob should be", dropped)
	}
	t.Logf("sent %d messages of 60 KiB; dropped: %v", sent, dropped)
}

func drops(gw *gateway.Gateway) uint64 {
	_, dropped, _ := gw.Metrics.Snapshot()
	var n uint64
	for _, v := range dropped {
		n += v
	}
	return n
}

// TestTwoRelaysTwoGateways: clients on two gateways exchange messages
// while two relays share the partitions; one relay stops mid-stream. No
// (group, sender, counter) is accepted twice and every acknowledged
// message arrives, exactly once.
func TestTwoRelaysTwoGateways(t *testing.T) {
	s := stacktest.New(t)
	r1 := s.AddRelay(relay.Config{})
	s.AddRelay(relay.Config{})
	s.AddGateway(gateway.Config{})
	s.AddGateway(gateway.Config{})
	const senders, each = 4, 25
	var clients []*stacktest.Client
	for i := range senders {
		clients = append(clients, s.Register(fmt.Sprint("c", i)))
	}
	rx := s.Register("rx")
	var groups = make(map[string]bool)
	for i, c := range clients {
		name := fmt.Sprint("g", i)
		s.Group(name, c, rx)
		groups[name] = true
	}
	crx := s.Dial(rx, 1)
	var wg sync.WaitGroup
	ctx := ctxFor(t, 90*time.Second)
	for i, c := range clients {
		cl := s.Dial(c, i%2)
		gid := s.GroupID(fmt.Sprint("g", i))
		waitKeys(t, gid, cl, crx)
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range each {
				if j == each/2 && i == 0 {
					r1.Close() // one relay leaves mid-stream
				}
				if err := cl.Send(ctx, gid, []byte(fmt.Sprintf("%d/%d", i, j))); err != nil {
					t.Errorf("sender %d message %d: %v", i, j, err)
					return
				}
			}
		}()
	}
	wg.Wait()
	got := expect(t, crx, senders*each)
	seen := map[string]bool{}
	for _, p := range got {
		if seen[p] {
			t.Fatalf("%s delivered twice", p)
		}
		seen[p] = true
	}
	expectNothing(t, crx, 500*time.Millisecond)
	checkNoCounterTwice(t, storedEnvelopes(t, s))
}

var _ = channel.StatusAccepted
