// Package natscluster starts a JetStream cluster of embedded nats-servers
// inside this process, every node with the production accounts (package
// natsauth) and the same users: what commbench measures the cluster
// figures on (issue 14), outside any test. Package natstest builds its
// test clusters, whose routes run through proxies it can cut, on the
// same readiness check (JetStreamReady).
//
// The nodes listen on loopback only, their routes are not authenticated:
// a cluster for one machine's measurements, not a deployment.
package natscluster

import (
	"context"
	"errors"
	"fmt"
	"net"
	"path/filepath"
	"strings"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/commsec/communicator/internal/embeddednats"
	"github.com/commsec/communicator/internal/natsauth"
)

// Config configures a cluster.
type Config struct {
	// Dir holds each node's data directory (Dir/node-<i>); required.
	Dir string
	// Nodes is the cluster's size (default 3).
	Nodes int
	// SyncInterval, when positive, fsyncs every interval instead of on
	// every write (embeddednats.Options.SyncInterval).
	SyncInterval time.Duration
	// Extra are more accounts for every node's authorization
	// (natsauth.ScratchAccount).
	Extra []string
	// ReadyTimeout bounds the wait for the JetStream meta layer (default
	// 30 s).
	ReadyTimeout time.Duration
}

// Cluster is a running cluster.
type Cluster struct {
	Nodes []*embeddednats.Server
	Creds *natsauth.Creds // the users of every node, one per role
}

// Start starts the nodes, each dialing every other one's route listener,
// and waits until JetStream has a meta leader that every node follows.
func Start(ctx context.Context, cfg Config) (*Cluster, error) {
	if cfg.Dir == "" {
		return nil, errors.New("natscluster: no data directory")
	}
	n := max(cfg.Nodes, 1)
	if cfg.Nodes == 0 {
		n = 3
	}
	creds, err := natsauth.NewCreds()
	if err != nil {
		return nil, fmt.Errorf("natscluster: %w", err)
	}
	routes, err := freeAddrs(n)
	if err != nil {
		return nil, err
	}
	c := &Cluster{Creds: creds}
	for i := range n {
		s, err := embeddednats.Start(nodeOptions(cfg, creds, routes, i))
		if err != nil {
			c.Shutdown()
			return nil, fmt.Errorf("natscluster: node %d: %w", i, err)
		}
		c.Nodes = append(c.Nodes, s)
	}
	if err := c.waitReady(ctx, cfg.ReadyTimeout); err != nil {
		c.Shutdown()
		return nil, err
	}
	return c, nil
}

func nodeOptions(cfg Config, creds *natsauth.Creds, routes []string, i int) embeddednats.Options {
	var dial []string
	for j, r := range routes {
		if j != i {
			dial = append(dial, "nats-route://"+r)
		}
	}
	return embeddednats.Options{
		DataDir: filepath.Join(cfg.Dir, fmt.Sprintf("node-%d", i)), Listen: "127.0.0.1:0", Name: NodeName(i),
		Auth: natsauth.Config(creds.Users(), cfg.Extra...), SyncInterval: cfg.SyncInterval,
		Cluster: &embeddednats.Cluster{Name: "comm-cluster", Listen: routes[i], Routes: dial},
	}
}

// NodeName is node i's server name.
func NodeName(i int) string { return fmt.Sprintf("node-%d", i) }

// freeAddrs picks n free loopback ports for the route listeners, which
// every node must know before the first starts.
func freeAddrs(n int) ([]string, error) {
	var lns []net.Listener
	defer func() {
		for _, ln := range lns {
			ln.Close()
		}
	}()
	var out []string
	for range n {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, fmt.Errorf("natscluster: route port: %w", err)
		}
		lns = append(lns, ln)
		out = append(out, ln.Addr().String())
	}
	return out, nil
}

func (c *Cluster) waitReady(ctx context.Context, within time.Duration) error {
	if within <= 0 {
		within = 30 * time.Second
	}
	deadline := time.Now().Add(within)
	for {
		err := JetStreamReady(c.Nodes, nil)
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("natscluster: JetStream not ready within %v: %w", within, err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// JetStreamReady reports nil once one node is the JetStream meta leader,
// every node not skipped follows it, and the leader may place replicas on
// each of them (it has their statistics). skip (nil: none) leaves out the
// nodes cut off from the others.
func JetStreamReady(nodes []*embeddednats.Server, skip func(i int) bool) error {
	l := MetaLeader(nodes)
	if l < 0 {
		return errors.New("no JetStream meta leader")
	}
	joined := 0
	for i, s := range nodes {
		if skip != nil && skip(i) {
			continue
		}
		joined++
		if !s.JetStreamIsCurrent() {
			return fmt.Errorf("%s is not current with the meta leader", s.Name())
		}
	}
	if peers := nodes[l].JetStreamClusterPeers(); len(peers) < joined {
		return fmt.Errorf("the meta leader knows %d nodes online (%v), want %d", len(peers), peers, joined)
	}
	return nil
}

// MetaLeader is the index of the JetStream meta leader, or -1.
func MetaLeader(nodes []*embeddednats.Server) int {
	for i, s := range nodes {
		if s.JetStreamIsLeader() {
			return i
		}
	}
	return -1
}

// URLs lists every node's client URL, node first first, comma-separated,
// as a deployment names them.
func (c *Cluster) URLs(first int) string {
	urls := []string{c.Nodes[first].ClientURL()}
	for i, s := range c.Nodes {
		if i != first {
			urls = append(urls, s.ClientURL())
		}
	}
	return strings.Join(urls, ",")
}

// Dial connects to node first (knowing every node, not shuffled, and
// reconnecting forever as the services do) with the given credentials
// option (Creds.Option(role), or a scratch user's).
func (c *Cluster) Dial(first int, auth nats.Option, name string, opts ...nats.Option) (*nats.Conn, error) {
	opts = append([]nats.Option{auth, nats.Name(name), nats.Timeout(10 * time.Second), nats.DontRandomize(),
		nats.MaxReconnects(-1), nats.ReconnectWait(time.Second)}, opts...)
	nc, err := nats.Connect(c.URLs(first), opts...)
	if err != nil {
		return nil, fmt.Errorf("natscluster: connect to %s: %w", NodeName(first), err)
	}
	return nc, nil
}

// APITotal is the JetStream API requests the nodes served, summed over
// the nodes (each node counts the requests it handled itself).
func (c *Cluster) APITotal() (uint64, error) {
	var sum uint64
	for _, s := range c.Nodes {
		n, err := s.JetStreamAPITotal()
		if err != nil {
			return 0, err
		}
		sum += n
	}
	return sum, nil
}

// StreamLastSeqs is every stream's last sequence, by name, the highest
// any node holds (a replica may lag its leader for a moment).
func (c *Cluster) StreamLastSeqs() (map[string]uint64, error) {
	out := map[string]uint64{}
	for _, s := range c.Nodes {
		seqs, err := s.StreamLastSeqs()
		if err != nil {
			return nil, err
		}
		for name, seq := range seqs {
			out[name] = max(out[name], seq)
		}
	}
	return out, nil
}

// StreamLeaders counts the streams each node leads, by node index, of
// the streams named (package natsauth puts each alone in an account named
// after it).
func (c *Cluster) StreamLeaders(names []string) []int {
	out := make([]int, len(c.Nodes))
	for _, name := range names {
		for i, s := range c.Nodes {
			if s.JetStreamIsStreamLeader(name, name) {
				out[i]++
			}
		}
	}
	return out
}

// Shutdown stops every node.
func (c *Cluster) Shutdown() {
	for _, s := range c.Nodes {
		s.Shutdown()
	}
}
