package keys

import (
	"crypto/rand"
	"testing"

	"filippo.io/edwards25519"
)

// TestSmallOrderBytesAgreeWithTheCurve: the byte comparison that Verify
// uses says "small order" exactly for the encodings that decode to a
// point of small order, over the torsion points with both sign bits,
// their aliases y + p, and random points with and without a torsion
// component.
func TestSmallOrderBytesAgreeWithTheCurve(t *testing.T) {
	identity := edwards25519.NewIdentityPoint()
	onCurve := func(b []byte) (small, ok bool) {
		p, err := new(edwards25519.Point).SetBytes(b)
		if err != nil {
			return false, false
		}
		return new(edwards25519.Point).MultByCofactor(p).Equal(identity) == 1, true
	}
	check := func(b []byte) {
		t.Helper()
		small, ok := onCurve(b)
		if ok && small != smallOrder(b) {
			t.Errorf("%x: the curve says small order %v, the bytes %v", b, small, smallOrder(b))
		}
		if !ok && smallOrder(b) {
			t.Errorf("%x: no point, but taken for one of small order", b)
		}
	}
	var torsion []*edwards25519.Point
	for _, y := range smallOrderY {
		for _, sign := range []byte{0, 0x80} {
			b := y
			b[31] |= sign
			check(b[:])
			if p, err := new(edwards25519.Point).SetBytes(b[:]); err == nil {
				torsion = append(torsion, p)
			}
		}
	}
	for i := range 2000 {
		var seed [64]byte
		rand.Read(seed[:])
		s, _ := edwards25519.NewScalar().SetUniformBytes(seed[:])
		p := new(edwards25519.Point).ScalarBaseMult(s)
		if i%2 == 1 {
			p.Add(p, torsion[i%len(torsion)])
		}
		check(p.Bytes())
		var junk [32]byte
		rand.Read(junk[:])
		check(junk[:])
	}
}
