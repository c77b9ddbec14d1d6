package relay

import (
	"strconv"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"

	"github.com/commsec/communicator/events"
	"github.com/commsec/communicator/internal/metrics"
	"github.com/commsec/communicator/streams"
)

// Metrics are the relay's counters, gauges and histograms, registered in
// Config.Metrics (a private registry if nil) and served on /metrics by
// the binary. One registry holds at most one relay: the names would
// collide.
type Metrics struct {
	reg           prometheus.Registerer
	verdicts      *metrics.Labelled  // by verdict and reason
	leases        *metrics.Labelled  // by event: claimed, released, lost
	leaseBatches  prometheus.Counter // lease renewal batches applied
	leasesBatched prometheus.Counter // leases renewed in them
	conflicts     prometheus.Counter
	refusedEvents prometheus.Counter
	trims         prometheus.Counter
	badReplies    prometheus.Counter
	forgedRecords prometheus.Counter
	partitions    atomic.Int64

	decisionTime *prometheus.HistogramVec // by verdict
	decisionBy   map[streams.Verdict]prometheus.Observer
	storeTime    *prometheus.HistogramVec // by shard
	shards       atomic.Int64
}

// The lease events counted by comm_relay_leases_total.
const (
	leaseClaimed  = "claimed"
	leaseReleased = "released"
	leaseLost     = "lost"
	// leaseBatchRefused: the renewals of one tick, sent as one atomic
	// batch, were not applied (a lease taken, no answer, or a bucket
	// without atomic publish); each lease was then renewed on its own.
	leaseBatchRefused = "batch_refused"
)

func newMetrics(r prometheus.Registerer) *Metrics {
	r = metrics.OrPrivate(r)
	f := promauto.With(r)
	m := &Metrics{
		reg: r,
		verdicts: metrics.NewLabelled(r, "comm_relay_verdicts_total",
			"Messages decided, by verdict (accepted, duplicate, refused, retry) and reason (empty when accepted).", "verdict", "reason"),
		leases: metrics.NewLabelled(r, "comm_relay_leases_total",
			"Partition leases claimed, released (to another relay's fair share, or at shutdown), lost (a renewal failed), and renewal batches not applied (batch_refused: renewed one by one).", "event"),
		leaseBatches: metrics.NewCounter(f, "comm_relay_lease_batches_total",
			"Lease renewals applied as one atomic batch (one synced write each)."),
		leasesBatched: metrics.NewCounter(f, "comm_relay_leases_batched_total",
			"Leases renewed within those batches."),
		conflicts: metrics.NewCounter(f, "comm_relay_counter_conflicts_total",
			"Counter compare-and-swaps lost to another relay (the message was decided again)."),
		refusedEvents: metrics.NewCounter(f, "comm_relay_events_refused_total",
			"Events in the log that failed verification (a forged or corrupt log)."),
		trims: metrics.NewCounter(f, "comm_relay_trims_total",
			"(group, sender) histories trimmed to the retention period (their last envelope is always kept)."),
		badReplies: metrics.NewCounter(f, "comm_relay_foreign_replies_total",
			"Requests dropped undecided because their reply subject was neither a cross-account response nor a gateway inbox."),
		forgedRecords: metrics.NewCounter(f, "comm_relay_forged_records_total",
			"Last messages of a (group, sender) in the accepted stream that no relay can have written (not signed by their sender), skipped when reading its record."),
		decisionTime: f.NewHistogramVec(prometheus.HistogramOpts{Name: "comm_relay_decision_seconds",
			Help:    "Time from a message's arrival at the relay to its verdict, by verdict; waits for a worker and for the event log included.",
			Buckets: metrics.LatencyBuckets}, []string{"verdict"}),
		storeTime: f.NewHistogramVec(prometheus.HistogramOpts{Name: "comm_relay_store_write_seconds",
			Help:    "Time of the JetStream write that stores an accepted message, until its acknowledgement or failure, by shard of the accepted messages (a slow shard leader shows).",
			Buckets: metrics.LatencyBuckets}, []string{"shard"}),
		decisionBy: map[streams.Verdict]prometheus.Observer{},
	}
	for _, v := range []streams.Verdict{Accepted, Duplicate, Refused, Retry} {
		m.decisionBy[v] = m.decisionTime.WithLabelValues(string(v))
	}
	f.NewGaugeFunc(prometheus.GaugeOpts{Name: "comm_relay_partitions_owned", Help: "Relay partitions this relay owns now."},
		func() float64 { return float64(m.partitions.Load()) })
	f.NewGaugeFunc(prometheus.GaugeOpts{Name: "comm_relay_accepted_shards", Help: "K, the shards of the accepted messages, read at start (0: not yet)."},
		func() float64 { return float64(m.shards.Load()) })
	// What the alerts watch exists from the start, at zero.
	m.verdicts.Init(string(Retry), string(streams.ReasonStoreUnavailable))
	for _, e := range []string{leaseClaimed, leaseReleased, leaseLost, leaseBatchRefused} {
		m.leases.Init(e, "")
	}
	return m
}

// storeTimes are the store-write histograms of k's shards, by index.
func (m *Metrics) storeTimes(k streams.Shards) []prometheus.Observer {
	m.shards.Store(int64(k))
	out := make([]prometheus.Observer, k)
	for i := range out {
		out[i] = m.storeTime.WithLabelValues(strconv.Itoa(i))
	}
	return out
}

// registerState adds the gauges read from the projection, once it exists,
// and from the wait room.
func (m *Metrics) registerState(p *events.Projection, room *waitRoom) {
	f := promauto.With(m.reg)
	f.NewGaugeFunc(prometheus.GaugeOpts{Name: "comm_relay_log_position", Help: "Stream sequence of the last event the relay has applied."},
		func() float64 { return float64(p.LastSeq()) })
	f.NewGaugeFunc(prometheus.GaugeOpts{Name: "comm_relay_epoch_waiting", Help: "Messages waiting for the event log to reach their epoch (off the workers)."},
		func() float64 { return float64(room.len()) })
}

func (m *Metrics) count(verdict streams.Verdict, reason streams.Reason) {
	m.verdicts.Inc(string(verdict), string(reason))
}

// decided observes the time from a message's arrival to its verdict.
func (m *Metrics) decided(verdict streams.Verdict, since time.Time) {
	if o := m.decisionBy[verdict]; o != nil {
		o.Observe(time.Since(since).Seconds())
	}
}

// ForeignReplies counts requests dropped for their reply subject.
func (m *Metrics) ForeignReplies() uint64 { return metrics.Count(m.badReplies) }

// Verdicts returns the decisions so far, keyed "accepted", "duplicate",
// "refused/<reason>" or "retry/<reason>".
func (m *Metrics) Verdicts() map[string]uint64 { return m.verdicts.Snapshot() }

// Leases returns the lease events so far: "claimed", "released", "lost".
func (m *Metrics) Leases() map[string]uint64 { return m.leases.Snapshot() }

// LeaseBatches returns the lease renewal batches applied, and the leases
// renewed in them.
func (m *Metrics) LeaseBatches() (batches, leases uint64) {
	return metrics.Count(m.leaseBatches), metrics.Count(m.leasesBatched)
}

// Conflicts counts counter compare-and-swap failures (another relay first).
func (m *Metrics) Conflicts() uint64 { return metrics.Count(m.conflicts) }

// Partitions is the number of partitions held.
func (m *Metrics) Partitions() int64 { return m.partitions.Load() }
