package loadgen

import (
	"fmt"
	"math"
	"sync/atomic"
	"time"
)

// Histogram records durations in logarithmic buckets 1% wide, from 1 ns
// to over 100 s, safe for concurrent use without locks. Quantiles are
// exact to within 1%. The zero value is ready to use.
type Histogram struct {
	buckets [histBuckets]atomic.Uint64
	count   atomic.Uint64
	max     atomic.Int64
}

const (
	histGrowth  = 1.01
	histBuckets = 2600 // 1.01^2600 ns ≈ 176 s
)

var logGrowth = math.Log(histGrowth)

// Record adds one sample.
func (h *Histogram) Record(d time.Duration) {
	d = max(d, 1)
	i := min(int(math.Log(float64(d))/logGrowth), histBuckets-1)
	h.buckets[i].Add(1)
	h.count.Add(1)
	for {
		m := h.max.Load()
		if int64(d) <= m || h.max.CompareAndSwap(m, int64(d)) {
			return
		}
	}
}

// Count is the number of samples.
func (h *Histogram) Count() uint64 { return h.count.Load() }

// Quantile returns the duration below which a fraction q of the samples
// lie (0 if there are none).
func (h *Histogram) Quantile(q float64) time.Duration {
	total := h.count.Load()
	if total == 0 {
		return 0
	}
	target := max(uint64(math.Ceil(q*float64(total))), 1)
	var seen uint64
	for i := range h.buckets {
		seen += h.buckets[i].Load()
		if seen >= target {
			return min(time.Duration(math.Pow(histGrowth, float64(i)+0.5)), time.Duration(h.max.Load()))
		}
	}
	return time.Duration(h.max.Load())
}

// Quantiles says p50, p99 and p99.9 in milliseconds, or "no samples".
func (h *Histogram) Quantiles() string {
	if h.Count() == 0 {
		return "no samples"
	}
	return fmt.Sprintf("p50 %s  p99 %s  p99.9 %s", Ms(h.Quantile(0.50)), Ms(h.Quantile(0.99)), Ms(h.Quantile(0.999)))
}

// Ms formats d in milliseconds with two decimals.
func Ms(d time.Duration) string { return fmt.Sprintf("%.2fms", float64(d)/float64(time.Millisecond)) }
