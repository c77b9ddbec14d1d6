// Package clusterstack runs the Communicator on an in-process 3-node
// JetStream cluster (package natscluster): a keyserver, relays and
// gateways, each on its own NATS connection as its role, spread over
// the nodes, with R3 streams and a chosen number of accepted-message
// shards. commbench measures the cluster figures of issue 14 on it: the
// parts can be killed, added and restarted one by one, as a deployment's
// services would be.
package clusterstack

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nkeys"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"github.com/commsec/communicator/gateway"
	"github.com/commsec/communicator/internal/natsauth"
	"github.com/commsec/communicator/internal/natscluster"
	"github.com/commsec/communicator/internal/stack"
	"github.com/commsec/communicator/keyserver"
	"github.com/commsec/communicator/protocol/keys"
	"github.com/commsec/communicator/relay"
	"github.com/commsec/communicator/streams"
)

// Config configures a cluster stack.
type Config struct {
	Dir      string         // the nodes' data directories; required
	Nodes    int            // default 3
	Replicas int            // of every stream (default 3)
	Shards   streams.Shards // K (0: streams.DefaultShards)
	Relays   int            // started at once (default 1); relay i on node i mod Nodes
	Gateways int            // default 1; gateway i on node (i+1) mod Nodes
	// SyncInterval, when positive, fsyncs every interval instead of on
	// every write.
	SyncInterval time.Duration
	Log          zerolog.Logger
}

// Relay is a running relay, its own connection and its metrics'
// registry.
type Relay struct {
	*relay.Relay
	Conn     *nats.Conn
	Registry *prometheus.Registry
	Node     int
}

// Gateway is a running gateway, its own connection and its metrics.
type Gateway struct {
	*gateway.Gateway
	Conn    *nats.Conn
	Metrics *prometheus.Registry
	Node    int
	Addr    string // kept across restarts
}

// Stack is a running cluster stack.
type Stack struct {
	cfg       Config
	Cluster   *natscluster.Cluster
	keys      *stack.Keys
	scratch   nats.Option
	ksConn    *nats.Conn
	keyserver *keyserver.Keyserver
	relays    []*Relay
	Gateways  []*Gateway
}

// ShardsSupported reports whether this build's NATS authorization has an
// account for every one of k shards (package natsauth puts each stream
// alone in its own account): without them the keyserver cannot create
// the shards past the first.
func ShardsSupported(k streams.Shards) bool {
	have := map[string]bool{}
	for _, st := range natsauth.Stores() {
		have[st.Stream] = true
	}
	for _, name := range k.All() {
		if !have[name] {
			return false
		}
	}
	return true
}

// Start starts the cluster, the keyserver (which creates the streams),
// the relays and the gateways, and waits until the relays own every
// partition.
func Start(ctx context.Context, cfg Config) (*Stack, error) {
	cfg.fill()
	if !ShardsSupported(cfg.Shards) {
		return nil, fmt.Errorf("%w: K = %d", ErrNoShards, cfg.Shards)
	}
	s := &Stack{cfg: cfg}
	if err := s.start(ctx); err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}

func (c *Config) fill() {
	if c.Nodes <= 0 {
		c.Nodes = 3
	}
	if c.Replicas <= 0 {
		c.Replicas = min(3, c.Nodes)
	}
	if c.Shards == 0 {
		c.Shards = streams.DefaultShards
	}
	c.Relays, c.Gateways = max(c.Relays, 1), max(c.Gateways, 1)
}

func (s *Stack) start(ctx context.Context) error {
	kp, err := nkeys.CreateUser()
	if err != nil {
		return fmt.Errorf("clusterstack: scratch user: %w", err)
	}
	pub, _ := kp.PublicKey()
	s.scratch = nats.Nkey(pub, kp.Sign)
	s.Cluster, err = natscluster.Start(ctx, natscluster.Config{Dir: s.cfg.Dir, Nodes: s.cfg.Nodes,
		SyncInterval: s.cfg.SyncInterval, Extra: []string{natsauth.ScratchAccount(pub)}})
	if err != nil {
		return err
	}
	if s.keys, err = newKeys(); err != nil {
		return err
	}
	if err := s.startKeyserver(ctx); err != nil {
		return err
	}
	for i := range s.cfg.Relays {
		if _, err := s.AddRelay(ctx, "relay-"+strconv.Itoa(i), i%s.cfg.Nodes); err != nil {
			return err
		}
	}
	for i := range s.cfg.Gateways {
		if err := s.addGateway(ctx, (i+1)%s.cfg.Nodes); err != nil {
			return err
		}
	}
	return s.WaitOwned(ctx, 30*time.Second)
}

