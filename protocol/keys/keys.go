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
	"encoding/hex"
	"fmt"
	"io"
	"slices"

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
	if !canonicalY(pub[:]) || smallOrder(pub[:]) || smallOrder(sig[:32]) {
		return false // a y that is no point's fails in ed25519.Verify
	}
	return ed25519.Verify(pub[:], msg, sig[:])
}

// ValidPublicKey reports whether pub is the canonical encoding of a point
// of the curve that is not of small order: the only Ed25519 public keys
// the protocol accepts, as ClientIDs and as signers (§2.2, §2.3).
func ValidPublicKey(pub *[protocol.PublicKeySize]byte) bool {
	if !canonicalY(pub[:]) || smallOrder(pub[:]) {
		return false
	}
	_, err := new(edwards25519.Point).SetBytes(pub[:])
	return err == nil
}

// canonicalY reports whether b's y (b without its sign bit) is below
// p = 2^255 - 19.
func canonicalY(b []byte) bool {
	if b[31]&0x7f != 0x7f || b[0] < 0xed {
		return true
	}
	for _, c := range b[1:31] {
		if c != 0xff {
			return true
		}
	}
	return false
}

// smallOrder reports whether b encodes, with either sign bit, a point of
// small order: its y (sign bit masked) is one of the torsion points' y or
// one of their non-canonical aliases y + p. This is libsodium's
// ge25519_has_small_order; a byte comparison costs nothing beside the
// point decompression it replaces (about a fifth of a verification).
func smallOrder(b []byte) bool {
	y := [32]byte(b)
	y[31] &= 0x7f
	for _, bad := range smallOrderY {
		if y == bad {
			return true
		}
	}
	return false
}

// smallOrderY are the y of the eight points of small order (five
// values: 1, p - 1, 0 and the two of the points of order 8), and the
// aliases 0 + p and 1 + p that fit in 255 bits, each with the sign bit
// clear. They are computed, not typed in: the multiples of a point of
// order 8, whose order is checked.
var smallOrderY = func() [][32]byte {
	enc, _ := hex.DecodeString("c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a")
	g, err := new(edwards25519.Point).SetBytes(enc)
	identity := edwards25519.NewIdentityPoint()
	if err != nil || new(edwards25519.Point).MultByCofactor(g).Equal(identity) != 1 {
		panic("keys: the point of order 8 is not")
	}
	var ys [][32]byte
	add := func(y [32]byte) {
		y[31] &= 0x7f
		if !slices.Contains(ys, y) {
			ys = append(ys, y)
		}
	}
	p := edwards25519.NewIdentityPoint()
	for range 8 {
		add([32]byte(p.Bytes()))
		p.Add(p, g)
	}
	if p.Equal(identity) != 1 || len(ys) != 5 {
		panic("keys: the torsion points are not eight")
	}
	prime := [32]byte{0xed}
	for i := 1; i < 31; i++ {
		prime[i] = 0xff
	}
	prime[31] = 0x7f
	aliasOf1 := prime
	aliasOf1[0]++
	return append(ys, prime, aliasOf1)
}()

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
