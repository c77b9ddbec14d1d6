package main

// Where a figure's latency goes: the services' own histograms (the
// gateway's send → verdict and live delivery lag, the relay's decision
// and store write), summed over the stack's gateways or relays and taken
// between two readings, beside what the clients measured end to end.

import (
	"fmt"
	"math"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/commsec/communicator/internal/clusterstack"
)

// hist is a histogram's cumulative bucket counts, summed over registries
// and label values (those with label=value only, if label is set).
type hist struct {
	bounds []float64 // upper bounds, in seconds, ascending
	counts []uint64  // cumulative, per bound
	total  uint64
}

// gatherHist reads histogram family name from regs.
func gatherHist(regs []prometheus.Gatherer, name, label, value string) hist {
	var h hist
	for _, reg := range regs {
		mfs, err := reg.Gather()
		if err != nil {
			continue
		}
		for _, mf := range mfs {
			if mf.GetName() != name {
				continue
			}
			for _, m := range mf.GetMetric() {
				if label != "" && !hasLabel(m, label, value) || m.GetHistogram() == nil {
					continue
				}
				h.add(m.GetHistogram())
			}
		}
	}
	return h
}

func hasLabel(m *dto.Metric, name, value string) bool {
	for _, l := range m.GetLabel() {
		if l.GetName() == name && l.GetValue() == value {
			return true
		}
	}
	return false
}

func (h *hist) add(p *dto.Histogram) {
	if h.bounds == nil {
		for _, b := range p.GetBucket() {
			h.bounds = append(h.bounds, b.GetUpperBound())
		}
		h.counts = make([]uint64, len(h.bounds))
	}
	for i, b := range p.GetBucket() {
		if i < len(h.counts) {
			h.counts[i] += b.GetCumulativeCount()
		}
	}
	h.total += p.GetSampleCount()
}

// minus is what was observed between reading o and reading h.
func (h hist) minus(o hist) hist {
	out := hist{bounds: h.bounds, counts: make([]uint64, len(h.counts)), total: h.total - o.total}
	for i := range h.counts {
		out.counts[i] = h.counts[i]
		if i < len(o.counts) {
			out.counts[i] -= o.counts[i]
		}
	}
	return out
}

// quantile estimates the q-quantile in seconds as Prometheus's
// histogram_quantile does: linearly within the bucket that holds it
// (NaN without observations; the highest bound if past it).
func (h hist) quantile(q float64) float64 {
	if h.total == 0 {
		return math.NaN()
	}
	rank := q * float64(h.total)
	lower, below := 0.0, uint64(0)
	for i, c := range h.counts {
		if float64(c) >= rank {
			in := c - below
			if in == 0 {
				return h.bounds[i]
			}
			return lower + (h.bounds[i]-lower)*(rank-float64(below))/float64(in)
		}
		lower, below = h.bounds[i], c
	}
	return lower
}

// over is the share of observations above bound (one of the buckets').
func (h hist) over(bound float64) float64 {
	if h.total == 0 {
		return math.NaN()
	}
	for i, b := range h.bounds {
		if b == bound {
			return float64(h.total-h.counts[i]) / float64(h.total)
		}
	}
	return math.NaN()
}

func (h hist) String() string {
	if h.total == 0 {
		return "none observed"
	}
	return fmt.Sprintf("p50 %s p99 %s ms, %.2f%% over 100 ms (%d)", msOf(h.quantile(0.5)), msOf(h.quantile(0.99)), 100*h.over(0.1), h.total)
}

func msOf(s float64) string { return fmt.Sprintf("%.1f", s*1000) }

// stage is one histogram of the services, where it is read.
type stage struct {
	what, name, label, value string
	relays                   bool // the relays' registries, else the gateways'
}

// latencyStages are the steps of a message's path that the services time.
var latencyStages = []stage{
	{what: "gateway: forwarded → the relay's verdict", name: "comm_gateway_send_verdict_seconds"},
	{what: "relay: arrival → verdict", name: "comm_relay_decision_seconds", label: "verdict", value: "accepted", relays: true},
	{what: "relay: the store write (compare-and-swap) → acknowledged", name: "comm_relay_store_write_seconds", relays: true},
	{what: "gateway: stored → Deliver written (live)", name: "comm_gateway_delivery_lag_seconds", label: "path", value: "live"},
}

// stageReading is every stage's histogram at one moment.
type stageReading []hist

func readStages(s *clusterstack.Stack) stageReading {
	var gws, rls []prometheus.Gatherer
	for _, g := range s.Gateways {
		gws = append(gws, g.Metrics)
	}
	for _, r := range s.Relays() {
		rls = append(rls, r.Registry)
	}
	out := make(stageReading, len(latencyStages))
	for i, st := range latencyStages {
		regs := gws
		if st.relays {
			regs = rls
		}
		out[i] = gatherHist(regs, st.name, st.label, st.value)
	}
	return out
}

// since describes each stage between reading o and r.
func (r stageReading) since(o stageReading) string {
	parts := make([]string, len(r))
	for i, st := range latencyStages {
		parts[i] = st.what + " " + r[i].minus(o[i]).String()
	}
	return strings.Join(parts, "; ")
}
