// Package integration tests the whole message path over real TCP and a
// real embedded nats-server: SDK clients, gateways, relays, the keyserver.
package integration

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/commsec/communicator/clientsdk"
	"github.com/commsec/communicator/gateway"
	"github.com/commsec/communicator/internal/stacktest"
	"github.com/commsec/communicator/keyserver"
	"github.com/commsec/communicator/protocol"
	"github.com/commsec/communicator/relay"
)

func ctxFor(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// waitKeys waits until every client holds a key for g.
func waitKeys(t *testing.T, g protocol.GroupID, cls ...*clientsdk.Client) {
	t.Helper()
	for _, c := range cls {
		if err := c.WaitKey(ctxFor(t, 10*time.Second), g); err != nil {
			t.Fatalf("no key for the group: %v", err)
		}
	}
}

// expect receives n messages on cl and returns their payloads in order.
func expect(t *testing.T, cl *clientsdk.Client, n int) []string {
	t.Helper()
	var got []string
	for len(got) < n {
		m, err := stacktest.Receive(t, cl, 10*time.Second)
		if err != nil {
			t.Fatalf("after %d of %d messages: %v", len(got), n, err)
		}
		got = append(got, string(m.Payload))
	}
	return got
}

// expectNothing checks that cl receives nothing more for a while.
func expectNothing(t *testing.T, cl *clientsdk.Client, within time.Duration) {
	t.Helper()
	if m, err := stacktest.Receive(t, cl, within); err == nil {
		t.Fatalf("unexpected message %q", m.Payload)
	}
}

func TestThreeClientsExchange(t *testing.T) {
	s := stacktest.New(t)
	s.AddRelay(relay.Config{})
	s.AddGateway(gateway.Config{})
	alice, bob, carol := s.Register("alice"), s.Register("bob"), s.Register("carol")
	g := s.Group("ops", alice, bob, carol)
	ca, cb, cc := s.Dial(alice, 0), s.Dial(bob, 0), s.Dial(carol, 0)
	waitKeys(t, g, ca, cb, cc)
	ctx := ctxFor(t, 20*time.Second)
	for i, c := range []*clientsdk.Client{ca, cb, cc} {
		if err := c.Send(ctx, g, []byte(fmt.Sprintf("hello from %d", i))); err != nil {
			t.Fatal(err)
		}
	}
	for i, c := range []*clientsdk.Client{ca, cb, cc} {
		got := expect(t, c, 2)
		for _, p := range got {
			if p == fmt.Sprintf("hello from %d", i) {
				t.Fatalf("client %d got its own message back", i)
			}
		}
	}
}

func TestNonMemberAndRemovedMember(t *testing.T) {
	s := stacktest.New(t)
	s.AddRelay(relay.Config{})
	s.AddGateway(gateway.Config{})
	alice, bob, mallory := s.Register("alice"), s.Register("bob"), s.Register("mallory")
	g := s.Group("ops", alice, bob)
	s.Group("other", mallory)
	ca, cb, cm := s.Dial(alice, 0), s.Dial(bob, 0), s.Dial(mallory, 0)
	waitKeys(t, g, ca, cb)
	ctx := ctxFor(t, 30*time.Second)
	if err := cm.Send(ctx, g, []byte("let me in")); !errors.Is(err, clientsdk.ErrNotMember) {
		t.Fatalf("a non-member: %v", err)
	}
	// Remove bob: he must neither send nor read the next epoch.
	if _, err := s.Keyserver.RemoveMembers(ctx, keyserver.Actor{}, "ops", []string{"bob"}, "left"); err != nil {
		t.Fatal(err)
	}
	waitEpoch(t, ca, g, 2)
	if err := cb.Send(ctx, g, []byte("still here?")); !errors.Is(err, clientsdk.ErrNotMember) {
		t.Fatalf("removed member's send: %v", err)
	}
	if err := ca.Send(ctx, g, []byte("epoch 2 secret")); err != nil {
		t.Fatal(err)
	}
	expectNothing(t, cb, 500*time.Millisecond)
	if e := cb.Epoch(g); e != 1 {
		t.Fatalf("bob holds a key for epoch %d", e)
	}
}

// waitEpoch waits until cl holds the key of epoch e of g.
func waitEpoch(t *testing.T, cl *clientsdk.Client, g protocol.GroupID, e protocol.Epoch) {
	t.Helper()
	ctx := ctxFor(t, 10*time.Second)
	for {
		if err := cl.WaitKey(ctx, g); err != nil {
			t.Fatal(err)
		}
		if got := cl.Epoch(g); got >= e {
			return
		}
		select {
		case <-ctx.Done():
			t.Fatalf("epoch %d never arrived", e)
		case <-time.After(20 * time.Millisecond):
		}
	}
}
