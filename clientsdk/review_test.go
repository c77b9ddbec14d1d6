package clientsdk

import (
	"crypto/ed25519"
	"encoding/binary"
	"testing"
	"time"

	"github.com/commsec/communicator/protocol"
	"github.com/commsec/communicator/protocol/channel"
	"github.com/commsec/communicator/protocol/envelope"
)

// keyless signs as the Ed25519 identity point (0x01, then 31 zero
// bytes): under that "public key" the signature R = identity, S = 0
// verifies for every message, so it needs no private key at all.
type keyless struct{}

func (keyless) Public() [protocol.PublicKeySize]byte { return [protocol.PublicKeySize]byte{1} }
func (keyless) Sign([]byte) [protocol.SignatureSize]byte {
	return [protocol.SignatureSize]byte{1}
}

// TestClientRefusesKeylessSender: a holder of the group key (a removed
// member who kept the previous epoch's key, or any current member) seals
// a message whose sender is the identity point, for which a signature
// that crypto/ed25519 accepts for every message needs no private key.
// Delivered by a compromised gateway or relay, or written into the
// accepted stream with a relay's rights, the client handed it over before
// signatures were checked by the strict rule of PROTOCOL.md §2.2, which
// refuses public keys and R of small order.
func TestClientRefusesKeylessSender(t *testing.T) {
	id := keyless{}.Public()
	sig := keyless{}.Sign(nil)
	if !ed25519.Verify(id[:], []byte("anything at all"), sig[:]) {
		t.Fatal("the identity point's constant signature does not verify")
	}
	s := newScript(t)
	key := [32]byte{1} // the script's key of epoch 1
	h := envelope.Header{Group: s.group, Epoch: 1, Sender: id, Counter: 1}
	forged, err := envelope.Seal(nil, h, &key, []byte("wire 1M to bob -- the board"), keyless{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	s.serve(func(conn *channel.Conn) {
		conn.WriteFrame(channel.TypeKeyBundle, s.bundle(1))
		conn.WriteFrame(channel.TypeGroups, channel.AppendGroups(nil, []protocol.GroupID{s.group}))
		conn.WriteFrame(channel.TypeDeliver, channel.AppendDeliver(nil, 10, forged))
		for {
			f, err := conn.ReadFrame()
			if err != nil {
				return
			}
			if f.Type == channel.TypeDeliverAck && binary.BigEndian.Uint64(f.Body) == 10 {
				return
			}
		}
	})
	c := s.dial()
	select {
	case m := <-c.Messages():
		t.Fatalf("handed over %q from sender %x, which holds no key and is no member", m.Payload, m.Sender[:4])
	case <-time.After(500 * time.Millisecond):
	}
}
