package gateway

import (
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"

	"github.com/commsec/communicator/events"
	"github.com/commsec/communicator/internal/metrics"
	"github.com/commsec/communicator/streams"
)

// Metrics are the gateway's counters, gauges and histograms, registered
// in Config.Metrics (a private registry if nil) and served on /metrics by
// the binary. One registry holds at most one gateway: the names would
// collide.
type Metrics struct {
	reg           prometheus.Registerer
	refused       *metrics.Labelled // handshakes refused, by reason
	dropped       *metrics.Labelled // connections closed by the gateway, by reason
	sends         *metrics.Labelled // relay verdicts, by verdict and reason
	handshakes    prometheus.Counter
	framesOut     prometheus.Counter
	bundlesOut    prometheus.Counter
	messagesIn    prometheus.Counter
	refusedEvents prometheus.Counter
	// The live feeds (interest.go) and their costs, for commbench.
	feeds          prometheus.Gauge   // subscriptions to live feeds held, lingering ones included
	liveLost       prometheus.Counter // live feeds found to have lost messages (a gap, drops, a reconnect)
	leaderRechecks prometheus.Counter // checks of the feeds after a stream's leader election
	connectCalls   prometheus.Counter // JetStream API calls made to set up sessions
	connects       prometheus.Counter // sessions set up
	consumers      prometheus.Counter // catch-up passes: each an ordered consumer
	cursorBatches  prometheus.Counter // atomic batches of cursors written
	cursorsWritten prometheus.Counter // cursors written
	snapshotLoaded prometheus.Gauge   // clients' records loaded from the gateway's snapshot at Start
	apiRetries     prometheus.Counter // reads of the JetStream API tried again after a timeout
	connections    atomic.Int64

	handshakeTime prometheus.Histogram // admitted handshakes, first byte to the session
	verdictTime   prometheus.Histogram // a send forwarded to the relay → its verdict
	// deliveryLag is the time from a message's storage (its JetStream
	// timestamp) to the write of its Deliver frame to a client, by the
	// path that queued it.
	deliveryLag [numPaths]prometheus.Observer
}

// deliveryPath is how a Deliver frame reached a session's queue.
type deliveryPath uint8

const (
	pathLive    deliveryPath = iota // the live feed's fan-out, as it was stored
	pathCatchUp                     // a pass: read back from the stream, or held while one ran
	numPaths
)

var pathNames = [numPaths]string{"live", "catch_up"}

