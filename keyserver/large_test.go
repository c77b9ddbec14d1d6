package keyserver_test

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/commsec/communicator/events/record"
	"github.com/commsec/communicator/keyserver"
	"github.com/commsec/communicator/protocol"
	"github.com/commsec/communicator/protocol/bundle"
	"github.com/commsec/communicator/protocol/keys"
	"github.com/commsec/communicator/streams"
)

// TestRekeyTenThousandMembers: a group of 10,000 members is rekeyed and
// every member's bundle verifies and unwraps to the same key.
func TestRekeyTenThousandMembers(t *testing.T) {
	if testing.Short() {
		t.Skip("10,000 members: skipped with -short")
	}
	const n = 10_000
	e := newEnv(t, true)
	k := e.start()
	ids := make([]*keys.ClientIdentity, n)
	regs := make([]keyserver.Registration, n)
	names := make([]string, n)
	for i := range ids {
		ids[i], _ = keys.GenerateClientIdentity(nil)
		regs[i] = keyserver.Registration{Public: ids[i].Public()}
		names[i] = ids[i].ID().String()
	}
	start := time.Now()
	if err := k.RegisterClients(e.ctx, keyserver.Actor{}, regs); err != nil {
		t.Fatal(err)
	}
	t.Logf("registered %d clients in %v", n, time.Since(start))
	g, _ := k.CreateGroup(e.ctx, keyserver.Actor{}, "everyone", record.Policy{})
	start = time.Now()
	if _, err := k.AddMembers(e.ctx, keyserver.Actor{}, "everyone", names); err != nil {
		t.Fatal(err)
	}
	t.Logf("added %d members (epoch 1, %d bundles) in %v", n, n, time.Since(start))
	start = time.Now()
	epoch, err := k.Rekey(e.ctx, keyserver.Actor{}, "everyone", "test")
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("rekeyed %d members (epoch %d) in %v", n, epoch, time.Since(start))
	checkAllBundles(t, e, g, epoch, ids)
}

// checkAllBundles reads every bundle of g's epoch and opens each with its
// member's identity, on all cores.
func checkAllBundles(t *testing.T, e *env, g protocol.GroupID, epoch protocol.Epoch, ids []*keys.ClientIdentity) {
	byID := make(map[protocol.ClientID]*keys.ClientIdentity, len(ids))
	for _, id := range ids {
		byID[id.ID()] = id
	}
	cons, err := e.js.OrderedConsumer(e.ctx, streams.Bundles, jetstream.OrderedConsumerConfig{FilterSubjects: []string{streams.GroupBundles(g)}})
	if err != nil {
		t.Fatal(err)
	}
	wire := make(chan []byte, 256)
	results := make(chan error, 2*len(ids))
	var wg sync.WaitGroup
	ks := e.ksKey.Public()
	var keyOnce sync.Once
	var groupKey [32]byte
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for w := range wire {
				results <- openOne(w, &ks, byID, epoch, &keyOnce, &groupKey)
			}
		}()
	}
	it, err := cons.Messages()
	if err != nil {
		t.Fatal(err)
	}
	defer it.Stop()
	seen := 0
	for seen < 2*len(ids) { // epoch 1 and the rekey's epoch 2
		msg, err := it.Next()
		if err != nil {
			t.Fatal(err)
		}
		seen++
		wire <- msg.Data()
	}
	close(wire)
	wg.Wait()
	close(results)
	opened := 0
	for err := range results {
		if err != nil {
			t.Fatal(err)
		}
		opened++
	}
	t.Logf("read %d bundles; all verified and unwrapped", opened)
}

func openOne(w []byte, ks *[32]byte, byID map[protocol.ClientID]*keys.ClientIdentity, epoch protocol.Epoch, once *sync.Once, want *[32]byte) error {
	b, err := bundle.Parse(w)
	if err != nil {
		return err
	}
	id := byID[b.Member]
	if id == nil {
		return fmt.Errorf("bundle for unknown member %s", b.Member.Short())
	}
	key, err := b.Open(ks, id)
	if err != nil {
		return fmt.Errorf("member %s epoch %d: %w", b.Member.Short(), b.Epoch, err)
	}
	if b.Epoch != epoch {
		return nil
	}
	once.Do(func() { *want = key })
	if key != *want {
		return fmt.Errorf("member %s got another key", b.Member.Short())
	}
	return nil
}
