package metrics_test

import (
	"maps"
	"strings"
	"sync"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"

	"github.com/commsec/communicator/internal/metrics"
)

// TestRegistry: a service's registry has the Go runtime's and the
// process's metrics beside its own, in the text format.
func TestRegistry(t *testing.T) {
	r := metrics.NewRegistry()
	promauto.With(r).NewCounter(prometheus.CounterOpts{Name: "comm_test_total", Help: "A test counter."}).Add(3)
	text, err := metrics.Text(r)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"\ngo_goroutines ", "\ngo_memstats_heap_alloc_bytes ", "\nprocess_resident_memory_bytes ",
		"\nprocess_cpu_seconds_total ", "# TYPE comm_test_total counter\ncomm_test_total 3\n"} {
		if !strings.Contains(text, want) {
			t.Errorf("no %q in:\n%s", want, text)
		}
	}
}

// TestLabelled: counts by one or two label values, in the snapshot and
// in the exposition; Init makes a series at zero that the snapshot leaves
// out; counting allocates nothing.
func TestLabelled(t *testing.T) {
	r := prometheus.NewRegistry()
	one := metrics.NewLabelled(r, "t_one_total", "one label", "reason")
	two := metrics.NewLabelled(r, "t_two_total", "two labels", "verdict", "reason")
	one.Init("slow", "")
	one.Inc("busy", "")
	one.Inc("busy", "")
	two.Inc("accepted", "")
	two.Inc("refused", "not_member")
	if got := one.Snapshot(); !maps.Equal(got, map[string]uint64{"busy": 2}) {
		t.Errorf("one label: %v", got)
	}
	if got := two.Snapshot(); !maps.Equal(got, map[string]uint64{"accepted": 1, "refused/not_member": 1}) {
		t.Errorf("two labels: %v", got)
	}
	text, err := metrics.Text(r)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`t_one_total{reason="busy"} 2`, `t_one_total{reason="slow"} 0`,
		`t_two_total{reason="",verdict="accepted"} 1`, `t_two_total{reason="not_member",verdict="refused"} 1`} {
		if !strings.Contains(text, want+"\n") {
			t.Errorf("no %q in:\n%s", want, text)
		}
	}
	if n := testing.AllocsPerRun(100, func() { two.Inc("refused", "not_member") }); n != 0 {
		t.Errorf("counting allocates %v times", n)
	}
}

// TestLabelledConcurrent: counting and snapshots race-free (run with -race).
func TestLabelledConcurrent(t *testing.T) {
	l := metrics.NewLabelled(prometheus.NewRegistry(), "hits_total", "Hits.", "k")
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() {
			for range 1000 {
				l.Inc(string(rune('a'+i%3)), "")
				l.Snapshot()
			}
		})
	}
	wg.Wait()
	var total uint64
	for _, n := range l.Snapshot() {
		total += n
	}
	if total != 8000 {
		t.Fatalf("total %d, want 8000", total)
	}
}

func TestValue(t *testing.T) {
	g := prometheus.NewGauge(prometheus.GaugeOpts{Name: "g", Help: "g"})
	g.Set(2.5)
	c := prometheus.NewCounter(prometheus.CounterOpts{Name: "c", Help: "c"})
	c.Add(7)
	if metrics.Value(g) != 2.5 || metrics.Count(c) != 7 {
		t.Errorf("gauge %v, counter %v", metrics.Value(g), metrics.Count(c))
	}
}
