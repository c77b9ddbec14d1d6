// Package envelope seals and opens group messages. The metadata a relay
// needs (group, epoch, sender, counter) stays in the clear and is the
// associated data of the XChaCha20-Poly1305 payload, so it cannot be
// altered without the group key. The group key authenticates the group,
// not the member: every envelope is also signed by its sender's identity
// key (the sender's ClientID is its Ed25519 public key), so no holder of
// the group key can seal in another member's name.
//
// Layout (integers big-endian; PROTOCOL.md §6.1):
//
//	version     1  protocol.Version (2)
//	group      16  protocol.GroupID
//	epoch       4  protocol.Epoch
//	sender     32  protocol.ClientID (Ed25519 public key)
//	counter     8  per (group, sender), never 0
//	nonce      24  random
//	ciphertext  n  XChaCha20-Poly1305(group key, nonce, payload, ad = version..counter), n = len(payload)+16
//	signature  64  Ed25519(sender, LabelEnvelopeSig | version | suite | version..ciphertext)
//
// A reader checks lengths and fields (ParseHeader), then the signature
// (Verify), and only then opens the AEAD (Open does all three, in that
// order).
package envelope

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"io"
	"math"
	"sync"

	"golang.org/x/crypto/chacha20poly1305"

	"github.com/commsec/communicator/protocol"
)

// Sizes.
const (
	Version       byte = protocol.Version
	HeaderSize         = 1 + protocol.GroupIDSize + 4 + protocol.PublicKeySize + 8
	NonceSize          = chacha20poly1305.NonceSizeX
	TagSize            = chacha20poly1305.Overhead
	SignatureSize      = protocol.SignatureSize
	Overhead           = HeaderSize + NonceSize + TagSize + SignatureSize
	MaxSize            = Overhead + protocol.MaxPayload
)

// Signer signs envelopes: a client's identity key (keys.SigningKey).
// Public is the ClientID the envelopes it signs must name as sender.
type Signer interface {
	Public() [protocol.PublicKeySize]byte
	Sign(msg []byte) [protocol.SignatureSize]byte
}

// Header is an envelope's clear metadata.
type Header struct {
	Group   protocol.GroupID
	Epoch   protocol.Epoch
	Sender  protocol.ClientID
	Counter uint64
}

// Append appends the header's wire form (the associated data) to dst.
func (h *Header) Append(dst []byte) []byte {
	dst = append(dst, Version)
	dst = append(dst, h.Group[:]...)
	dst = binary.BigEndian.AppendUint32(dst, uint32(h.Epoch))
	dst = append(dst, h.Sender[:]...)
	return binary.BigEndian.AppendUint64(dst, h.Counter)
}

// ParseHeader checks an envelope's length and version and returns its
// metadata without any cryptography. It does not allocate. It does not
// check the signature: Verify does.
func ParseHeader(env []byte) (Header, error) {
	if len(env) < Overhead || len(env) > MaxSize {
		return Header{}, protocol.ErrEnvelopeLength
	}
	if env[0] != Version {
		return Header{}, protocol.ErrEnvelopeVersion
	}
	var h Header
	b := env[1:]
	copy(h.Group[:], b)
	b = b[protocol.GroupIDSize:]
	h.Epoch = protocol.Epoch(binary.BigEndian.Uint32(b))
	copy(h.Sender[:], b[4:])
	h.Counter = binary.BigEndian.Uint64(b[4+protocol.PublicKeySize:])
	if h.Counter == 0 {
		return Header{}, protocol.ErrZeroCounter
	}
	if h.Epoch == 0 || h.Epoch == math.MaxUint32 {
		return Header{}, protocol.ErrBadEpoch
	}
	return h, nil
}

// sigPrefixSize is the part of the signature input before the envelope's
// bytes: the label, the version and the suite.
const sigPrefixSize = len(protocol.LabelEnvelopeSig) + 1 + 2

// sigInputs recycles signature inputs: an envelope may be 60 KiB.
var sigInputs = sync.Pool{New: func() any { b := make([]byte, 0, sigPrefixSize+MaxSize); return &b }}

// signedInput appends the signature input of signed (the envelope up to
// its signature) to dst: LabelEnvelopeSig | version | uint16(suite) |
// signed.
func signedInput(dst, signed []byte) []byte {
	dst = append(dst, protocol.LabelEnvelopeSig...)
	dst = append(dst, Version)
	dst = binary.BigEndian.AppendUint16(dst, uint16(protocol.SuiteX25519Ed25519))
	return append(dst, signed...)
}

