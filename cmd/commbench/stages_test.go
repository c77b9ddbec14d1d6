package main

import (
	"math"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

// TestHistBetweenReadings: the stage histograms are read from real
// registries, summed over them and over the label values asked for, and
// differenced between two readings; quantiles interpolate within the
// bucket, as Prometheus's histogram_quantile does.
func TestHistBetweenReadings(t *testing.T) {
	regs := []prometheus.Gatherer{}
	var vecs []*prometheus.HistogramVec
	for range 2 {
		reg := prometheus.NewRegistry()
		v := prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "x_seconds", Buckets: []float64{.01, .1, 1}}, []string{"path"})
		reg.MustRegister(v)
		regs, vecs = append(regs, reg), append(vecs, v)
	}
	vecs[0].WithLabelValues("live").Observe(0.5) // before: left out
	before := gatherHist(regs, "x_seconds", "path", "live")
	for i := range 90 {
		vecs[i%2].WithLabelValues("live").Observe(0.005)
	}
	for range 10 {
		vecs[1].WithLabelValues("live").Observe(0.05)
	}
	vecs[0].WithLabelValues("catch_up").Observe(0.5) // another label: left out
	h := gatherHist(regs, "x_seconds", "path", "live").minus(before)
	if h.total != 100 {
		t.Fatalf("%d observations, want 100", h.total)
	}
	if q := h.quantile(0.5); math.Abs(q-0.01*50/90) > 1e-9 {
		t.Errorf("p50 %v, want %v", q, 0.01*50/90)
	}
	if q := h.quantile(0.99); math.Abs(q-(0.01+0.09*9/10)) > 1e-9 {
		t.Errorf("p99 %v, want %v", q, 0.01+0.09*9/10)
	}
	if o := h.over(0.01); o != 0.1 {
		t.Errorf("over 10 ms: %v, want 0.1", o)
	}
	if o := h.over(0.1); o != 0 {
		t.Errorf("over 100 ms: %v, want 0", o)
	}
	if !math.IsNaN((hist{}).quantile(0.5)) {
		t.Error("the quantile of nothing observed is a number")
	}
}
