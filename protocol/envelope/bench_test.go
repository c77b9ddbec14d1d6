package envelope_test

// Benchmarks of sealing, opening and parsing group messages beside their
// bound, XChaCha20-Poly1305 used directly with an AEAD made once.

import (
	"bytes"
	"crypto/ed25519"
	"testing"

	"golang.org/x/crypto/chacha20poly1305"

	"github.com/commsec/communicator/protocol"
	"github.com/commsec/communicator/protocol/envelope"
	"github.com/commsec/communicator/protocol/keys"
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
	signer  *keys.SigningKey
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
	seed := [ed25519.SeedSize]byte{0x22}
	e.signer = keys.NewSigningKey(&seed)
	e.header.Group[0], e.header.Sender = 0x11, e.signer.Public()
	env, err := envelope.Seal(nil, e.header, &e.key, e.payload, e.signer, &e.nonce)
	if err != nil {
		tb.Fatal(err)
	}
	e.env = env
	return e
}

// BenchmarkSealSigned seals and signs a 256-byte payload with a fixed
// nonce source: a client's cost per message sent. Its bounds are
// BenchmarkXChaCha20Poly1305Seal256 plus BenchmarkRawEd25519Sign.
func BenchmarkSealSigned(b *testing.B) {
	e := newBenchEnvelope(b)
	dst := make([]byte, 0, envelope.Overhead+benchPayloadSize)
	b.SetBytes(benchPayloadSize)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := envelope.Seal(dst[:0], e.header, &e.key, e.payload, e.signer, &e.nonce); err != nil {
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
		if _, err := envelope.Seal(dst[:0], e.header, &e.key, e.payload, e.signer, nil); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkOpenSigned verifies and decrypts a 256-byte payload: a
// client's cost per message received. Its bounds are
// BenchmarkXChaCha20Poly1305Open256 plus BenchmarkRawEd25519Verify.
func BenchmarkOpenSigned(b *testing.B) {
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

// BenchmarkVerify is what a relay does with every envelope it may store:
// parse the header and check the sender's signature. Its bound is
// BenchmarkRawEd25519Verify.
func BenchmarkVerify(b *testing.B) {
	e := newBenchEnvelope(b)
	b.ReportAllocs()
	for b.Loop() {
		h, err := envelope.Verify(e.env)
		if err != nil {
			b.Fatal(err)
		}
		benchHeaderSink = h
	}
}

// BenchmarkRawEd25519Sign is crypto/ed25519.Sign over the same bytes an
// envelope's signature covers.
func BenchmarkRawEd25519Sign(b *testing.B) {
	e := newBenchEnvelope(b)
	priv := ed25519.NewKeyFromSeed([]byte{0x22, 31: 0})
	msg := envelope.SignatureInput(e.env)
	b.ReportAllocs()
	for b.Loop() {
		ed25519.Sign(priv, msg)
	}
}

// BenchmarkRawEd25519Verify is crypto/ed25519.Verify of the envelope's
// signature over the same bytes.
func BenchmarkRawEd25519Verify(b *testing.B) {
	e := newBenchEnvelope(b)
	msg := envelope.SignatureInput(e.env)
	sig := e.env[len(e.env)-envelope.SignatureSize:]
	b.ReportAllocs()
	for b.Loop() {
		if !ed25519.Verify(e.header.Sender[:], msg, sig) {
			b.Fatal("signature does not verify")
		}
	}
}

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

// BenchmarkXChaCha20Poly1305Seal256 with BenchmarkRawEd25519Sign is the bound of BenchmarkSealSigned: the
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

// BenchmarkXChaCha20Poly1305Open256 with BenchmarkRawEd25519Verify is the bound of
// BenchmarkOpenSigned.
func BenchmarkXChaCha20Poly1305Open256(b *testing.B) {
	e := newBenchEnvelope(b)
	aead, err := chacha20poly1305.NewX(e.key[:])
	if err != nil {
		b.Fatal(err)
	}
	ad := e.env[:envelope.HeaderSize]
	nonce := e.env[envelope.HeaderSize : envelope.HeaderSize+envelope.NonceSize]
	ct := e.env[envelope.HeaderSize+envelope.NonceSize : len(e.env)-envelope.SignatureSize]
	dst := make([]byte, 0, benchPayloadSize)
	b.SetBytes(benchPayloadSize)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := aead.Open(dst[:0], nonce, ct, ad); err != nil {
			b.Fatal(err)
		}
	}
}
