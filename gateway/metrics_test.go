package gateway

import (
	"maps"
	"strings"
	"testing"

	"github.com/commsec/communicator/internal/metrics"
)

// TestMetrics: the gateway's counters reach the registry under their
// Prometheus names, the accessors read the same values, and counting a
// send allocates nothing.
func TestMetrics(t *testing.T) {
	reg := metrics.NewRegistry()
	m := newMetrics(reg)
	m.refuse("busy")
	m.drop("slow")
	m.drop("slow")
	m.send("accepted", "")
	m.send("retry", "timeout")
	m.connections.Add(2)
	m.framesOut.Add(5)
	var b strings.Builder
	if err := reg.WriteText(&b); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		`comm_gateway_handshakes_refused_total{reason="busy"} 1`, `comm_gateway_connections_dropped_total{reason="slow"} 2`,
		`comm_gateway_sends_total{verdict="accepted",reason=""} 1`, `comm_gateway_sends_total{verdict="retry",reason="timeout"} 1`,
		"\ncomm_gateway_connections 2\n", "\ncomm_gateway_frames_out_total 5\n", "\ncomm_gateway_handshakes_total 0\n",
	} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("metrics lack %q:\n%s", want, b.String())
		}
	}
	refused, dropped, sends := m.Snapshot()
	if !maps.Equal(refused, map[string]uint64{"busy": 1}) || !maps.Equal(dropped, map[string]uint64{"slow": 2}) ||
		!maps.Equal(sends, map[string]uint64{"accepted": 1, "retry/timeout": 1}) {
		t.Errorf("Snapshot %v %v %v", refused, dropped, sends)
	}
	if m.Connections() != 2 || m.FramesOut() != 5 {
		t.Errorf("Connections %d FramesOut %d", m.Connections(), m.FramesOut())
	}
	if n := testing.AllocsPerRun(100, func() { m.send("accepted", "") }); n != 0 {
		t.Errorf("counting a send allocates %v times", n)
	}
}
