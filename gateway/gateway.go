// Package gateway terminates the clients' authenticated channels. It runs
// the handshake (with a deadline and a cap on concurrent handshakes),
// admits only registered, unrevoked clients, pushes each client its key
// bundles, forwards the group messages it sends to the relay owning the
// group's partition, and delivers the accepted messages of its groups from
// a per-client cursor.
//
// A gateway receives only what its clients need: it subscribes to the
// live feeds (core NATS, republished by the streams) of the groups with a
// member connected to it and of its connected clients (interest.go), and
// reads the streams only to catch a client up, on the shards where its
// cursor is behind (delivery.go). Deliveries are numbered per connection
// and mapped back to their shard and sequence (deliveries.go); the
// cursors, one sequence per shard, are written by one batch a second for
// the whole gateway (cursors.go).
//
// Each connection has one reader goroutine and a bounded queue whose
// writer goroutine runs only while frames wait: a client that does not
// keep up is disconnected (and catches up from its cursor later); it
// never slows the others. Drops are counted by reason.
//
// The gateway never sees a group key or a plaintext: bundles are wrapped
// to the client, envelopes are sealed under the group key.
package gateway

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"github.com/commsec/communicator/events"
	"github.com/commsec/communicator/internal/jsprobe"
	"github.com/commsec/communicator/protocol/handshake"
	"github.com/commsec/communicator/protocol/keys"
	"github.com/commsec/communicator/streams"
)

// Config configures a gateway.
type Config struct {
	Listen string // TCP address, e.g. "127.0.0.1:7400"
	// Name names the gateway where it keeps state of its own: its cursor
	// snapshot in COMM_CURSORS (snapshot.go). It must stay the same over
	// restarts and differ between gateways. Letters, digits, '-' and '_'
	// (default: the host's name and the listen address, other characters
	// as '_'; with port 0, the address given by the system). Gateways
	// that share a name only lose their snapshots' use, not safety: an
	// entry never takes a cursor behind the client's record.
	Name         string
	Key          *keys.SigningKey // Sk_S
	KeyserverKey [32]byte         // Pk_Ks: the events the gateway trusts
	Streams      streams.Config
	// MaxHandshakes caps concurrent handshakes (default 256). When all
	// are taken, a new connection evicts a handshake of the source
	// holding the most, or is told "busy" (docs/PROTOCOL.md, 4.9).
	MaxHandshakes int
	// MaxHandshakesPerSource is a source address's share of a full table
	// of handshakes (default 16): past it, its new connections are told
	// "busy" and evict nobody. While the table has room it does not apply.
	MaxHandshakesPerSource int
	HandshakeTimeout       time.Duration // the whole handshake (default 10 s)
	// M1Timeout bounds the wait for a whole M1 (default 2 s).
	M1Timeout time.Duration
	// QueueSize bounds the frames waiting for a client (default 256).
	QueueSize int
	// IdleTimeout closes a connection that sent nothing, not even a ping,
	// for this long (default 90 s).
	IdleTimeout time.Duration
	// WriteTimeout bounds one frame write to a client (default 10 s).
	WriteTimeout time.Duration
	// MaxInflight bounds a client's messages awaiting the relay (default 64).
	MaxInflight int
	// SendTimeout bounds the wait for the relay's verdict (default 5 s).
	SendTimeout time.Duration
	Log         zerolog.Logger
	// Metrics receives the gateway's counters and gauges (nil: a private
	// registry, for tests). It must not hold another gateway's.
	Metrics prometheus.Registerer
	// Probe tunes the JetStream probe of the gateway's NATS connection,
	// which moves it off a node that cannot reach JetStream (package
	// jsprobe); the zero value has the defaults. Its stream, log and
	// metrics are the gateway's.
	Probe jsprobe.Config
}

