package relay

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/commsec/communicator/internal/natsauth"
	"github.com/commsec/communicator/internal/natstest"
	"github.com/commsec/communicator/streams"
)

// leaseRecord is partition n's lease as stored: its revision and the
// atomic batch that wrote it ("" if none), read with js (a relay's).
func (w *world) leaseRecord(js jetstream.JetStream, n int) (rev uint64, batch string) {
	w.t.Helper()
	s, err := js.Stream(w.t.Context(), streams.KVStream(streams.Relays))
	if err != nil {
		w.t.Fatal(err)
	}
	m, err := s.GetLastMsgForSubject(w.t.Context(), streams.KVPrefix(streams.Relays)+leaseKey(n))
	if err != nil {
		w.t.Fatalf("lease of partition %d: %v", n, err)
	}
	return m.Sequence, m.Header.Get(streams.HeaderBatchID)
}

// TestLeaseRenewalsAreOneBatch: a relay renews all its leases as one
// atomic batch, one synced write a tick rather than one per partition
// (64 per tick, which were 0.11 writes per message of commbench
// fanout5k), and each lease's revision it keeps is the one stored, so
// the next batch's compare-and-swaps hold.
func TestLeaseRenewalsAreOneBatch(t *testing.T) {
	w := newWorldTTL(t, 3*time.Second) // a tick each second
	r := w.relay(Config{})
	js, _ := jetstream.New(w.srv.Conn(t, natsauth.Relay))
	first, _ := w.leaseRecord(js, 0)
	natstest.CheckFor(t, 15*time.Second, 100*time.Millisecond, func() error {
		if rev, _ := w.leaseRecord(js, 0); rev < first+3*streams.Partitions {
			return fmt.Errorf("lease 0 at revision %d, from %d: not renewed three times yet", rev, first)
		}
		return nil
	})
	r.parts.mu.Lock() // between two ticks
	defer r.parts.mu.Unlock()
	batches := map[string]int{}
	for n := range streams.Partitions {
		rev, batch := w.leaseRecord(js, n)
		if held := r.parts.held[n]; held == nil || held.revision != rev {
			t.Fatalf("partition %d: stored at revision %d, the relay holds %v", n, rev, held)
		}
		batches[batch]++
	}
	if len(batches) != 1 || batches[""] != 0 {
		t.Fatalf("the %d leases were last written by these batches (\"\": none): %v", streams.Partitions, batches)
	}
	if l := r.Metrics.Leases(); l[leaseLost] != 0 || l[leaseBatchRefused] != 0 {
		t.Fatalf("leases: %v", l)
	}
	if b, n := r.Metrics.LeaseBatches(); b < 3 || n != b*streams.Partitions {
		t.Fatalf("%d batches of %d leases counted, want 3 or more of %d each", b, n, streams.Partitions)
	}
}

// TestStolenLeaseRefusesTheBatch: another writer takes partition 5's
// lease. The next batch of renewals is refused as a whole (its
// compare-and-swap on lease 5 fails), so the relay renews each lease on
// its own: it loses partition 5 only, and keeps the other 63.
func TestStolenLeaseRefusesTheBatch(t *testing.T) {
	w := newWorldTTL(t, 3*time.Second)
	r := w.relay(Config{})
	js, _ := jetstream.New(w.srv.Conn(t, natsauth.Relay)) // another relay's
	kv, err := js.KeyValue(t.Context(), streams.Relays)
	if err != nil {
		t.Fatal(err)
	}
	r.parts.mu.Lock()
	_, err = kv.Put(t.Context(), leaseKey(5), []byte("thief"))
	r.parts.mu.Unlock()
	if err != nil {
		t.Fatal(err)
	}
	natstest.CheckFor(t, 10*time.Second, 50*time.Millisecond, func() error {
		if l := r.Metrics.Leases(); l[leaseLost] != 1 || l[leaseBatchRefused] == 0 {
			return fmt.Errorf("leases: %v", l)
		}
		return nil
	})
	r.parts.mu.Lock()
	defer r.parts.mu.Unlock()
	if _, held := r.parts.held[5]; held {
		t.Fatal("partition 5 still held after its lease was taken")
	}
	if n := len(r.parts.held); n != streams.Partitions-1 {
		t.Fatalf("%d leases held, want the other %d", n, streams.Partitions-1)
	}
	for n, l := range r.parts.held {
		if rev, _ := w.leaseRecord(js, n); rev != l.revision {
			t.Fatalf("partition %d: stored at revision %d, the relay holds %d", n, rev, l.revision)
		}
	}
	if e, err := kv.Get(t.Context(), leaseKey(5)); err != nil || string(e.Value()) != "thief" {
		t.Fatalf("lease 5: %v %v", e, err)
	}
}

// TestLeaseBatchWithoutAnswerKeepsLeases: a batch of renewals is applied
// but its answer is not waited for (its context ends at once, as when
// the answer is lost). The renewals one by one then fail their
// compare-and-swaps against the batch's revisions; the relay finds its
// own id at a newer revision in each, and keeps every lease, at the
// stored revision. Before, it dropped all 64 and could not claim them
// again until they expired.
func TestLeaseBatchWithoutAnswerKeepsLeases(t *testing.T) {
	w := newWorldTTL(t, 10*time.Second) // no tick of its own during the test
	r := w.relay(Config{})
	js, _ := jetstream.New(w.srv.Conn(t, natsauth.Relay))
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	r.parts.mu.Lock()
	r.parts.renew(ctx)
	held := len(r.parts.held)
	revs := map[int]uint64{}
	for n, l := range r.parts.held {
		revs[n] = l.revision
	}
	r.parts.mu.Unlock()
	if held != streams.Partitions {
		t.Fatalf("%d leases held after a batch without answer, want %d (leases: %v)", held, streams.Partitions, r.Metrics.Leases())
	}
	for n, rev := range revs {
		if stored, _ := w.leaseRecord(js, n); stored != rev {
			t.Fatalf("partition %d: stored at revision %d, the relay holds %d", n, stored, rev)
		}
	}
	if l := r.Metrics.Leases(); l[leaseLost] != 0 || l[leaseBatchRefused] != 1 {
		t.Fatalf("leases: %v, want none lost and one batch refused", l)
	}
}
