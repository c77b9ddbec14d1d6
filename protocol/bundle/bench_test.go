package bundle_test

// Benchmarks of wrapping and opening key bundles beside their bounds: HPKE
// Seal or Open of the 32-byte group key and one Ed25519 signature or
// verification of the 200-byte signed input.

import (
	"crypto/ecdh"
	"crypto/ed25519"
	"crypto/hpke"
	"encoding/binary"
	"errors"
	"flag"
	"math"
	"runtime"
	"testing"
	"time"

	"github.com/commsec/communicator/protocol"
	"github.com/commsec/communicator/protocol/bundle"
	"github.com/commsec/communicator/protocol/keys"
)

// benchParties is a keyserver, one member and the member's bundle, all
// from fixed keys.
type benchParties struct {
	ksSeed    [ed25519.SeedSize]byte
	ks        *keys.SigningKey
	ksPub     [protocol.PublicKeySize]byte
	member    *keys.ClientIdentity
	recipient bundle.Recipient
	group     protocol.GroupID
	epoch     protocol.Epoch
	members   [protocol.HashSize]byte
	groupKey  [protocol.GroupKeySize]byte
	bundle    *bundle.Bundle
	signed    []byte // LabelBundleSig | the bundle without its signature
	info      []byte // the HPKE info of the bundle
}

func newBenchParties(tb testing.TB) *benchParties {
	tb.Helper()
	p := &benchParties{group: protocol.GroupID{0x47}, epoch: 9}
	var memberSeed, wrapScalar [32]byte
	for i := range 32 {
		p.ksSeed[i], memberSeed[i], wrapScalar[i], p.groupKey[i] = byte(i), byte(0x20+i), byte(0x40+i), byte(0x60+i)
	}
	p.ks = keys.NewSigningKey(&p.ksSeed)
	p.ksPub = p.ks.Public()
	wrap, err := keys.NewWrapKey(&wrapScalar)
	if err != nil {
		tb.Fatal(err)
	}
	p.member = &keys.ClientIdentity{Sig: keys.NewSigningKey(&memberSeed), Wrap: wrap}
	p.recipient = bundle.Recipient{ID: p.member.ID(), Wrap: wrap.Public()}
	p.members = bundle.MemberDigest([]protocol.ClientID{p.member.ID()})
	if p.bundle, err = bundle.Wrap(p.ks, p.group, p.epoch, p.recipient, &p.members, &p.groupKey); err != nil {
		tb.Fatal(err)
	}
	wire := p.bundle.Marshal()
	p.signed = append([]byte(protocol.LabelBundleSig), wire[:bundle.Size-protocol.SignatureSize]...)
	if !ed25519.Verify(p.ksPub[:], p.signed, p.bundle.Sig[:]) {
		tb.Fatal("bundle: the benchmark's signed input is not what Wrap signs")
	}
	p.info = append([]byte(protocol.LabelBundleWrap), bundle.Version)
	p.info = append(p.info, p.group[:]...)
	p.info = binary.BigEndian.AppendUint32(p.info, uint32(p.epoch))
	p.info = append(p.info, p.recipient.ID[:]...)
	return p
}

// The HPKE suite of package bundle.
var (
	benchKEM  = hpke.DHKEM(ecdh.X25519())
	benchKDF  = hpke.HKDFSHA256()
	benchAEAD = hpke.ChaCha20Poly1305()
)

func benchWrap(tb testing.TB) func() error {
	p := newBenchParties(tb)
	return func() error {
		_, err := bundle.Wrap(p.ks, p.group, p.epoch, p.recipient, &p.members, &p.groupKey)
		return err
	}
}

func benchOpen(tb testing.TB) func() error {
	p := newBenchParties(tb)
	return func() error {
		k, err := p.bundle.Open(&p.ksPub, p.member)
		if err == nil && k != p.groupKey {
			err = errors.New("bundle: opened the wrong key")
		}
		return err
	}
}

func benchHPKESeal(tb testing.TB) func() error {
	p := newBenchParties(tb)
	pub, err := benchKEM.NewPublicKey(p.recipient.Wrap[:])
	if err != nil {
		tb.Fatal(err)
	}
	return func() error {
		_, err := hpke.Seal(pub, benchKDF, benchAEAD, p.info, p.groupKey[:])
		return err
	}
}

func benchHPKEOpen(tb testing.TB) func() error {
	p := newBenchParties(tb)
	ct := append(p.bundle.Enc[:], p.bundle.Wrapped[:]...)
	priv := p.member.Wrap.HPKE()
	return func() error {
		_, err := hpke.Open(priv, benchKDF, benchAEAD, p.info, ct)
		return err
	}
}

func benchSign(tb testing.TB) func() error {
	p := newBenchParties(tb)
	priv := ed25519.NewKeyFromSeed(p.ksSeed[:])
	return func() error {
		ed25519.Sign(priv, p.signed)
		return nil
	}
}

func benchVerify(tb testing.TB) func() error {
	p := newBenchParties(tb)
	return func() error {
		if !ed25519.Verify(p.ksPub[:], p.signed, p.bundle.Sig[:]) {
			return protocol.ErrBadBundleSignature
		}
		return nil
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

// BenchmarkWrap wraps and signs one member's bundle.
func BenchmarkWrap(b *testing.B) { runBenchOp(b, benchWrap) }

// BenchmarkOpen verifies and unwraps one bundle.
func BenchmarkOpen(b *testing.B) { runBenchOp(b, benchOpen) }

// BenchmarkHPKESealRaw wraps the 32-byte group key with crypto/hpke alone.
func BenchmarkHPKESealRaw(b *testing.B) { runBenchOp(b, benchHPKESeal) }

// BenchmarkHPKEOpenRaw unwraps it with crypto/hpke alone.
func BenchmarkHPKEOpenRaw(b *testing.B) { runBenchOp(b, benchHPKEOpen) }

// BenchmarkEd25519Sign signs the 200-byte signed input of a bundle.
func BenchmarkEd25519Sign(b *testing.B) { runBenchOp(b, benchSign) }

// BenchmarkEd25519Verify verifies that signature.
func BenchmarkEd25519Verify(b *testing.B) { runBenchOp(b, benchVerify) }

var benchWrapVs, benchOpenVs benchComparison

// BenchmarkWrapVsPrimitives reports Wrap against HPKE Seal + Ed25519 Sign.
func BenchmarkWrapVsPrimitives(b *testing.B) {
	benchReportVs(b, &benchWrapVs, "wrap", benchWrap, benchHPKESeal, benchSign)
}

// BenchmarkOpenVsPrimitives reports Open against HPKE Open + Ed25519 Verify.
func BenchmarkOpenVsPrimitives(b *testing.B) {
	benchReportVs(b, &benchOpenVs, "open", benchOpen, benchHPKEOpen, benchVerify)
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
