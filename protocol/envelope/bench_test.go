package envelope_test

// Benchmarks of sealing, opening and parsing group messages beside their
// bound, XChaCha20-Poly1305 used directly with an AEAD made once.

import (
	"bytes"
	"testing"

	"golang.org/x/crypto/chacha20poly1305"

	"github.com/commsec/communicator/protocol"
	"github.com/commsec/communicator/protocol/envelope"
)

const benchPayloadSize = 256

// benchNonce returns the same 24 bytes on every read. Reusing a nonce is
// harmless here (nothing is kept) and takes the random source out of the
// comparison with the bare AEAD; BenchmarkSeal256CryptoRand measures it.
type benchNonce [envelope.NonceSize]byte

func (n *benchNonce) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = n[i%len(n)]
	}
	return len(p), nil
}

type benchEnvelope struct {
	key     [protocol.GroupKeySize]byte
	header  envelope.Header
	payload []byte
	nonce   benchNonce
	env     []byte // the envelope of payload
}

func newBenchEnvelope(tb testing.TB) *benchEnvelope {
	tb.Helper()
	e := &benchEnvelope{
		header:  envelope.Header{Epoch: 7, Counter: 42},
		payload: bytes.Repeat([]byte{0xa5}, benchPayloadSize),
	}
	for i := range e.key {
		e.key[i] = byte(i)
	}
	for i := range e.nonce {
		e.nonce[i] = byte(0x40 + i)
	}
	e.header.Group[0], e.header.Sender[0] = 0x11, 0x22
	env, err := envelope.Seal(nil, e.header, &e.key, e.payload, &e.nonce)
	if err != nil {
		tb.Fatal(err)
	}
	e.env = env
	return e
}

// BenchmarkSeal256 seals a 256-byte payload with a fixed nonce source.
func BenchmarkSeal256(b *testing.B) {
	e := newBenchEnvelope(b)
	dst := make([]byte, 0, envelope.Overhead+benchPayloadSize)
	b.SetBytes(benchPayloadSize)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := envelope.Seal(dst[:0], e.header, &e.key, e.payload, &e.nonce); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkSeal256CryptoRand seals as a client does, with a nonce from
// crypto/rand.
func BenchmarkSeal256CryptoRand(b *testing.B) {
	e := newBenchEnvelope(b)
	dst := make([]byte, 0, envelope.Overhead+benchPayloadSize)
	b.SetBytes(benchPayloadSize)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := envelope.Seal(dst[:0], e.header, &e.key, e.payload, nil); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkOpen256 checks and decrypts a 256-byte payload.
func BenchmarkOpen256(b *testing.B) {
	e := newBenchEnvelope(b)
	dst := make([]byte, 0, benchPayloadSize)
	b.SetBytes(benchPayloadSize)
	b.ReportAllocs()
	for b.Loop() {
		if _, _, err := envelope.Open(dst[:0], e.env, &e.key); err != nil {
			b.Fatal(err)
		}
	}
}

var benchHeaderSink envelope.Header

// BenchmarkParseHeader is what a relay does with every envelope. It must
// not allocate.
func BenchmarkParseHeader(b *testing.B) {
	e := newBenchEnvelope(b)
	b.ReportAllocs()
	for b.Loop() {
		h, err := envelope.ParseHeader(e.env)
		if err != nil {
			b.Fatal(err)
		}
		benchHeaderSink = h
	}
}

// BenchmarkXChaCha20Poly1305Seal256 is the bound of BenchmarkSeal256: the
// same AEAD call on the same bytes.
func BenchmarkXChaCha20Poly1305Seal256(b *testing.B) {
	e := newBenchEnvelope(b)
	aead, err := chacha20poly1305.NewX(e.key[:])
	if err != nil {
		b.Fatal(err)
	}
	ad := e.env[:envelope.HeaderSize]
	nonce := e.nonce[:]
	dst := make([]byte, 0, benchPayloadSize+envelope.TagSize)
	b.SetBytes(benchPayloadSize)
	b.ReportAllocs()
	for b.Loop() {
		aead.Seal(dst[:0], nonce, e.payload, ad)
	}
}

// BenchmarkXChaCha20Poly1305Open256 is the bound of BenchmarkOpen256.
func BenchmarkXChaCha20Poly1305Open256(b *testing.B) {
	e := newBenchEnvelope(b)
	aead, err := chacha20poly1305.NewX(e.key[:])
	if err != nil {
		b.Fatal(err)
	}
	ad := e.env[:envelope.HeaderSize]
	nonce := e.env[envelope.HeaderSize : envelope.HeaderSize+envelope.NonceSize]
	ct := e.env[envelope.HeaderSize+envelope.NonceSize:]
	dst := make([]byte, 0, benchPayloadSize)
	b.SetBytes(benchPayloadSize)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := aead.Open(dst[:0], nonce, ct, ad); err != nil {
			b.Fatal(err)
		}
	}
}
