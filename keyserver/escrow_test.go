package keyserver_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/commsec/communicator/events/fold"
	"github.com/commsec/communicator/events/record"
	"github.com/commsec/communicator/internal/cmdtest"
	"github.com/commsec/communicator/keyserver"
	"github.com/commsec/communicator/protocol"
	"github.com/commsec/communicator/protocol/keys"
	"github.com/commsec/communicator/streams"
)

// startLogged starts a keyserver logging to log, which "crashes" after
// crash(group, epoch) bundles of an epoch (nil: never).
func (e *env) startLogged(log *cmdtest.Log, crash func(protocol.GroupID, protocol.Epoch) int) *keyserver.Keyserver {
	e.t.Helper()
	k, err := keyserver.Start(e.ctx, e.nc, keyserver.Config{
		Key: e.ksKey, Now: e.clock.now, Log: zerolog.New(log), FaultCrashAfterBundles: crash,
	})
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(k.Close)
	return k
}

// crashInRekey makes ops of alice, bob and carol (epoch 1), then a
// keyserver that stops after publishing one bundle of epoch 2: its event
// is in the log, its key in escrow. It returns the group and members.
func (e *env) crashInRekey() (protocol.GroupID, []*keys.ClientIdentity) {
	e.t.Helper()
	k := e.startLogged(&cmdtest.Log{}, func(_ protocol.GroupID, ep protocol.Epoch) int {
		if ep == 2 {
			return 1
		}
		return -1
	})
	members := []*keys.ClientIdentity{e.client(k, "alice"), e.client(k, "bob"), e.client(k, "carol")}
	g, err := k.CreateGroup(e.ctx, keyserver.Actor{}, "ops", record.Policy{})
	if err != nil {
		e.t.Fatal(err)
	}
	if _, err := k.AddMembers(e.ctx, keyserver.Actor{}, "ops", []string{"alice", "bob", "carol"}); err != nil {
		e.t.Fatal(err)
	}
	if _, err := e.escrow().Get(e.ctx, keyserver.EscrowKey(g)); !errors.Is(err, jetstream.ErrKeyNotFound) {
		e.t.Fatalf("the escrow of the complete epoch 1: %v, want it purged", err)
	}
	if _, err := k.Rekey(e.ctx, keyserver.Actor{}, "ops", "drill"); err == nil {
		e.t.Fatal("the rekey did not crash")
	}
	k.Close()
	if n := e.bundlesOfEpoch(g, members, 2); n != 1 {
		e.t.Fatalf("%d bundles of epoch 2 published before the crash, want 1", n)
	}
	return g, members
}

func (e *env) escrow() jetstream.KeyValue {
	e.t.Helper()
	kv, err := e.js.KeyValue(e.ctx, streams.KeyserverKV)
	if err != nil {
		e.t.Fatal(err)
	}
	return kv
}

// bundlesOfEpoch counts the members whose last bundle of g is of epoch ep.
func (e *env) bundlesOfEpoch(g protocol.GroupID, members []*keys.ClientIdentity, ep protocol.Epoch) int {
	e.t.Helper()
	n := 0
	for _, m := range members {
		if b, _, err := e.bundleOf(g, m); err == nil && b.Epoch == ep {
			n++
		}
	}
	return n
}

// TestRecoveryCompletesEpochFromEscrow: a keyserver stops after a rekey's
// event is appended and one of its three bundles published; the restarted
// keyserver publishes the two missing bundles of the same epoch, with the
// same key, and purges the escrow. Before, it opened epoch 3, so that
// every rekey interrupted this way advanced the group by two.
func TestRecoveryCompletesEpochFromEscrow(t *testing.T) {
	e := newEnv(t, false)
	g, members := e.crashInRekey()
	if _, err := e.escrow().Get(e.ctx, keyserver.EscrowKey(g)); err != nil {
		t.Fatalf("no escrow of the interrupted epoch: %v", err)
	}
	log := &cmdtest.Log{}
	k := e.startLogged(log, nil)
	e.epochIs(k, g, 2)
	var digest, key [32]byte
	k.Projection().Read(func(s *fold.State) { digest = s.Groups[g].Digest })
	for i, m := range members {
		b, got, err := e.bundleOf(g, m)
		if err != nil || b.Epoch != 2 || b.Members != digest {
			t.Fatalf("member %d after recovery: %v, %v", i, b, err)
		}
		if i > 0 && got != key {
			t.Fatalf("member %d holds another key of epoch 2", i)
		}
		key = got
	}
	if n := len(e.storedBundles(g)); n != 2*len(members) {
		t.Fatalf("%d bundles stored, want one per member for each of the 2 epochs", n)
	}
	if _, err := e.escrow().Get(e.ctx, keyserver.EscrowKey(g)); !errors.Is(err, jetstream.ErrKeyNotFound) {
		t.Fatalf("the escrow after recovery: %v, want it purged", err)
	}
	if got := log.Field(t, "recovery: bundles of the current epoch completed with its key from escrow", "published"); got != "2" {
		t.Fatalf("recovery published %s bundles, want 2", got)
	}
}

