package metrics

import "sync"

// Labelled is a CounterVec of one or two labels whose counters are also
// kept by label values, so that counting costs a map lookup and no
// allocation, and a snapshot can list them.
type Labelled struct {
	vec *CounterVec
	n   int // label names: 1 or 2
	mu  sync.Mutex
	by  map[[2]string]*Counter
}

// NewLabelled wraps vec, which has n label names (1 or 2).
func NewLabelled(vec *CounterVec, n int) *Labelled {
	return &Labelled{vec: vec, n: n, by: map[[2]string]*Counter{}}
}

// Inc counts one under the label values a (and b, for two labels).
func (l *Labelled) Inc(a, b string) {
	k := [2]string{a, b}
	l.mu.Lock()
	c := l.by[k]
	if c == nil {
		c = l.vec.With(k[:l.n]...)
		l.by[k] = c
	}
	l.mu.Unlock()
	c.Inc()
}

// Snapshot copies the counts, keyed by the label values joined with "/"
// (an empty second value left out).
func (l *Labelled) Snapshot() map[string]uint64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := make(map[string]uint64, len(l.by))
	for k, c := range l.by {
		key := k[0]
		if k[1] != "" {
			key += "/" + k[1]
		}
		out[key] = c.Value()
	}
	return out
}
