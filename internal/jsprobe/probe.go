// Package jsprobe keeps a service's NATS connection on a node that
// reaches JetStream, and tells readiness checks whether it does.
//
// A node cut off from the rest of its cluster keeps its clients' TCP
// connections: nats.go sees a healthy server, answering pings, while
// every JetStream call through it times out. A Probe asks JetStream,
// every Interval, for the info of a stream the service's role reads
// ($JS.API.STREAM.INFO.<stream>), waiting Timeout for the answer. Only
// that stream's leader answers, so through a cut-off node the answer is
// silence, unless the node is the leader itself; then the answer lists
// when the leader last heard from each replica, and the probe counts it
// a failure unless it heard from a quorum within Stale.
//
// At every Failures-th failure in a row, the probe asks the other nodes
// of the connection's server list the same question, each on a short
// connection of its own. If JetStream answers through one of them, and
// asked once more (waiting Timeout/2) still not through the probe's own
// node, the probe moves the connection (nats.Conn.ForceReconnect:
// nats.go dials the next server of its list at once), logs and counts
// the move. If it answers through none, the cluster is electing a leader
// or is down, and the connection stays: moving would not help.
//
// The bound, with the defaults (Interval 1 s, Timeout 1 s, Stale 1.5 s,
// Failures 3): through a node that no longer reaches the stream's leader
// each probe fails by its Timeout, so the third failure comes at most
// Interval + 3 × Timeout = 4 s after the cut. A leader cut off from its
// replicas is found out once Stale has passed since it last heard from
// them; each probe then fails at once, so the third failure comes at
// most Stale + Interval + 2 × Interval = 4.5 s after the cut. The look
// elsewhere takes a few round trips (at most 2 × Timeout), asking once
// more through the node Timeout/2, and the move follows at once: a
// service leaves a cut-off node within 5 s of the cut (7 s if the look
// meets unresponsive nodes), provided JetStream answers through another
// node by then. If it does not yet (the cut-off node led the stream, and
// the others are electing a new leader: up to 9 s in nats-server), the
// connection moves at the next look, at most Failures probes after
// JetStream answers elsewhere.
//
// Stale must stay below (Failures - 1) × Interval: a service on a
// healthy node whose probes fail because the stream's leader was cut off
// looks elsewhere no sooner than that after the cut, and must then find
// the cut-off leader stale, not move to it.
//
// Readiness (Ready) fails once Failures probes in a row have failed, or
// the connection moved and nothing answered since: one slow answer does
// not make a service unready.
//
// The services' NATS URLs must name every node (COMM_NATS_URL): a
// cut-off node stops advertising the others, and nats.go forgets the
// nodes it only learnt from it.
package jsprobe

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
	"github.com/rs/zerolog"

	"github.com/commsec/communicator/internal/metrics"
)

// Config configures a probe.
type Config struct {
	// Stream is the stream whose info the probe asks for; the
	// connection's role must be allowed its STREAM.INFO. Required.
	Stream string
	// Interval is the time between the starts of two probes (default 1 s).
	Interval time.Duration
	// Timeout bounds the wait for an answer (default 1 s).
	Timeout time.Duration
	// Stale: a replica the leader has not heard from for longer does not
	// count toward the quorum (default 1.5 s: raft heartbeats are 1 s
	// apart). It must be below (Failures - 1) × Interval.
	Stale time.Duration
	// Failures: at every so many failed probes in a row the probe looks
	// for another node through which JetStream answers (default 3).
	Failures int
	Log      zerolog.Logger
	// Metrics receives the probe's counters (nil: a private registry),
	// named Prefix + "_jetstream_...".
	Metrics prometheus.Registerer
	// Prefix is the metrics' prefix, e.g. "comm_gateway"; required with
	// Metrics.
	Prefix string
	// OnState, if set, is called on the probe's goroutine after every
	// change of state: for tests.
	OnState func(State)
}

