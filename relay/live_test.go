package relay

import (
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/commsec/communicator/events/record"
	"github.com/commsec/communicator/internal/natsauth"
	"github.com/commsec/communicator/internal/natstest"
	"github.com/commsec/communicator/keyserver"
	"github.com/commsec/communicator/protocol/keys"
	"github.com/commsec/communicator/streams"
)

// TestAcceptedRepublishedOnLiveSubject: an accepted envelope is one
// write, on its group's shard, and that shard's leader republishes it on
// the group's live subject with the headers gateways read (the envelope's
// epoch and window, and the shard, subject and sequences of the write).
func TestAcceptedRepublishedOnLiveSubject(t *testing.T) {
	srv, nc := natstest.Open(t) // one account: a test may subscribe to the live subjects
	ctx := t.Context()
	ks, _ := keys.GenerateSigningKey(nil)
	k, err := keyserver.Start(ctx, nc, keyserver.Config{Key: ks, Streams: streams.Config{LeaseTTL: 10 * time.Second}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(k.Close)
	alice, _ := keys.GenerateClientIdentity(nil)
	k.RegisterClient(ctx, keyserver.Actor{}, alice.Public(), "alice")
	g, _ := k.CreateGroup(ctx, keyserver.Actor{}, "ops", record.Policy{})
	k.AddMembers(ctx, keyserver.Actor{}, "ops", []string{"alice"})
	live, err := nc.SubscribeSync(streams.LiveGroup(g))
	if err != nil {
		t.Fatal(err)
	}
	r, err := Start(ctx, nc, Config{KeyserverKey: ks.Public()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(r.Close)
	natstest.CheckFor(t, 10*time.Second, 10*time.Millisecond, func() error {
		if len(r.Owned()) != streams.Partitions {
			return errFewPartitions
		}
		return nil
	})
	gw, err := srv.Connect(nats.CustomInboxPrefix(natsauth.InboxPrefix(natsauth.Gateway)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(gw.Close)
	m := nats.NewMsg(streams.InboundSubject(g))
	m.Data = env(alice, g, 1, 1)
	m.Header.Set(streams.HeaderSender, alice.ID().String())
	if reply, err := gw.RequestMsg(m, 5*time.Second); err != nil || reply.Header.Get(streams.HeaderStatus) != string(Accepted) {
		t.Fatalf("not accepted: %v %v", err, reply)
	}
	got, err := live.NextMsg(5 * time.Second)
	if err != nil {
		t.Fatal(err)
	}
	shards := k.Shards()
	want := map[string]string{
		streams.HeaderEpoch: "1", streams.HeaderNatsStream: shards.Stream(g), streams.HeaderNatsSubject: shards.Subject(g, alice.ID()),
		streams.HeaderNatsSequence: "1", streams.HeaderNatsLastSequence: "0",
	}
	for h, v := range want {
		if got.Header.Get(h) != v {
			t.Errorf("live header %s: %q, want %q", h, got.Header.Get(h), v)
		}
	}
	if got.Subject != streams.LiveMsgPrefix+streams.AcceptedKey(g, alice.ID()) || string(got.Data) != string(m.Data) ||
		got.Header.Get(streams.HeaderWindow) == "" {
		t.Errorf("live message %s %v", got.Subject, got.Header)
	}
	js := mustJS(t, nc)
	for _, name := range shards.All() {
		s, err := js.Stream(ctx, name)
		if err != nil {
			t.Fatal(err)
		}
		want := uint64(0)
		if name == shards.Stream(g) {
			want = 1
		}
		if n := s.CachedInfo().State.Msgs; n != want {
			t.Errorf("%s holds %d messages, want %d", name, n, want)
		}
	}
}
