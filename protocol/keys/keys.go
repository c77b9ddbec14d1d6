// Package keys holds the long-term keys of the Communicator's parties and
// their files on disk.
//
// A client has two private keys: a signature key (Ed25519; its public half
// is the client's address, protocol.ClientID) and a key-wrap key (X25519;
// the keyserver wraps group keys to its public half with HPKE). Gateways,
// the keyserver and operators each have one Ed25519 signature key.
//
// Private key material lives in fixed-size arrays or in the standard
// library's key types; Wipe zeroes what this package holds. Go cannot
// guarantee that no copy remains elsewhere in memory, so wiping is best
// effort, as in wireguard-go.
package keys

import (
	"crypto/ecdh"
	"crypto/ed25519"
	"crypto/hpke"
	"crypto/rand"
	"fmt"
	"io"

	"filippo.io/edwards25519"

	"github.com/commsec/communicator/protocol"
)

// SigningKey is an Ed25519 private key. It cannot be compared with ==.
type SigningKey struct {
	priv ed25519.PrivateKey
	pub  [protocol.PublicKeySize]byte
}

// NewSigningKey makes the key whose RFC 8032 seed is seed.
func NewSigningKey(seed *[ed25519.SeedSize]byte) *SigningKey {
	k := &SigningKey{priv: ed25519.NewKeyFromSeed(seed[:])}
	copy(k.pub[:], k.priv[ed25519.SeedSize:])
	return k
}

// GenerateSigningKey makes a fresh key from r (crypto/rand if nil).
func GenerateSigningKey(r io.Reader) (*SigningKey, error) {
	var seed [ed25519.SeedSize]byte
	defer clear(seed[:])
	if err := readRandom(r, seed[:]); err != nil {
		return nil, err
	}
	return NewSigningKey(&seed), nil
}

// Public returns the public key.
func (k *SigningKey) Public() [protocol.PublicKeySize]byte { return k.pub }

// Seed returns a copy of the private seed; the caller wipes it.
func (k *SigningKey) Seed() [ed25519.SeedSize]byte {
	var s [ed25519.SeedSize]byte
	copy(s[:], k.priv[:ed25519.SeedSize]) // priv.Seed() would leave an unwiped copy on the heap
	return s
}

// Sign signs msg (pure Ed25519).
func (k *SigningKey) Sign(msg []byte) [protocol.SignatureSize]byte {
	var sig [protocol.SignatureSize]byte
	copy(sig[:], ed25519.Sign(k.priv, msg))
	return sig
}

// Wipe zeroes the private key; the key is unusable afterwards.
func (k *SigningKey) Wipe() {
	clear(k.priv)
	k.priv = nil
}

// Verify reports whether sig is pub's signature over msg, by the strict
// rule of PROTOCOL.md §2.2: RFC 8032's cofactorless equation with S below
// the group order (crypto/ed25519), a public key that is the canonical
// encoding of a point not of small order (ValidPublicKey), and an R not of
// small order. This is what libsodium's crypto_sign_verify_detached
// accepts. Without the last two checks the identity point as public key
// with the constant signature (R = identity, S = 0) verifies for every
// message: anyone could sign in that "sender's" name.
func Verify(pub *[protocol.PublicKeySize]byte, msg []byte, sig *[protocol.SignatureSize]byte) bool {
	if !ValidPublicKey(pub) || smallOrder(sig[:32]) {
		return false
	}
	return ed25519.Verify(pub[:], msg, sig[:])
}

// ValidPublicKey reports whether pub is the canonical encoding of a point
// of the curve that is not of small order: the only Ed25519 public keys
// the protocol accepts, as ClientIDs and as signers (§2.2, §2.3).
func ValidPublicKey(pub *[protocol.PublicKeySize]byte) bool {
	p, err := new(edwards25519.Point).SetBytes(pub[:])
	if err != nil || [protocol.PublicKeySize]byte(p.Bytes()) != *pub {
		return false
	}
	return !isSmallOrder(p)
}