func (c *Config) fill() error {
	if c.Stream == "" {
		return errors.New("jsprobe: no stream to probe")
	}
	if c.Metrics != nil && c.Prefix == "" {
		return errors.New("jsprobe: metrics without a prefix")
	}
	if c.Prefix == "" {
		c.Prefix = "jsprobe"
	}
	c.Metrics = metrics.OrPrivate(c.Metrics)
	c.Interval = orDefault(c.Interval, time.Second)
	c.Timeout = orDefault(c.Timeout, time.Second)
	c.Stale = orDefault(c.Stale, 1500*time.Millisecond)
	c.Failures = orDefault(c.Failures, 3)
	if limit := time.Duration(c.Failures-1) * c.Interval; c.Stale >= limit {
		return fmt.Errorf("jsprobe: Stale %v must be below (Failures - 1) × Interval (%v)", c.Stale, limit)
	}
	return nil
}

func orDefault[T int | time.Duration](v, d T) T {
	if v <= 0 {
		return d
	}
	return v
}

// Probe is a running probe. Close stops it.
type Probe struct {
	cfg    Config
	nc     *nats.Conn
	side   nats.Options // for the looks elsewhere
	log    zerolog.Logger
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
	moves  prometheus.Counter
	fails  prometheus.Counter

	mu      sync.Mutex
	t       *tracker
	lastErr error  // why the last probe failed
	streak  int    // failed probes since the last answer
	grace   bool   // the streak began while reachable: still ready for Failures - 1 probes
	node    string // the node the last probe went through
}

// Start probes once, so that Ready has a verdict when Start returns,
// then keeps probing on a goroutine of its own until Close.
func Start(nc *nats.Conn, cfg Config) (*Probe, error) {
	if err := cfg.fill(); err != nil {
		return nil, err
	}
	p := &Probe{cfg: cfg, nc: nc, side: sideOptions(nc.Opts, cfg.Timeout), t: newTracker(cfg.Failures),
		log: cfg.Log.With().Str("component", "jsprobe").Str("stream", cfg.Stream).Logger()}
	p.ctx, p.cancel = context.WithCancel(context.Background())
	p.register(cfg.Metrics, cfg.Prefix)
	p.once()
	p.wg.Add(1)
	go p.run()
	return p, nil
}

func (p *Probe) register(r prometheus.Registerer, prefix string) {
	f := promauto.With(r)
	p.moves = f.NewCounter(prometheus.CounterOpts{Name: prefix + "_jetstream_moves_total",
		Help: "NATS connections moved to another node because JetStream stopped answering through theirs."})
	p.fails = f.NewCounter(prometheus.CounterOpts{Name: prefix + "_jetstream_probes_failed_total",
		Help: "JetStream probes unanswered, refused, or answered by a leader out of touch with its replicas."})
	f.NewGaugeFunc(prometheus.GaugeOpts{Name: prefix + "_jetstream_reachable",
		Help: "1 while the last JetStream probe was answered, else 0."}, func() float64 {
		if p.State() == Reachable {
			return 1
		}
		return 0
	})
}

func (p *Probe) run() {
	defer p.wg.Done()
	tick := time.NewTicker(p.cfg.Interval)
	defer tick.Stop()
	for {
		select {
		case <-p.ctx.Done():
			return
		case <-tick.C:
			p.once()
		}
	}
}

// Close stops the probe and waits for its goroutine; a probe in flight
// is abandoned. It may be called more than once.
func (p *Probe) Close() {
	p.cancel()
	p.wg.Wait()
}

// State is the probe's state now.
func (p *Probe) State() State {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.t.state
}

// Moves is how many times the probe moved the connection.
func (p *Probe) Moves() uint64 { return metrics.Count(p.moves) }

// Ready is nil while JetStream answers through the connection, or says
// why not: the readiness check of a service. Fewer than Failures failed
// probes in a row after an answer still count as ready.
func (p *Probe) Ready() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	switch {
	case p.t.state == Reachable, p.t.state == Failing && p.grace && p.streak < p.cfg.Failures:
		return nil
	case p.t.state == Unknown:
		return errors.New("JetStream: not probed yet, or NATS is disconnected")
	}
	return fmt.Errorf("JetStream unreachable through NATS node %s (%s after %d failed probes): %v",
		p.node, p.t.state, p.streak, p.lastErr)
}
