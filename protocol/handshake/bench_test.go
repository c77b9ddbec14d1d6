package handshake_test

// Benchmarks of the two handshake state machines, each beside the bare
// primitives its side performs, so that the cost of the state machines
// themselves (parsing, marshaling, allocation, state checks) is visible.
//
// Both ephemeral keys are fixed (primitives.Record), so every iteration
// replays the same transcript: the peer's messages are recorded once,
// outside the timer.

import (
	"flag"
	"math"
	"runtime"
	"testing"
	"time"

	"github.com/commsec/communicator/protocol"
	"github.com/commsec/communicator/protocol/channel"
	"github.com/commsec/communicator/protocol/handshake"
	"github.com/commsec/communicator/protocol/handshake/primitives"
)

// newBenchFlow records the handshake every iteration replays.
func newBenchFlow(tb testing.TB) *primitives.Flow {
	tb.Helper()
	f, err := primitives.Record()
	benchMust(tb, err)
	return f
}

func benchMust(tb testing.TB, err error) {
	tb.Helper()
	if err != nil {
		tb.Fatal(err)
	}
}

// benchOp builds one iteration of a benchmark outside the timer.
type benchOp func(testing.TB) func() error

func runBenchOp(b *testing.B, build benchOp) {
	op := build(b)
	b.ReportAllocs()
	for b.Loop() {
		if err := op(); err != nil {
			b.Fatal(err)
		}
	}
}

// benchServerHandshake is the server's state machine for one handshake,
// ending with the sealed Ready frame that confirms the keys.
func benchServerHandshake(tb testing.TB) func() error {
	f := newBenchFlow(tb)
	buf := make([]byte, 0, channel.Overhead)
	return func() error {
		s := handshake.NewServerHandshake(f.Server, &f.ServerEph)
		if err := s.ReadM1(f.M1); err != nil {
			return err
		}
		if _, err := s.WriteM2(); err != nil {
			return err
		}
		if _, err := s.WriteM3(); err != nil {
			return err
		}
		if err := s.ReadM4(f.M4); err != nil {
			return err
		}
		k, err := s.Keys()
		if err != nil {
			return err
		}
		sealer := channel.NewSealer(&k.S2C)
		k.Wipe()
		_, err = sealer.Seal(buf[:0], channel.TypeReady, nil)
		return err
	}
}

// benchClientHandshake is the client's state machine for one handshake,
// ending with the opened Ready frame.
func benchClientHandshake(tb testing.TB) func() error {
	f := newBenchFlow(tb)
	serverKey := f.Server.Public()
	return func() error {
		c := handshake.NewClientHandshake(f.Client, serverKey, &f.ClientEph)
		if _, err := c.WriteM1(); err != nil {
			return err
		}
		if err := c.ReadM2(f.M2); err != nil {
			return err
		}
		if err := c.ReadM3(f.M3); err != nil {
			return err
		}
		if _, err := c.WriteM4(); err != nil {
			return err
		}
		k, err := c.Keys()
		if err != nil {
			return err
		}
		opener := channel.NewOpener(&k.S2C, &k.C2S, channel.ServerToClient)
		k.Wipe()
		fr, err := opener.Open(f.Ready)
		if err == nil && fr.Type != channel.TypeReady {
			err = protocol.ErrNoKeyConfirmation
		}
		return err
	}
}

// benchServerPrimitives and benchClientPrimitives are the cryptographic
// operations of one side and nothing else (package primitives).
func benchServerPrimitives(tb testing.TB) func() error {
	return primitives.NewSide(newBenchFlow(tb), true).Run
}

func benchClientPrimitives(tb testing.TB) func() error {
	return primitives.NewSide(newBenchFlow(tb), false).Run
}

// BenchmarkServerHandshake: NewServerHandshake, ReadM1, WriteM2, WriteM3,
// ReadM4, Keys and sealing Ready; no I/O.
func BenchmarkServerHandshake(b *testing.B) { runBenchOp(b, benchServerHandshake) }

// BenchmarkClientHandshake: NewClientHandshake, WriteM1, ReadM2, ReadM3,
// WriteM4, Keys and opening Ready; no I/O.
func BenchmarkClientHandshake(b *testing.B) { runBenchOp(b, benchClientHandshake) }

// BenchmarkServerPrimitives is the lower bound of BenchmarkServerHandshake.
func BenchmarkServerPrimitives(b *testing.B) { runBenchOp(b, benchServerPrimitives) }

// BenchmarkClientPrimitives is the lower bound of BenchmarkClientHandshake.
func BenchmarkClientPrimitives(b *testing.B) { runBenchOp(b, benchClientPrimitives) }