// smallOrder reports whether b encodes a point of small order. An
// encoding that is no point is not: the equation fails on it anyway.
func smallOrder(b []byte) bool {
	p, err := new(edwards25519.Point).SetBytes(b)
	return err == nil && isSmallOrder(p)
}

func isSmallOrder(p *edwards25519.Point) bool {
	return new(edwards25519.Point).MultByCofactor(p).Equal(edwards25519.NewIdentityPoint()) == 1
}

// WrapKey is an X25519 private key that opens HPKE-wrapped group keys.
type WrapKey struct {
	priv *ecdh.PrivateKey
	hpke hpke.PrivateKey
	pub  [protocol.PublicKeySize]byte
}

// NewWrapKey makes the key with the given 32-byte X25519 scalar.
func NewWrapKey(scalar *[32]byte) (*WrapKey, error) {
	priv, err := ecdh.X25519().NewPrivateKey(scalar[:])
	if err != nil {
		return nil, fmt.Errorf("keys: wrap key: %w", err)
	}
	hp, err := hpke.NewDHKEMPrivateKey(priv)
	if err != nil {
		return nil, fmt.Errorf("keys: wrap key: %w", err)
	}
	k := &WrapKey{priv: priv, hpke: hp}
	copy(k.pub[:], priv.PublicKey().Bytes())
	return k, nil
}

// GenerateWrapKey makes a fresh key from r (crypto/rand if nil).
func GenerateWrapKey(r io.Reader) (*WrapKey, error) {
	var scalar [32]byte
	defer clear(scalar[:])
	if err := readRandom(r, scalar[:]); err != nil {
		return nil, err
	}
	return NewWrapKey(&scalar)
}

// Public returns the X25519 public key.
func (k *WrapKey) Public() [protocol.PublicKeySize]byte { return k.pub }

// HPKE returns the key as an HPKE recipient key.
func (k *WrapKey) HPKE() hpke.PrivateKey { return k.hpke }

// scalar returns a copy of the private scalar; the caller wipes it.
func (k *WrapKey) scalar() [32]byte {
	var s [32]byte
	copy(s[:], k.priv.Bytes())
	return s
}

// Wipe drops the key. The standard library's ecdh.PrivateKey cannot be
// zeroed from outside, so this only drops the references (best effort).
func (k *WrapKey) Wipe() {
	k.priv = nil
	k.hpke = nil
}

// ClientIdentity is everything secret a client holds long-term.
type ClientIdentity struct {
	Sig  *SigningKey
	Wrap *WrapKey
}

// GenerateClientIdentity makes a fresh identity from r (crypto/rand if nil).
func GenerateClientIdentity(r io.Reader) (*ClientIdentity, error) {
	sig, err := GenerateSigningKey(r)
	if err != nil {
		return nil, err
	}
	wrap, err := GenerateWrapKey(r)
	if err != nil {
		return nil, err
	}
	return &ClientIdentity{Sig: sig, Wrap: wrap}, nil
}

// ID returns the client's address.
func (c *ClientIdentity) ID() protocol.ClientID { return protocol.ClientID(c.Sig.Public()) }

// Public returns what the operator registers at the keyserver.
func (c *ClientIdentity) Public() ClientPublic {
	return ClientPublic{ID: c.ID(), Wrap: c.Wrap.Public()}
}

// Wipe wipes both keys.
func (c *ClientIdentity) Wipe() {
	c.Sig.Wipe()
	c.Wrap.Wipe()
}

// ClientPublic is a client's public half: its address and key-wrap key.
type ClientPublic struct {
	ID   protocol.ClientID
	Wrap [protocol.PublicKeySize]byte
}

func readRandom(r io.Reader, b []byte) error {
	if r == nil {
		r = rand.Reader
	}
	if _, err := io.ReadFull(r, b); err != nil {
		return fmt.Errorf("keys: reading randomness: %w", err)
	}
	return nil
}
