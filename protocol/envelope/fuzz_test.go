package envelope_test

import (
	"bytes"
	"errors"
	"testing"

	"github.com/commsec/communicator/protocol"
	"github.com/commsec/communicator/protocol/envelope"
)

// Fixed group keys: every seed is sealed under fuzzKey.
var (
	fuzzKey  = [protocol.GroupKeySize]byte{0x6b, 0x65, 0x79}
	otherKey = [protocol.GroupKeySize]byte{0x6f}
	// fuzzSigner signs every seed; the fuzzer cannot make its signatures.
	fuzzSigner = testSigner(0x73)
)

// seedEnvelopes returns envelopes sealed under fuzzKey with fixed nonces,
// from the smallest payload to the largest.
func seedEnvelopes(tb testing.TB) [][]byte {
	h := envelope.Header{Group: protocol.GroupID{0x67, 15: 1}, Epoch: 3, Sender: fuzzSigner.Public(), Counter: 1}
	var out [][]byte
	for i, payload := range [][]byte{nil, []byte("hello, group"), bytes.Repeat([]byte{0xaa}, 1000),
		make([]byte, protocol.MaxPayload)} {
		h.Counter += uint64(i) << 40
		h.Epoch += protocol.Epoch(i)
		nonce := bytes.Repeat([]byte{byte(i + 1)}, envelope.NonceSize)
		env, err := envelope.Seal(nil, h, &fuzzKey, payload, fuzzSigner, bytes.NewReader(nonce))
		if err != nil {
			tb.Fatal(err)
		}
		out = append(out, env)
	}
	return out
}

// variants returns b and damaged copies: truncated, extended, bit-flipped.
func variants(b []byte) [][]byte {
	out := [][]byte{b, nil}
	if len(b) > 0 {
		out = append(out, b[:len(b)-1], b[:envelope.HeaderSize], b[:envelope.Overhead])
		if len(b) > envelope.SignatureSize {
			out = append(out, b[:len(b)-envelope.SignatureSize]) // stripped signature
		}
	}
	out = append(out, append(bytes.Clone(b), 0))
	for _, i := range []int{0, 1, 20, 60, envelope.HeaderSize - 1, envelope.HeaderSize, envelope.Overhead - 1,
		len(b) - envelope.SignatureSize - 1, len(b) - envelope.SignatureSize, len(b) - 1} {
		if i >= 0 && i < len(b) {
			c := bytes.Clone(b)
			c[i] ^= 0x01
			out = append(out, c)
		}
	}
	zero := bytes.Clone(b)
	if len(zero) >= envelope.HeaderSize {
		clear(zero[envelope.HeaderSize-8 : envelope.HeaderSize]) // counter 0
		out = append(out, zero)
	}
	return out
}

// FuzzParseHeader checks that ParseHeader accepts only envelopes within
// the size limits, returns nothing on failure, and that an accepted header
// is canonical: Append gives back the envelope's first HeaderSize bytes.
func FuzzParseHeader(f *testing.F) {
	for _, env := range seedEnvelopes(f) {
		for _, v := range variants(env) {
			f.Add(v)
		}
	}
	f.Fuzz(func(t *testing.T, env []byte) {
		h, err := envelope.ParseHeader(env)
		if err != nil {
			if h != (envelope.Header{}) {
				t.Fatalf("ParseHeader(%x) failed (%v) but returned %+v", env, err, h)
			}
			return
		}
		if len(env) < envelope.Overhead || len(env) > envelope.MaxSize || h.Counter == 0 {
			t.Fatalf("ParseHeader accepted a %d-byte envelope with counter %d", len(env), h.Counter)
		}
		if got := h.Append(nil); !bytes.Equal(got, env[:envelope.HeaderSize]) {
			t.Fatalf("ParseHeader(%x) is not canonical: Append gives %x", env, got)
		}
	})
}

// FuzzVerify checks that Verify never panics, returns nothing on
// failure, and accepts only envelopes whose signature is their named
// sender's over every byte before it: an accepted envelope parses to the
// same header, names the fuzz signer (the fuzzer cannot sign for any
// other key it invents), and fails once any byte is flipped.
func FuzzVerify(f *testing.F) {
	for _, env := range seedEnvelopes(f) {
		for _, v := range variants(env) {
			f.Add(v)
		}
	}
	f.Fuzz(func(t *testing.T, env []byte) {
		h, err := envelope.Verify(env)
		if err != nil {
			if h != (envelope.Header{}) {
				t.Fatalf("Verify(%x) failed (%v) but returned %+v", env, err, h)
			}
			return
		}
		if ph, err := envelope.ParseHeader(env); err != nil || ph != h {
			t.Fatalf("Verify(%x) header %+v, ParseHeader gives %+v, %v", env, h, ph, err)
		}
		if h.Sender != fuzzSigner.Public() {
			t.Fatalf("Verify accepted a signature by %x, which the fuzzer cannot make", h.Sender)
		}
		for _, i := range []int{0, envelope.HeaderSize - 1, len(env) - envelope.SignatureSize - 1, len(env) - 1} {
			c := bytes.Clone(env)
			c[i] ^= 0x10
			if _, err := envelope.Verify(c); err == nil {
				t.Fatalf("Verify accepts %x with byte %d changed", env, i)
			}
		}
	})
}

// FuzzOpen checks that Open under the fixed key never panics, returns
// nothing on failure, and succeeds only on what Seal makes under that key:
// an opened envelope is sealed again, with its own nonce, to the same
// bytes, its header is ParseHeader's, and it does not open under another
// key.
func FuzzOpen(f *testing.F) {
	for _, env := range seedEnvelopes(f)[:3] {
		for _, v := range variants(env) {
			f.Add(v)
		}
	}
	f.Fuzz(func(t *testing.T, env []byte) {
		prefix := []byte("dst")
		h, out, err := envelope.Open(bytes.Clone(prefix), env, &fuzzKey)
		if err != nil {
			if h != (envelope.Header{}) || out != nil {
				t.Fatalf("Open(%x) failed (%v) but returned %+v, %x", env, err, h, out)
			}
			return
		}
		if ph, err := envelope.ParseHeader(env); err != nil || ph != h {
			t.Fatalf("Open(%x) header %+v, ParseHeader gives %+v, %v", env, h, ph, err)
		}
		if !bytes.HasPrefix(out, prefix) {
			t.Fatalf("Open did not append to dst: %x", out)
		}
		payload := out[len(prefix):]
		nonce := env[envelope.HeaderSize : envelope.HeaderSize+envelope.NonceSize]
		again, err := envelope.Seal(nil, h, &fuzzKey, payload, fuzzSigner, bytes.NewReader(nonce))
		if err != nil || !bytes.Equal(again, env) {
			t.Fatalf("Open(%x) accepted what Seal does not make: %x, %v", env, again, err)
		}
		if _, _, err := envelope.Open(nil, env, &otherKey); !errors.Is(err, protocol.ErrDecrypt) {
			t.Fatalf("Open under another key = %v, want ErrDecrypt", err)
		}
	})
}