func newKeys() (*stack.Keys, error) {
	ks, err := keys.GenerateSigningKey(nil)
	if err != nil {
		return nil, err
	}
	gw, err := keys.GenerateSigningKey(nil)
	if err != nil {
		return nil, err
	}
	op, err := keys.GenerateSigningKey(nil)
	if err != nil {
		return nil, err
	}
	return &stack.Keys{Operator: op.Public(), Keyserver: ks, Gateway: gw}, nil
}

// streamsConfig is every part's view of the streams.
func (s *Stack) streamsConfig() streams.Config {
	return streams.Config{Replicas: s.cfg.Replicas, Shards: s.cfg.Shards}
}

func (s *Stack) dial(node int, role natsauth.Role, name string) (*nats.Conn, error) {
	return s.Cluster.Dial(node, s.Cluster.Creds.Option(role), name)
}

func (s *Stack) startKeyserver(ctx context.Context) error {
	nc, err := s.dial(0, natsauth.Keyserver, "comm-keyserver")
	if err != nil {
		return err
	}
	s.ksConn = nc
	k, err := keyserver.Start(ctx, nc, keyserver.Config{Key: s.keys.Keyserver, Operators: [][32]byte{s.keys.Operator},
		Streams: s.streamsConfig(), Log: s.cfg.Log, Metrics: prometheus.NewRegistry()})
	if err != nil {
		return fmt.Errorf("clusterstack: keyserver: %w", err)
	}
	s.keyserver = k
	return nil
}

// AddRelay starts a relay named id on node.
func (s *Stack) AddRelay(ctx context.Context, id string, node int) (*Relay, error) {
	nc, err := s.dial(node, natsauth.Relay, "comm-"+id)
	if err != nil {
		return nil, err
	}
	reg := prometheus.NewRegistry()
	r, err := relay.Start(ctx, nc, relay.Config{KeyserverKey: s.keys.Keyserver.Public(), Streams: s.streamsConfig(),
		ID: id, Log: s.cfg.Log, Metrics: reg})
	if err != nil {
		nc.Close()
		return nil, fmt.Errorf("clusterstack: relay %s: %w", id, err)
	}
	rl := &Relay{Relay: r, Conn: nc, Registry: reg, Node: node}
	s.relays = append(s.relays, rl)
	return rl, nil
}

// Relays are the relays started, killed ones included.
func (s *Stack) Relays() []*Relay { return s.relays }

// Kill stops r as kill -9 would: its NATS connection closes at once, its
// leases are not released and expire with the bucket's TTL. The relay's
// goroutines are stopped later, by Close.
func (r *Relay) Kill() { r.Conn.Close() }

func (s *Stack) addGateway(ctx context.Context, node int) error {
	g := &Gateway{Node: node, Addr: "127.0.0.1:0"}
	if err := s.startGateway(ctx, g); err != nil {
		return err
	}
	s.Gateways = append(s.Gateways, g)
	return nil
}

func (s *Stack) startGateway(ctx context.Context, g *Gateway) error {
	nc, err := s.dial(g.Node, natsauth.Gateway, "comm-gateway")
	if err != nil {
		return err
	}
	reg := prometheus.NewRegistry()
	gw, err := gateway.Start(ctx, nc, gateway.Config{Listen: g.Addr, Key: s.keys.Gateway,
		KeyserverKey: s.keys.Keyserver.Public(), Streams: s.streamsConfig(), Log: s.cfg.Log, Metrics: reg})
	if err != nil {
		nc.Close()
		return fmt.Errorf("clusterstack: gateway on %s: %w", natscluster.NodeName(g.Node), err)
	}
	g.Gateway, g.Conn, g.Metrics, g.Addr = gw, nc, reg, gw.Addr().String()
	return nil
}

