package natstest

import (
	"fmt"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/commsec/communicator/internal/embeddednats"
	"github.com/commsec/communicator/internal/natsauth"
	"github.com/commsec/communicator/internal/natscluster"
)

// Cluster is a JetStream cluster of test servers on loopback, every node
// with the production accounts and the same users. Each route between
// two nodes runs through a TCP proxy the test owns, so that Isolate can
// cut a node off from the others while its clients' connections to it
// stay up: the partition of a real network, inside one process.
type Cluster struct {
	Nodes []*Server
	links map[[2]int]*link // [from, to]: the routes node from dials to node to
}

// StartCluster starts an n-node cluster for t (fsync every minute, as
// StartFast) and waits until JetStream has a meta leader that every node
// follows. Keep n small: every node is a full server in this process.
func StartCluster(t testing.TB, n int) *Cluster {
	t.Helper()
	creds, err := natsauth.NewCreds()
	if err != nil {
		t.Fatal(err)
	}
	c := &Cluster{links: map[[2]int]*link{}}
	for from := range n {
		for to := range n {
			if from != to {
				c.links[[2]int{from, to}] = c.newLink(t)
			}
		}
	}
	nowhere := closedAddr(t)
	for i := range n {
		dir := t.TempDir()
		if err := creds.Write(filepath.Join(dir, "creds")); err != nil {
			t.Fatal(err)
		}
		c.Nodes = append(c.Nodes, start(t, dir, time.Minute, c.clustering(i, n, nowhere)))
		for from := range n {
			if l := c.links[[2]int{from, i}]; l != nil {
				l.setTarget(c.Nodes[i].ClusterAddr())
			}
		}
	}
	c.WaitJetStream(t, 30*time.Second)
	return c
}

func (c *Cluster) newLink(t testing.TB) *link {
	t.Helper()
	l, err := newLink()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(l.close)
	return l
}

// clustering is node i's cluster options: routes through its links, and
// an advertised route address where nothing listens, so that a node that
// learns of another by gossip cannot dial it past the links.
func (c *Cluster) clustering(i, n int, nowhere string) func(*embeddednats.Options) {
	var routes []string
	for to := range n {
		if l := c.links[[2]int{i, to}]; l != nil {
			routes = append(routes, "nats-route://"+l.addr())
		}
	}
	return func(o *embeddednats.Options) {
		o.Name = fmt.Sprintf("node-%d", i)
		o.Cluster = &embeddednats.Cluster{Name: "test-cluster", Listen: "127.0.0.1:0", Routes: routes, Advertise: nowhere}
	}
}

// closedAddr is a loopback address where nothing listens.
func closedAddr(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

// WaitJetStream waits until one node is the JetStream meta leader, every
// node not isolated follows it, and the leader may place replicas on
// each of them (it has their statistics).
func (c *Cluster) WaitJetStream(t testing.TB, within time.Duration) {
	t.Helper()
	CheckFor(t, within, 50*time.Millisecond, func() error {
		return natscluster.JetStreamReady(c.servers(), c.isolated)
	})
}

// MetaLeader is the index of the JetStream meta leader, or -1.
func (c *Cluster) MetaLeader() int { return natscluster.MetaLeader(c.servers()) }

func (c *Cluster) servers() []*embeddednats.Server {
	out := make([]*embeddednats.Server, len(c.Nodes))
	for i, s := range c.Nodes {
		out[i] = s.Server
	}
	return out
}

// StreamLeader is the index of the node leading stream, or -1. Package
// natsauth puts every stream alone in an account named after it.
func (c *Cluster) StreamLeader(stream string) int {
	for i, s := range c.Nodes {
		if s.JetStreamIsStreamLeader(stream, stream) {
			return i
		}
	}
	return -1
}

// LeadElsewhere makes node i step down as stream's leader until another
// node leads it.
func (c *Cluster) LeadElsewhere(t testing.TB, stream string, i int) {
	t.Helper()
	CheckFor(t, 30*time.Second, 200*time.Millisecond, func() error {
		switch l := c.StreamLeader(stream); {
		case l < 0:
			return fmt.Errorf("%s has no leader", stream)
		case l == i:
			if err := c.Nodes[i].JetStreamStepdownStream(stream, stream); err != nil {
				return err
			}
			return fmt.Errorf("%s still led by %s", stream, c.Nodes[i].Name())
		}
		return nil
	})
}

// Isolate cuts every route of node i: it keeps running, and its clients
// stay connected to it, but it can reach no other node.
func (c *Cluster) Isolate(i int) { c.setCut(i, true) }

// Rejoin mends the routes Isolate cut.
func (c *Cluster) Rejoin(i int) { c.setCut(i, false) }

func (c *Cluster) setCut(i int, cut bool) {
	for k, l := range c.links {
		if k[0] == i || k[1] == i {
			l.setCut(cut)
		}
	}
}

func (c *Cluster) isolated(i int) bool {
	for k, l := range c.links {
		if k[0] == i || k[1] == i {
			l.mu.Lock()
			cut := l.cut
			l.mu.Unlock()
			return cut
		}
	}
	return false
}

// URLs lists the client URLs of every node, node first first and the
// others in order, comma-separated: as a deployment names every node
// (COMM_NATS_URL).
func (c *Cluster) URLs(first int) string {
	urls := []string{c.Nodes[first].ClientURL()}
	for i, s := range c.Nodes {
		if i != first {
			urls = append(urls, s.ClientURL())
		}
	}
	return strings.Join(urls, ",")
}

// Conn opens a connection as role r to node first, knowing every node
// (URLs) and reconnecting as the services do (forever, every second),
// without shuffling the list: it starts on node first and moves to the
// next in order. It is closed when the test ends.
func (c *Cluster) Conn(t testing.TB, first int, r natsauth.Role, opts ...nats.Option) *nats.Conn {
	t.Helper()
	s := c.Nodes[first]
	opts = append([]nats.Option{s.Creds.Option(r), nats.Name("test-" + string(r)), nats.Timeout(5 * time.Second),
		nats.DontRandomize(), nats.MaxReconnects(-1), nats.ReconnectWait(time.Second)}, opts...)
	nc, err := nats.Connect(c.URLs(first), opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	if got := nc.ConnectedServerName(); got != s.Name() {
		t.Fatalf("connected to %s, want %s", got, s.Name())
	}
	return nc
}

// NodeOf is the index of the node nc is connected to, or -1.
func (c *Cluster) NodeOf(nc *nats.Conn) int {
	name := nc.ConnectedServerName()
	for i, s := range c.Nodes {
		if s.Name() == name {
			return i
		}
	}
	return -1
}
