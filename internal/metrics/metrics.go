// Package metrics is what the Communicator services share around
// prometheus/client_golang, which keeps their metrics and writes the
// exposition: the registry a service serves on /metrics (with the Go
// runtime's and the process's collectors), the buckets of their latency
// histograms, counters by label values that cost no allocation to count,
// and reading a value back for the services' accessors and tests.
//
// Each service registers its metrics in the registry it is given (see
// gateway.Config.Metrics and the like); one registry holds at most one
// instance of each service, as the names would collide. Registering a
// metric twice is a programming error and panics (MustRegister).
package metrics

import (
	"math"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promauto"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
)

// NewRegistry returns the registry of a service process: empty but for
// the go_* and process_* metrics of the Go and process collectors.
func NewRegistry() *prometheus.Registry {
	r := prometheus.NewRegistry()
	r.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return r
}

// NewCounter registers a counter with no labels through f.
func NewCounter(f promauto.Factory, name, help string) prometheus.Counter {
	return f.NewCounter(prometheus.CounterOpts{Name: name, Help: help})
}

// OrPrivate returns r, or a new registry of its own when r is nil: a
// service started without one (in a test) still counts.
func OrPrivate(r prometheus.Registerer) prometheus.Registerer {
	if r == nil {
		return prometheus.NewRegistry()
	}
	return r
}

// Bucket upper bounds, in seconds, of the services' histograms.
var (
	// LatencyBuckets suit a step that takes a millisecond when all is well
	// and a few seconds when it does not: a handshake, a relay's decision,
	// a JetStream write, a send's verdict (the gateway gives up at 5 s).
	LatencyBuckets = []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10}
	// LagBuckets reach from a live delivery (milliseconds) to a client
	// that was away for a day and catches up.
	LagBuckets = []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 300, 1800, 3600, 21600, 86400}
	// RekeyBuckets reach a rekey of tens of thousands of members.
	RekeyBuckets = []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60}
)

// Value reads a counter's or a gauge's value (NaN for another kind).
func Value(m prometheus.Metric) float64 {
	var d dto.Metric
	if err := m.Write(&d); err != nil {
		return math.NaN()
	}
	switch {
	case d.Counter != nil:
		return d.Counter.GetValue()
	case d.Gauge != nil:
		return d.Gauge.GetValue()
	}
	return math.NaN()
}

// Count reads a counter's value as a count.
func Count(c prometheus.Counter) uint64 { return uint64(Value(c)) }

// Text gathers g and writes it in the Prometheus text format, as /metrics
// serves it to a client that asks for text: for tests and the demo.
func Text(g prometheus.Gatherer) (string, error) {
	families, err := g.Gather()
	if err != nil {
		return "", err
	}
	var b strings.Builder
	enc := expfmt.NewEncoder(&b, expfmt.NewFormat(expfmt.TypeTextPlain))
	for _, f := range families {
		if err := enc.Encode(f); err != nil {
			return "", err
		}
	}
	return b.String(), nil
}
