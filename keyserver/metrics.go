package keyserver

import (
	"github.com/commsec/communicator/events"
	"github.com/commsec/communicator/internal/metrics"
)

// Metrics are the keyserver's counters, registered in Config.Metrics (a
// private registry if nil) and served on /metrics by the binary.
type Metrics struct {
	events        *metrics.Counter
	rekeys        *metrics.Counter
	bundles       *metrics.Counter
	conflicts     *metrics.Counter
	refusedEvents *metrics.Counter
	adminRequests *metrics.Counter
	adminRefused  *metrics.Counter
	// adminRetries counts retried requests answered from their record.
	adminRetries *metrics.Counter
	// adminForeignReplies counts requests dropped for their reply subject.
	adminForeignReplies *metrics.Counter
}

func newMetrics(r *metrics.Registry) *Metrics {
	if r == nil {
		r = metrics.NewRegistry()
	}
	return &Metrics{
		events:        r.Counter("comm_keyserver_events_appended_total", "Events the keyserver appended to the log."),
		rekeys:        r.Counter("comm_keyserver_epochs_opened_total", "Group epochs opened with all their bundles published."),
		bundles:       r.Counter("comm_keyserver_bundles_published_total", "Key bundles published (one per member per epoch)."),
		conflicts:     r.Counter("comm_keyserver_append_conflicts_total", "Appends that lost a race with another keyserver instance and were retried."),
		refusedEvents: r.Counter("comm_keyserver_events_refused_total", "Events in the log that failed verification (a forged or corrupt log)."),
		adminRequests: r.Counter("comm_keyserver_admin_requests_total", "Admin requests received."),
		adminRefused:  r.Counter("comm_keyserver_admin_requests_denied_total", "Admin requests refused as unauthorized."),
		adminRetries: r.Counter("comm_keyserver_admin_retries_total",
			"Retried admin requests (the same signed bytes again) answered from their record instead of running again."),
		adminForeignReplies: r.Counter("comm_keyserver_admin_foreign_replies_total",
			"Admin requests dropped unanswered because their reply subject was neither a cross-account response nor an admin inbox."),
	}
}

// registerState adds gauges read from the projection at scrape time.
func registerState(r *metrics.Registry, p *events.Projection) {
	if r == nil {
		return
	}
	r.GaugeFunc("comm_keyserver_log_position", "Stream sequence of the last event the keyserver has seen.",
		func() float64 { return float64(p.LastSeq()) })
	r.GaugeFunc("comm_keyserver_clients", "Registered clients that are not revoked.", func() float64 {
		var n int
		p.Read(func(s *events.State) {
			for _, c := range s.Clients {
				if !c.Revoked {
					n++
				}
			}
		})
		return float64(n)
	})
	r.GaugeFunc("comm_keyserver_groups", "Groups that are not deleted.", func() float64 {
		var n int
		p.Read(func(s *events.State) {
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
	return map[string]uint64{
		"comm_keyserver_events_appended_total":       m.events.Value(),
		"comm_keyserver_epochs_opened_total":         m.rekeys.Value(),
		"comm_keyserver_bundles_published_total":     m.bundles.Value(),
		"comm_keyserver_append_conflicts_total":      m.conflicts.Value(),
		"comm_keyserver_events_refused_total":        m.refusedEvents.Value(),
		"comm_keyserver_admin_requests_total":        m.adminRequests.Value(),
		"comm_keyserver_admin_requests_denied_total": m.adminRefused.Value(),
		"comm_keyserver_admin_foreign_replies_total": m.adminForeignReplies.Value(),
	}
}
