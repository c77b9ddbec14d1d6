package relay

import (
	"sync"
	"sync/atomic"
)

// Metrics are the relay's counters.
type Metrics struct {
	mu            sync.Mutex
	verdicts      map[string]uint64 // "accepted", "duplicate", "retry/<reason>", "refused/<reason>"
	conflicts     atomic.Uint64
	refusedEvents atomic.Uint64
	partitions    atomic.Int64
}

func newMetrics() *Metrics { return &Metrics{verdicts: map[string]uint64{}} }

func (m *Metrics) count(verdict, reason string) {
	key := verdict
	if reason != "" {
		key += "/" + reason
	}
	m.mu.Lock()
	m.verdicts[key]++
	m.mu.Unlock()
}

// Verdicts returns the decisions so far, by verdict and reason.
func (m *Metrics) Verdicts() map[string]uint64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make(map[string]uint64, len(m.verdicts))
	for k, v := range m.verdicts {
		out[k] = v
	}
	return out
}

// Conflicts counts counter compare-and-swap failures (another relay first).
func (m *Metrics) Conflicts() uint64 { return m.conflicts.Load() }

// Partitions is the number of partitions held.
func (m *Metrics) Partitions() int64 { return m.partitions.Load() }
