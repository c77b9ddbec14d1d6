package gateway

import (
	"sync"
	"sync/atomic"
)

// Metrics are the gateway's counters.
type Metrics struct {
	mu            sync.Mutex
	refused       map[string]uint64 // handshakes refused, by reason
	dropped       map[string]uint64 // connections closed by the gateway, by reason
	sends         map[string]uint64 // relay verdicts, by verdict/reason
	handshakes    atomic.Uint64
	connections   atomic.Int64
	framesOut     atomic.Uint64
	bundlesOut    atomic.Uint64
	messagesIn    atomic.Uint64
	refusedEvents atomic.Uint64
}

func newMetrics() *Metrics {
	return &Metrics{refused: map[string]uint64{}, dropped: map[string]uint64{}, sends: map[string]uint64{}}
}

func (m *Metrics) inc(set map[string]uint64, key string) {
	m.mu.Lock()
	set[key]++
	m.mu.Unlock()
}

func (m *Metrics) refuse(reason string) { m.inc(m.refused, reason) }
func (m *Metrics) drop(reason string)   { m.inc(m.dropped, reason) }
func (m *Metrics) send(key string)      { m.inc(m.sends, key) }

// Snapshot copies the labelled counters: handshakes refused, connections
// dropped and sends, each by reason.
func (m *Metrics) Snapshot() (refused, dropped, sends map[string]uint64) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return clone(m.refused), clone(m.dropped), clone(m.sends)
}

// Connections is the number of connected clients.
func (m *Metrics) Connections() int64 { return m.connections.Load() }

func clone(in map[string]uint64) map[string]uint64 {
	out := make(map[string]uint64, len(in))
	for k, v := range in {
		out[k] = v
	}
	return out
}

// FramesOut counts frames written to clients.
func (m *Metrics) FramesOut() uint64 { return m.framesOut.Load() }
