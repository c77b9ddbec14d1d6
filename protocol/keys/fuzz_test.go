package keys_test

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"testing"

	"github.com/commsec/communicator/protocol"
	"github.com/commsec/communicator/protocol/keys"
)

var allKinds = []keys.Kind{
	keys.KindClientPrivate, keys.KindClientPublic, keys.KindServerPrivate, keys.KindServerPublic,
	keys.KindKeyserverPrivate, keys.KindKeyserverPublic, keys.KindOperatorPrivate, keys.KindOperatorPublic,
}

// bodySize is the body size of each kind, from the layout comment.
func bodySize(k keys.Kind) int {
	if k == keys.KindClientPrivate || k == keys.KindClientPublic {
		return 64
	}
	return 32
}

func fixedIdentity() *keys.ClientIdentity {
	seed, scalar := [32]byte{1, 2, 3}, [32]byte{4, 5, 6}
	wrap, err := keys.NewWrapKey(&scalar)
	if err != nil {
		panic(err)
	}
	return &keys.ClientIdentity{Sig: keys.NewSigningKey(&seed), Wrap: wrap}
}

// seedFiles returns one file of every kind.
func seedFiles() [][]byte {
	var out [][]byte
	for _, k := range allKinds {
		out = append(out, keys.Encode(k, bytes.Repeat([]byte{byte(k)}, bodySize(k))))
	}
	id := fixedIdentity()
	return append(out, keys.EncodeClientIdentity(id), keys.EncodeClientPublic(id.Public()))
}

// variants returns b and damaged copies: truncated, extended, bit-flipped.
func variants(b []byte) [][]byte {
	out := [][]byte{b, nil}
	if len(b) > 0 {
		out = append(out, b[:len(b)-1], b[:6], b[:3])
	}
	out = append(out, append(bytes.Clone(b), 0))
	for _, i := range []int{0, 4, 5, 6, len(b) / 2, len(b) - 1} {
		if i >= 0 && i < len(b) {
			c := bytes.Clone(b)
			c[i] ^= 0x01
			out = append(out, c)
		}
	}
	return out
}

// fixCheck replaces the last four bytes of data with the checksum of the
// rest, so the fuzzer can reach the checks behind it.
func fixCheck(data []byte) []byte {
	if len(data) < 4 {
		return data
	}
	out := bytes.Clone(data)
	sum := sha256.Sum256(out[:len(out)-4])
	copy(out[len(out)-4:], sum[:4])
	return out
}

func addSeeds(f *testing.F) {
	for _, file := range seedFiles() {
		for _, v := range variants(file) {
			f.Add(v, false)
			f.Add(v, true)
		}
	}
}

// FuzzDecode checks that Decode accepts only canonical files (Encode of
// what it returns gives the input back), returns nothing on failure, and
// that the typed decoders agree with it and round-trip too.
func FuzzDecode(f *testing.F) {
	addSeeds(f)
	f.Fuzz(func(t *testing.T, data []byte, fix bool) {
		if fix {
			data = fixCheck(data)
		}
		kind, body, err := keys.Decode(data)
		if err != nil {
			if kind != 0 || body != nil {
				t.Fatalf("Decode(%x) failed (%v) but returned %v, %x", data, err, kind, body)
			}
		} else if len(body) != bodySize(kind) || !bytes.Equal(keys.Encode(kind, body), data) {
			t.Fatalf("Decode(%x) = %v, %x is not canonical", data, kind, body)
		}
		for _, want := range allKinds {
			checkDecodeKind(t, data, want, kind, err)
		}
	})
}

func checkDecodeKind(t *testing.T, data []byte, want, kind keys.Kind, decodeErr error) {
	body, err := keys.DecodeKind(data, want)
	ok := decodeErr == nil && kind == want
	if (err == nil) != ok || (err != nil) != (body == nil) {
		t.Fatalf("DecodeKind(%x, %v) = %x, %v; Decode gave %v, %v", data, want, body, err, kind, decodeErr)
	}
	var ke *keys.KindError
	if decodeErr == nil && kind != want && (!errors.As(err, &ke) || ke.Got != kind || ke.Want != want ||
		!errors.Is(err, protocol.ErrKeyFileKind)) {
		t.Fatalf("DecodeKind(%x, %v) = %v, want a KindError", data, want, err)
	}
	switch {
	case want == keys.KindClientPublic:
		p, err := keys.DecodeClientPublic(data)
		if (err == nil) != ok || ok && !bytes.Equal(keys.EncodeClientPublic(p), data) {
			t.Fatalf("DecodeClientPublic(%x) = %+v, %v", data, p, err)
		}
	case want.Private() && want != keys.KindClientPrivate:
		k, err := keys.DecodeSigningKey(data, want)
		if (err == nil) != ok || ok && !bytes.Equal(keys.EncodeSigningKey(want, k), data) {
			t.Fatalf("DecodeSigningKey(%x, %v) = %v", data, want, err)
		}
	case !want.Private():
		pub, err := keys.DecodePublicKey(data, want)
		if (err == nil) != ok || ok && !bytes.Equal(keys.EncodePublicKey(want, pub), data) ||
			!ok && pub != ([protocol.PublicKeySize]byte{}) {
			t.Fatalf("DecodePublicKey(%x, %v) = %x, %v", data, want, pub, err)
		}
	}
}

// FuzzDecodeClientIdentity checks that DecodeClientIdentity succeeds
// exactly on client private key files, returns nothing on failure, and
// that EncodeClientIdentity gives the input back.
func FuzzDecodeClientIdentity(f *testing.F) {
	addSeeds(f)
	f.Fuzz(func(t *testing.T, data []byte, fix bool) {
		if fix {
			data = fixCheck(data)
		}
		id, err := keys.DecodeClientIdentity(data)
		kind, _, derr := keys.Decode(data)
		ok := derr == nil && kind == keys.KindClientPrivate
		if (err == nil) != ok || (err != nil) != (id == nil) {
			t.Fatalf("DecodeClientIdentity(%x) = %v; Decode gave %v, %v", data, err, kind, derr)
		}
		if err != nil {
			return
		}
		if got := keys.EncodeClientIdentity(id); !bytes.Equal(got, data) {
			t.Fatalf("DecodeClientIdentity(%x) is not canonical: Encode gives %x", data, got)
		}
		if id.ID() != protocol.ClientID(id.Sig.Public()) {
			t.Fatalf("identity %v does not match its signature key", id.ID())
		}
	})
}
