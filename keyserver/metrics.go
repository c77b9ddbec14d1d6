package keyserver

import "sync/atomic"

// Metrics are the keyserver's counters, exported on /metrics by the binary.
type Metrics struct {
	events        atomic.Uint64
	rekeys        atomic.Uint64
	bundles       atomic.Uint64
	conflicts     atomic.Uint64
	refusedEvents atomic.Uint64
	adminRequests atomic.Uint64
	adminRefused  atomic.Uint64
}

func newMetrics() *Metrics { return &Metrics{} }

// Snapshot returns the counters by Prometheus name.
func (m *Metrics) Snapshot() map[string]uint64 {
	return map[string]uint64{
		"comm_keyserver_events_appended_total":       m.events.Load(),
		"comm_keyserver_epochs_opened_total":         m.rekeys.Load(),
		"comm_keyserver_bundles_published_total":     m.bundles.Load(),
		"comm_keyserver_append_conflicts_total":      m.conflicts.Load(),
		"comm_keyserver_events_refused_total":        m.refusedEvents.Load(),
		"comm_keyserver_admin_requests_total":        m.adminRequests.Load(),
		"comm_keyserver_admin_requests_denied_total": m.adminRefused.Load(),
	}
}
