package bundle_test

import (
	"bytes"
	"errors"
	"testing"

	"github.com/commsec/communicator/protocol"
	"github.com/commsec/communicator/protocol/bundle"
	"github.com/commsec/communicator/protocol/keys"
)

// Fixed parties. Every seed wraps fuzzGroupKey, so every bundle the fixed
// keyserver ever signed for self (even in an earlier run, since HPKE
// encapsulation is random) opens to it.
var (
	fuzzKeyserver = signingKey(0x4b)
	fuzzOtherKS   = signingKey(0x4f)
	fuzzSelf      = identity(0x53)
	fuzzOther     = identity(0x6f)
	fuzzGroupKey  = [protocol.GroupKeySize]byte{0x67, 0x6b}
)

func signingKey(b byte) *keys.SigningKey {
	seed := [32]byte{b, b}
	return keys.NewSigningKey(&seed)
}

func identity(b byte) *keys.ClientIdentity {
	scalar := [32]byte{b, 0x77}
	wrap, err := keys.NewWrapKey(&scalar)
	if err != nil {
		panic(err)
	}
	return &keys.ClientIdentity{Sig: signingKey(b), Wrap: wrap}
}

// resign replaces data's signature with the fixed keyserver's signature
// over the rest, so the fuzzer can reach the checks behind it.
func resign(data []byte) []byte {
	n := bundle.Size - protocol.SignatureSize
	if len(data) != bundle.Size {
		return data
	}
	sig := fuzzKeyserver.Sign(append([]byte(protocol.LabelBundleSig), data[:n]...))
	return append(bytes.Clone(data[:n]), sig[:]...)
}

func seedBundles(tb testing.TB) [][]byte {
	members := bundle.MemberDigest([]protocol.ClientID{fuzzSelf.ID(), fuzzOther.ID()})
	wrap := func(signer *keys.SigningKey, to *keys.ClientIdentity, epoch protocol.Epoch) []byte {
		r := bundle.Recipient{ID: to.ID(), Wrap: to.Wrap.Public()}
		b, err := bundle.Wrap(signer, protocol.GroupID{0x67}, epoch, r, &members, &fuzzGroupKey)
		if err != nil {
			tb.Fatal(err)
		}
		return b.Marshal()
	}
	good := wrap(fuzzKeyserver, fuzzSelf, 1)
	badWrap := bytes.Clone(good)
	badWrap[bundle.Size-protocol.SignatureSize-1] ^= 1
	return [][]byte{
		good,
		wrap(fuzzKeyserver, fuzzSelf, 0xfffffff0),
		wrap(fuzzKeyserver, fuzzOther, 1), // another member's
		wrap(fuzzOtherKS, fuzzSelf, 1),    // signed by another keyserver
		resign(badWrap),                   // signed, but the wrapped key is altered
	}
}

// variants returns b and damaged copies: truncated, extended, bit-flipped.
func variants(b []byte) [][]byte {
	out := [][]byte{b, nil}
	if len(b) > 0 {
		out = append(out, b[:len(b)-1], b[:len(b)/2])
	}
	out = append(out, append(bytes.Clone(b), 0))
	for _, i := range []int{0, 1, 17, 21, 53, 85, 117, 165, len(b) - 1} {
		if i >= 0 && i < len(b) {
			c := bytes.Clone(b)
			c[i] ^= 0x01
			out = append(out, c)
		}
	}
	return out
}

// FuzzParse checks that Parse accepts only canonical bundles (Marshal
// gives the input back) and returns nothing on failure, and that Open with
// the fixed identity and keyserver key never panics, returns no key on
// failure, and succeeds only on a bundle the keyserver signed for self,
// yielding the group key wrapped in it. With resign set the input is
// signed by the keyserver first.
func FuzzParse(f *testing.F) {
	for _, b := range seedBundles(f) {
		for _, v := range variants(b) {
			f.Add(v, false)
		}
		f.Add(b, true)
	}
	ks := fuzzKeyserver.Public()
	f.Fuzz(func(t *testing.T, data []byte, sign bool) {
		if sign {
			data = resign(data)
		}
		b, err := bundle.Parse(data)
		if err != nil {
			if b != nil {
				t.Fatalf("Parse(%x) failed (%v) but returned a bundle", data, err)
			}
			return
		}
		if got := b.Marshal(); !bytes.Equal(got, data) {
			t.Fatalf("Parse(%x) is not canonical: Marshal gives %x", data, got)
		}
		key, err := b.Open(&ks, fuzzSelf)
		if err != nil {
			if key != ([protocol.GroupKeySize]byte{}) {
				t.Fatalf("Open of %x failed (%v) but returned a key", data, err)
			}
			return
		}
		if b.Verify(&ks) != nil || b.Member != fuzzSelf.ID() || key != fuzzGroupKey {
			t.Fatalf("Open of %x gave key %x for member %v", data, key, b.Member)
		}
		other := fuzzOtherKS.Public()
		if _, err := b.Open(&other, fuzzSelf); !errors.Is(err, protocol.ErrBadBundleSignature) {
			t.Fatalf("Open under another keyserver key = %v", err)
		}
	})
}