// SignatureInput returns the bytes an envelope's signature covers, for
// the vectors and for other implementations' tests. env must be at least
// SignatureSize long.
func SignatureInput(env []byte) []byte {
	return signedInput(nil, env[:len(env)-SignatureSize])
}

// Verify checks env's length and fields (ParseHeader), then its signature
// under the ClientID it names as sender. It needs no group key: it is
// what a relay checks, and what a client checks before it opens or counts
// the message. On failure it returns no header.
func Verify(env []byte) (Header, error) {
	h, err := ParseHeader(env)
	if err != nil {
		return Header{}, err
	}
	bp := sigInputs.Get().(*[]byte)
	msg := signedInput((*bp)[:0], env[:len(env)-SignatureSize])
	ok := ed25519.Verify(h.Sender[:], msg, env[len(env)-SignatureSize:])
	*bp = msg[:0]
	sigInputs.Put(bp)
	if !ok {
		return Header{}, protocol.ErrBadEnvelopeSignature
	}
	return h, nil
}

// Seal appends the envelope of payload under key, signed by signer, to
// dst. signer must be h.Sender's key (ErrWrongSigner). The nonce is read
// from r (crypto/rand if nil): random nonces mean a rebooted client
// cannot reuse one.
func Seal(dst []byte, h Header, key *[protocol.GroupKeySize]byte, payload []byte, signer Signer, r io.Reader) ([]byte, error) {
	if len(payload) > protocol.MaxPayload {
		return dst, protocol.ErrPayloadTooLarge
	}
	if h.Counter == 0 {
		return dst, protocol.ErrZeroCounter
	}
	if h.Epoch == 0 || h.Epoch == math.MaxUint32 {
		return dst, protocol.ErrBadEpoch
	}
	if signer == nil || signer.Public() != h.Sender {
		return dst, protocol.ErrWrongSigner
	}
	aead, err := chacha20poly1305.NewX(key[:])
	if err != nil {
		return dst, fmt.Errorf("envelope: %w", err)
	}
	start := len(dst)
	dst = h.Append(dst)
	ad := dst[start:]
	dst = append(dst, make([]byte, NonceSize)...)
	nonce := dst[len(dst)-NonceSize:]
	if r == nil {
		r = rand.Reader
	}
	if _, err := io.ReadFull(r, nonce); err != nil {
		return dst[:start], fmt.Errorf("envelope: reading nonce: %w", err)
	}
	dst = aead.Seal(dst, nonce, payload, ad)
	bp := sigInputs.Get().(*[]byte)
	msg := signedInput((*bp)[:0], dst[start:])
	sig := signer.Sign(msg)
	clear(msg) // the payload's ciphertext only, but keep the pool clean
	*bp = msg[:0]
	sigInputs.Put(bp)
	return append(dst, sig[:]...), nil
}

// Open checks env (ParseHeader), verifies its sender's signature (Verify)
// and then, if it is authentic under key, appends its payload to dst. On
// any failure it returns no payload.
func Open(dst []byte, env []byte, key *[protocol.GroupKeySize]byte) (Header, []byte, error) {
	h, err := Verify(env)
	if err != nil {
		return Header{}, nil, err
	}
	out, err := OpenVerified(dst, env, key)
	if err != nil {
		return Header{}, nil, err
	}
	return h, out, nil
}

// OpenVerified opens the AEAD of an envelope that Verify has accepted,
// appending its payload to dst; it does not check the signature again.
// Callers that verify apart from opening (a client checks its state in
// between) use it; everyone else uses Open.
func OpenVerified(dst []byte, env []byte, key *[protocol.GroupKeySize]byte) ([]byte, error) {
	if len(env) < Overhead || len(env) > MaxSize {
		return nil, protocol.ErrEnvelopeLength
	}
	aead, err := chacha20poly1305.NewX(key[:])
	if err != nil {
		return nil, fmt.Errorf("envelope: %w", err)
	}
	nonce := env[HeaderSize : HeaderSize+NonceSize]
	out, err := aead.Open(dst, nonce, env[HeaderSize+NonceSize:len(env)-SignatureSize], env[:HeaderSize])
	if err != nil {
		return nil, protocol.ErrDecrypt
	}
	return out, nil
}