var benchServerVs, benchClientVs benchComparison

// BenchmarkServerHandshakeVsPrimitives reports how many times the server's
// handshake costs its primitives (x-primitives; the goal is at most 1.2).
func BenchmarkServerHandshakeVsPrimitives(b *testing.B) {
	benchReportVs(b, &benchServerVs, "handshake", benchServerHandshake, benchServerPrimitives)
}

// BenchmarkClientHandshakeVsPrimitives is the same for the client.
func BenchmarkClientHandshakeVsPrimitives(b *testing.B) {
	benchReportVs(b, &benchClientVs, "handshake", benchClientHandshake, benchClientPrimitives)
}

// The comparison below times both sides itself: testing.Benchmark cannot
// run inside a benchmark, it waits for a lock the running benchmark holds
// (go.dev/issue/29727).

type benchMeasurement struct{ ns, bytes, allocs float64 }

type benchComparison struct{ subject, bound benchMeasurement }

// benchReportVs measures subject and the sum of bounds once per
// invocation, in the b.N == 1 round the testing package always starts
// with; a longer round only reports the same result again. ns/op is
// suppressed; B/op and allocs/op are the subject's.
func benchReportVs(b *testing.B, last *benchComparison, unit string, subject benchOp, bounds ...benchOp) {
	if b.N == 1 || last.subject.ns == 0 {
		*last = benchCompare(b, subject, bounds)
	}
	for range b.N {
	}
	b.ReportMetric(0, "ns/op")
	b.ReportMetric(last.subject.ns, "ns/"+unit)
	b.ReportMetric(last.bound.ns, "ns/primitives")
	b.ReportMetric(last.subject.ns/last.bound.ns, "x-primitives")
	b.ReportMetric(last.subject.bytes, "B/op")
	b.ReportMetric(last.subject.allocs, "allocs/op")
}

// benchWindows is how many timing windows each side gets.
const benchWindows = 200

// benchCompare times subject and each bound in benchWindows short windows,
// interleaved, and keeps each one's fastest window. Other processes on the
// machine can only slow a window down, so the fastest one is the cost of
// the work itself; windows of a few milliseconds, shorter than a scheduler
// time slice, make a quiet one likely even when the machine is busy. The
// fastest windows are also those without a garbage collection, so the
// collector's share of the allocations is left out on both sides; the
// allocations themselves are timed.
func benchCompare(tb testing.TB, subject benchOp, bounds []benchOp) benchComparison {
	window := benchRunTime() / benchWindows
	ops := []func() error{subject(tb)}
	for _, build := range bounds {
		ops = append(ops, build(tb))
	}
	n := make([]int, len(ops))
	best := make([]float64, len(ops))
	for i, op := range ops {
		n[i] = benchCalibrate(tb, op, window)
		best[i] = math.Inf(1)
	}
	for range benchWindows {
		for i, op := range ops {
			best[i] = min(best[i], benchWindow(tb, op, n[i]))
		}
	}
	c := benchComparison{subject: benchMeasurement{ns: best[0]}}
	for _, ns := range best[1:] {
		c.bound.ns += ns
	}
	c.subject.bytes, c.subject.allocs = benchAllocs(tb, ops[0])
	return c
}

// benchRunTime is -test.benchtime when it is a duration, else one second.
func benchRunTime() time.Duration {
	if f := flag.Lookup("test.benchtime"); f != nil {
		if d, err := time.ParseDuration(f.Value.String()); err == nil && d > 0 {
			return d
		}
	}
	return time.Second
}

// benchCalibrate returns how many calls of op fill a window.
func benchCalibrate(tb testing.TB, op func() error, window time.Duration) int {
	for n := 1; ; n *= 2 {
		if benchWindow(tb, op, n)*float64(n) >= float64(window) || n >= 1<<20 {
			return n
		}
	}
}

// benchWindow returns the mean time of n calls of op, in nanoseconds.
func benchWindow(tb testing.TB, op func() error, n int) float64 {
	start := time.Now()
	for range n {
		if err := op(); err != nil {
			tb.Fatal(err)
		}
	}
	return float64(time.Since(start).Nanoseconds()) / float64(n)
}

// benchAllocs returns the bytes and allocations of one call of op.
func benchAllocs(tb testing.TB, op func() error) (bytes, allocs float64) {
	const runs = 100
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	for range runs {
		if err := op(); err != nil {
			tb.Fatal(err)
		}
	}
	runtime.ReadMemStats(&after)
	return float64(after.TotalAlloc-before.TotalAlloc) / runs, float64(after.Mallocs-before.Mallocs) / runs
}
