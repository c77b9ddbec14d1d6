// Package stacktest assembles a whole Communicator inside a test: a real
// nats-server (embedded, random port, temporary directory), a keyserver,
// relays and gateways on loopback TCP, and clients using the SDK.
package stacktest

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/commsec/communicator/clientsdk"
	"github.com/commsec/communicator/events"
	"github.com/commsec/communicator/events/fold"
	"github.com/commsec/communicator/events/record"
	"github.com/commsec/communicator/gateway"
	"github.com/commsec/communicator/internal/embeddednats"
	"github.com/commsec/communicator/internal/natsauth"
	"github.com/commsec/communicator/internal/natstest"
	"github.com/commsec/communicator/keyserver"
	"github.com/commsec/communicator/protocol"
	"github.com/commsec/communicator/protocol/clientstate"
	"github.com/commsec/communicator/protocol/keys"
	"github.com/commsec/communicator/relay"
	"github.com/commsec/communicator/streams"
)

// Shards is K of the test stacks: 0, the default of a new deployment
// (streams.DefaultShards), so that every test runs over sharded streams.
const Shards streams.Shards = 0

// Stack is a running test stack. Its NATS server has the production
// accounts, and every part connects as its own role.
type Stack struct {
	T    testing.TB
	NATS *natstest.Server
	// NC is the keyserver's connection and JS its JetStream: what a test
	// reads or writes through them, the keyserver's role may.
	NC        *nats.Conn
	JS        jetstream.JetStream
	KS        *keys.SigningKey // Sk_Ks
	GW        *keys.SigningKey // Sk_S, shared by the gateways
	Keyserver *keyserver.Keyserver
	Relays    []*relay.Relay
	Gateways  []*gateway.Gateway
	// Open is the server of a stack made by NewOpen (NATS is nil then).
	Open *embeddednats.Server
}

