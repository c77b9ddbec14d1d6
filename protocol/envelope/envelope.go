// Package envelope seals and opens group messages. The metadata a relay
// needs (group, epoch, sender, counter) stays in the clear and is the
// associated data of the XChaCha20-Poly1305 payload, so it cannot be
// altered without the group key.
//
// Layout (integers big-endian):
//
//	version     1  1
//	group      16  protocol.GroupID
//	epoch       4  protocol.Epoch
//	sender     32  protocol.ClientID (Ed25519 public key)
//	counter     8  per (group, sender), strictly increasing, never 0
//	nonce      24  random
//	ciphertext  n  XChaCha20-Poly1305(group key, nonce, payload, ad = version..counter), n = len(payload)+16
package envelope

import (
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"io"
	"math"

	"golang.org/x/crypto/chacha20poly1305"

	"github.com/commsec/communicator/protocol"
)

// Sizes.
const (
	Version    byte = 1
	HeaderSize      = 1 + protocol.GroupIDSize + 4 + protocol.PublicKeySize + 8
	NonceSize       = chacha20poly1305.NonceSizeX
	TagSize         = chacha20poly1305.Overhead
	Overhead        = HeaderSize + NonceSize + TagSize
	MaxSize         = Overhead + protocol.MaxPayload
)

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
// metadata without any cryptography: what a relay needs. It does not
// allocate.
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

// Seal appends the envelope of payload under key to dst. The nonce is read
// from r (crypto/rand if nil): random nonces mean a rebooted client cannot
// reuse one.
func Seal(dst []byte, h Header, key *[protocol.GroupKeySize]byte, payload []byte, r io.Reader) ([]byte, error) {
	if len(payload) > protocol.MaxPayload {
		return dst, protocol.ErrPayloadTooLarge
	}
	if h.Counter == 0 {
		return dst, protocol.ErrZeroCounter
	}
	if h.Epoch == 0 || h.Epoch == math.MaxUint32 {
		return dst, protocol.ErrBadEpoch
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
	return aead.Seal(dst, nonce, payload, ad), nil
}

// Open checks env and, if it is authentic under key, appends its payload to
// dst. On any failure it returns no payload.
func Open(dst []byte, env []byte, key *[protocol.GroupKeySize]byte) (Header, []byte, error) {
	h, err := ParseHeader(env)
	if err != nil {
		return Header{}, nil, err
	}
	aead, err := chacha20poly1305.NewX(key[:])
	if err != nil {
		return Header{}, nil, fmt.Errorf("envelope: %w", err)
	}
	nonce := env[HeaderSize : HeaderSize+NonceSize]
	out, err := aead.Open(dst, nonce, env[HeaderSize+NonceSize:], env[:HeaderSize])
	if err != nil {
		return Header{}, nil, protocol.ErrDecrypt
	}
	return h, out, nil
}