func (c *Config) fill() error {
	switch {
	case c.Key == nil:
		return errors.New("gateway: no server key (Sk_S) configured")
	case c.KeyserverKey == ([32]byte{}):
		return errors.New("gateway: no keyserver public key configured")
	case c.Name != "":
		if err := CheckName(c.Name); err != nil {
			return fmt.Errorf("gateway: %w", err)
		}
	}
	c.MaxHandshakes = orDefault(c.MaxHandshakes, 256)
	c.MaxHandshakesPerSource = orDefault(c.MaxHandshakesPerSource, 16)
	c.M1Timeout = orDefault(c.M1Timeout, handshake.DefaultM1Timeout)
	c.QueueSize = orDefault(c.QueueSize, 256)
	c.MaxInflight = orDefault(c.MaxInflight, 64)
	c.HandshakeTimeout = orDefault(c.HandshakeTimeout, 10*time.Second)
	c.IdleTimeout = orDefault(c.IdleTimeout, 90*time.Second)
	c.WriteTimeout = orDefault(c.WriteTimeout, 10*time.Second)
	c.SendTimeout = orDefault(c.SendTimeout, 5*time.Second)
	return nil
}

// CheckName checks a gateway's name (Config.Name).
func CheckName(n string) error {
	if !validName(n) {
		return fmt.Errorf("name %q: want 1 to 64 letters, digits, '-' and '_'", n)
	}
	return nil
}

func validName(n string) bool {
	if n == "" || len(n) > 64 {
		return false
	}
	for _, r := range n {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_') {
			return false
		}
	}
	return true
}

// nameOf makes a valid name of s.
func nameOf(s string) string {
	b := []byte(s[max(0, len(s)-64):])
	for i, c := range b {
		if !validName(string(c)) {
			b[i] = '_'
		}
	}
	return string(b)
}

func orDefault[T int | time.Duration](v, d T) T {
	if v <= 0 {
		return d
	}
	return v
}

// Gateway is a running gateway.
type Gateway struct {
	cfg      Config
	log      zerolog.Logger
	nc       *nats.Conn
	js       jetstream.JetStream
	proj     *events.Projection
	ln       net.Listener
	sessions *registry
	relay    *relayClient
	cursors  *cursorStore
	interest *interest
	shards   streams.Shards // K: the accepted messages' shards
	probe    *jsprobe.Probe
	apiSlots chan struct{} // the reads of the JetStream API in flight (stored.go)
	stop     []func()
	// wg counts every goroutine the gateway starts: the accept loop, each
	// handshake, each session's reader and delivery, a session's pass.
	wg        sync.WaitGroup
	closeOnce sync.Once
	closing   chan struct{}
	// ctx ends at Close; every session's context derives from it.
	ctx     context.Context
	cancel  context.CancelFunc
	Metrics *Metrics
}

// rootContext is the context sessions derive theirs from.
func (g *Gateway) rootContext() context.Context {
	if g.ctx == nil {
		return context.Background() // a Gateway made by hand, in a test
	}
	return g.ctx
}

// Start loads the event log, binds the streams and listens for clients;
// it subscribes to the live feeds of their groups and bundles as they
// come (interest.go).
func Start(ctx context.Context, nc *nats.Conn, cfg Config) (*Gateway, error) {
	if err := cfg.fill(); err != nil {
		return nil, err
	}
	g := &Gateway{cfg: cfg, nc: nc, log: cfg.Log.With().Str("component", "gateway").Logger(),
		sessions: newRegistry(), closing: make(chan struct{}), apiSlots: make(chan struct{}, maxAPIReads),
		Metrics: newMetrics(cfg.Metrics)}
	g.ctx, g.cancel = context.WithCancel(context.Background())
	// Listen first, so that a taken address is reported at once; clients
	// wait in the backlog until the event log is loaded.
	// No TCP keep-alive: IdleTimeout already closes a silent connection,
	// and setting it costs three system calls on every accepted one.
	lc := net.ListenConfig{KeepAlive: -1}
	ln, err := lc.Listen(ctx, "tcp", cfg.Listen)
	if err != nil {
		return nil, fmt.Errorf("gateway: listen: %w", err)
	}
	g.ln = ln
	if g.cfg.Name == "" {
		addr := cfg.Listen
		if _, port, err := net.SplitHostPort(addr); err != nil || port == "0" {
			addr = ln.Addr().String()
		}
		host, _ := os.Hostname()
		g.cfg.Name = nameOf(host + "-" + addr)
	}
	if err := g.startProbe(); err != nil {
		g.Close()
		return nil, err
	}
	if err := g.open(ctx); err != nil {
		g.Close()
		return nil, err
	}
	g.wg.Add(1)
	go g.acceptLoop()
	g.log.Info().Str("listen", ln.Addr().String()).Msg("gateway listening")
	return g, nil
}

