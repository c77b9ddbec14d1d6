package loadgen

import (
	"context"
	"crypto/sha256"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// BenchmarkCASPublishUnderLoad is the experiment behind the latency
// account in docs/BENCHMARKS.md: the relay's storage pattern alone (200
// goroutines, each a synchronous compare-and-swap publish on its own
// subject, 3,000 a second in all, fsync always) while other goroutines of
// the same process spend a given share of a core at random phases, as
// co-located clients and services do. It reports the publish →
// acknowledgement quantiles; each sub-benchmark measures for 8 s, so run
// it once:
//
//	go test -run '^$' -bench CASPublishUnderLoad -benchtime 1x ./internal/loadgen/
func BenchmarkCASPublishUnderLoad(b *testing.B) {
	raw := newTestRaw(b, 400)
	// Warm up: the first seconds on a fresh store have a tail of their own.
	if _, err := raw.pacedCAS(b.Context(), 200, 3000, 3*time.Second, &Histogram{}); err != nil {
		b.Fatal(err)
	}
	for _, cores := range []float64{0, 0.18, 0.27, 0.38} {
		b.Run(fmt.Sprintf("load=%.2fcores", cores), func(b *testing.B) {
			for b.Loop() {
				var h Histogram
				stop := cpuLoad(cores)
				n, err := raw.pacedCAS(b.Context(), 200, 3000, 8*time.Second, &h)
				stop()
				if err != nil {
					b.Fatal(err)
				}
				ms := func(q float64) float64 { return float64(h.Quantile(q)) / 1e6 }
				b.ReportMetric(0, "ns/op")
				b.ReportMetric(float64(n), "publishes")
				b.ReportMetric(ms(0.5), "p50-ms")
				b.ReportMetric(ms(0.99), "p99-ms")
				b.ReportMetric(ms(0.999), "p99.9-ms")
			}
		})
	}
}

// loadPeriod is how often each load goroutine spends its burst.
const loadPeriod = 66 * time.Millisecond

// cpuLoad keeps 200 goroutines each spending its share of cores on
// SHA-256 once every loadPeriod, at random phases, until stop is called.
func cpuLoad(cores float64) (stop func()) {
	const goroutines = 200
	burst := time.Duration(cores * float64(loadPeriod) / goroutines)
	done := make(chan struct{})
	var wg sync.WaitGroup
	for range goroutines {
		if burst <= 0 {
			break
		}
		wg.Go(func() { spend(burst, done) })
	}
	return func() { close(done); wg.Wait() }
}

func spend(burst time.Duration, done chan struct{}) {
	phase := time.NewTimer(rand.N(loadPeriod))
	select {
	case <-done:
		phase.Stop()
		return
	case <-phase.C:
	}
	t := time.NewTicker(loadPeriod)
	defer t.Stop()
	var buf [4096]byte
	for {
		t0 := time.Now()
		for time.Since(t0) < burst {
			sha256.Sum256(buf[:])
		}
		select {
		case <-done:
			return
		case <-t.C:
		}
	}
}

// pacedCAS runs workers goroutines, each storing on its own subject by
// compare-and-swap at its share of rate (random phases) for d, and
// records each publish → acknowledgement in h. It returns how many were
// stored.
func (r *Raw) pacedCAS(ctx context.Context, workers int, rate float64, d time.Duration, h *Histogram) (uint64, error) {
	round := r.patternRound.Add(1)
	interval := time.Duration(float64(workers) / rate * float64(time.Second))
	end := time.Now().Add(d)
	errs := make(chan error, workers)
	var wg sync.WaitGroup
	for w := range workers {
		subject := fmt.Sprintf("%s.cas.%d.%d", scratchPatternPrefix, round, w)
		wg.Go(func() { errs <- r.pacedWorker(ctx, subject, interval, end, h) })
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			return h.Count(), err
		}
	}
	return h.Count(), nil
}

func (r *Raw) pacedWorker(ctx context.Context, subject string, interval time.Duration, end time.Time, h *Histogram) error {
	var last uint64
	next := time.Now().Add(rand.N(interval))
	payload := make([]byte, r.size)
	for next.Before(end) && ctx.Err() == nil {
		if !SleepUntil(ctx, next) {
			return nil
		}
		next = next.Add(interval)
		m := nats.NewMsg(subject)
		m.Data = payload
		t0 := time.Now()
		ack, err := r.js.PublishMsg(ctx, m, jetstream.WithExpectLastSequencePerSubject(last))
		if err != nil {
			return fmt.Errorf("loadgen: paced compare-and-swap on %s: %w", subject, err)
		}
		h.Record(time.Since(t0))
		last = ack.Sequence
	}
	return nil
}
