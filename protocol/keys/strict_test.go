package keys_test

import (
	"crypto/ed25519"
	"encoding/hex"
	"testing"

	"filippo.io/edwards25519"

	"github.com/commsec/communicator/protocol"
	"github.com/commsec/communicator/protocol/keys"
)

// smallOrderPoints are the eight points of the curve's torsion subgroup,
// as multiples of a point of order 8.
func smallOrderPoints(t *testing.T) [][protocol.PublicKeySize]byte {
	t.Helper()
	b, _ := hex.DecodeString("c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a")
	g, err := new(edwards25519.Point).SetBytes(b)
	if err != nil {
		t.Fatal(err)
	}
	var out [][protocol.PublicKeySize]byte
	p := edwards25519.NewIdentityPoint()
	for range 8 {
		out = append(out, [protocol.PublicKeySize]byte(p.Bytes()))
		p = new(edwards25519.Point).Add(p, g)
	}
	if p.Equal(edwards25519.NewIdentityPoint()) != 1 {
		t.Fatal("the generator is not of order 8")
	}
	return out
}

// TestVerifyIsStrict: every small-order public key is refused (for the
// identity, a signature crypto/ed25519 accepts for any message needs no
// private key), so are non-canonical encodings and an R of small order,
// while an honest signature still verifies.
func TestVerifyIsStrict(t *testing.T) {
	msg := []byte("wire 1M to bob")
	for i, pub := range smallOrderPoints(t) {
		if keys.ValidPublicKey(&pub) {
			t.Errorf("small-order point %d (%x) accepted as a public key", i, pub)
		}
	}
	identity := [protocol.PublicKeySize]byte{1}
	constant := [protocol.SignatureSize]byte{1} // R = identity, S = 0
	if !ed25519.Verify(identity[:], msg, constant[:]) {
		t.Fatal("crypto/ed25519 no longer accepts the identity's constant signature: revisit this test")
	}
	if keys.Verify(&identity, msg, &constant) {
		t.Error("the identity point's constant signature verified")
	}

	k, err := keys.GenerateSigningKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	pub := k.Public()
	sig := k.Sign(msg)
	if !keys.ValidPublicKey(&pub) || !keys.Verify(&pub, msg, &sig) {
		t.Fatal("an honest signature does not verify")
	}
	// The same y with the sign bit flipped is another point, canonical.
	// y + p, where it fits in 255 bits, is a non-canonical encoding.
	nonCanonical := [protocol.PublicKeySize]byte{0xee, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
		0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f} // p + 1: y = 1
	if keys.ValidPublicKey(&nonCanonical) {
		t.Error("p + 1, a non-canonical encoding of the identity, accepted")
	}
	// y + p for a small y whose point is not of small order: a
	// non-canonical encoding that crypto/ed25519 would decode.
	tested := 0
	for y := byte(2); y < 19; y++ {
		canonical := [protocol.PublicKeySize]byte{y}
		if !keys.ValidPublicKey(&canonical) {
			continue // no point has this y, or it is of small order
		}
		alias := [protocol.PublicKeySize]byte{0xed + y}
		for i := 1; i < 31; i++ {
			alias[i] = 0xff
		}
		alias[31] = 0x7f
		if _, err := new(edwards25519.Point).SetBytes(alias[:]); err != nil {
			t.Fatalf("y = %d + p does not decode: %v", y, err)
		}
		if keys.ValidPublicKey(&alias) {
			t.Errorf("y = %d + p, a non-canonical encoding, accepted", y)
		}
		tested++
	}
	if tested == 0 {
		t.Fatal("no non-canonical encoding of a valid point was tested")
	}
	// An R of small order with an honest key: not a signature.
	for _, r := range smallOrderPoints(t) {
		forged := sig
		copy(forged[:32], r[:])
		if keys.Verify(&pub, msg, &forged) {
			t.Errorf("a signature with R of small order %x verified", r)
		}
	}
}
