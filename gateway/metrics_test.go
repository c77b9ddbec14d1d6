package gateway

import (
	"maps"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/commsec/communicator/internal/metrics"
)

// TestMetrics: the gateway's counters reach the registry under their
// Prometheus names (the series the alerts watch from the start, at
// zero), the histograms have buckets, the accessors read the same values,
// and counting or timing a send allocates nothing.
func TestMetrics(t *testing.T) {
	reg := prometheus.NewRegistry()
	m := newMetrics(reg)
	m.refuse("busy")
	m.drop("slow")
	m.drop("slow")
	m.send("accepted", "")
	m.send("retry", "timeout")
	m.connections.Add(2)
	m.framesOut.Add(5)
	m.verdictTime.Observe(0.003)
	m.delivered(pathLive, time.Now().Add(-20*time.Millisecond).UnixNano(), time.Now())
	text, err := metrics.Text(reg)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		`comm_gateway_handshakes_refused_total{reason="busy"} 1`, `comm_gateway_connections_dropped_total{reason="slow"} 2`,
		`comm_gateway_sends_total{reason="",verdict="accepted"} 1`, `comm_gateway_sends_total{reason="timeout",verdict="retry"} 1`,
		"\ncomm_gateway_connections 2\n", "\ncomm_gateway_frames_out_total 5\n", "\ncomm_gateway_handshakes_total 0\n",
		`comm_gateway_send_verdict_seconds_bucket{le="0.005"} 1`, "\ncomm_gateway_send_verdict_seconds_count 1\n",
		"\ncomm_gateway_handshake_duration_seconds_count 0\n",
		`comm_gateway_delivery_lag_seconds_bucket{path="live",le="0.01"} 0`, `comm_gateway_delivery_lag_seconds_bucket{path="live",le="0.025"} 1`,
		`comm_gateway_delivery_lag_seconds_count{path="catch_up"} 0`,
	} {
		if !strings.Contains(text, want) {
			t.Errorf("metrics lack %q:\n%s", want, text)
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
	if n := testing.AllocsPerRun(100, func() { m.send("accepted", ""); m.verdictTime.Observe(0.001) }); n != 0 {
		t.Errorf("counting a send allocates %v times", n)
	}
}
