// Package metrics is a small, dependency-free registry of counters and
// gauges in the Prometheus text exposition format (version 0.0.4), for
// the /metrics endpoint of every Communicator service (see
// internal/service).
//
// A metric is a plain value, a family of values under one set of label
// names (drops by reason), or a function read at scrape time (an atomic
// the service already keeps, the size of its state). Registering an
// invalid or duplicate name is a programming error and panics, like
// regexp.MustCompile.
package metrics

import (
	"fmt"
	"math"
	"net/http"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
)

// ContentType is the media type of the text exposition format.
const ContentType = "text/plain; version=0.0.4; charset=utf-8"

// Kind is a metric's Prometheus type.
type Kind string

// The kinds of metric.
const (
	KindCounter Kind = "counter"
	KindGauge   Kind = "gauge"
)

// Registry holds metrics and writes them out. It is safe for concurrent
// use; the zero value is not ready, use NewRegistry.
type Registry struct {
	mu       sync.Mutex
	families map[string]*family
}

// NewRegistry returns an empty registry.
func NewRegistry() *Registry { return &Registry{families: map[string]*family{}} }

// Counter is a value that only goes up. The zero value is ready to use.
type Counter struct{ v atomic.Uint64 }

// Add adds n.
func (c *Counter) Add(n uint64) { c.v.Add(n) }

// Inc adds one.
func (c *Counter) Inc() { c.v.Add(1) }

// Value returns the current count.
func (c *Counter) Value() uint64 { return c.v.Load() }

// Gauge is a value that goes up and down. The zero value is ready to use.
type Gauge struct{ bits atomic.Uint64 }

// Set sets the value.
func (g *Gauge) Set(v float64) { g.bits.Store(math.Float64bits(v)) }

// Add adds d (which may be negative).
func (g *Gauge) Add(d float64) {
	for {
		old := g.bits.Load()
		if g.bits.CompareAndSwap(old, math.Float64bits(math.Float64frombits(old)+d)) {
			return
		}
	}
}

// Value returns the current value.
func (g *Gauge) Value() float64 { return math.Float64frombits(g.bits.Load()) }

// Counter registers and returns a counter.
func (r *Registry) Counter(name, help string) *Counter {
	c := &Counter{}
	r.add(name, help, KindCounter, nil).set(nil, func() float64 { return float64(c.Value()) })
	return c
}

// Gauge registers and returns a gauge.
func (r *Registry) Gauge(name, help string) *Gauge {
	g := &Gauge{}
	r.add(name, help, KindGauge, nil).set(nil, g.Value)
	return g
}

// CounterFunc registers a counter whose value f returns at scrape time; f
// must be safe to call from any goroutine and must never decrease.
func (r *Registry) CounterFunc(name, help string, f func() float64) {
	r.add(name, help, KindCounter, nil).set(nil, f)
}

// GaugeFunc registers a gauge whose value f returns at scrape time; f must
// be safe to call from any goroutine.
func (r *Registry) GaugeFunc(name, help string, f func() float64) {
	r.add(name, help, KindGauge, nil).set(nil, f)
}

// CounterVec is a family of counters sharing a name and label names.
type CounterVec struct {
	f    *family
	mu   sync.Mutex
	byLV map[string]*Counter
}

// CounterVec registers a family of counters labelled with labels.
func (r *Registry) CounterVec(name, help string, labels ...string) *CounterVec {
	if len(labels) == 0 {
		panic(fmt.Sprintf("metrics: %s: a vector needs label names", name))
	}
	return &CounterVec{f: r.add(name, help, KindCounter, labels), byLV: map[string]*Counter{}}
}

// With returns the counter for one value per label name, creating it (at
// zero) on first use.
func (v *CounterVec) With(values ...string) *Counter {
	key := v.f.key(values)
	v.mu.Lock()
	defer v.mu.Unlock()
	if c := v.byLV[key]; c != nil {
		return c
	}
	c := &Counter{}
	v.byLV[key] = c
	v.f.set(values, func() float64 { return float64(c.Value()) })
	return c
}

// GaugeVec is a family of gauges sharing a name and label names.
type GaugeVec struct {
	f    *family
	mu   sync.Mutex
	byLV map[string]*Gauge
}

// GaugeVec registers a family of gauges labelled with labels.
func (r *Registry) GaugeVec(name, help string, labels ...string) *GaugeVec {
	if len(labels) == 0 {
		panic(fmt.Sprintf("metrics: %s: a vector needs label names", name))
	}
	return &GaugeVec{f: r.add(name, help, KindGauge, labels), byLV: map[string]*Gauge{}}
}

// With returns the gauge for one value per label name, creating it (at
// zero) on first use.
func (v *GaugeVec) With(values ...string) *Gauge {
	key := v.f.key(values)
	v.mu.Lock()
	defer v.mu.Unlock()
	if g := v.byLV[key]; g != nil {
		return g
	}
	g := &Gauge{}
	v.byLV[key] = g
	v.f.set(values, g.Value)
	return g
}

// add registers a family, panicking on a bad or duplicate name.
func (r *Registry) add(name, help string, kind Kind, labels []string) *family {
	if !validName(name, true) {
		panic(fmt.Sprintf("metrics: invalid metric name %q", name))
	}
	for _, l := range labels {
		if !validName(l, false) || strings.HasPrefix(l, "__") {
			panic(fmt.Sprintf("metrics: %s: invalid label name %q", name, l))
		}
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, dup := r.families[name]; dup {
		panic(fmt.Sprintf("metrics: %s registered twice", name))
	}
	f := &family{name: name, help: help, kind: kind, labels: labels, series: map[string]*series{}}
	r.families[name] = f
	return f
}

// validName checks [a-zA-Z_:][a-zA-Z0-9_:]* (no ':' in label names).
func validName(s string, colon bool) bool {
	for i, c := range s {
		ok := c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || colon && c == ':' || i > 0 && c >= '0' && c <= '9'
		if !ok {
			return false
		}
	}
	return s != ""
}

// Handler serves the registry in the text exposition format.
func (r *Registry) Handler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", ContentType)
		r.WriteText(w) // a failed write is the scraper's broken connection
	})
}

// sorted returns the families in name order.
func (r *Registry) sorted() []*family {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]*family, 0, len(r.families))
	for _, f := range r.families {
		out = append(out, f)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].name < out[j].name })
	return out
}
