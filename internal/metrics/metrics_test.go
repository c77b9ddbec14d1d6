package metrics_test

import (
	"io"
	"math"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/commsec/communicator/internal/metrics"
)

// TestTextFormat pins the exposition format byte for byte: families in
// name order, HELP before TYPE, escaped help text, labels quoted with
// backslash, quote and newline escaped, series in label order, integers in
// full, Prometheus's spelling of the infinities.
func TestTextFormat(t *testing.T) {
	r := metrics.NewRegistry()
	sent := r.Counter("comm_sent_total", "Messages sent.")
	sent.Add(41)
	sent.Inc()
	drops := r.CounterVec("comm_drops_total", "Dropped frames by reason.\nSecond line with a \\ backslash.", "reason")
	drops.With(`queue "full"`).Add(3)
	drops.With("a\\b\nc").Inc()
	queue := r.Gauge("comm_queue_depth", "Frames waiting.")
	queue.Set(2.5)
	queue.Add(-1)
	var conns atomic.Int64
	conns.Store(7)
	r.GaugeFunc("comm_connections", "Open connections.", func() float64 { return float64(conns.Load()) })
	r.CounterFunc("comm_bytes_total", "Bytes.", func() float64 { return 1e16 })
	r.GaugeFunc("comm_limit", "No limit.", func() float64 { return math.Inf(1) })
	r.GaugeVec("comm_empty", "A vector without series is left out.", "x")
	lag := r.GaugeVec("comm_lag_seconds", "Lag by peer and stream.", "peer", "stream")
	lag.With("b", "msgs").Set(-0.25)
	lag.With("a", "events").Set(1)

	want := `# HELP comm_bytes_total Bytes.
# TYPE comm_bytes_total counter
comm_bytes_total 1e+16
# HELP comm_connections Open connections.
# TYPE comm_connections gauge
comm_connections 7
# HELP comm_drops_total Dropped frames by reason.\nSecond line with a \\ backslash.
# TYPE comm_drops_total counter
comm_drops_total{reason="a\\b\nc"} 1
comm_drops_total{reason="queue \"full\""} 3
# HELP comm_lag_seconds Lag by peer and stream.
# TYPE comm_lag_seconds gauge
comm_lag_seconds{peer="a",stream="events"} 1
comm_lag_seconds{peer="b",stream="msgs"} -0.25
# HELP comm_limit No limit.
# TYPE comm_limit gauge
comm_limit +Inf
# HELP comm_queue_depth Frames waiting.
# TYPE comm_queue_depth gauge
comm_queue_depth 1.5
# HELP comm_sent_total Messages sent.
# TYPE comm_sent_total counter
comm_sent_total 42
`
	var b strings.Builder
	if err := r.WriteText(&b); err != nil {
		t.Fatal(err)
	}
	if b.String() != want {
		t.Errorf("got\n%s\nwant\n%s", b.String(), want)
	}
}

func TestHandler(t *testing.T) {
	r := metrics.NewRegistry()
	r.Counter("up_total", "Ups.").Inc()
	rec := httptest.NewRecorder()
	r.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	body, _ := io.ReadAll(rec.Body)
	if ct := rec.Header().Get("Content-Type"); !strings.HasPrefix(ct, "text/plain; version=0.0.4") {
		t.Errorf("content type %q", ct)
	}
	if !strings.HasSuffix(string(body), "\nup_total 1\n") {
		t.Errorf("body %q", body)
	}
}

// TestBadNamesPanic: invalid names and duplicates are programming errors.
func TestBadNamesPanic(t *testing.T) {
	cases := map[string]func(r *metrics.Registry){
		"empty name":        func(r *metrics.Registry) { r.Counter("", "x") },
		"digit first":       func(r *metrics.Registry) { r.Counter("1x", "x") },
		"dash":              func(r *metrics.Registry) { r.Gauge("a-b", "x") },
		"duplicate":         func(r *metrics.Registry) { r.Counter("a", "x"); r.Gauge("a", "y") },
		"colon in label":    func(r *metrics.Registry) { r.CounterVec("a", "x", "b:c") },
		"reserved label":    func(r *metrics.Registry) { r.CounterVec("a", "x", "__b") },
		"no labels":         func(r *metrics.Registry) { r.CounterVec("a", "x") },
		"wrong value count": func(r *metrics.Registry) { r.CounterVec("a", "x", "l").With("1", "2") },
	}
	for name, f := range cases {
		t.Run(name, func(t *testing.T) {
			defer func() {
				if recover() == nil {
					t.Error("no panic")
				}
			}()
			f(metrics.NewRegistry())
		})
	}
}

// TestConcurrent: updates and scrapes race-free (run with -race).
func TestConcurrent(t *testing.T) {
	r := metrics.NewRegistry()
	v := r.CounterVec("hits_total", "Hits.", "k")
	g := r.Gauge("level", "Level.")
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 1000 {
				v.With(string(rune('a' + i%3))).Inc()
				g.Add(1)
				r.WriteText(io.Discard)
			}
		}()
	}
	wg.Wait()
	var total uint64
	for _, k := range []string{"a", "b", "c"} {
		total += v.With(k).Value()
	}
	if total != 8000 || g.Value() != 8000 {
		t.Fatalf("total %d, gauge %v; want 8000", total, g.Value())
	}
}

// TestLabelled: counts by one or two label values, in the snapshot and
// in the exposition.
func TestLabelled(t *testing.T) {
	r := metrics.NewRegistry()
	one := metrics.NewLabelled(r.CounterVec("t_one_total", "one label", "reason"), 1)
	two := metrics.NewLabelled(r.CounterVec("t_two_total", "two labels", "verdict", "reason"), 2)
	one.Inc("busy", "")
	one.Inc("busy", "")
	two.Inc("accepted", "")
	two.Inc("refused", "not_member")
	if got := one.Snapshot(); len(got) != 1 || got["busy"] != 2 {
		t.Errorf("one label: %v", got)
	}
	if got := two.Snapshot(); len(got) != 2 || got["accepted"] != 1 || got["refused/not_member"] != 1 {
		t.Errorf("two labels: %v", got)
	}
}
