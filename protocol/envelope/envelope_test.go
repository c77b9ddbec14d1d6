package envelope_test

import (
	"bytes"
	"crypto/ed25519"
	"errors"
	"testing"

	"github.com/commsec/communicator/protocol"
	"github.com/commsec/communicator/protocol/envelope"
	"github.com/commsec/communicator/protocol/keys"
)

// testSigner returns a fixed signing key made from seed byte b.
func testSigner(b byte) *keys.SigningKey {
	seed := [ed25519.SeedSize]byte{b}
	return keys.NewSigningKey(&seed)
}

func TestSealOpen(t *testing.T) {
	key := [32]byte{1, 2, 3}
	alice := testSigner(5)
	h := envelope.Header{Group: protocol.GroupID{4}, Epoch: 9, Sender: alice.Public(), Counter: 77}
	for _, n := range []int{0, 1, 256, protocol.MaxPayload} {
		payload := bytes.Repeat([]byte{0xab}, n)
		env, err := envelope.Seal(nil, h, &key, payload, alice, nil)
		if err != nil {
			t.Fatal(err)
		}
		if len(env) != envelope.Overhead+n || len(env) > envelope.MaxSize {
			t.Fatalf("payload %d: envelope %d bytes, want %d", n, len(env), envelope.Overhead+n)
		}
		if got, err := envelope.Verify(env); err != nil || got != h {
			t.Fatalf("payload %d: verify gave %+v %v", n, got, err)
		}
		got, pt, err := envelope.Open(nil, env, &key)
		if err != nil || got != h || !bytes.Equal(pt, payload) {
			t.Fatalf("payload %d: open gave %+v %d bytes %v", n, got, len(pt), err)
		}
	}
}

// TestSignatureCoversEverything: a flipped bit anywhere in the envelope,
// or a signature moved to another envelope, fails before the AEAD.
func TestSignatureCoversEverything(t *testing.T) {
	key := [32]byte{1}
	alice, bob := testSigner(1), testSigner(2)
	h := envelope.Header{Group: protocol.GroupID{4}, Epoch: 2, Sender: alice.Public(), Counter: 5}
	env, err := envelope.Seal(nil, h, &key, []byte("wire 1M to bob"), alice, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := envelope.HeaderSize - 8; i < len(env); i++ { // counter, nonce, ciphertext, tag, signature
		c := bytes.Clone(env)
		c[i] ^= 0x80
		if _, _, err := envelope.Open(nil, c, &key); !errors.Is(err, protocol.ErrBadEnvelopeSignature) {
			t.Fatalf("bit flipped at %d: %v, want bad_envelope_signature", i, err)
		}
	}
	// bob holds the group key: he can seal, but not in alice's name.
	if _, err := envelope.Seal(nil, h, &key, []byte("x"), bob, nil); !errors.Is(err, protocol.ErrWrongSigner) {
		t.Fatalf("sealing in another's name: %v", err)
	}
	sig := bob.Sign(envelope.SignatureInput(env))
	forged := append(bytes.Clone(env[:len(env)-envelope.SignatureSize]), sig[:]...)
	if _, err := envelope.Verify(forged); !errors.Is(err, protocol.ErrBadEnvelopeSignature) {
		t.Fatalf("signed by another member: %v", err)
	}
	if _, err := envelope.Verify(env[:len(env)-envelope.SignatureSize]); !errors.Is(err, protocol.ErrEnvelopeLength) {
		t.Fatalf("stripped signature: %v", err)
	}
}

func TestSealRefuses(t *testing.T) {
	key := [32]byte{}
	alice := testSigner(1)
	h := envelope.Header{Epoch: 1, Counter: 1, Sender: alice.Public()}
	if _, err := envelope.Seal(nil, h, &key, make([]byte, protocol.MaxPayload+1), alice, nil); !errors.Is(err, protocol.ErrPayloadTooLarge) {
		t.Fatalf("oversized payload: %v", err)
	}
	if _, err := envelope.Seal(nil, h, &key, nil, nil, nil); !errors.Is(err, protocol.ErrWrongSigner) {
		t.Fatalf("no signer: %v", err)
	}
	h.Counter = 0
	if _, err := envelope.Seal(nil, h, &key, nil, alice, nil); !errors.Is(err, protocol.ErrZeroCounter) {
		t.Fatalf("counter 0: %v", err)
	}
}

func TestRandomNonces(t *testing.T) {
	key := [32]byte{}
	alice := testSigner(1)
	h := envelope.Header{Epoch: 1, Counter: 1, Sender: alice.Public()}
	a, _ := envelope.Seal(nil, h, &key, []byte("x"), alice, nil)
	b, _ := envelope.Seal(nil, h, &key, []byte("x"), alice, nil)
	if bytes.Equal(a, b) {
		t.Fatal("two seals of the same message are identical: the nonce is not random")
	}
}

func TestParseHeaderLimits(t *testing.T) {
	if _, err := envelope.ParseHeader(make([]byte, envelope.MaxSize+1)); !errors.Is(err, protocol.ErrEnvelopeLength) {
		t.Fatalf("oversized envelope: %v", err)
	}
	if _, err := envelope.ParseHeader(make([]byte, envelope.Overhead-1)); !errors.Is(err, protocol.ErrEnvelopeLength) {
		t.Fatalf("short envelope: %v", err)
	}
	// The largest envelope still fits a Deliver frame (cursor + envelope).
	if 8+envelope.MaxSize > protocol.MaxFrameBody {
		t.Fatalf("a Deliver of %d bytes exceeds MaxFrameBody", 8+envelope.MaxSize)
	}
}
