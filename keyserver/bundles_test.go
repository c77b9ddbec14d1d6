package keyserver_test

import (
	"strings"
	"sync"
	"testing"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/commsec/communicator/events/record"
	"github.com/commsec/communicator/keyserver"
	"github.com/commsec/communicator/protocol"
	"github.com/commsec/communicator/protocol/keys"
	"github.com/commsec/communicator/streams"
)

// startWith starts a keyserver with one wrapping worker, so that an epoch's
// bundles form one batch, and the given fault hook.
func (e *env) startWith(drop func(attempt, seq int) bool) *keyserver.Keyserver {
	e.t.Helper()
	k, err := keyserver.Start(e.ctx, e.nc, keyserver.Config{
		Key: e.ksKey, Now: e.clock.now, Workers: 1, FaultDropBundle: drop,
	})
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(k.Close)
	return k
}

// groupOf registers n clients and makes them a group: epoch 1.
func (e *env) groupOf(k *keyserver.Keyserver, n int) (protocol.GroupID, []*keys.ClientIdentity, error) {
	e.t.Helper()
	ids := make([]*keys.ClientIdentity, n)
	names := make([]string, n)
	for i := range ids {
		ids[i] = e.client(k, "")
		names[i] = ids[i].ID().String()
	}
	g, err := k.CreateGroup(e.ctx, keyserver.Actor{}, "ops", record.Policy{})
	if err != nil {
		e.t.Fatal(err)
	}
	_, err = k.AddMembers(e.ctx, keyserver.Actor{}, "ops", names)
	return g, ids, err
}

// storedBundles reads every stored bundle message of group g.
func (e *env) storedBundles(g protocol.GroupID) []jetstream.Msg {
	e.t.Helper()
	cons, err := e.js.OrderedConsumer(e.ctx, streams.Bundles, jetstream.OrderedConsumerConfig{FilterSubjects: []string{streams.GroupBundles(g)}})
	if err != nil {
		e.t.Fatal(err)
	}
	var out []jetstream.Msg
	for {
		batch, err := cons.FetchNoWait(100)
		if err != nil {
			e.t.Fatal(err)
		}
		n := 0
		for m := range batch.Messages() {
			out = append(out, m)
			n++
		}
		if n == 0 {
			return out
		}
	}
}

// TestBundlesStoredInOneAtomicBatch: an epoch's bundles reach the stream
// as one atomic batch (which the server stores with one fsync), and every
// member's bundle opens.
func TestBundlesStoredInOneAtomicBatch(t *testing.T) {
	e := newEnv(t, false)
	k := e.startWith(nil)
	g, ids, err := e.groupOf(k, keyserver.MinAtomicBatch+1)
	if err != nil {
		t.Fatal(err)
	}
	msgs := e.storedBundles(g)
	if len(msgs) != len(ids) {
		t.Fatalf("%d bundles stored for %d members", len(msgs), len(ids))
	}
	batch := msgs[0].Headers().Get("Nats-Batch-Id")
	for _, m := range msgs {
		if id := m.Headers().Get("Nats-Batch-Id"); id == "" || id != batch {
			t.Fatalf("bundle on %s stored in batch %q, the first in %q", m.Subject(), id, batch)
		}
	}
	for _, id := range ids {
		if _, _, err := e.bundleOf(g, id); err != nil {
			t.Fatalf("bundle of %s: %v", id.ID().Short(), err)
		}
	}
}

