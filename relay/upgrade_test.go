package relay

import (
	"errors"
	"math"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/commsec/communicator/events/record"
	"github.com/commsec/communicator/internal/natsauth"
	"github.com/commsec/communicator/internal/natstest"
	"github.com/commsec/communicator/keyserver"
	"github.com/commsec/communicator/protocol/keys"
	"github.com/commsec/communicator/streams"
)

var errFewPartitions = errors.New("the relay does not own every partition yet")

// unshardedConfig is the accepted stream as the versions before sharding
// created it: no shard metadata, no RePublish.
func unshardedConfig() jetstream.StreamConfig {
	return jetstream.StreamConfig{
		Name:              streams.AcceptedStream,
		Description:       "Communicator accepted group messages (end-to-end encrypted envelopes), by (group, sender)",
		Subjects:          []string{streams.AcceptedPrefix + ">"},
		Storage:           jetstream.FileStorage,
		Retention:         jetstream.LimitsPolicy,
		MaxMsgsPerSubject: math.MaxInt32,
		Discard:           jetstream.DiscardNew,
		AllowRollup:       true,
		DenyDelete:        true,
		Replicas:          1,
	}
}

// TestUpgradeFromUnshardedStream: a deployment from before sharding (one
// accepted stream, created with the old configuration, holding records)
// upgraded in place. The keyserver keeps K = 1 and adds the shard
// metadata and the RePublish to the stream, which keeps its messages;
// relays read K = 1 before and after; a counter stored before the upgrade
// is still taken (duplicate), one below the window still refused, a new
// one accepted, all on shard 0.
func TestUpgradeFromUnshardedStream(t *testing.T) {
	srv, nc := natstest.Open(t)
	js := mustJS(t, nc)
	ctx := t.Context()
	ks, _ := keys.GenerateSigningKey(nil)
	kcfg := keyserver.Config{Key: ks, Streams: streams.Config{LeaseTTL: 10 * time.Second}}
	k, err := keyserver.Start(ctx, nc, kcfg)
	if err != nil {
		t.Fatal(err)
	}
	alice, _ := keys.GenerateClientIdentity(nil)
	k.RegisterClient(ctx, keyserver.Actor{}, alice.Public(), "alice")
	g, _ := k.CreateGroup(ctx, keyserver.Actor{}, "ops", record.Policy{})
	k.AddMembers(ctx, keyserver.Actor{}, "ops", []string{"alice"})
	k.Close()
	// The deployment before sharding: its one accepted stream, as it
	// created it. (This keyserver made the shards of a new one.)
	for _, name := range streams.Shards(streams.DefaultShards).All() {
		if err := js.DeleteStream(ctx, name); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := js.CreateStream(ctx, unshardedConfig()); err != nil {
		t.Fatal(err)
	}

	gw, err := srv.Connect(nats.CustomInboxPrefix(natsauth.InboxPrefix(natsauth.Gateway)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(gw.Close)
	send := func(counter uint64, payload string) (Verdict, string) {
		t.Helper()
		m := nats.NewMsg(streams.InboundSubject(g))
		m.Data = envWith(alice, g, 1, counter, payload)
		m.Header.Set(streams.HeaderSender, alice.ID().String())
		reply, err := gw.RequestMsg(m, 5*time.Second)
		if err != nil {
			return "", err.Error()
		}
		return Verdict(reply.Header.Get(streams.HeaderStatus)), reply.Header.Get(streams.HeaderReason)
	}
	startRelay := func() *Relay {
		t.Helper()
		r, err := Start(ctx, nc, Config{KeyserverKey: ks.Public()})
		if err != nil {
			t.Fatal(err)
		}
		natstest.CheckFor(t, 10*time.Second, 10*time.Millisecond, func() error {
			if len(r.Owned()) != streams.Partitions {
				return errFewPartitions
			}
			return nil
		})
		return r
	}
	r := startRelay()
	if r.accepted.k != 1 {
		t.Fatalf("a relay on the unsharded stream reads K = %d", r.accepted.k)
	}
	for _, c := range []uint64{1, 2, 300} { // 300 is past one window: counter 1 falls below it
		if v, reason := send(c, "before"); v != Accepted {
			t.Fatalf("counter %d before the upgrade: %s %s", c, v, reason)
		}
	}
	r.Close()

	k, err = keyserver.Start(ctx, nc, kcfg) // the upgrade: K left unset
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(k.Close)
	s, err := js.Stream(ctx, streams.AcceptedStream)
	if err != nil {
		t.Fatal(err)
	}
	info := s.CachedInfo()
	if md := info.Config.Metadata; md[streams.MetaShards] != "1" || md[streams.MetaShard] != "0" {
		t.Errorf("upgraded stream's metadata %v", md)
	}
	if rp := info.Config.RePublish; rp == nil || rp.Source != streams.AcceptedPrefix+"*.*" {
		t.Errorf("upgraded stream's RePublish %+v", rp)
	}
	if info.State.Msgs != 3 {
		t.Errorf("%d messages after the upgrade, want 3", info.State.Msgs)
	}
	if _, err := js.Stream(ctx, streams.AcceptedShard(1)); err == nil {
		t.Error("the upgrade of a K = 1 deployment created shard 1")
	}

	r = startRelay()
	t.Cleanup(r.Close)
	if r.accepted.k != 1 {
		t.Fatalf("a relay after the upgrade reads K = %d", r.accepted.k)
	}
	if v, reason := send(300, "after"); v != Duplicate {
		t.Errorf("the last counter stored before the upgrade, again: %s %s, want duplicate", v, reason)
	}
	if v, reason := send(1, "after"); v != Refused || reason != string(streams.ReasonReplayedCounter) {
		t.Errorf("a counter below the window stored before the upgrade: %s %s, want refused replayed_counter", v, reason)
	}
	if v, reason := send(301, "after"); v != Accepted {
		t.Errorf("a new counter after the upgrade: %s %s", v, reason)
	}
	if info, _ := s.Info(ctx); info.State.Msgs != 4 {
		t.Errorf("%d messages on shard 0, want 4", info.State.Msgs)
	}
}
