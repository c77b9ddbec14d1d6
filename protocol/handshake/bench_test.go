package handshake_test

// Benchmarks of the two handshake state machines, each beside the bare
// primitives its side performs, so that the cost of the state machines
// themselves (parsing, marshaling, allocation, state checks) is visible.
//
// Both ephemeral keys come from benchRand, so every iteration replays the
// same transcript: the peer's messages are recorded once, outside the timer.

import (
	"crypto/ecdh"
	"crypto/ed25519"
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"flag"
	"math"
	"runtime"
	"testing"
	"time"

	"github.com/commsec/communicator/protocol"
	"github.com/commsec/communicator/protocol/channel"
	"github.com/commsec/communicator/protocol/handshake"
	"github.com/commsec/communicator/protocol/keys"
)

// benchRand returns its 32 bytes again and again. As the source of an
// ephemeral key it makes every handshake of a benchmark the same.
type benchRand [32]byte

func (r *benchRand) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = r[i%len(r)]
	}
	return len(p), nil
}

func benchBytes(b byte) [32]byte {
	var a [32]byte
	for i := range a {
		a[i] = b + byte(i)
	}
	return a
}

// benchFlow is one recorded handshake: the keys of both sides, both
// ephemeral scalars and every message, Ready frame included.
type benchFlow struct {
	clientSeed, serverSeed [ed25519.SeedSize]byte
	client, server         *keys.SigningKey
	clientEph, serverEph   benchRand
	m1, m2, m3, m4, ready  []byte
}

