package prometheus_test

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/commsec/communicator/clientsdk"
	"github.com/commsec/communicator/events/record"
	"github.com/commsec/communicator/internal/natsauth"
	"github.com/commsec/communicator/internal/service"
	"github.com/commsec/communicator/internal/stack"
	"github.com/commsec/communicator/keyserver"
	"github.com/commsec/communicator/protocol"
	"github.com/commsec/communicator/protocol/keys"
	"github.com/commsec/communicator/streams"
)

// makeTraffic gives every series the rules read a value: alice and bob
// admitted and a stranger refused, a group whose epoch is opened (a
// rekey), messages sent, accepted and delivered, and one refused by the
// relay (a malformed envelope, sent on NATS as a gateway would).
func makeTraffic(t *testing.T, s *stack.Stack) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	k := s.Keyserver()
	alice, bob := identity(t), identity(t)
	must(t, k.RegisterClient(ctx, keyserver.Actor{}, alice.Public(), "alice"))
	must(t, k.RegisterClient(ctx, keyserver.Actor{}, bob.Public(), "bob"))
	g, err := k.CreateGroup(ctx, keyserver.Actor{}, "ops", record.Policy{})
	must(t, err)
	_, err = k.AddMembers(ctx, keyserver.Actor{}, "ops", []string{"alice", "bob"})
	must(t, err)
	must(t, s.Sync(ctx))
	ca, cb := dial(t, s, alice), dial(t, s, bob)
	must(t, ca.WaitKey(ctx, g))
	const sent = 3
	for range sent {
		must(t, ca.Send(ctx, g, []byte("hello")))
	}
	for i := range sent {
		select {
		case <-cb.Messages():
		case <-ctx.Done():
			t.Fatalf("bob received %d of %d messages", i, sent)
		}
	}
	if c, err := clientsdk.Dial(ctx, config(s, identity(t))); err == nil {
		c.Close()
		t.Fatal("an unregistered client was admitted")
	}
	refuseAtRelay(ctx, t, s, g, alice.ID())
}

// refuseAtRelay sends the relay what no client could: bytes that are no
// envelope, on a gateway's NATS connection.
func refuseAtRelay(ctx context.Context, t *testing.T, s *stack.Stack, g protocol.GroupID, sender protocol.ClientID) {
	t.Helper()
	opts, err := service.NATSClient{Creds: filepath.Join(s.CredsDir(), string(natsauth.Gateway)+".nk")}.Options("comm-gateway")
	must(t, err)
	nc, err := nats.Connect(s.NATSURL(), opts...)
	must(t, err)
	defer nc.Close()
	m := nats.NewMsg(streams.InboundSubject(g))
	m.Data = []byte("not an envelope")
	m.Header.Set(streams.HeaderSender, sender.String())
	reply, err := nc.RequestMsgWithContext(ctx, m)
	must(t, err)
	if v := reply.Header.Get(streams.HeaderStatus); v != string(streams.VerdictRefused) {
		t.Fatalf("the relay answered %q to a malformed envelope", v)
	}
}

func identity(t *testing.T) *keys.ClientIdentity {
	t.Helper()
	id, err := keys.GenerateClientIdentity(nil)
	must(t, err)
	return id
}

func config(s *stack.Stack, id *keys.ClientIdentity) clientsdk.Config {
	k := s.Keys()
	return clientsdk.Config{Addr: s.GatewayAddr(), Identity: id, ServerKey: k.Gateway.Public(), KeyserverKey: k.Keyserver.Public()}
}

func dial(t *testing.T, s *stack.Stack, id *keys.ClientIdentity) *clientsdk.Client {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	c, err := clientsdk.Dial(ctx, config(s, id))
	must(t, err)
	t.Cleanup(func() { c.Close() })
	return c
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
