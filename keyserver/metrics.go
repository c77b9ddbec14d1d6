package keyserver

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"

	"github.com/commsec/communicator/events"
	"github.com/commsec/communicator/events/fold"
	"github.com/commsec/communicator/internal/metrics"
)

// Metrics are the keyserver's counters and its rekey histogram,
// registered in Config.Metrics (a private registry if nil) and served on
// /metrics by the binary.
type Metrics struct {
	reg           prometheus.Registerer
	events        prometheus.Counter
	rekeys        prometheus.Counter
	bundles       prometheus.Counter
	conflicts     prometheus.Counter
	refusedEvents prometheus.Counter
	adminRequests prometheus.Counter
	adminRefused  prometheus.Counter
	// adminRetries counts retried requests answered from their record.
	adminRetries prometheus.Counter
	// adminForeignReplies counts requests dropped for their reply subject.
	adminForeignReplies prometheus.Counter
	// rekeyTime is an epoch's opening: its key made, wrapped to every
	// member, the bundles published and the epoch recorded.
	rekeyTime prometheus.Histogram
	// leaderMoves counts the accepted shards' leaders moved to spread
	// them over the cluster's nodes (by outcome: moved, failed).
	leaderMoves *metrics.Labelled
}

func newMetrics(r prometheus.Registerer) *Metrics {
	r = metrics.OrPrivate(r)
	f := promauto.With(r)
	m := &Metrics{
		reg:           r,
		events:        metrics.NewCounter(f, "comm_keyserver_events_appended_total", "Events the keyserver appended to the log."),
		rekeys:        metrics.NewCounter(f, "comm_keyserver_epochs_opened_total", "Group epochs opened with all their bundles published."),
		bundles:       metrics.NewCounter(f, "comm_keyserver_bundles_published_total", "Key bundles published (one per member per epoch)."),
		conflicts:     metrics.NewCounter(f, "comm_keyserver_append_conflicts_total", "Appends that lost a race with another keyserver instance and were retried."),
		refusedEvents: metrics.NewCounter(f, "comm_keyserver_events_refused_total", "Events in the log that failed verification (a forged or corrupt log)."),
		adminRequests: metrics.NewCounter(f, "comm_keyserver_admin_requests_total", "Admin requests received."),
		adminRefused:  metrics.NewCounter(f, "comm_keyserver_admin_requests_denied_total", "Admin requests refused as unauthorized."),
		adminRetries: metrics.NewCounter(f, "comm_keyserver_admin_retries_total",
			"Retried admin requests (the same signed bytes again) answered from their record instead of running again."),
		adminForeignReplies: metrics.NewCounter(f, "comm_keyserver_admin_foreign_replies_total",
			"Admin requests dropped unanswered because their reply subject was neither a cross-account response nor an admin inbox."),
		rekeyTime: f.NewHistogram(prometheus.HistogramOpts{Name: "comm_keyserver_rekey_duration_seconds",
			Help:    "Time to open a group epoch: its key made and wrapped to every member, the bundles published and acknowledged, the epoch recorded.",
			Buckets: metrics.RekeyBuckets}),
		leaderMoves: metrics.NewLabelled(r, "comm_keyserver_shard_leader_moves_total",
			"Step-downs the keyserver asked of an accepted shard's leader at start, to spread the shards' leaders over the cluster's nodes, by outcome (moved, failed).", "outcome"),
	}
	m.leaderMoves.Init("moved", "")
	m.leaderMoves.Init("failed", "")
	return m
}

// registerState adds gauges read from the projection at scrape time.
func (m *Metrics) registerState(p *events.Projection) {
	f := promauto.With(m.reg)
	f.NewGaugeFunc(prometheus.GaugeOpts{Name: "comm_keyserver_log_position", Help: "Stream sequence of the last event the keyserver has seen."},
		func() float64 { return float64(p.LastSeq()) })
	f.NewGaugeFunc(prometheus.GaugeOpts{Name: "comm_keyserver_clients", Help: "Registered clients that are not revoked."}, func() float64 {
		var n int
		p.Read(func(s *fold.State) {
			for _, c := range s.Clients {
				if !c.Revoked {
					n++
				}
			}
		})
		return float64(n)
	})
	f.NewGaugeFunc(prometheus.GaugeOpts{Name: "comm_keyserver_groups", Help: "Groups that are not deleted."}, func() float64 {
		var n int
		p.Read(func(s *fold.State) {
			for _, g := range s.Groups {
				if !g.Deleted {
					n++
				}
			}
		})
		return float64(n)
	})
}

// Snapshot returns the counters by Prometheus name.
func (m *Metrics) Snapshot() map[string]uint64 {
	out := map[string]uint64{
		"comm_keyserver_events_appended_total":       metrics.Count(m.events),
		"comm_keyserver_epochs_opened_total":         metrics.Count(m.rekeys),
		"comm_keyserver_bundles_published_total":     metrics.Count(m.bundles),
		"comm_keyserver_append_conflicts_total":      metrics.Count(m.conflicts),
		"comm_keyserver_events_refused_total":        metrics.Count(m.refusedEvents),
		"comm_keyserver_admin_requests_total":        metrics.Count(m.adminRequests),
		"comm_keyserver_admin_requests_denied_total": metrics.Count(m.adminRefused),
		"comm_keyserver_admin_foreign_replies_total": metrics.Count(m.adminForeignReplies),
	}
	for k, n := range m.leaderMoves.Snapshot() {
		out["comm_keyserver_shard_leader_moves_total/"+k] = n
	}
	return out
}
