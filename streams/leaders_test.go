package streams

import (
	"testing"

	"github.com/nats-io/nats.go/jetstream"
)

// TestNextMove: a shard moves from a node leading two or more to a
// current replica on a node leading none, and nothing moves once no such
// pair is left.
func TestNextMove(t *testing.T) {
	peers := func(leader string, replicas ...string) *jetstream.ClusterInfo {
		c := &jetstream.ClusterInfo{Leader: leader}
		for _, r := range replicas {
			c.Replicas = append(c.Replicas, &jetstream.PeerInfo{Name: r, Current: true})
		}
		return c
	}
	names := Shards(4).All()
	cases := []struct {
		name     string
		clusters []*jetstream.ClusterInfo
		want     LeaderMove
		ok       bool
	}{
		{"all on a", []*jetstream.ClusterInfo{peers("a", "b", "c"), peers("a", "b", "c"), peers("a", "b", "c"), peers("a", "b", "c")},
			LeaderMove{names[0], "a", "b"}, true},
		{"two on a, c idle", []*jetstream.ClusterInfo{peers("a", "b", "c"), peers("b", "a", "c"), peers("a", "b", "c"), peers("b", "a", "c")},
			LeaderMove{names[0], "a", "c"}, true},
		{"spread 2-1-1", []*jetstream.ClusterInfo{peers("a", "b", "c"), peers("b", "a", "c"), peers("c", "a", "b"), peers("a", "b", "c")},
			LeaderMove{}, false},
		{"the idle node holds no replica of a's shards", []*jetstream.ClusterInfo{peers("a", "b"), peers("a", "b"), peers("b", "a"), peers("d", "c")},
			LeaderMove{}, false},
		{"one replica each: no peers", []*jetstream.ClusterInfo{{Leader: "a"}, {Leader: "a"}, {Leader: "a"}, {Leader: "a"}},
			LeaderMove{}, false},
	}
	for _, c := range cases {
		clusters := map[string]*jetstream.ClusterInfo{}
		for i, ci := range c.clusters {
			clusters[names[i]] = ci
		}
		got, ok := nextMove(names, clusters)
		if got != c.want || ok != c.ok {
			t.Errorf("%s: %+v %v, want %+v %v", c.name, got, ok, c.want, c.ok)
		}
	}
}
