package main

// The bound of the handshake figure: the cryptographic primitives of
// both sides of a handshake and nothing else (package
// protocol/handshake/primitives, which protocol/handshake's benchmarks
// use too), timed on one core and on all cores at once.

import (
	"errors"
	"math"
	"runtime"
	"sync"
	"time"

	"github.com/commsec/communicator/protocol/handshake/primitives"
)

// primitiveTimes are the cost of each side's primitives on one core.
type primitiveTimes struct{ client, server time.Duration }

// timePrimitives times both sides in windows short enough to fit in a
// scheduler slice, interleaved, and keeps each side's fastest window:
// other work on the machine can only slow a window down. It runs windows
// windows of about 2 ms per side.
func timePrimitives(windows int) (primitiveTimes, error) {
	f, err := primitives.Record()
	if err != nil {
		return primitiveTimes{}, err
	}
	sides := []*primitives.Side{primitives.NewSide(f, false), primitives.NewSide(f, true)}
	best := []float64{math.Inf(1), math.Inf(1)}
	const perWindow = 16 // ≈ 2 ms
	for range windows {
		for i, p := range sides {
			ns, err := window(p.Run, perWindow)
			if err != nil {
				return primitiveTimes{}, err
			}
			best[i] = min(best[i], ns)
		}
	}
	return primitiveTimes{client: time.Duration(best[0]), server: time.Duration(best[1])}, nil
}

// window returns the mean time of n calls of op, in nanoseconds.
func window(op func() error, n int) (float64, error) {
	start := time.Now()
	for range n {
		if err := op(); err != nil {
			return 0, err
		}
	}
	return float64(time.Since(start).Nanoseconds()) / float64(n), nil
}

// parallelPrimitives runs one client side and one server side of the
// recorded handshake back to back on every core at once for about d and
// returns how many such pairs all cores completed per second. It is the
// bound the gateway's handshakes compete with: when both cores are busy
// each computes more slowly than alone (a VM's cores share caches and
// the host), and the one-core times above would overstate what the
// machine can do.
func parallelPrimitives(d time.Duration) (float64, error) {
	f, err := primitives.Record()
	if err != nil {
		return 0, err
	}
	procs := runtime.GOMAXPROCS(0)
	counts := make([]int, procs)
	errs := make([]error, procs)
	var wg sync.WaitGroup
	start := time.Now()
	deadline := start.Add(d)
	for w := range procs {
		client, server := primitives.NewSide(f, false), primitives.NewSide(f, true)
		wg.Go(func() {
			for time.Now().Before(deadline) {
				if err := client.Run(); err != nil {
					errs[w] = err
					return
				}
				if err := server.Run(); err != nil {
					errs[w] = err
					return
				}
				counts[w]++
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	if err := errors.Join(errs...); err != nil {
		return 0, err
	}
	total := 0
	for _, n := range counts {
		total += n
	}
	return float64(total) / elapsed.Seconds(), nil
}
