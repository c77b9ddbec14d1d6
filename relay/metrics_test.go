package relay

import (
	"maps"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/commsec/communicator/internal/metrics"
)

// TestMetrics: the relay's counters reach the registry under their
// Prometheus names (the series the alerts watch from the start, at
// zero), the histograms have buckets, the accessors read the same values,
// and counting and timing a verdict allocates nothing.
func TestMetrics(t *testing.T) {
	reg := prometheus.NewRegistry()
	m := newMetrics(reg)
	m.count(Accepted, "")
	m.count(Refused, "not_member")
	m.count(Refused, "not_member")
	m.conflicts.Inc()
	m.partitions.Store(3)
	m.leases.Inc(leaseClaimed, "")
	m.decided(Accepted, time.Now())
	m.storeTimes(4)[2].Observe(0.002)
	text, err := metrics.Text(reg)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		`comm_relay_verdicts_total{reason="",verdict="accepted"} 1`, `comm_relay_verdicts_total{reason="not_member",verdict="refused"} 2`,
		`comm_relay_verdicts_total{reason="store_unavailable",verdict="retry"} 0`,
		`comm_relay_leases_total{event="claimed"} 1`, `comm_relay_leases_total{event="lost"} 0`, `comm_relay_leases_total{event="released"} 0`,
		"\ncomm_relay_partitions_owned 3", "\ncomm_relay_counter_conflicts_total 1", "\ncomm_relay_events_refused_total 0",
		`comm_relay_decision_seconds_count{verdict="accepted"} 1`, `comm_relay_decision_seconds_count{verdict="retry"} 0`,
		`comm_relay_store_write_seconds_bucket{shard="2",le="0.001"} 0`, `comm_relay_store_write_seconds_bucket{shard="2",le="0.0025"} 1`,
		"\ncomm_relay_accepted_shards 4",
	} {
		if !strings.Contains(text, want+"\n") {
			t.Errorf("metrics lack %q:\n%s", want, text)
		}
	}
	if got, want := m.Verdicts(), map[string]uint64{"accepted": 1, "refused/not_member": 2}; !maps.Equal(got, want) {
		t.Errorf("Verdicts %v, want %v", got, want)
	}
	if m.Conflicts() != 1 || m.Partitions() != 3 {
		t.Errorf("Conflicts %d Partitions %d", m.Conflicts(), m.Partitions())
	}
	if got := m.Leases(); !maps.Equal(got, map[string]uint64{"claimed": 1}) {
		t.Errorf("Leases %v", got)
	}
	start := time.Now()
	if n := testing.AllocsPerRun(100, func() { m.count(Refused, "not_member"); m.decided(Refused, start) }); n != 0 {
		t.Errorf("counting a verdict allocates %v times", n)
	}
}