func newMetrics(r prometheus.Registerer) *Metrics {
	r = metrics.OrPrivate(r)
	f := promauto.With(r)
	m := &Metrics{
		reg: r,
		refused: metrics.NewLabelled(r, "comm_gateway_handshakes_refused_total",
			"Connections whose handshake failed or was refused (busy, busy_source, evicted, m1_timeout, handshake_timeout, bad_client_signature...), by reason.", "reason"),
		dropped: metrics.NewLabelled(r, "comm_gateway_connections_dropped_total",
			"Authenticated connections the gateway closed (slow, idle, revoked...), by reason.", "reason"),
		sends: metrics.NewLabelled(r, "comm_gateway_sends_total",
			"Group messages clients sent, by the relay's verdict and its reason (empty when accepted).", "verdict", "reason"),
		handshakes: metrics.NewCounter(f, "comm_gateway_handshakes_total", "Handshakes completed: clients admitted."),
		framesOut:  metrics.NewCounter(f, "comm_gateway_frames_out_total", "Frames written to clients."),
		bundlesOut: metrics.NewCounter(f, "comm_gateway_bundles_out_total", "Key bundles queued for clients."),
		messagesIn: metrics.NewCounter(f, "comm_gateway_messages_in_total", "Accepted group messages received from the live feeds."),
		feeds: f.NewGauge(prometheus.GaugeOpts{Name: "comm_gateway_live_feeds",
			Help: "Subscriptions to live feeds (a group's messages, a member's bundles) the gateway holds, lingering ones included."}),
		liveLost: metrics.NewCounter(f, "comm_gateway_live_lost_total",
			"Times a live feed was found to have lost messages (a gap in a subject, drops, a NATS reconnect): its sessions caught up from their cursors."),
		leaderRechecks: metrics.NewCounter(f, "comm_gateway_leader_rechecks_total",
			"Checks of the live feeds after a leader election of their stream: each group's (or member's) last sequence read once, a feed behind it caught up."),
		connectCalls: metrics.NewCounter(f, "comm_gateway_connect_api_calls_total",
			"JetStream API calls made to set up client sessions (cursor, last sequences, bundles, catch-up consumers)."),
		connects: metrics.NewCounter(f, "comm_gateway_sessions_set_up_total",
			"Sessions whose connect-time delivery set-up is done (bundles pushed, every shard passed or live)."),
		consumers: metrics.NewCounter(f, "comm_gateway_consumers_created_total",
			"Catch-up passes run, each through one ordered consumer."),
		cursorBatches:  metrics.NewCounter(f, "comm_gateway_cursor_batches_total", "Batches of delivery cursors written."),
		cursorsWritten: metrics.NewCounter(f, "comm_gateway_cursors_written_total", "Delivery cursors written."),
		apiRetries: metrics.NewCounter(f, "comm_gateway_api_read_retries_total",
			"Reads of the JetStream API (last sequences, bundles) tried again after no answer in time."),
		snapshotLoaded: f.NewGauge(prometheus.GaugeOpts{Name: "comm_gateway_snapshot_clients_loaded",
			Help: "Clients' cursor records loaded at start from the gateway's snapshot of its last graceful stop."}),
		refusedEvents: metrics.NewCounter(f, "comm_gateway_events_refused_total", "Events in the log that failed verification (a forged or corrupt log)."),
		handshakeTime: f.NewHistogram(prometheus.HistogramOpts{Name: "comm_gateway_handshake_duration_seconds",
			Help:    "Time from a connection's acceptance to the end of its handshake, for the clients admitted.",
			Buckets: metrics.LatencyBuckets}),
		verdictTime: f.NewHistogram(prometheus.HistogramOpts{Name: "comm_gateway_send_verdict_seconds",
			Help:    "Time from a client's message forwarded to a relay to the relay's verdict (or the gateway's timeout).",
			Buckets: metrics.LatencyBuckets}),
	}
	lag := f.NewHistogramVec(prometheus.HistogramOpts{Name: "comm_gateway_delivery_lag_seconds",
		Help:    "Time from a message's storage in JetStream to the write of its copy to a client, by path (live, catch_up).",
		Buckets: metrics.LagBuckets}, []string{"path"})
	for p, name := range pathNames {
		m.deliveryLag[p] = lag.WithLabelValues(name)
	}
	f.NewGaugeFunc(prometheus.GaugeOpts{Name: "comm_gateway_connections", Help: "Clients connected now."},
		func() float64 { return float64(m.connections.Load()) })
	// What the alerts watch exists from the start, at zero.
	m.refused.Init("busy", "")
	m.dropped.Init("slow", "")
	return m
}

// registerState adds the gauges read from the projection, once it exists.
func (m *Metrics) registerState(p *events.Projection) {
	promauto.With(m.reg).NewGaugeFunc(prometheus.GaugeOpts{Name: "comm_gateway_log_position",
		Help: "Stream sequence of the last event the gateway has applied."},
		func() float64 { return float64(p.LastSeq()) })
}

func (m *Metrics) refuse(reason string) { m.refused.Inc(reason, "") }
func (m *Metrics) drop(reason string)   { m.dropped.Inc(reason, "") }
func (m *Metrics) send(verdict streams.Verdict, reason streams.Reason) {
	m.sends.Inc(string(verdict), string(reason))
}

// delivered observes the lag of a Deliver frame written at now, of a
// message stored at stored (Unix nanoseconds).
func (m *Metrics) delivered(p deliveryPath, stored int64, now time.Time) {
	m.deliveryLag[p].Observe(float64(now.UnixNano()-stored) / 1e9)
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
func (m *Metrics) FramesOut() uint64 { return metrics.Count(m.framesOut) }

// Costs are the counters commbench reads: messages received on the live
// feeds, live feeds found lossy, sessions set up and the JetStream API
// calls made to set them up (ConnectAPICalls / Connects: per connect), catch-up consumers created, cursor batches and cursors
// written, and the clients loaded from the snapshot at start.
type Costs struct {
	MessagesIn, LiveLost, Connects, ConnectAPICalls, Consumers, CursorBatches, CursorsWritten, SnapshotLoaded uint64
	LeaderRechecks                                                                                            uint64
}

// Costs reads the counters of the gateway's costs.
func (m *Metrics) Costs() Costs {
	return Costs{MessagesIn: metrics.Count(m.messagesIn), LiveLost: metrics.Count(m.liveLost), LeaderRechecks: metrics.Count(m.leaderRechecks),
		Connects: metrics.Count(m.connects), ConnectAPICalls: metrics.Count(m.connectCalls), Consumers: metrics.Count(m.consumers),
		CursorBatches: metrics.Count(m.cursorBatches), CursorsWritten: metrics.Count(m.cursorsWritten),
		SnapshotLoaded: metrics.Count(m.snapshotLoaded)}
}
