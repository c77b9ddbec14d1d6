package main

// The bound of the handshake figure: the cryptographic primitives one
// side of a handshake performs and nothing else, as
// protocol/handshake/bench_test.go measures them. They work on a
// recorded handshake, so their results can be checked against it.

import (
	"crypto/ecdh"
	"crypto/ed25519"
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"runtime"
	"sync"
	"time"

	"github.com/commsec/communicator/protocol"
	"github.com/commsec/communicator/protocol/channel"
	"github.com/commsec/communicator/protocol/handshake"
	"github.com/commsec/communicator/protocol/keys"
)

// fixedRand returns its 32 bytes again and again: as the source of an
// ephemeral key it makes every handshake the same.
type fixedRand [32]byte

func (r *fixedRand) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = r[i%len(r)]
	}
	return len(p), nil
}

func fixedBytes(b byte) [32]byte {
	var a [32]byte
	for i := range a {
		a[i] = b + byte(i)
	}
	return a
}

// flow is one recorded handshake: both sides' keys and ephemerals and
// every message, the server's Ready frame included.
type flow struct {
	clientSeed, serverSeed [ed25519.SeedSize]byte
	clientEph, serverEph   fixedRand
	m1, m2, m3, m4, ready  []byte
}

func recordFlow() (*flow, error) {
	f := &flow{clientSeed: fixedBytes(0x10), serverSeed: fixedBytes(0x20), clientEph: fixedBytes(0x30), serverEph: fixedBytes(0x40)}
	server := keys.NewSigningKey(&f.serverSeed)
	c := handshake.NewClientHandshake(keys.NewSigningKey(&f.clientSeed), server.Public(), &f.clientEph)
	s := handshake.NewServerHandshake(server, &f.serverEph)
	var err error
	step := func(fn func() error) {
		if err == nil {
			err = fn()
		}
	}
	step(func() (e error) { f.m1, e = c.WriteM1(); return })
	step(func() error { return s.ReadM1(f.m1) })
	step(func() (e error) { f.m2, e = s.WriteM2(); return })
	step(func() (e error) { f.m3, e = s.WriteM3(); return })
	step(func() error { return c.ReadM2(f.m2) })
	step(func() error { return c.ReadM3(f.m3) })
	step(func() (e error) { f.m4, e = c.WriteM4(); return })
	step(func() error { return s.ReadM4(f.m4) })
	var sk *channel.Keys
	step(func() (e error) { sk, e = s.Keys(); return })
	step(func() (e error) { f.ready, e = channel.NewSealer(&sk.S2C).Seal(nil, channel.TypeReady, nil); return })
	if err != nil {
		return nil, fmt.Errorf("recording a handshake: %w", err)
	}
	return f, nil
}

// primitives are one side's operations on a recorded flow.
type primitives struct {
	f                      *flow
	scalar                 *[32]byte
	peerShare, peerPub     []byte
	sign                   ed25519.PrivateKey
	signLabel, verifyLabel string
	signAfter              int // the transcript hash this side signs: 2 = H(M1|M2), 3 = H(M1..M3)
	peerSignature          []byte
	infoC2S, infoS2C       string
	input                  []byte
}

func newPrimitives(f *flow, server bool) *primitives {
	p := &primitives{f: f, infoC2S: kdfInfo(protocol.LabelKeyC2S), infoS2C: kdfInfo(protocol.LabelKeyS2C), input: make([]byte, 0, 128)}
	share := handshake.HeaderSize + protocol.PublicKeySize
	if server {
		p.scalar, p.peerShare, p.peerPub = (*[32]byte)(&f.serverEph), f.m1[share:], f.m1[handshake.HeaderSize:share]
		p.sign = ed25519.NewKeyFromSeed(f.serverSeed[:])
		p.signLabel, p.verifyLabel, p.signAfter = protocol.LabelServerSig, protocol.LabelClientSig, 2
		p.peerSignature = f.m4[handshake.HeaderSize:]
	} else {
		p.scalar, p.peerShare, p.peerPub = (*[32]byte)(&f.clientEph), f.m2[share:], f.m2[handshake.HeaderSize:share]
		p.sign = ed25519.NewKeyFromSeed(f.clientSeed[:])
		p.signLabel, p.verifyLabel, p.signAfter = protocol.LabelClientSig, protocol.LabelServerSig, 3
		p.peerSignature = f.m3[handshake.HeaderSize:]
	}
	return p
}

// kdfInfo and signedInput repeat the key schedule's layouts
// (docs/PROTOCOL.md): label | version | suite(2) [| transcript hash].
func kdfInfo(label string) string {
	b := append([]byte(label), protocol.Version)
	return string(binary.BigEndian.AppendUint16(b, uint16(protocol.SuiteX25519Ed25519)))
}

func (p *primitives) signedInput(label string, th []byte) []byte {
	b := append(p.input[:0], label...)
	b = append(b, protocol.Version)
	b = binary.BigEndian.AppendUint16(b, uint16(protocol.SuiteX25519Ed25519))
	p.input = append(b, th...)
	return p.input
}

var errPrimitives = errors.New("primitives do not reproduce the recorded handshake")

// run performs what a side needs: X25519 key generation and one X25519,
// the transcript hashes with one Ed25519 signature and one verification,
// HKDF-SHA256 extract and two expands, and the HMAC-SHA256 of the Ready
// frame under a fresh key.
func (p *primitives) run() error {
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
	th, err := p.transcript()
	if err != nil {
		return err
	}
	return p.keysAndReady(shared, th[:])
}

// transcript hashes the messages, signing and verifying on the way.
func (p *primitives) transcript() ([protocol.HashSize]byte, error) {
	var th [protocol.HashSize]byte
	h := sha256.New()
	for i, m := range [][]byte{p.f.m1, p.f.m2, p.f.m3, p.f.m4} {
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
				return th, errPrimitives
			}
		}
	}
	return th, nil
}

func (p *primitives) keysAndReady(shared, th []byte) error {
	prk, err := hkdf.Extract(sha256.New, shared, th)
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
		return errPrimitives
	}
	return nil
}

// primitiveTimes are the cost of each side's primitives on one core.
type primitiveTimes struct{ client, server time.Duration }

// timePrimitives times both sides in windows short enough to fit in a
// scheduler slice, interleaved, and keeps each side's fastest window:
// other work on the machine can only slow a window down. It runs windows
// windows of about 2 ms per side.
func timePrimitives(windows int) (primitiveTimes, error) {
	f, err := recordFlow()
	if err != nil {
		return primitiveTimes{}, err
	}
	sides := []*primitives{newPrimitives(f, false), newPrimitives(f, true)}
	best := []float64{math.Inf(1), math.Inf(1)}
	const perWindow = 16 // ≈ 2 ms
	for range windows {
		for i, p := range sides {
			ns, err := window(p.run, perWindow)
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
	f, err := recordFlow()
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
		client, server := newPrimitives(f, false), newPrimitives(f, true)
		wg.Go(func() {
			for time.Now().Before(deadline) {
				if err := client.run(); err != nil {
					errs[w] = err
					return
				}
				if err := server.run(); err != nil {
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
