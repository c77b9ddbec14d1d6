package integration

import (
	"context"
	"strconv"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/commsec/communicator/gateway"
	"github.com/commsec/communicator/internal/natsauth"
	"github.com/commsec/communicator/internal/stacktest"
	"github.com/commsec/communicator/keyserver"
	"github.com/commsec/communicator/protocol"
	"github.com/commsec/communicator/protocol/clientstate"
	"github.com/commsec/communicator/protocol/envelope"
	"github.com/commsec/communicator/protocol/keys"
	"github.com/commsec/communicator/protocol/replay"
	"github.com/commsec/communicator/relay"
	"github.com/commsec/communicator/streams"
)

// impostor signs with its own key while claiming another's ClientID:
// all a member (or a removed member) holding the group key can do.
type impostor struct {
	claim protocol.ClientID
	key   *keys.SigningKey
}

func (i impostor) Public() [protocol.PublicKeySize]byte         { return i.claim }
func (i impostor) Sign(msg []byte) [protocol.SignatureSize]byte { return i.key.Sign(msg) }

// TestRemovedMemberCannotForge: bob is removed from ops (epoch 2) but
// kept the epoch-1 key, as clients keep the previous epoch's key for a
// while. He seals envelopes under it naming carol as sender: one is put
// on comm.in within the relay's grace, as a compromised gateway could;
// another is written straight into the accepted stream, as a compromised
// relay (or a NATS user with its rights) could. Alice accepts neither,
// and carol's counter record is untouched: her real next send is
// accepted, and alice gets it. Against 72ccb30 the relay accepted the
// first, alice accepted both as carol, and the forged record refused
// carol's real sends.
func TestRemovedMemberCannotForge(t *testing.T) {
	s := stacktest.New(t)
	s.AddRelay(relay.Config{Grace: time.Hour})
	s.AddGateway(gateway.Config{})
	alice, bob, carol := s.Register("alice"), s.Register("bob"), s.Register("carol")
	g := s.Group("ops", alice, bob, carol)
	ca, cb, cc := s.Dial(alice, 0), s.Dial(bob, 0), s.Dial(carol, 0)
	waitKeys(t, g, ca, cb, cc)
	ctx := ctxFor(t, 60*time.Second)
	if err := cc.Send(ctx, g, []byte("carol's first")); err != nil {
		t.Fatal(err)
	}
	if got := expect(t, ca, 1); got[0] != "carol's first" {
		t.Fatalf("alice got %q", got[0])
	}

	// bob leaves with the epoch-1 key in his state.
	cb.Close()
	bobState, err := clientstate.Load(bob.Store, clientstate.Options{})
	if err != nil {
		t.Fatal(err)
	}
	key1, err := bobState.Key(g, 1)
	if err != nil {
		t.Fatalf("bob kept no epoch-1 key: %v", err)
	}
	if _, err := s.Keyserver.RemoveMembers(ctx, keyserver.Actor{}, "ops", []string{"bob"}, "left"); err != nil {
		t.Fatal(err)
	}
	s.Sync()
	for _, c := range []interface {
		Epoch(protocol.GroupID) protocol.Epoch
	}{ca, cc} {
		natstestWait(t, func() bool { return c.Epoch(g) == 2 })
	}
	forge := func(counter uint64, payload string) []byte {
		h := envelope.Header{Group: g, Epoch: 1, Sender: carol.ID.ID(), Counter: counter}
		env, err := envelope.Seal(nil, h, &key1, []byte(payload), impostor{carol.ID.ID(), bob.ID.Sig}, nil)
		if err != nil {
			t.Fatal(err)
		}
		return env
	}

	// (a) A compromised gateway attests carol as the sender on comm.in,
	// within the grace of epoch 1.
	m := nats.NewMsg(streams.InboundSubject(g))
	m.Data = forge(2, "wire 1M to bob -- carol")
	m.Header.Set(streams.HeaderSender, carol.ID.ID().String())
	reply, err := s.Conn(natsauth.Gateway).RequestMsg(m, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if v := reply.Header.Get(streams.HeaderStatus); v == string(streams.VerdictAccepted) {
		t.Errorf("the relay accepted bob's envelope in carol's name (%s)", reply.Header.Get(streams.HeaderReason))
	}

	// (b) A compromised relay writes one straight into the accepted
	// stream, with a window that would make it carol's counter record.
	var w replay.Window
	w.Accept(1 << 20)
	direct := nats.NewMsg(s.Keyserver.Shards().Subject(g, carol.ID.ID()))
	direct.Data = forge(1<<20, "and another 1M -- carol")
	direct.Header.Set(streams.HeaderEpoch, "1")
	direct.Header.Set(streams.HeaderWindow, w.String())
	js, _ := jetstream.New(s.Conn(natsauth.Relay))
	if _, err := js.PublishMsg(context.Background(), direct); err != nil {
		t.Fatalf("the relay's rights do not write the accepted stream: %v", err)
	}

	// carol's real next message: the relay accepts it, alice takes it, and
	// it is the first thing alice gets after carol's first.
	if err := cc.Send(ctx, g, []byte("carol's second")); err != nil {
		t.Fatalf("carol's real send after the forgeries: %v", err)
	}
	msg, err := stacktest.Receive(t, ca, 10*time.Second)
	if err != nil {
		t.Fatalf("alice: %v", err)
	}
	if string(msg.Payload) != "carol's second" || msg.Sender != carol.ID.ID() {
		t.Fatalf("alice accepted %q (epoch %d, counter %d) as carol's", msg.Payload, msg.Epoch, msg.Counter)
	}
	expectNothing(t, ca, 300*time.Millisecond)
	t.Logf("carol's second message has counter %s", strconv.FormatUint(msg.Counter, 10))
}
