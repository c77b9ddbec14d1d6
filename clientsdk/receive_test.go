package clientsdk

import (
	"bytes"
	"encoding/binary"
	"strings"
	"testing"
	"time"

	"github.com/commsec/communicator/protocol"
	"github.com/commsec/communicator/protocol/channel"
	"github.com/commsec/communicator/protocol/envelope"
	"github.com/commsec/communicator/protocol/keys"
)

// TestClientWindowAcceptsRetriedDelivery: a sender's message retried
// after its later ones were accepted is stored, and so delivered, after
// them; the client hands it over too, once, with the relays' rule (the
// replay window), and drops a copy of one it already has. Before, the
// client took only counters above the last one, and lost the retried
// message although the relay had stored it.
func TestClientWindowAcceptsRetriedDelivery(t *testing.T) {
	s := newScript(t)
	bob, _ := keys.GenerateSigningKey(nil)
	key := [32]byte{1} // the script's key of epoch 1
	seal := func(counter uint64) []byte {
		h := envelope.Header{Group: s.group, Epoch: 1, Sender: bob.Public(), Counter: counter}
		e, err := envelope.Seal(nil, h, &key, []byte{byte(counter)}, bob, nil)
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

// TestClientRefusesUnsignedOrMissigned: a gateway (or anything behind
// it) delivers envelopes in carol's name that carol did not sign: signed
// by bob, a member holding the group key; with her signature flipped,
// stripped, or taken from another of her messages; without any signature
// (the unreleased version 1 layout); and her own signed message of an
// epoch she has left. The client hands none of them over, counts none
// of them (her real message with the same counter is still taken), and
// acknowledges them all.
func TestClientRefusesUnsignedOrMissigned(t *testing.T) {
	s := newScript(t)
	carol, _ := keys.GenerateSigningKey(nil)
	bob, _ := keys.GenerateSigningKey(nil)
	seal := func(epoch protocol.Epoch, counter uint64, payload string) []byte {
		key := [32]byte{byte(epoch)} // the script's key of each epoch
		h := envelope.Header{Group: s.group, Epoch: epoch, Sender: carol.Public(), Counter: counter}
		e, err := envelope.Seal(nil, h, &key, []byte(payload), carol, nil)
		if err != nil {
			t.Fatal(err)
		}
		return e
	}
	unsigned := func(e []byte) []byte { return bytes.Clone(e[:len(e)-envelope.SignatureSize]) }
	resigned := func(e []byte, sig [64]byte) []byte { return append(unsigned(e), sig[:]...) }
	flipped := func(e []byte, i int) []byte { c := bytes.Clone(e); c[i] ^= 1; return c }
	long := strings.Repeat("wire 1M to bob -- carol. ", 4)
	real := seal(2, 5, "carol's real message")
	other := seal(2, 4, long)
	deliveries := [][]byte{
		resigned(seal(2, 5, "wire 1M to bob -- carol"), bob.Sign(envelope.SignatureInput(real))), // bob signs in carol's name
		flipped(seal(2, 5, "carol?"), len("carol?")+envelope.Overhead-1),                         // her signature, one bit off
		unsigned(seal(2, 5, "short")), // stripped: too short
		unsigned(seal(2, 5, long)),    // stripped: parses, no signature
		resigned(func() []byte { c := bytes.Clone(other); c[60] = 5; return c }(), [64]byte(other[len(other)-64:])), // another header
		real,                        // counter 5, her own: taken
		seal(1, 6, "epoch 1 again"), // she is in epoch 2 now: retired for her
	}
	last := uint64(10 + len(deliveries) - 1)
	s.serve(func(conn *channel.Conn) {
		conn.WriteFrame(channel.TypeKeyBundle, s.bundle(1))
		conn.WriteFrame(channel.TypeKeyBundle, s.bundle(2))
		conn.WriteFrame(channel.TypeGroups, channel.AppendGroups(nil, []protocol.GroupID{s.group}))
		for i, env := range deliveries {
			conn.WriteFrame(channel.TypeDeliver, channel.AppendDeliver(nil, uint64(10+i), env))
		}
		for {
			f, err := conn.ReadFrame()
			if err != nil {
				return
			}
			if f.Type == channel.TypeDeliverAck && binary.BigEndian.Uint64(f.Body) == last {
				return // everything processed, and acknowledged
			}
		}
	})
	c := s.dial()
	select {
	case m := <-c.Messages():
		if m.Sender != carol.Public() || m.Counter != 5 || string(m.Payload) != "carol's real message" {
			t.Fatalf("handed over %q (counter %d): a message carol did not sign", m.Payload, m.Counter)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("carol's real message was not handed over")
	}
	select {
	case m := <-c.Messages():
		t.Fatalf("handed over %q (epoch %d, counter %d) as carol's", m.Payload, m.Epoch, m.Counter)
	case <-time.After(300 * time.Millisecond):
	}
}

// TestIdleConnectionSleeps: deliveries fewer than a batch are
// acknowledged once, about ackDelay after they came; then, with nothing
// delivered, the connection's keepalive does not wake to flush again (a
// device asleep between messages stays asleep). Before, a 100 ms ticker
// woke every connection ten times a second, idle or not.
func TestIdleConnectionSleeps(t *testing.T) {
	s := newScript(t)
	bob, _ := keys.GenerateSigningKey(nil)
	key := [32]byte{1}
	acked := make(chan uint64, 8)
	release := make(chan struct{})
	s.serve(func(conn *channel.Conn) {
		conn.WriteFrame(channel.TypeKeyBundle, s.bundle(1))
		conn.WriteFrame(channel.TypeGroups, channel.AppendGroups(nil, []protocol.GroupID{s.group}))
		for i := range 3 {
			h := envelope.Header{Group: s.group, Epoch: 1, Sender: bob.Public(), Counter: uint64(i + 1)}
			e, err := envelope.Seal(nil, h, &key, []byte{byte(i)}, bob, nil)
			if err != nil {
				t.Error(err)
				return
			}
			conn.WriteFrame(channel.TypeDeliver, channel.AppendDeliver(nil, uint64(10+i), e))
		}
		go func() {
			<-release
			conn.Close()
		}()
		for {
			f, err := conn.ReadFrame()
			if err != nil {
				return
			}
			if f.Type == channel.TypeDeliverAck {
				acked <- binary.BigEndian.Uint64(f.Body)
			}
		}
	})
	c := s.dial()
	defer close(release)
	for range 3 {
		select {
		case <-c.Messages():
		case <-time.After(10 * time.Second):
			t.Fatal("the deliveries were not handed over")
		}
	}
	// A slow machine may flush between the deliveries: acknowledgements
	// then rise to 12, never past it.
	for last := uint64(0); last != 12; {
		select {
		case n := <-acked:
			if n > 12 || n <= last {
				t.Fatalf("acknowledged %d after %d, want a rise to 12 (all three)", n, last)
			}
			last = n
		case <-time.After(10 * time.Second):
			t.Fatal("three deliveries were never acknowledged")
		}
	}
	// A flush the last delivery armed may still be due: past it, the
	// connection is idle.
	time.Sleep(3 * ackDelay)
	woke := c.ackFlushes.Load()
	time.Sleep(time.Second)
	if n := c.ackFlushes.Load() - woke; n != 0 {
		t.Errorf("an idle connection woke %d times in a second to flush acknowledgements", n)
	}
	select {
	case n := <-acked:
		t.Errorf("acknowledged %d again with nothing new", n)
	default:
	}
}
