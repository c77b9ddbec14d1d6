package metrics

import (
	"fmt"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
)

// Labelled is a counter vector of one or two labels whose counters it
// also keeps by label values, so that counting costs a map lookup and no
// allocation, and a snapshot can list what was counted.
type Labelled struct {
	vec *prometheus.CounterVec
	n   int // label names: 1 or 2
	mu  sync.Mutex
	by  map[[2]string]prometheus.Counter
}

// NewLabelled registers a counter vector named name with one or two label
// names in r.
func NewLabelled(r prometheus.Registerer, name, help string, labels ...string) *Labelled {
	if len(labels) < 1 || len(labels) > 2 {
		panic(fmt.Sprintf("metrics: %s: %d label names, want 1 or 2", name, len(labels)))
	}
	vec := prometheus.NewCounterVec(prometheus.CounterOpts{Name: name, Help: help}, labels)
	r.MustRegister(vec)
	return &Labelled{vec: vec, n: len(labels), by: map[[2]string]prometheus.Counter{}}
}

// Inc counts one under the label values a (and b, for two labels).
func (l *Labelled) Inc(a, b string) { l.counter(a, b).Inc() }

// Init makes the series of the label values a (and b) exist at zero
// before anything is counted: a rule that watches it (its rate, an
// alert) has a series to read from the start.
func (l *Labelled) Init(a, b string) { l.counter(a, b) }

func (l *Labelled) counter(a, b string) prometheus.Counter {
	k := [2]string{a, b}
	l.mu.Lock()
	defer l.mu.Unlock()
	c := l.by[k]
	if c == nil {
		c = l.vec.WithLabelValues(k[:l.n]...)
		l.by[k] = c
	}
	return c
}

// Snapshot copies the counts above zero, keyed by the label values joined
// with "/" (an empty second value left out).
func (l *Labelled) Snapshot() map[string]uint64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := make(map[string]uint64, len(l.by))
	for k, c := range l.by {
		n := Count(c)
		if n == 0 {
			continue
		}
		key := k[0]
		if k[1] != "" {
			key += "/" + k[1]
		}
		out[key] = n
	}
	return out
}
