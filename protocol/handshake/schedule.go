package handshake

import (
	"crypto/ecdh"
	"crypto/hkdf"
	"crypto/sha256"
	"encoding/binary"
	"hash"
	"io"

	"github.com/commsec/communicator/protocol"
	"github.com/commsec/communicator/protocol/channel"
	"github.com/commsec/communicator/protocol/keys"
)

// transcript is the running SHA-256 of the handshake messages.
type transcript struct{ h hash.Hash }

func newTranscript() transcript { return transcript{h: sha256.New()} }

func (t transcript) add(msg []byte) { t.h.Write(msg) }

// sum returns the hash of the messages added so far; adding may go on.
func (t transcript) sum() [protocol.HashSize]byte {
	var s [protocol.HashSize]byte
	t.h.Sum(s[:0])
	return s
}

// signedInput is label | version | suite(2) | transcript hash: what M3 and
// M4 sign.
func signedInput(label string, th *[protocol.HashSize]byte) []byte {
	b := make([]byte, 0, len(label)+3+protocol.HashSize)
	b = append(b, label...)
	b = append(b, protocol.Version)
	b = binary.BigEndian.AppendUint16(b, uint16(protocol.SuiteX25519Ed25519))
	return append(b, th[:]...)
}

func kdfInfo(label string) string {
	var vs [3]byte
	vs[0] = protocol.Version
	binary.BigEndian.PutUint16(vs[1:], uint16(protocol.SuiteX25519Ed25519))
	return label + string(vs[:])
}

// deriveKeys is the key schedule: HKDF-SHA256 with the X25519 result as
// input keying material and the hash of M1..M4 as salt, expanded once per
// direction.
func deriveKeys(shared, th4 *[32]byte) (*channel.Keys, error) {
	prk, err := hkdf.Extract(sha256.New, shared[:], th4[:])
	if err != nil {
		return nil, err
	}
	defer clear(prk)
	k := new(channel.Keys)
	if err := expand(k.C2S[:], prk, protocol.LabelKeyC2S); err != nil {
		return nil, err
	}
	if err := expand(k.S2C[:], prk, protocol.LabelKeyS2C); err != nil {
		k.Wipe()
		return nil, err
	}
	return k, nil
}

func expand(dst, prk []byte, label string) error {
	out, err := hkdf.Expand(sha256.New, prk, kdfInfo(label), len(dst))
	if err != nil {
		return err
	}
	copy(dst, out)
	clear(out)
	return nil
}

// ephemeral is one side's fresh X25519 key pair.
type ephemeral struct {
	priv *ecdh.PrivateKey
	pub  [protocol.PublicKeySize]byte
}

// newEphemeral reads a 32-byte scalar from r (crypto/rand if nil).
func newEphemeral(r io.Reader) (*ephemeral, error) {
	var scalar [32]byte
	defer clear(scalar[:])
	if r == nil {
		r = randReader
	}
	if _, err := io.ReadFull(r, scalar[:]); err != nil {
		return nil, err
	}
	priv, err := ecdh.X25519().NewPrivateKey(scalar[:])
	if err != nil {
		return nil, err
	}
	e := &ephemeral{priv: priv}
	copy(e.pub[:], priv.PublicKey().Bytes())
	return e, nil
}

// agree computes the X25519 result with the peer's share, refusing a
// malformed share and an all-zero result.
func (e *ephemeral) agree(peer *[32]byte) ([32]byte, error) {
	var shared [32]byte
	if !canonicalX25519(peer) {
		return shared, protocol.ErrNonCanonicalPoint
	}
	pub, err := ecdh.X25519().NewPublicKey(peer[:])
	if err != nil {
		return shared, protocol.ErrNonCanonicalPoint
	}
	// crypto/ecdh returns an error for an all-zero result (a low-order share).
	out, err := e.priv.ECDH(pub)
	if err != nil {
		return shared, protocol.ErrLowOrderPoint
	}
	copy(shared[:], out)
	clear(out)
	return shared, nil
}

// wipe drops the private key (best effort: ecdh keys cannot be zeroed).
func (e *ephemeral) wipe() {
	if e != nil {
		e.priv = nil
	}
}

func verify(pub *[32]byte, label string, th *[32]byte, sig *[64]byte) bool {
	return keys.Verify(pub, signedInput(label, th), sig)
}
