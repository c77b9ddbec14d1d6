package envelope_test

import (
	"bytes"
	"errors"
	"testing"

	"github.com/commsec/communicator/protocol"
	"github.com/commsec/communicator/protocol/envelope"
)

func TestSealOpen(t *testing.T) {
	key := [32]byte{1, 2, 3}
	h := envelope.Header{Group: protocol.GroupID{4}, Epoch: 9, Sender: protocol.ClientID{5}, Counter: 77}
	for _, n := range []int{0, 1, 256, protocol.MaxPayload} {
		payload := bytes.Repeat([]byte{0xab}, n)
		env, err := envelope.Seal(nil, h, &key, payload, nil)
		if err != nil {
			t.Fatal(err)
		}
		if len(env) != envelope.Overhead+n {
			t.Fatalf("payload %d: envelope %d bytes, want %d", n, len(env), envelope.Overhead+n)
		}
		got, pt, err := envelope.Open(nil, env, &key)
		if err != nil || got != h || !bytes.Equal(pt, payload) {
			t.Fatalf("payload %d: open gave %+v %d bytes %v", n, got, len(pt), err)
		}
	}
}

func TestSealRefuses(t *testing.T) {
	key := [32]byte{}
	h := envelope.Header{Epoch: 1, Counter: 1}
	if _, err := envelope.Seal(nil, h, &key, make([]byte, protocol.MaxPayload+1), nil); !errors.Is(err, protocol.ErrPayloadTooLarge) {
		t.Fatalf("oversized payload: %v", err)
	}
	h.Counter = 0
	if _, err := envelope.Seal(nil, h, &key, nil, nil); !errors.Is(err, protocol.ErrZeroCounter) {
		t.Fatalf("counter 0: %v", err)
	}
}

func TestRandomNonces(t *testing.T) {
	key := [32]byte{}
	h := envelope.Header{Epoch: 1, Counter: 1}
	a, _ := envelope.Seal(nil, h, &key, []byte("x"), nil)
	b, _ := envelope.Seal(nil, h, &key, []byte("x"), nil)
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
}
