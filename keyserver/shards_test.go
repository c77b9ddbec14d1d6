package keyserver_test

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/commsec/communicator/internal/natsauth"
	"github.com/commsec/communicator/internal/natstest"
	"github.com/commsec/communicator/keyserver"
	"github.com/commsec/communicator/protocol/keys"
	"github.com/commsec/communicator/streams"
)

// TestShardsSpreadAcrossNodes: on a 3-node cluster, a keyserver creating
// a new deployment (K unset: the default 4 shards, 3 replicas each)
// leaves the shards' leaders on every node, and each shard's metadata
// holds K and its index.
func TestShardsSpreadAcrossNodes(t *testing.T) {
	c := natstest.StartCluster(t, 3)
	c.WaitJetStream(t, 30*time.Second) // a meta leader, before the keyserver's first stream
	nc := c.Conn(t, 0, natsauth.Keyserver)
	ks, _ := keys.GenerateSigningKey(nil)
	k, err := keyserver.Start(t.Context(), nc, keyserver.Config{Key: ks, Streams: streams.Config{Replicas: 3, LeaseTTL: time.Second}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(k.Close)
	if k.Shards() != streams.DefaultShards {
		t.Fatalf("K = %d, want the default %d", k.Shards(), streams.DefaultShards)
	}
	js, _ := jetstream.New(nc)
	for i, name := range k.Shards().All() {
		s, err := js.Stream(t.Context(), name)
		if err != nil {
			t.Fatal(err)
		}
		md := s.CachedInfo().Config.Metadata
		if md[streams.MetaShards] != strconv.Itoa(streams.DefaultShards) || md[streams.MetaShard] != strconv.Itoa(i) {
			t.Errorf("%s: metadata %v", name, md)
		}
	}
	spread(t, c, k.Shards())
	moves := k.Metrics.Snapshot()
	if n := moves["comm_keyserver_shard_leader_moves_total/failed"]; n != 0 {
		t.Errorf("%d failed leader moves", n)
	}
	t.Logf("the keyserver moved %d leaders", moves["comm_keyserver_shard_leader_moves_total/moved"])

	// Every leader on node 0, as JetStream may well place them: the
	// spread moves them apart (not luck).
	for _, name := range k.Shards().All() {
		natstest.CheckFor(t, 30*time.Second, 100*time.Millisecond, func() error {
			l := c.StreamLeader(name)
			if l == 0 {
				return nil
			}
			if l > 0 {
				c.Nodes[l].JetStreamStepdownStream(name, name)
			}
			return fmt.Errorf("%s led by node %d", name, l)
		})
	}
	moved, err := streams.SpreadLeaders(t.Context(), js, k.Shards())
	if err != nil {
		t.Fatal(err)
	}
	if len(moved) < 2 {
		t.Errorf("%d leaders moved off a node leading all 4, want at least 2: %v", len(moved), moved)
	}
	spread(t, c, k.Shards())
}

// spread waits until k's shards' leaders are on every node of c.
func spread(t *testing.T, c *natstest.Cluster, k streams.Shards) {
	t.Helper()
	natstest.CheckFor(t, 10*time.Second, 50*time.Millisecond, func() error {
		leads := map[int][]string{}
		for _, name := range k.All() {
			l := c.StreamLeader(name)
			if l < 0 {
				return fmt.Errorf("%s has no leader", name)
			}
			leads[l] = append(leads[l], name)
		}
		if len(leads) != len(c.Nodes) {
			return fmt.Errorf("the shards' leaders are on %d of %d nodes: %v", len(leads), len(c.Nodes), leads)
		}
		return nil
	})
}

// TestShardCountFixed: a deployment's K is kept when none is asked for,
// and a different one asked for refuses the start, naming both numbers
// and the migration's documentation.
func TestShardCountFixed(t *testing.T) {
	srv := natstest.Start(t)
	nc := srv.Conn(t, natsauth.Keyserver)
	ks, _ := keys.GenerateSigningKey(nil)
	start := func(k streams.Shards) (*keyserver.Keyserver, error) {
		ks, err := keyserver.Start(t.Context(), nc, keyserver.Config{Key: ks, Streams: streams.Config{Shards: k, LeaseTTL: time.Second}})
		if err == nil {
			t.Cleanup(ks.Close)
		}
		return ks, err
	}
	k, err := start(2)
	if err != nil {
		t.Fatal(err)
	}
	k.Close()
	if k, err = start(0); err != nil || k.Shards() != 2 {
		t.Fatalf("K unset on a deployment of 2 shards: %v, K = %v", err, k)
	}
	k.Close()
	_, err = start(4)
	var changed *streams.ShardsChangedError
	if !errors.As(err, &changed) || changed.Existing != 2 || changed.Asked != 4 || !errors.Is(err, streams.ErrShardsFixed) {
		t.Fatalf("K = 4 asked of a deployment of 2: %v", err)
	}
	for _, want := range []string{"2 streams", "4 were asked", "docs/SCALING.md", "Changing the number of shards"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("the refusal %q does not say %q", err, want)
		}
	}
	if _, err := start(3); !errors.Is(err, streams.ErrShardCount) {
		t.Errorf("K = 3: %v, want ErrShardCount", err)
	}
	js, _ := jetstream.New(nc)
	if _, err := js.Stream(t.Context(), streams.AcceptedShard(2)); err == nil {
		t.Error("a refused start created shard 2")
	}
}
