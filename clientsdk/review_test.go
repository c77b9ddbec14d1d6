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

// TestClientRefusesUnregisteredSender: a holder of the group key (a
// removed member who kept the previous epoch's key, or any current
// member) seals a message whose sender is no member at all: here the
// identity point, for which anyone can make a signature that verifies,
// without a key. Delivered by a compromised gateway or relay, or written
// into the accepted stream with a relay's rights, the client hands it
// over: nothing in the client ties a sender to the group's members.
// PROTOCOL.md §14.2 says a removed member gets messages accepted "in its
// own name only", "visibly the removed member's own".
func TestClientRefusesUnregisteredSender(t *testing.T) {
	t.Skip("finding: clients do not know members; any key holder can send as a non-member or keyless sender (PROTOCOL.md §6.4, §14.2 say so)")
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
