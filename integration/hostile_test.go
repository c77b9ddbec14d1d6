package integration

import (
	"encoding/binary"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/commsec/communicator/gateway"
	"github.com/commsec/communicator/internal/stacktest"
	"github.com/commsec/communicator/keyserver"
	"github.com/commsec/communicator/protocol"
	"github.com/commsec/communicator/protocol/channel"
	"github.com/commsec/communicator/relay"
)

// TestDeliverAckBeyondDeliveredRefused: bob acknowledges cursor 2^62,
// which he was never delivered. The gateway ends his channel with a
// protocol error (logged and counted), his cursor does not move, and a
// message sent while he is away is delivered when he comes back. Before,
// the gateway took the cursor silently and the message was never
// delivered.
func TestDeliverAckBeyondDeliveredRefused(t *testing.T) {
	s := stacktest.New(t)
	s.AddRelay(relay.Config{})
	s.AddGateway(gateway.Config{})
	alice, bob := s.Register("alice"), s.Register("bob")
	g := s.Group("ops", alice, bob)
	ca := s.Dial(alice, 0)
	waitKeys(t, g, ca)

	conn := rawConn(t, s, bob, 0)
	if err := conn.WriteFrame(channel.TypeDeliverAck, binary.BigEndian.AppendUint64(nil, 1<<62)); err != nil {
		t.Fatal(err)
	}
	conn.NetConn().SetReadDeadline(time.Now().Add(10 * time.Second))
	for {
		f, err := conn.ReadFrame()
		if err != nil {
			t.Fatalf("the channel ended without an Error frame: %v", err)
		}
		if f.Type != channel.TypeError {
			continue // bob's bundles
		}
		if code, err := channel.ParseError(f.Body); err != nil || code != protocol.CodeProtocol {
			t.Fatalf("Error frame code %d (%v), want %d (protocol)", code, err, protocol.CodeProtocol)
		}
		break
	}
	if _, err := conn.ReadFrame(); err == nil || errors.Is(err, protocol.ErrReplayedFrame) {
		t.Fatalf("channel still open after the Error frame: %v", err)
	}
	_, dropped, _ := s.Gateways[0].Metrics.Snapshot()
	if dropped["ack_beyond_delivered"] != 1 {
		t.Errorf("drops by reason %v, want ack_beyond_delivered 1", dropped)
	}
	if err := ca.Send(ctxFor(t, 10*time.Second), g, []byte("while you were away")); err != nil {
		t.Fatal(err)
	}
	cb := s.Dial(bob, 0)
	if got := expect(t, cb, 1); got[0] != "while you were away" {
		t.Fatalf("bob got %q", got[0])
	}
}

// TestSendAfterMissedRekeys: alice is offline while ops is rekeyed ten
// times; when she comes back, her first send is accepted. Before, a send
// right after connecting sealed under her old key before the gateway's
// bundles arrived, and was refused (old_epoch), again and again until
// something else waited for the bundles.
func TestSendAfterMissedRekeys(t *testing.T) {
	s := stacktest.New(t)
	s.AddRelay(relay.Config{Grace: time.Millisecond})
	s.AddGateway(gateway.Config{})
	alice, bob := s.Register("alice"), s.Register("bob")
	g := s.Group("ops", alice, bob)
	ca, cb := s.Dial(alice, 0), s.Dial(bob, 0)
	waitKeys(t, g, ca, cb)
	if err := ca.Send(ctxFor(t, 10*time.Second), g, []byte("before")); err != nil {
		t.Fatal(err)
	}
	expect(t, cb, 1)
	ca.Close()
	for i := range 10 {
		if _, err := s.Keyserver.Rekey(t.Context(), keyserver.Actor{}, "ops", fmt.Sprintf("drill %d", i)); err != nil {
			t.Fatal(err)
		}
	}
	s.Sync()
	ca = s.Dial(alice, 0)
	if err := ca.Send(ctxFor(t, 10*time.Second), g, []byte("after ten rekeys")); err != nil {
		t.Fatalf("alice's first send after ten missed rekeys: %v", err)
	}
	if e := ca.Epoch(g); e != 11 {
		t.Errorf("alice sealed under epoch %d's key, want 11", e)
	}
	if got := expect(t, cb, 1); got[0] != "after ten rekeys" {
		t.Fatalf("bob got %q", got[0])
	}
}
