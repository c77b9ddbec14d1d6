package integration

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/commsec/communicator/clientsdk"
	"github.com/commsec/communicator/gateway"
	"github.com/commsec/communicator/internal/natsauth"
	"github.com/commsec/communicator/internal/stacktest"
	"github.com/commsec/communicator/protocol/channel"
	"github.com/commsec/communicator/relay"
	"github.com/commsec/communicator/streams"
	"github.com/nats-io/nats.go/jetstream"
)

// TestOldEnvelopeResentIsNotStoredAgain: envelopes alice really sent,
// sent again byte for byte on a new connection, are not relayed again:
// each is a duplicate (its counter is in alice's replay window), the
// first one too although a later one was accepted after it.
func TestOldEnvelopeResentIsNotStoredAgain(t *testing.T) {
	s := stacktest.New(t)
	s.AddRelay(relay.Config{})
	s.AddGateway(gateway.Config{})
	alice, bob := s.Register("alice"), s.Register("bob")
	g := s.Group("ops", alice, bob)
	ca, cb := s.Dial(alice, 0), s.Dial(bob, 0)
	waitKeys(t, g, ca, cb)
	ctx := ctxFor(t, 20*time.Second)
	for _, p := range []string{"one", "two"} {
		if err := ca.Send(ctx, g, []byte(p)); err != nil {
			t.Fatal(err)
		}
	}
	expect(t, cb, 2)
	envs := storedEnvelopes(t, s)
	conn := rawConn(t, s, alice, 0)
	if st := sendRaw(t, conn, envs[0]); st != channel.StatusDuplicate {
		t.Fatalf("first envelope sent again: %v, want duplicate (not stored again)", st)
	}
	if st := sendRaw(t, conn, envs[1]); st != channel.StatusDuplicate {
		t.Fatalf("last envelope sent again: %v, want duplicate (not stored again)", st)
	}
	if n := len(storedEnvelopes(t, s)); n != 2 {
		t.Fatalf("%d envelopes stored, want 2", n)
	}
	expectNothing(t, cb, 500*time.Millisecond)
}

// TestReplayedDeliveryRefusedByClient: the gateway delivers bob's messages
// again (his cursor is reset); bob's client hands none of them over twice,
// also after a restart from its stored state.
func TestReplayedDeliveryRefusedByClient(t *testing.T) {
	s := stacktest.New(t)
	s.AddRelay(relay.Config{})
	s.AddGateway(gateway.Config{})
	alice, bob := s.Register("alice"), s.Register("bob")
	g := s.Group("ops", alice, bob)
	ca, cb := s.Dial(alice, 0), s.Dial(bob, 0)
	waitKeys(t, g, ca, cb)
	ctx := ctxFor(t, 30*time.Second)
	for _, p := range []string{"a", "b", "c"} {
		if err := ca.Send(ctx, g, []byte(p)); err != nil {
			t.Fatal(err)
		}
	}
	expect(t, cb, 3)
	cb.Close()
	resetCursor(t, s, bob)
	cb = s.Dial(bob, 0) // restarted from bob's stored state
	if err := ca.Send(ctx, g, []byte("d")); err != nil {
		t.Fatal(err)
	}
	if got := expect(t, cb, 1); got[0] != "d" {
		t.Fatalf("after the redelivery bob got %q first, want only the new message", got[0])
	}
	expectNothing(t, cb, 500*time.Millisecond)
}

func resetCursor(t *testing.T, s *stacktest.Stack, c *stacktest.Client) {
	t.Helper()
	js, _ := jetstream.New(s.Conn(natsauth.Gateway)) // the cursors are the gateways'
	kv, err := js.KeyValue(context.Background(), streams.Cursors)
	if err != nil {
		t.Fatal(err)
	}
	kv.Purge(context.Background(), c.ID.ID().String())
}

// TestRestartedClientNeverReusesACounter: alice restarts from her stored
// state between sends; every message is accepted (a reused counter would
// be refused) and bob gets each exactly once.
func TestRestartedClientNeverReusesACounter(t *testing.T) {
	s := stacktest.New(t)
	s.AddRelay(relay.Config{})
	s.AddGateway(gateway.Config{})
	alice, bob := s.Register("alice"), s.Register("bob")
	g := s.Group("ops", alice, bob)
	cb := s.Dial(bob, 0)
	ctx := ctxFor(t, 60*time.Second)
	for round := range 3 {
		ca := s.Dial(alice, 0)
		waitKeys(t, g, ca)
		for range 3 {
			if err := ca.Send(ctx, g, []byte{byte(round)}); err != nil {
				t.Fatalf("round %d: %v", round, err)
			}
		}
		ca.Close()
	}
	expect(t, cb, 9)
	checkNoCounterTwice(t, storedEnvelopes(t, s))
}

// TestRelayCrashBetweenStoreAndReply: the relay stores alice's message
// (the stored message is its counter's record: one write) and "crashes"
// before replying; alice's client gets no verdict in time, sends the same
// envelope again, is told "duplicate", and the message is stored and
// delivered exactly once.
func TestRelayCrashBetweenStoreAndReply(t *testing.T) {
	s := stacktest.New(t)
	crashes := make(chan struct{}, 1)
	crashes <- struct{}{}
	s.AddRelay(relay.Config{FaultAfterStore: func() error {
		select {
		case <-crashes:
			return errors.New("injected crash")
		default:
			return nil
		}
	}})
	s.AddGateway(gateway.Config{SendTimeout: 300 * time.Millisecond})
	alice, bob := s.Register("alice"), s.Register("bob")
	g := s.Group("ops", alice, bob)
	ca, cb := s.Dial(alice, 0), s.Dial(bob, 0)
	waitKeys(t, g, ca, cb)
	if err := ca.Send(ctxFor(t, 20*time.Second), g, []byte("survives")); err != nil {
		t.Fatal(err)
	}
	if got := expect(t, cb, 1); got[0] != "survives" {
		t.Fatal(got)
	}
	expectNothing(t, cb, 500*time.Millisecond)
	if n := len(storedEnvelopes(t, s)); n != 1 {
		t.Fatalf("%d stored, want exactly 1", n)
	}
}

var _ = clientsdk.ErrRefused
