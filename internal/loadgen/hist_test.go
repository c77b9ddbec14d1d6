package loadgen

import (
	"testing"
	"time"
)

// TestHistogram: quantiles of a known distribution are exact to within
// the buckets' 1%, and never above the largest sample.
func TestHistogram(t *testing.T) {
	var h Histogram
	if h.Quantile(0.5) != 0 || h.Quantiles() != "no samples" {
		t.Fatalf("an empty histogram gave %v, %q", h.Quantile(0.5), h.Quantiles())
	}
	for i := 1; i <= 1000; i++ {
		h.Record(time.Duration(i) * time.Millisecond)
	}
	for _, c := range []struct {
		q    float64
		want time.Duration
	}{{0.5, 500 * time.Millisecond}, {0.99, 990 * time.Millisecond}, {0.999, 999 * time.Millisecond}, {1, time.Second}} {
		got := h.Quantile(c.q)
		if diff := float64(got-c.want) / float64(c.want); diff < -0.011 || diff > 0.011 || got > time.Second {
			t.Errorf("quantile %v = %v, want %v within 1%%", c.q, got, c.want)
		}
	}
	if h.Count() != 1000 {
		t.Errorf("count %d, want 1000", h.Count())
	}
}
