package relay

import (
	"sync/atomic"

	"github.com/commsec/communicator/events"
	"github.com/commsec/communicator/internal/metrics"
	"github.com/commsec/communicator/streams"
)

// Metrics are the relay's counters, registered in Config.Metrics (a
// private registry if nil) and served on /metrics by the binary. One
// registry holds at most one relay: the names would collide.
type Metrics struct {
	reg           *metrics.Registry
	verdicts      *metrics.Labelled // by verdict and reason
	conflicts     *metrics.Counter
	refusedEvents *metrics.Counter
	trims         *metrics.Counter
	badReplies    *metrics.Counter
	partitions    atomic.Int64
}

func newMetrics(r *metrics.Registry) *Metrics {
	if r == nil {
		r = metrics.NewRegistry()
	}
	m := &Metrics{
		reg: r,
		verdicts: metrics.NewLabelled(r.CounterVec("comm_relay_verdicts_total",
			"Messages decided, by verdict (accepted, duplicate, refused, retry) and reason (empty when accepted).", "verdict", "reason"), 2),
		conflicts: r.Counter("comm_relay_counter_conflicts_total",
			"Counter compare-and-swaps lost to another relay (the message was decided again)."),
		refusedEvents: r.Counter("comm_relay_events_refused_total",
			"Events in the log that failed verification (a forged or corrupt log)."),
		trims: r.Counter("comm_relay_trims_total",
			"(group, sender) histories trimmed to the retention period (their last envelope is always kept)."),
		badReplies: r.Counter("comm_relay_foreign_replies_total",
			"Requests dropped undecided because their reply subject was neither a cross-account response nor a gateway inbox."),
	}
	r.GaugeFunc("comm_relay_partitions_owned", "Relay partitions this relay owns now.",
		func() float64 { return float64(m.partitions.Load()) })
	return m
}

// registerState adds the gauges read from the projection, once it exists,
// and from the wait room.
func (m *Metrics) registerState(p *events.Projection, room *waitRoom) {
	m.reg.GaugeFunc("comm_relay_log_position", "Stream sequence of the last event the relay has applied.",
		func() float64 { return float64(p.LastSeq()) })
	m.reg.GaugeFunc("comm_relay_epoch_waiting", "Messages waiting for the event log to reach their epoch (off the workers).",
		func() float64 { return float64(room.len()) })
}

func (m *Metrics) count(verdict streams.Verdict, reason streams.Reason) {
	m.verdicts.Inc(string(verdict), string(reason))
}

// ForeignReplies counts requests dropped for their reply subject.
func (m *Metrics) ForeignReplies() uint64 { return m.badReplies.Value() }

// Verdicts returns the decisions so far, keyed "accepted", "duplicate",
// "refused/<reason>" or "retry/<reason>".
func (m *Metrics) Verdicts() map[string]uint64 { return m.verdicts.Snapshot() }

// Conflicts counts counter compare-and-swap failures (another relay first).
func (m *Metrics) Conflicts() uint64 { return m.conflicts.Value() }

// Partitions is the number of partitions held.
func (m *Metrics) Partitions() int64 { return m.partitions.Load() }