// RestartGateway closes gateway i (its clients lose their connections)
// and starts it again on the same address with a fresh connection, as a
// restarted process would.
func (s *Stack) RestartGateway(ctx context.Context, i int) error {
	g := s.Gateways[i]
	g.stop()
	return s.startGateway(ctx, g)
}

func (g *Gateway) stop() {
	if g.Gateway != nil {
		g.Gateway.Close()
		g.Conn.Close()
		g.Gateway = nil
	}
}

// WaitOwned waits until the live relays own every partition between them,
// each at most once.
func (s *Stack) WaitOwned(ctx context.Context, within time.Duration) error {
	deadline := time.Now().Add(within)
	for !s.AllOwned() {
		if time.Now().After(deadline) {
			return fmt.Errorf("clusterstack: the relays did not own every partition within %v", within)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
	return nil
}

// AllOwned reports whether the relays whose connection is up own every
// partition, each by one relay.
func (s *Stack) AllOwned() bool {
	seen := make([]bool, streams.Partitions)
	n := 0
	for _, r := range s.relays {
		if r.Conn.IsClosed() {
			continue
		}
		for _, p := range r.Owned() {
			if !seen[p] {
				seen[p] = true
				n++
			}
		}
	}
	return n == streams.Partitions
}

// Keyserver is the stack's keyserver.
func (s *Stack) Keyserver() *keyserver.Keyserver { return s.keyserver }

// Keys are the stack's key pairs (in memory only).
func (s *Stack) Keys() *stack.Keys { return s.keys }

// Shards is K.
func (s *Stack) Shards() streams.Shards { return s.cfg.Shards }

// Sync waits until every live relay and gateway has applied every event
// the keyserver has written.
func (s *Stack) Sync(ctx context.Context) error {
	seq := s.keyserver.Projection().LastSeq()
	for _, r := range s.relays {
		if r.Conn.IsClosed() {
			continue
		}
		if err := r.Projection().WaitFor(ctx, seq); err != nil {
			return fmt.Errorf("clusterstack: relay %s catching up: %w", r.ID(), err)
		}
	}
	for _, g := range s.Gateways {
		if g.Gateway == nil {
			continue
		}
		if err := g.Projection().WaitFor(ctx, seq); err != nil {
			return fmt.Errorf("clusterstack: gateway on %s catching up: %w", natscluster.NodeName(g.Node), err)
		}
	}
	return nil
}

// Via is the stack seen through gateway i: a loadgen.Target.
func (s *Stack) Via(i int) *View { return &View{s: s, i: i} }

// View is the stack through one gateway.
type View struct {
	s *Stack
	i int
}

// Keyserver is the stack's keyserver.
func (v *View) Keyserver() *keyserver.Keyserver { return v.s.keyserver }

// Sync is Stack.Sync.
func (v *View) Sync(ctx context.Context) error { return v.s.Sync(ctx) }

// GatewayAddr is where the view's gateway listens, the same across its
// restarts.
func (v *View) GatewayAddr() string { return v.s.Gateways[v.i].Addr }

// Keys are the stack's key pairs.
func (v *View) Keys() *stack.Keys { return v.s.keys }

// Scratch connects to node in the scratch account, for raw JetStream
// measurements on the same cluster.
func (s *Stack) Scratch(node int) (*nats.Conn, jetstream.JetStream, error) {
	nc, err := s.Cluster.Dial(node, s.scratch, "commbench-raw")
	if err != nil {
		return nil, nil, err
	}
	js, err := jetstream.New(nc, jetstream.WithPublishAsyncMaxPending(4096))
	if err != nil {
		nc.Close()
		return nil, nil, err
	}
	return nc, js, nil
}

// Close stops the gateways, the relays (releasing their leases when
// still connected), the keyserver and the cluster.
func (s *Stack) Close() {
	for _, g := range s.Gateways {
		g.stop()
	}
	for _, r := range s.relays {
		r.Relay.Close()
		r.Conn.Close()
	}
	if s.keyserver != nil {
		s.keyserver.Close()
	}
	if s.ksConn != nil {
		s.ksConn.Close()
	}
	if s.keys != nil {
		s.keys.Wipe()
	}
	if s.Cluster != nil {
		s.Cluster.Shutdown()
	}
}

// ErrNoShards is returned when K shards cannot be created in this build.
var ErrNoShards = errors.New("clusterstack: this build's NATS authorization has no account for every shard")