// TestSmallEpochPublishedOneByOne: an epoch of fewer bundles than an
// atomic batch pays for goes out one message per bundle, each opening.
func TestSmallEpochPublishedOneByOne(t *testing.T) {
	e := newEnv(t, false)
	k := e.startWith(nil)
	g, ids, err := e.groupOf(k, keyserver.MinAtomicBatch-1)
	if err != nil {
		t.Fatal(err)
	}
	msgs := e.storedBundles(g)
	if len(msgs) != len(ids) {
		t.Fatalf("%d bundles stored for %d members", len(msgs), len(ids))
	}
	for _, m := range msgs {
		if id := m.Headers().Get("Nats-Batch-Id"); id != "" {
			t.Fatalf("bundle on %s stored in batch %q", m.Subject(), id)
		}
	}
	for _, id := range ids {
		if _, _, err := e.bundleOf(g, id); err != nil {
			t.Fatalf("bundle of %s: %v", id.ID().Short(), err)
		}
	}
}

// TestIncompleteBatchIsSentAgain: a bundle lost on the way makes the server
// refuse the whole batch; the keyserver sends it again, and every member
// ends with exactly one bundle of the epoch.
func TestIncompleteBatchIsSentAgain(t *testing.T) {
	e := newEnv(t, false)
	var mu sync.Mutex
	var dropped []int
	k := e.startWith(func(attempt, seq int) bool {
		if attempt == 1 && seq == 2 {
			mu.Lock()
			defer mu.Unlock()
			dropped = append(dropped, seq)
			return true
		}
		return false
	})
	g, ids, err := e.groupOf(k, keyserver.MinAtomicBatch)
	if err != nil {
		t.Fatal(err)
	}
	if len(dropped) != 1 {
		t.Fatalf("the fault hook dropped %d bundles, want 1", len(dropped))
	}
	if msgs := e.storedBundles(g); len(msgs) != len(ids) {
		t.Fatalf("%d bundles stored for %d members", len(msgs), len(ids))
	}
	for _, id := range ids {
		if b, _, err := e.bundleOf(g, id); err != nil || b.Epoch != 1 {
			t.Fatalf("bundle of %s: %v", id.ID().Short(), err)
		}
	}
}

// TestBatchNeverCompleteFailsTheChange: when every attempt loses a bundle,
// the change fails with the server's reason and stores no bundle of the
// epoch; a restarted keyserver then publishes the epoch's bundles with
// its key from escrow (recovery), in the same epoch.
func TestBatchNeverCompleteFailsTheChange(t *testing.T) {
	e := newEnv(t, false)
	k := e.startWith(func(_, seq int) bool { return seq == 1 })
	g, ids, err := e.groupOf(k, keyserver.MinAtomicBatch)
	if err == nil || !strings.Contains(err.Error(), "incomplete") {
		t.Fatalf("add members with every batch incomplete: %v", err)
	}
	if msgs := e.storedBundles(g); len(msgs) != 0 {
		t.Fatalf("%d bundles stored of an epoch whose batches all failed", len(msgs))
	}
	k.Close()
	e.startWith(nil) // recovery runs in Start
	for _, id := range ids {
		if b, _, err := e.bundleOf(g, id); err != nil || b.Epoch != 1 {
			t.Fatalf("after recovery %s has %v (%v), want a bundle of epoch 1", id.ID().Short(), b, err)
		}
	}
}

// TestBundlesStreamUpgradedInPlace: a COMM_BUNDLES made before atomic
// batches (as an existing deployment has it) is updated at start-up, and
// the first epoch's bundles are stored.
func TestBundlesStreamUpgradedInPlace(t *testing.T) {
	e := newEnv(t, false)
	old := streams.BundlesConfig(streams.Config{})
	old.AllowAtomicPublish = false
	if _, err := e.js.CreateStream(e.ctx, old); err != nil {
		t.Fatal(err)
	}
	k := e.startWith(nil)
	g, ids, err := e.groupOf(k, keyserver.MinAtomicBatch)
	if err != nil {
		t.Fatal(err)
	}
	msgs := e.storedBundles(g)
	if len(msgs) != len(ids) {
		t.Fatalf("%d bundles stored for %d members", len(msgs), len(ids))
	}
	if msgs[0].Headers().Get("Nats-Batch-Id") == "" {
		t.Fatal("the bundles were not stored as an atomic batch")
	}
}
