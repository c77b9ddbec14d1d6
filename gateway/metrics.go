package gateway

import (
	"sync/atomic"

	"github.com/commsec/communicator/events"
	"github.com/commsec/communicator/internal/metrics"
	"github.com/commsec/communicator/streams"
)

// Metrics are the gateway's counters, registered in Config.Metrics (a
// private registry if nil) and served on /metrics by the binary. One
// registry holds at most one gateway: the names would collide.
type Metrics struct {
	reg           *metrics.Registry
	refused       *metrics.Labelled // handshakes refused, by reason
	dropped       *metrics.Labelled // connections closed by the gateway, by reason
	sends         *metrics.Labelled // relay verdicts, by verdict and reason
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
		refused: metrics.NewLabelled(r.CounterVec("comm_gateway_handshakes_refused_total",
			"Connections whose handshake failed or was refused (busy, denied, handshake_timeout...), by reason.", "reason"), 1),
		dropped: metrics.NewLabelled(r.CounterVec("comm_gateway_connections_dropped_total",
			"Authenticated connections the gateway closed (slow, idle, revoked...), by reason.", "reason"), 1),
		sends: metrics.NewLabelled(r.CounterVec("comm_gateway_sends_total",
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

func (m *Metrics) refuse(reason string) { m.refused.Inc(reason, "") }
func (m *Metrics) drop(reason string)   { m.dropped.Inc(reason, "") }
func (m *Metrics) send(verdict streams.Verdict, reason streams.Reason) {
	m.sends.Inc(string(verdict), string(reason))
}

// Snapshot copies the labelled counters: handshakes refused and
// connections dropped, each by reason, and sends keyed "verdict" or
// "verdict/reason".
func (m *Metrics) Snapshot() (refused, dropped, sends map[string]uint64) {
	return m.refused.Snapshot(), m.dropped.Snapshot(), m.sends.Snapshot()
}

// Connections is the number of connected clients.
func (m *Metrics) Connections() int64 { return m.connections.Load() }

// FramesOut counts frames written to clients.
func (m *Metrics) FramesOut() uint64 { return m.framesOut.Value() }