// New starts NATS and a keyserver; add relays and gateways with AddRelay
// and AddGateway.
func New(t testing.TB) *Stack {
	t.Helper()
	srv := natstest.StartFast(t)
	nc := srv.Conn(t, natsauth.Keyserver)
	js, _ := jetstream.New(nc)
	ks, _ := keys.GenerateSigningKey(nil)
	gw, _ := keys.GenerateSigningKey(nil)
	// Relay leases expire after a second: a stopped relay's partitions move fast.
	k, err := keyserver.Start(context.Background(), nc, keyserver.Config{Key: ks, Streams: streams.Config{LeaseTTL: time.Second, Shards: Shards}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(k.Close)
	return &Stack{T: t, NATS: srv, NC: nc, JS: js, KS: ks, GW: gw, Keyserver: k}
}

// NewOpen is New on a server without authentication (one account for
// every part), whose accepted messages have k shards: for tests of the
// delivery over shards before package natsauth has an account for each.
// Its tests may read and write any subject, e.g. store envelopes on a
// shard as a relay would (StoreEnvelope) or watch $JS.API.> to count the
// JetStream API calls.
func NewOpen(t testing.TB, k streams.Shards) *Stack {
	t.Helper()
	srv, nc := natstest.OpenFast(t)
	js, _ := jetstream.New(nc)
	ks, _ := keys.GenerateSigningKey(nil)
	gw, _ := keys.GenerateSigningKey(nil)
	kc, err := keyserver.Start(context.Background(), nc, keyserver.Config{Key: ks, Streams: streams.Config{LeaseTTL: time.Second, Shards: k}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(kc.Close)
	return &Stack{T: t, Open: srv, NC: nc, JS: js, KS: ks, GW: gw, Keyserver: kc}
}

// StoreEnvelope stores env, sent by sender to g in epoch e, on g's shard
// as a relay does (without its checks), and returns its sequence.
func (s *Stack) StoreEnvelope(k streams.Shards, g protocol.GroupID, sender protocol.ClientID, e protocol.Epoch, env []byte) uint64 {
	s.T.Helper()
	m := nats.NewMsg(k.Subject(g, sender))
	m.Data = env
	m.Header.Set(streams.HeaderEpoch, fmt.Sprint(uint64(e)))
	ack, err := s.JS.PublishMsg(context.Background(), m)
	if err != nil {
		s.T.Fatal(err)
	}
	return ack.Sequence
}

// AddRelay starts a relay on its own NATS connection.
func (s *Stack) AddRelay(cfg relay.Config) *relay.Relay {
	s.T.Helper()
	cfg.KeyserverKey = s.KS.Public()
	r, err := relay.Start(context.Background(), s.Conn(natsauth.Relay), cfg)
	if err != nil {
		s.T.Fatal(err)
	}
	s.T.Cleanup(r.Close)
	s.Relays = append(s.Relays, r)
	return r
}

// AddGateway starts a gateway on 127.0.0.1 and its own NATS connection.
func (s *Stack) AddGateway(cfg gateway.Config) *gateway.Gateway {
	s.T.Helper()
	return s.AddGatewayOn(s.Conn(natsauth.Gateway), cfg)
}

// Client is a registered identity with its own state store.
type Client struct {
	Name  string
	ID    *keys.ClientIdentity
	Store *clientstate.MemStore
}

// Register makes and registers a client identity.
func (s *Stack) Register(name string) *Client {
	s.T.Helper()
	id, _ := keys.GenerateClientIdentity(nil)
	if err := s.Keyserver.RegisterClient(context.Background(), keyserver.Actor{}, id.Public(), name); err != nil {
		s.T.Fatal(err)
	}
	s.Sync()
	return &Client{Name: name, ID: id, Store: &clientstate.MemStore{}}
}

// Group creates a group with the given members.
func (s *Stack) Group(name string, members ...*Client) protocol.GroupID {
	s.T.Helper()
	g, err := s.Keyserver.CreateGroup(context.Background(), keyserver.Actor{}, name, record.Policy{})
	if err != nil {
		s.T.Fatal(err)
	}
	if len(members) > 0 {
		s.Add(name, members...)
	}
	return g
}

// GroupID finds a group's id by name.
func (s *Stack) GroupID(name string) protocol.GroupID {
	var id protocol.GroupID
	s.Keyserver.Projection().Read(func(st *fold.State) {
		if g, ok := st.GroupByName(name); ok {
			id = g.ID
		}
	})
	return id
}

// Add adds members to a group.
func (s *Stack) Add(group string, members ...*Client) {
	s.T.Helper()
	names := make([]string, len(members))
	for i, m := range members {
		names[i] = m.Name
	}
	if _, err := s.Keyserver.AddMembers(context.Background(), keyserver.Actor{}, group, names); err != nil {
		s.T.Fatal(err)
	}
	s.Sync()
}

// Sync waits until every relay and gateway has applied the events the
// keyserver has: a change is then in force everywhere.
func (s *Stack) Sync() {
	s.T.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	seq := s.Keyserver.Projection().LastSeq()
	for _, r := range s.Relays {
		if err := r.Projection().WaitFor(ctx, seq); err != nil {
			s.T.Fatal(err)
		}
	}
	for _, g := range s.Gateways {
		if err := g.Projection().WaitFor(ctx, seq); err != nil {
			s.T.Fatal(err)
		}
	}
}

// Dial connects c through gateway i.
func (s *Stack) Dial(c *Client, i int) *clientsdk.Client {
	s.T.Helper()
	cl, err := clientsdk.Dial(context.Background(), s.ClientConfig(c, i))
	if err != nil {
		s.T.Fatalf("%s: %v", c.Name, err)
	}
	s.T.Cleanup(func() { cl.Close() })
	return cl
}

// ClientConfig is the SDK configuration of c through gateway i.
func (s *Stack) ClientConfig(c *Client, i int) clientsdk.Config {
	return clientsdk.Config{
		Addr: s.Gateways[i].Addr().String(), Identity: c.ID, Store: c.Store,
		ServerKey: s.GW.Public(), KeyserverKey: s.KS.Public(),
		ReconnectSpread: 20 * time.Millisecond, MinBackoff: 20 * time.Millisecond, MaxBackoff: 500 * time.Millisecond,
		Logf: func(f string, a ...any) { s.T.Logf(c.Name+": "+f, a...) },
	}
}

// Receive waits for the next message on cl.
func Receive(t testing.TB, cl *clientsdk.Client, within time.Duration) (clientsdk.Message, error) {
	t.Helper()
	select {
	case m, ok := <-cl.Messages():
		if !ok {
			return m, fmt.Errorf("client closed")
		}
		return m, nil
	case <-time.After(within):
		return clientsdk.Message{}, fmt.Errorf("no message within %v", within)
	}
}

// Conn opens another connection as role r (of a stack made by NewOpen:
// a connection without a role), closed when the test ends.
func (s *Stack) Conn(r natsauth.Role) *nats.Conn {
	if s.Open == nil {
		return s.NATS.Conn(s.T, r)
	}
	nc, err := s.Open.Connect(nats.Name(string(r)), nats.CustomInboxPrefix(natsauth.InboxPrefix(r)))
	if err != nil {
		s.T.Fatal(err)
	}
	s.T.Cleanup(nc.Close)
	return nc
}

// CreateStreams creates the event stream and every shared stream and
// bucket, as a keyserver would (nc must be the keyserver's), for tests
// that run a relay or gateway without one.
func CreateStreams(t testing.TB, nc *nats.Conn) {
	t.Helper()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if _, err := events.OpenStore(ctx, js, events.StoreConfig{}); err != nil {
		t.Fatal(err)
	}
	if err := streams.EnsureAll(ctx, js, streams.Config{LeaseTTL: time.Second, Shards: Shards}); err != nil {
		t.Fatal(err)
	}
}

// NewCluster starts a keyserver on node ks of cluster c, which creates
// every stream and bucket with a replica on each node; add relays and
// gateways on the nodes of your choice with AddRelayOn and AddGatewayOn.
// The stack's NATS is node ks, and NC the keyserver's connection, which
// knows every node (natstest.Cluster.Conn).
func NewCluster(t testing.TB, c *natstest.Cluster, ks int) *Stack {
	t.Helper()
	nc := c.Conn(t, ks, natsauth.Keyserver)
	js, _ := jetstream.New(nc)
	ksKey, _ := keys.GenerateSigningKey(nil)
	gw, _ := keys.GenerateSigningKey(nil)
	k, err := keyserver.Start(context.Background(), nc, keyserver.Config{Key: ksKey,
		Streams: streams.Config{Replicas: len(c.Nodes), LeaseTTL: time.Second, Shards: Shards}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(k.Close)
	return &Stack{T: t, NATS: c.Nodes[ks], NC: nc, JS: js, KS: ksKey, GW: gw, Keyserver: k}
}

// AddRelayOn starts a relay on connection nc, e.g. one to a node of a
// cluster (natstest.Cluster.Conn).
func (s *Stack) AddRelayOn(nc *nats.Conn, cfg relay.Config) *relay.Relay {
	s.T.Helper()
	cfg.KeyserverKey = s.KS.Public()
	r, err := relay.Start(context.Background(), nc, cfg)
	if err != nil {
		s.T.Fatal(err)
	}
	s.T.Cleanup(r.Close)
	s.Relays = append(s.Relays, r)
	return r
}

// AddGatewayOn starts a gateway on 127.0.0.1 and connection nc, e.g. one
// to a node of a cluster (natstest.Cluster.Conn).
func (s *Stack) AddGatewayOn(nc *nats.Conn, cfg gateway.Config) *gateway.Gateway {
	s.T.Helper()
	cfg.Key, cfg.KeyserverKey = s.GW, s.KS.Public()
	if cfg.Listen == "" {
		cfg.Listen = "127.0.0.1:0"
	}
	g, err := gateway.Start(context.Background(), nc, cfg)
	if err != nil {
		s.T.Fatal(err)
	}
	s.T.Cleanup(g.Close)
	s.Gateways = append(s.Gateways, g)
	return g
}
