package gateway

import (
	"sync"
	"sync/atomic"

	"github.com/commsec/communicator/events"
	"github.com/commsec/communicator/internal/metrics"
)

// Metrics are the gateway's counters, registered in Config.Metrics (a
// private registry if nil) and served on /metrics by the binary. One
// registry holds at most one gateway: the names would collide.
type Metrics struct {
	reg           *metrics.Registry
	refused       *labelled // handshakes refused, by reason
	dropped       *labelled // connections closed by the gateway, by reason
	sends         *labelled // relay verdicts, by verdict and reason
	handshakes    *metrics.Counter
	framesOut     *metrics.Counter
	bundlesOut    *metrics.Counter
	messagesIn    *metrics.Counter
	refusedEvents *metrics.Counter
	connections   atomic.Int64
}

func newMetrics(r *metrics.Registry) *Metrics {
	if r == nil {
		r = metrics.NewRegistry()
	}
	m := &Metrics{
		reg: r,
		refused: newLabelled(r.CounterVec("comm_gateway_handshakes_refused_total",
			"Connections whose handshake failed or was refused (busy, denied, handshake_timeout...), by reason.", "reason"), 1),
		dropped: newLabelled(r.CounterVec("comm_gateway_connections_dropped_total",
			"Authenticated connections the gateway closed (slow, idle, revoked...), by reason.", "reason"), 1),
		sends: newLabelled(r.CounterVec("comm_gateway_sends_total",
			"Group messages clients sent, by the relay's verdict and its reason (empty when accepted).", "verdict", "reason"), 2),
		handshakes:    r.Counter("comm_gateway_handshakes_total", "Handshakes completed: clients admitted."),
		framesOut:     r.Counter("comm_gateway_frames_out_total", "Frames written to clients."),
		bundlesOut:    r.Counter("comm_gateway_bundles_out_total", "Key bundles queued for clients."),
		messagesIn:    r.Counter("comm_gateway_messages_in_total", "Accepted group messages received from the messages stream."),
		refusedEvents: r.Counter("comm_gateway_events_refused_total", "Events in the log that failed verification (a forged or corrupt log)."),
	}
	r.GaugeFunc("comm_gateway_connections", "Clients connected now.",
		func() float64 { return float64(m.connections.Load()) })
	return m
}

// registerState adds the gauges read from the projection, once it exists.
func (m *Metrics) registerState(p *events.Projection) {
	m.reg.GaugeFunc("comm_gateway_log_position", "Stream sequence of the last event the gateway has applied.",
		func() float64 { return float64(p.LastSeq()) })
}

func (m *Metrics) refuse(reason string)        { m.refused.inc(reason, "") }
func (m *Metrics) drop(reason string)          { m.dropped.inc(reason, "") }
func (m *Metrics) send(verdict, reason string) { m.sends.inc(verdict, reason) }

// Snapshot copies the labelled counters: handshakes refused and
// connections dropped, each by reason, and sends keyed "verdict" or
// "verdict/reason".
func (m *Metrics) Snapshot() (refused, dropped, sends map[string]uint64) {
	return m.refused.snapshot(), m.dropped.snapshot(), m.sends.snapshot()
}

// Connections is the number of connected clients.
func (m *Metrics) Connections() int64 { return m.connections.Load() }

// FramesOut counts frames written to clients.
func (m *Metrics) FramesOut() uint64 { return m.framesOut.Value() }

// labelled is a CounterVec of one or two labels whose counters are also
// kept by label values, so that counting costs a map lookup and no
// allocation, and a snapshot can list them.
type labelled struct {
	vec *metrics.CounterVec
	n   int // label names: 1 or 2
	mu  sync.Mutex
	by  map[[2]string]*metrics.Counter
}

// newLabelled wraps vec, which has n label names (1 or 2).
func newLabelled(vec *metrics.CounterVec, n int) *labelled {
	return &labelled{vec: vec, n: n, by: map[[2]string]*metrics.Counter{}}
}

// inc counts one under the label values a (and b, for two labels).
func (l *labelled) inc(a, b string) {
	k := [2]string{a, b}
	l.mu.Lock()
	c := l.by[k]
	if c == nil {
		c = l.vec.With(k[:l.n]...)
		l.by[k] = c
	}
	l.mu.Unlock()
	c.Inc()
}

// snapshot copies the counts, keyed by the label values joined with "/"
// (an empty second value left out).
func (l *labelled) snapshot() map[string]uint64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := make(map[string]uint64, len(l.by))
	for k, c := range l.by {
		key := k[0]
		if k[1] != "" {
			key += "/" + k[1]
		}
		out[key] = c.Value()
	}
	return out
}
