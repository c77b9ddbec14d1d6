package relay

import (
	"maps"
	"strings"
	"testing"

	"github.com/commsec/communicator/internal/metrics"
)

// TestMetrics: the relay's counters reach the registry under their
// Prometheus names, the accessors read the same values, and counting a
// verdict allocates nothing.
func TestMetrics(t *testing.T) {
	reg := metrics.NewRegistry()
	m := newMetrics(reg)
	m.count(Accepted, "")
	m.count(Refused, "not_member")
	m.count(Refused, "not_member")
	m.conflicts.Inc()
	m.partitions.Store(3)
	var b strings.Builder
	if err := reg.WriteText(&b); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		`comm_relay_verdicts_total{verdict="accepted",reason=""} 1`, `comm_relay_verdicts_total{verdict="refused",reason="not_member"} 2`,
		"\ncomm_relay_partitions_owned 3\n", "\ncomm_relay_counter_conflicts_total 1\n", "\ncomm_relay_events_refused_total 0\n",
	} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("metrics lack %q:\n%s", want, b.String())
		}
	}
	if got, want := m.Verdicts(), map[string]uint64{"accepted": 1, "refused/not_member": 2}; !maps.Equal(got, want) {
		t.Errorf("Verdicts %v, want %v", got, want)
	}
	if m.Conflicts() != 1 || m.Partitions() != 3 {
		t.Errorf("Conflicts %d Partitions %d", m.Conflicts(), m.Partitions())
	}
	if n := testing.AllocsPerRun(100, func() { m.count(Refused, "not_member") }); n != 0 {
		t.Errorf("counting a verdict allocates %v times", n)
	}
}
