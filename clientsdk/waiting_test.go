package clientsdk

import (
	"encoding/binary"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/commsec/communicator/protocol"
	"github.com/commsec/communicator/protocol/channel"
	"github.com/commsec/communicator/protocol/envelope"
	"github.com/commsec/communicator/protocol/handshake"
	"github.com/commsec/communicator/protocol/keys"
)

// serveEach runs part on every connection the client makes (n counts
// them from 1), each on a goroutine joined at the end of the test.
func (s *script) serveEach(part func(n int, conn *channel.Conn)) {
	var wg sync.WaitGroup
	s.t.Cleanup(func() { s.ln.Close(); wg.Wait() })
	wg.Add(1)
	go func() {
		defer wg.Done()
		for n := 1; ; n++ {
			nc, err := s.ln.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				conn, _, err := handshake.Server(nc, handshake.ServerConfig{Identity: s.server})
				if err != nil {
					nc.Close()
					return
				}
				defer conn.Close()
				part(n, conn)
			}()
		}
	}()
}

// serveRedelivering plays a gateway that, on each connection, pushes
// the bundle of epoch 1 and the groups, delivers envs[c] at cursor c
// from after the client's last acknowledgement (over all connections)
// to n, then envs[n+1]; the bundle of epoch newer comes after the
// first n deliveries on the first connection, before them on the
// others. It returns the last acknowledgement and the connections made.
func (s *script) serveRedelivering(envs [][]byte, n uint64, newer protocol.Epoch) (acked *atomic.Uint64, conns *atomic.Int64) {
	acked, conns = new(atomic.Uint64), new(atomic.Int64)
	s.serveEach(func(k int, conn *channel.Conn) {
		conns.Store(int64(k))
		conn.WriteFrame(channel.TypeKeyBundle, s.bundle(1))
		from := acked.Load() + 1
		if k > 1 {
			conn.WriteFrame(channel.TypeKeyBundle, s.bundle(newer))
		}
		conn.WriteFrame(channel.TypeGroups, channel.AppendGroups(nil, []protocol.GroupID{s.group}))
		for c := from; c <= n; c++ {
			conn.WriteFrame(channel.TypeDeliver, channel.AppendDeliver(nil, c, envs[c]))
		}
		if k == 1 {
			conn.WriteFrame(channel.TypeKeyBundle, s.bundle(newer))
		}
		conn.WriteFrame(channel.TypeDeliver, channel.AppendDeliver(nil, n+1, envs[n+1]))
		for {
			f, err := conn.ReadFrame()
			if err != nil {
				return
			}
			if f.Type == channel.TypeDeliverAck {
				acked.Store(max(acked.Load(), binary.BigEndian.Uint64(f.Body)))
			}
		}
	})
	return acked, conns
}

// TestClientHoldsAcknowledgementPastFullWaitingList: 300 messages of an
// epoch whose key has not come yet are delivered (the client keeps 256
// of them waiting; it has no room for the other 44), then the key, then
// one more message. Every one of the 301 is handed over, once: the
// client acknowledges none of the 44 it had no room for, and reconnects
// once the key came, so that the gateway delivers them again from its
// last acknowledgement. Before, the client acknowledged past them with
// the message after the key, and they were lost although stored.
func TestClientHoldsAcknowledgementPastFullWaitingList(t *testing.T) {
	const n = maxWaiting + 44
	s := newScript(t)
	bob, _ := keys.GenerateSigningKey(nil)
	key := [32]byte{2}          // the script's key of epoch 2
	envs := make([][]byte, n+2) // by cursor, 1 to n+1
	for c := uint64(1); c <= n+1; c++ {
		h := envelope.Header{Group: s.group, Epoch: 2, Sender: bob.Public(), Counter: c}
		e, err := envelope.Seal(nil, h, &key, binary.BigEndian.AppendUint64(nil, c), bob, nil)
		if err != nil {
			t.Fatal(err)
		}
		envs[c] = e
	}
	acked, conns := s.serveRedelivering(envs, n, 2)
	c := s.dialWith(func(cfg *Config) { cfg.ReconnectSpread, cfg.MinBackoff = time.Millisecond, time.Millisecond })
	got := map[uint64]int{}
	deadline := time.After(20 * time.Second)
	for len(got) < n+1 {
		select {
		case m := <-c.Messages():
			got[m.Counter]++
		case <-deadline:
			t.Fatalf("%d of %d messages handed over (acknowledged up to %d, over %d connections)", len(got), n+1, acked.Load(), conns.Load())
		}
	}
	for counter, times := range got {
		if times != 1 {
			t.Fatalf("counter %d handed over %d times", counter, times)
		}
	}
	for acked.Load() < n+1 {
		select {
		case <-deadline:
			t.Fatalf("acknowledged up to %d of %d", acked.Load(), n+1)
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// TestClientDropsWhatANewerKeyRetires: 300 messages of epoch 2 wait for
// a key that never comes (the client is not in epoch 2); the key of
// epoch 4 comes instead, then a message of epoch 4. Keys come in epoch
// order, so the client drops the 300 (acknowledging them) rather than
// waiting for epoch 2 on every connection, and hands over the message
// of epoch 4. Before, a delivery of an epoch below the newest key held
// waited again after each reconnect, and the acknowledgement never
// passed the first of them.
func TestClientDropsWhatANewerKeyRetires(t *testing.T) {
	const n = maxWaiting + 44
	s := newScript(t)
	bob, _ := keys.GenerateSigningKey(nil)
	envs := make([][]byte, n+2)
	for c := uint64(1); c <= n+1; c++ {
		e := protocol.Epoch(2)
		if c == n+1 {
			e = 4
		}
		key := [32]byte{byte(e)} // the script's key of epoch e
		h := envelope.Header{Group: s.group, Epoch: e, Sender: bob.Public(), Counter: c}
		env, err := envelope.Seal(nil, h, &key, binary.BigEndian.AppendUint64(nil, c), bob, nil)
		if err != nil {
			t.Fatal(err)
		}
		envs[c] = env
	}
	acked, conns := s.serveRedelivering(envs, n, 4)
	c := s.dialWith(func(cfg *Config) { cfg.ReconnectSpread, cfg.MinBackoff = time.Millisecond, time.Millisecond })
	deadline := time.After(20 * time.Second)
	select {
	case m := <-c.Messages():
		if m.Counter != n+1 || m.Epoch != 4 {
			t.Fatalf("handed over counter %d of epoch %d, want %d of epoch 4", m.Counter, m.Epoch, n+1)
		}
	case <-deadline:
		t.Fatalf("the message of epoch 4 not handed over (acknowledged up to %d, over %d connections)", acked.Load(), conns.Load())
	}
	for acked.Load() < n+1 {
		select {
		case <-deadline:
			t.Fatalf("acknowledged up to %d of %d, over %d connections", acked.Load(), n+1, conns.Load())
		case <-time.After(10 * time.Millisecond):
		}
	}
}