func newBenchFlow(tb testing.TB) *benchFlow {
	tb.Helper()
	f := &benchFlow{clientSeed: benchBytes(0x10), serverSeed: benchBytes(0x20),
		clientEph: benchBytes(0x30), serverEph: benchBytes(0x40)}
	f.client = keys.NewSigningKey(&f.clientSeed)
	f.server = keys.NewSigningKey(&f.serverSeed)
	c := handshake.NewClientHandshake(f.client, f.server.Public(), &f.clientEph)
	s := handshake.NewServerHandshake(f.server, &f.serverEph)
	var err error
	f.m1, err = c.WriteM1()
	benchMust(tb, err)
	benchMust(tb, s.ReadM1(f.m1))
	f.m2, err = s.WriteM2()
	benchMust(tb, err)
	f.m3, err = s.WriteM3()
	benchMust(tb, err)
	benchMust(tb, c.ReadM2(f.m2))
	benchMust(tb, c.ReadM3(f.m3))
	f.m4, err = c.WriteM4()
	benchMust(tb, err)
	benchMust(tb, s.ReadM4(f.m4))
	sk, err := s.Keys()
	benchMust(tb, err)
	ck, err := c.Keys()
	benchMust(tb, err)
	f.ready, err = channel.NewSealer(&sk.S2C).Seal(nil, channel.TypeReady, nil)
	benchMust(tb, err)
	_, err = channel.NewOpener(&ck.S2C, &ck.C2S, channel.ServerToClient).Open(f.ready)
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
		s := handshake.NewServerHandshake(f.server, &f.serverEph)
		if err := s.ReadM1(f.m1); err != nil {
			return err
		}
		if _, err := s.WriteM2(); err != nil {
			return err
		}
		if _, err := s.WriteM3(); err != nil {
			return err
		}
		if err := s.ReadM4(f.m4); err != nil {
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
	serverKey := f.server.Public()
	return func() error {
		c := handshake.NewClientHandshake(f.client, serverKey, &f.clientEph)
		if _, err := c.WriteM1(); err != nil {
			return err
		}
		if err := c.ReadM2(f.m2); err != nil {
			return err
		}
		if err := c.ReadM3(f.m3); err != nil {
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
		fr, err := opener.Open(f.ready)
		if err == nil && fr.Type != channel.TypeReady {
			err = protocol.ErrNoKeyConfirmation
		}
		return err
	}
}

// benchPrimitives are the cryptographic operations of one side of a
// handshake and nothing else. They work on the recorded messages, so their
// results equal the state machine's: the final tag must match the recorded
// Ready frame.
type benchPrimitives struct {
	f              *benchFlow
	scalar         *[32]byte // this side's ephemeral
	peerShare      []byte    // the other side's X25519 share
	sign           ed25519.PrivateKey
	peerPub        []byte
	signLabel      string
	verifyLabel    string
	signAfter      int // the transcript hash (2 = H(M1|M2), 3 = H(M1..M3)) this side signs
	peerSignature  []byte
	infoC2S        string
	infoS2C        string
	input          []byte // reused buffer for a signed input
	transcriptMsgs [4][]byte
}

func newBenchPrimitives(tb testing.TB, server bool) *benchPrimitives {
	f := newBenchFlow(tb)
	p := &benchPrimitives{f: f, infoC2S: benchKDFInfo(protocol.LabelKeyC2S), infoS2C: benchKDFInfo(protocol.LabelKeyS2C),
		input: make([]byte, 0, 128), transcriptMsgs: [4][]byte{f.m1, f.m2, f.m3, f.m4}}
	share := handshake.HeaderSize + protocol.PublicKeySize
	if server {
		p.scalar, p.peerShare = (*[32]byte)(&f.serverEph), f.m1[share:]
		p.sign = ed25519.NewKeyFromSeed(f.serverSeed[:])
		p.peerPub = f.m1[handshake.HeaderSize:share]
		p.signLabel, p.verifyLabel, p.signAfter = protocol.LabelServerSig, protocol.LabelClientSig, 2
		p.peerSignature = f.m4[handshake.HeaderSize:]
	} else {
		p.scalar, p.peerShare = (*[32]byte)(&f.clientEph), f.m2[share:]
		p.sign = ed25519.NewKeyFromSeed(f.clientSeed[:])
		p.peerPub = f.m2[handshake.HeaderSize:share]
		p.signLabel, p.verifyLabel, p.signAfter = protocol.LabelClientSig, protocol.LabelServerSig, 3
		p.peerSignature = f.m3[handshake.HeaderSize:]
	}
	return p
}

// benchKDFInfo and signedInput repeat the layouts of the key schedule
// (the package comment): label | version | suite(2) [| transcript hash].
func benchKDFInfo(label string) string {
	b := append([]byte(label), protocol.Version)
	return string(binary.BigEndian.AppendUint16(b, uint16(protocol.SuiteX25519Ed25519)))
}

func (p *benchPrimitives) signedInput(label string, th []byte) []byte {
	b := append(p.input[:0], label...)
	b = append(b, protocol.Version)
	b = binary.BigEndian.AppendUint16(b, uint16(protocol.SuiteX25519Ed25519))
	p.input = append(b, th...)
	return p.input
}

var errBenchPrimitives = errors.New("primitives do not reproduce the recorded handshake")

// run performs, in the order a side needs them: X25519 key generation and
// one X25519, the transcript hashes after M2, M3 and M4 with one Ed25519
// signature and one verification in between, HKDF-SHA256 extract and two
// expands, and the HMAC-SHA256 of the Ready frame under a fresh key.
func (p *benchPrimitives) run() error {
	eph, err := ecdh.X25519().NewPrivateKey(p.scalar[:])
	if err != nil {
		return err
	}
	_ = eph.PublicKey().Bytes()
	peer, err := ecdh.X25519().NewPublicKey(p.peerShare)
	if err != nil {
		return err
	}
	shared, err := eph.ECDH(peer)
	if err != nil {
		return err
	}
	var th [protocol.HashSize]byte
	h := sha256.New()
	for i, m := range p.transcriptMsgs {
		h.Write(m)
		if i == 0 {
			continue
		}
		h.Sum(th[:0])
		switch i + 1 {
		case p.signAfter:
			ed25519.Sign(p.sign, p.signedInput(p.signLabel, th[:]))
		case 5 - p.signAfter: // the peer signed the other hash
			if !ed25519.Verify(p.peerPub, p.signedInput(p.verifyLabel, th[:]), p.peerSignature) {
				return errBenchPrimitives
			}
		}
	}
	prk, err := hkdf.Extract(sha256.New, shared, th[:])
	if err != nil {
		return err
	}
	if _, err := hkdf.Expand(sha256.New, prk, p.infoC2S, 32); err != nil {
		return err
	}
	s2c, err := hkdf.Expand(sha256.New, prk, p.infoS2C, 32)
	if err != nil {
		return err
	}
	mac := hmac.New(sha256.New, s2c)
	n := len(p.f.ready) - protocol.MACSize
	mac.Write(p.f.ready[:n])
	if !hmac.Equal(mac.Sum(nil), p.f.ready[n:]) {
		return errBenchPrimitives
	}
	return nil
}

func benchServerPrimitives(tb testing.TB) func() error { return newBenchPrimitives(tb, true).run }
func benchClientPrimitives(tb testing.TB) func() error { return newBenchPrimitives(tb, false).run }

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
