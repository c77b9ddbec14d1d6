package integration

import (
	"context"
	"fmt"
	"net"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/commsec/communicator/internal/stacktest"
	"github.com/commsec/communicator/protocol/channel"
	"github.com/commsec/communicator/protocol/envelope"
	"github.com/commsec/communicator/protocol/handshake"
)

// rawConn is a hand-driven client connection through gateway i: it sends
// exactly the bytes a test wants and reads every frame.
func rawConn(t *testing.T, s *stacktest.Stack, c *stacktest.Client, i int) *channel.Conn {
	t.Helper()
	nc, err := net.Dial("tcp", s.Gateways[i].Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	conn, err := handshake.Client(nc, handshake.ClientConfig{Identity: c.ID.Sig, ServerKey: s.GW.Public()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

// sendRaw sends env on conn and returns the status of its SendAck,
// skipping other frames.
func sendRaw(t *testing.T, conn *channel.Conn, env []byte) channel.SendStatus {
	t.Helper()
	h, _ := envelope.ParseHeader(env)
	if err := conn.WriteFrame(channel.TypeSend, env); err != nil {
		t.Fatal(err)
	}
	conn.NetConn().SetReadDeadline(time.Now().Add(10 * time.Second))
	for {
		f, err := conn.ReadFrame()
		if err != nil {
			t.Fatal(err)
		}
		if f.Type != channel.TypeSendAck {
			continue
		}
		a, _ := channel.ParseSendAck(f.Body)
		if a.Group == h.Group && a.Counter == h.Counter {
			return a.Status
		}
	}
}

// storedEnvelopes returns every accepted envelope, shard after shard,
// each in stream order (a (group, sender)'s are all on one shard, in the
// order they were accepted).
func storedEnvelopes(t *testing.T, s *stacktest.Stack) [][]byte {
	t.Helper()
	var out [][]byte
	for _, name := range s.Keyserver.Shards().All() {
		out = append(out, storedIn(t, s, name)...)
	}
	return out
}

// storedIn returns every envelope of one shard, in stream order.
func storedIn(t *testing.T, s *stacktest.Stack, shard string) [][]byte {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	stream, err := s.JS.Stream(ctx, shard)
	if err != nil {
		t.Fatal(err)
	}
	info, _ := stream.Info(ctx)
	if info.State.Msgs == 0 {
		return nil
	}
	cons, err := s.JS.OrderedConsumer(ctx, shard, jetstream.OrderedConsumerConfig{})
	if err != nil {
		t.Fatal(err)
	}
	var out [][]byte
	for uint64(len(out)) < info.State.Msgs {
		batch, err := cons.Fetch(int(info.State.Msgs)-len(out), jetstream.FetchMaxWait(5*time.Second))
		if err != nil {
			t.Fatal(err)
		}
		for m := range batch.Messages() {
			out = append(out, m.Data())
		}
	}
	return out
}

// checkNoCounterTwice fails if a (group, sender, counter) was stored twice
// or a sender's counters do not increase in stream order.
func checkNoCounterTwice(t *testing.T, envs [][]byte) {
	t.Helper()
	last := map[string]uint64{}
	for _, e := range envs {
		h, err := envelope.ParseHeader(e)
		if err != nil {
			t.Fatal(err)
		}
		k := fmt.Sprint(h.Group, h.Sender)
		if h.Counter <= last[k] {
			t.Fatalf("counter %d of %s stored after %d", h.Counter, h.Sender.Short(), last[k])
		}
		last[k] = h.Counter
	}
}