// TestRecoveryWithoutEscrowRekeys: when the interrupted epoch's escrow is
// gone or unusable, the restarted keyserver opens a new epoch, as before
// escrows, and logs why.
func TestRecoveryWithoutEscrowRekeys(t *testing.T) {
	for _, c := range []struct {
		name  string
		spoil func(kv jetstream.KeyValue, key string) error
		why   string
	}{
		{"gone", func(kv jetstream.KeyValue, key string) error { return kv.Purge(t.Context(), key) }, "no escrow"},
		{"unusable", func(kv jetstream.KeyValue, key string) error {
			_, err := kv.Put(t.Context(), key, []byte("not a bundle"))
			return err
		}, "escrow unreadable"},
	} {
		t.Run(c.name, func(t *testing.T) {
			e := newEnv(t, false)
			g, members := e.crashInRekey()
			if err := c.spoil(e.escrow(), keyserver.EscrowKey(g)); err != nil {
				t.Fatal(err)
			}
			log := &cmdtest.Log{}
			k := e.startLogged(log, nil)
			e.epochIs(k, g, 3)
			if n := e.bundlesOfEpoch(g, members, 3); n != len(members) {
				t.Fatalf("%d members hold a bundle of epoch 3, want %d", n, len(members))
			}
			why := log.Field(t, "recovery: bundles of the current epoch incomplete and its key not recovered from escrow; rekeying", "error")
			if !strings.Contains(why, c.why) {
				t.Fatalf("the log says %q, want %q", why, c.why)
			}
		})
	}
}

// epochIs fails the test unless k sees g at epoch want.
func (e *env) epochIs(k *keyserver.Keyserver, g protocol.GroupID, want protocol.Epoch) {
	e.t.Helper()
	var got protocol.Epoch
	k.Projection().Read(func(s *fold.State) { got = s.Groups[g].Epoch })
	if got != want {
		e.t.Fatalf("group at epoch %d, want %d", got, want)
	}
}

// TestCompletedEpochNeverLowered: two keyservers that rekey one group at
// once may record their epochs complete out of order; the record keeps
// the later one, so that the next start's recovery does not take the
// current epoch for incomplete and rekey it again. (Before, the record
// was a plain put: TestConcurrentKeyserversNeverFork then found now and
// then one epoch too many.)
func TestCompletedEpochNeverLowered(t *testing.T) {
	e := newEnv(t, false)
	k := e.start()
	g, _ := k.CreateGroup(e.ctx, keyserver.Actor{}, "ops", record.Policy{})
	for _, ep := range []protocol.Epoch{5, 3, 4} {
		if err := keyserver.CompleteEpoch(e.ctx, k, g, ep); err != nil {
			t.Fatal(err)
		}
	}
	got, err := e.escrow().Get(e.ctx, keyserver.EpochKey(g))
	if err != nil {
		t.Fatal(err)
	}
	if string(got.Value()) != "5" {
		t.Fatalf("completed epoch recorded %s after 5, 3 and 4, want 5", got.Value())
	}
	if err := keyserver.CompleteEpoch(e.ctx, k, g, 6); err != nil {
		t.Fatal(err)
	}
	if got, _ := e.escrow().Get(e.ctx, keyserver.EpochKey(g)); string(got.Value()) != "6" {
		t.Fatalf("completed epoch recorded %s after 6, want 6", got.Value())
	}
}
