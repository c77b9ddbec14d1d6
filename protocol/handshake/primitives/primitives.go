// Package primitives replays the cryptographic operations of one side of
// a recorded handshake, and nothing else: the bound that the handshake's
// benchmarks (protocol/handshake's and cmd/commbench's) measure the state
// machines and the gateway against.
//
// Both ephemeral keys of the recording come from a FixedRand, so every
// handshake made from a Flow's keys repeats the same transcript, and the
// primitives can check their results against the recorded messages.
package primitives

import (
	"crypto/ecdh"
	"crypto/ed25519"
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/commsec/communicator/protocol"
	"github.com/commsec/communicator/protocol/channel"
	"github.com/commsec/communicator/protocol/handshake"
	"github.com/commsec/communicator/protocol/keys"
)

// FixedRand returns its 32 bytes again and again. As the source of an
// ephemeral key it makes every handshake the same.
type FixedRand [32]byte

func (r *FixedRand) Read(p []byte) (int, error) {
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

// Flow is one recorded handshake: the keys of both sides, both ephemeral
// scalars and every message, the server's Ready frame included.
type Flow struct {
	ClientSeed, ServerSeed [ed25519.SeedSize]byte
	Client, Server         *keys.SigningKey
	ClientEph, ServerEph   FixedRand
	M1, M2, M3, M4, Ready  []byte
}

// Record runs one handshake between fixed keys and records it.
func Record() (*Flow, error) {
	f := &Flow{ClientSeed: fixedBytes(0x10), ServerSeed: fixedBytes(0x20), ClientEph: fixedBytes(0x30), ServerEph: fixedBytes(0x40)}
	f.Client = keys.NewSigningKey(&f.ClientSeed)
	f.Server = keys.NewSigningKey(&f.ServerSeed)
	c := handshake.NewClientHandshake(f.Client, f.Server.Public(), &f.ClientEph)
	s := handshake.NewServerHandshake(f.Server, &f.ServerEph)
	var err error
	step := func(fn func() error) {
		if err == nil {
			err = fn()
		}
	}
	step(func() (e error) { f.M1, e = c.WriteM1(); return })
	step(func() error { return s.ReadM1(f.M1) })
	step(func() (e error) { f.M2, e = s.WriteM2(); return })
	step(func() (e error) { f.M3, e = s.WriteM3(); return })
	step(func() error { return c.ReadM2(f.M2) })
	step(func() error { return c.ReadM3(f.M3) })
	step(func() (e error) { f.M4, e = c.WriteM4(); return })
	step(func() error { return s.ReadM4(f.M4) })
	var sk, ck *channel.Keys
	step(func() (e error) { sk, e = s.Keys(); return })
	step(func() (e error) { ck, e = c.Keys(); return })
	step(func() (e error) { f.Ready, e = channel.NewSealer(&sk.S2C).Seal(nil, channel.TypeReady, nil); return })
	step(func() (e error) {
		_, e = channel.NewOpener(&ck.S2C, &ck.C2S, channel.ServerToClient).Open(f.Ready)
		return
	})
	if err != nil {
		return nil, fmt.Errorf("primitives: recording a handshake: %w", err)
	}
	return f, nil
}

// ErrMismatch is returned when the primitives do not reproduce the
// recorded handshake.
var ErrMismatch = errors.New("primitives: the primitives do not reproduce the recorded handshake")

// Side is one side's primitives on a recorded Flow.
type Side struct {
	f                      *Flow
	scalar                 *[32]byte // this side's ephemeral
	peerShare, peerPub     []byte    // the other side's X25519 share and identity
	sign                   ed25519.PrivateKey
	signLabel, verifyLabel string
	signAfter              int // the transcript hash this side signs: 2 = H(M1|M2), 3 = H(M1..M3)
	peerSignature          []byte
	infoC2S, infoS2C       string
	input                  []byte // reused buffer for a signed input
}

// NewSide returns the server's primitives of f if server, else the
// client's.
func NewSide(f *Flow, server bool) *Side {
	p := &Side{f: f, infoC2S: kdfInfo(protocol.LabelKeyC2S), infoS2C: kdfInfo(protocol.LabelKeyS2C), input: make([]byte, 0, 128)}
	share := handshake.HeaderSize + protocol.PublicKeySize
	if server {
		p.scalar, p.peerShare, p.peerPub = (*[32]byte)(&f.ServerEph), f.M1[share:], f.M1[handshake.HeaderSize:share]
		p.sign = ed25519.NewKeyFromSeed(f.ServerSeed[:])
		p.signLabel, p.verifyLabel, p.signAfter = protocol.LabelServerSig, protocol.LabelClientSig, 2
		p.peerSignature = f.M4[handshake.HeaderSize:]
	} else {
		p.scalar, p.peerShare, p.peerPub = (*[32]byte)(&f.ClientEph), f.M2[share:], f.M2[handshake.HeaderSize:share]
		p.sign = ed25519.NewKeyFromSeed(f.ClientSeed[:])
		p.signLabel, p.verifyLabel, p.signAfter = protocol.LabelClientSig, protocol.LabelServerSig, 3
		p.peerSignature = f.M3[handshake.HeaderSize:]
	}
	return p
}

// kdfInfo and signedInput repeat the key schedule's layouts
// (docs/PROTOCOL.md): label | version | suite(2) [| transcript hash].
func kdfInfo(label string) string {
	b := append([]byte(label), protocol.Version)
	return string(binary.BigEndian.AppendUint16(b, uint16(protocol.SuiteX25519Ed25519)))
}

func (p *Side) signedInput(label string, th []byte) []byte {
	b := append(p.input[:0], label...)
	b = append(b, protocol.Version)
	b = binary.BigEndian.AppendUint16(b, uint16(protocol.SuiteX25519Ed25519))
	p.input = append(b, th...)
	return p.input
}

// Run performs, in the order a side needs them: X25519 key generation
// and one X25519, the transcript hashes after M2, M3 and M4 with one
// Ed25519 signature and one verification in between, HKDF-SHA256
// extract and two expands, and the HMAC-SHA256 of the Ready frame under
// a fresh key.
func (p *Side) Run() error {
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
func (p *Side) transcript() ([protocol.HashSize]byte, error) {
	var th [protocol.HashSize]byte
	h := sha256.New()
	for i, m := range [4][]byte{p.f.M1, p.f.M2, p.f.M3, p.f.M4} {
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
				return th, ErrMismatch
			}
		}
	}
	return th, nil
}

func (p *Side) keysAndReady(shared, th []byte) error {
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
	n := len(p.f.Ready) - protocol.MACSize
	mac.Write(p.f.Ready[:n])
	if !hmac.Equal(mac.Sum(nil), p.f.Ready[n:]) {
		return ErrMismatch
	}
	return nil
}