// startProbe watches JetStream through the gateway's connection from the
// start, so that a gateway started on a cut-off node leaves it too.
func (g *Gateway) startProbe() error {
	pc := g.cfg.Probe
	pc.Stream, pc.Log, pc.Metrics, pc.Prefix = streams.Events, g.log, g.Metrics.reg, "comm_gateway"
	p, err := jsprobe.Start(g.nc, pc)
	if err != nil {
		return fmt.Errorf("gateway: %w", err)
	}
	g.probe = p
	return nil
}

// JetStream is the probe of the gateway's NATS connection: its Ready is
// nil while the gateway reaches JetStream.
func (g *Gateway) JetStream() *jsprobe.Probe { return g.probe }

func (g *Gateway) open(ctx context.Context) error {
	js, err := jetstream.New(g.nc)
	if err != nil {
		return fmt.Errorf("gateway: %w", err)
	}
	g.js = js
	if err := g.loadEvents(ctx); err != nil {
		return err
	}
	if g.shards, err = streams.LoadShards(ctx, js); err != nil {
		return fmt.Errorf("gateway: %w", err)
	}
	for _, name := range append(g.shards.All(), streams.Bundles) {
		if _, err := streams.BindStream(ctx, js, name); err != nil {
			return err
		}
	}
	if g.cursors, err = openCursors(ctx, g); err != nil {
		return err
	}
	if g.relay, err = newRelayClient(g); err != nil {
		return err
	}
	g.stop = append(g.stop, g.relay.close)
	g.interest = newInterest(g)
	if err := g.interest.start(); err != nil {
		return err
	}
	g.stop = append(g.stop, g.interest.stop)
	return nil
}

func (g *Gateway) loadEvents(ctx context.Context) error {
	store, err := events.Bind(ctx, g.js)
	if err != nil {
		return err
	}
	if g.proj, err = events.Load(ctx, store, g.cfg.KeyserverKey, nil, g.refusedEvent); err != nil {
		return err
	}
	g.Metrics.registerState(g.proj)
	stop, err := events.Follow(context.Background(), store, g.proj, g.applied, g.refusedEvent)
	if err != nil {
		return err
	}
	g.stop = append(g.stop, stop)
	return nil
}

func (g *Gateway) refusedEvent(err error) {
	g.Metrics.refusedEvents.Inc()
	g.log.Error().Err(err).Msg("event refused")
}

// Addr is the address the gateway listens on.
func (g *Gateway) Addr() net.Addr { return g.ln.Addr() }

// Close stops accepting, closes every connection (their cursors are saved)
// and stops the feeds. It may be called more than once.
func (g *Gateway) Close() {
	g.closeOnce.Do(func() {
		close(g.closing)
		if g.ln != nil {
			g.ln.Close()
		}
		g.sessions.closeAll()
		if g.cancel != nil {
			g.cancel()
		}
		g.wg.Wait()
		for _, stop := range g.stop {
			stop()
		}
		if g.probe != nil {
			g.probe.Close() // last: it may still move the connection the cursors are saved through
		}
	})
}

// Projection exposes the gateway's view of the event log (read only).
func (g *Gateway) Projection() *events.Projection { return g.proj }
