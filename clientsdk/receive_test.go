package clientsdk

import (
	"encoding/binary"
	"testing"
	"time"

	"github.com/commsec/communicator/protocol"
	"github.com/commsec/communicator/protocol/channel"
	"github.com/commsec/communicator/protocol/envelope"
)

// TestClientWindowAcceptsRetriedDelivery: a sender's message retried
// after its later ones were accepted is stored, and so delivered, after
// them; the client hands it over too, once, with the relays' rule (the
// replay window), and drops a copy of one it already has. Before, the
// client took only counters above the last one, and lost the retried
// message although the relay had stored it.
func TestClientWindowAcceptsRetriedDelivery(t *testing.T) {
	s := newScript(t)
	bob := protocol.ClientID{0xb0}
	key := [32]byte{1} // the script's key of epoch 1
	seal := func(counter uint64) []byte {
		e, err := envelope.Seal(nil, envelope.Header{Group: s.group, Epoch: 1, Sender: bob, Counter: counter}, &key, []byte{byte(counter)}, nil)
		if err != nil {
			t.Fatal(err)
		}
		return e
	}
	s.serve(func(conn *channel.Conn) {
		conn.WriteFrame(channel.TypeKeyBundle, s.bundle(1))
		conn.WriteFrame(channel.TypeGroups, channel.AppendGroups(nil, []protocol.GroupID{s.group}))
		for i, c := range []uint64{2, 3, 1, 3, 200} { // 1 was retried; 3 is delivered twice
			conn.WriteFrame(channel.TypeDeliver, channel.AppendDeliver(nil, uint64(10+i), seal(c)))
		}
		for {
			f, err := conn.ReadFrame()
			if err != nil {
				return
			}
			if f.Type == channel.TypeDeliverAck && binary.BigEndian.Uint64(f.Body) == 14 {
				return // everything processed
			}
		}
	})
	c := s.dial()
	var got []uint64
	for len(got) < 4 {
		select {
		case m := <-c.Messages():
			got = append(got, m.Counter)
		case <-time.After(10 * time.Second):
			t.Fatalf("handed over %v, want 2 3 1 200", got)
		}
	}
	if got[0] != 2 || got[1] != 3 || got[2] != 1 || got[3] != 200 {
		t.Fatalf("handed over %v, want 2 3 1 200", got)
	}
	select {
	case m := <-c.Messages():
		t.Fatalf("a copy handed over again: counter %d", m.Counter)
	case <-time.After(200 * time.Millisecond):
	}
}
