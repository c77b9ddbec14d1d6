package gateway

import (
	"net"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/commsec/communicator/events"
	"github.com/commsec/communicator/events/record"
	"github.com/commsec/communicator/protocol"
	"github.com/commsec/communicator/protocol/bundle"
	"github.com/commsec/communicator/protocol/channel"
	"github.com/commsec/communicator/protocol/keys"
)

// TestFanOutAllocs: delivering a message to a group's connected members
// allocates per message (the list of sessions), never per member: every
// copy shares the envelope, and only its cursor is the session's.
func TestFanOutAllocs(t *testing.T) {
	perMessage := func(members int) float64 {
		g, m := fanOutGateway(t, members)
		return testing.AllocsPerRun(200, func() {
			m.seq++
			g.fanOut(m)
			g.waitWritten()
		})
	}
	two, eight := perMessage(2), perMessage(8)
	if eight > two {
		t.Errorf("a message to 8 members allocates %.1f times, to 2 members %.1f: copies allocate", eight, two)
	}
	t.Logf("allocations per message: %.1f to 2 members, %.1f to 8", two, eight)
	if two > 2 {
		t.Errorf("a message allocates %.1f times, want at most 2", two)
	}
}

// BenchmarkFanOut delivers 256-byte envelopes to a group of 8 members
// (each copy sealed and written by its session's writer), one message
// at a time.
func BenchmarkFanOut(b *testing.B) {
	g, m := fanOutGateway(b, 8)
	b.ReportAllocs()
	b.SetBytes(int64(8 * len(m.data)))
	for b.Loop() {
		m.seq++
		g.fanOut(m)
		g.waitWritten()
	}
}

// fanOutGateway is a gateway whose projection holds one group of n
// members, each connected (writing into discardConn), and a message of
// that group from another client.
func fanOutGateway(tb testing.TB, n int) (*Gateway, message) {
	seed := [32]byte{0x6b}
	ks := keys.NewSigningKey(&seed)
	gid := protocol.GroupID{0x67}
	ids := make([]protocol.ClientID, n)
	for i := range ids {
		ids[i] = protocol.ClientID{0xc1, byte(i)}
	}
	g := &Gateway{cfg: Config{QueueSize: 256, WriteTimeout: time.Second}, proj: testProjection(tb, ks, gid, ids),
		sessions: newRegistry(), Metrics: newMetrics(nil)}
	for _, id := range ids {
		var k channel.Keys
		s := newSession(g, channel.New(discardConn{}, &k, channel.ServerSide), id)
		s.dl[0].init(0)
		s.dl[0].passEnd() // no pass: live at once
		g.sessions.add(s, []protocol.GroupID{gid})
	}
	return g, message{seq: 1, group: gid, epoch: 1, sender: protocol.ClientID{0xee}, data: make([]byte, 256)}
}

// waitWritten waits until no session has a frame queued or a writer
// running.
func (g *Gateway) waitWritten() {
	g.sessions.mu.RLock()
	defer g.sessions.mu.RUnlock()
	for _, set := range g.sessions.byClient {
		for s := range set {
			s.out.wait()
			s.sent.ack(s.sent.last, s.acked) // as a client would: nothing unacknowledged piles up
		}
	}
}

// testProjection applies, signed by ks, the registration of every member,
// the group's creation and its first epoch.
func testProjection(tb testing.TB, ks *keys.SigningKey, gid protocol.GroupID, members []protocol.ClientID) *events.Projection {
	tb.Helper()
	p := events.NewProjection(ks.Public())
	heads := map[string]events.Head{}
	pub := ks.Public()
	var seq uint64
	add := func(e *record.Event) {
		h := heads[e.Aggregate()]
		e.Seq, e.Prev, e.Time, e.Actor = h.Seq+1, h.Hash, 1_700_000_000_000_000_000, pub
		rec, err := record.Sign(e, ks)
		if err != nil {
			tb.Fatal(err)
		}
		seq++
		if _, err := p.Apply(events.Stored{Seq: seq, Subject: events.Subject(e.Aggregate()), Record: rec}); err != nil {
			tb.Fatal(err)
		}
		heads[e.Aggregate()] = events.Head{Seq: e.Seq, Hash: rec.Hash()}
	}
	for _, id := range members {
		add(record.NewClientRegistered(id, id, ""))
	}
	add(record.NewGroupCreated(gid, "fan-out", record.Policy{}))
	add(record.NewEpoch(record.MembersAdded, gid, 1, members, bundle.MemberDigest(members), ""))
	return p
}

// discardConn is a connection that takes every write and has no peer.
type discardConn struct{ net.Conn }

func (discardConn) Write(p []byte) (int, error)      { return len(p), nil }
func (discardConn) Close() error                     { return nil }
func (discardConn) RemoteAddr() net.Addr             { return &net.TCPAddr{} }
func (discardConn) SetWriteDeadline(time.Time) error { return nil }

// TestNewSessionCanQueue: a session can queue a frame as soon as it is
// made. start registers it (where bundle pushes and deliveries find it)
// before its reader runs; the outbox was once set up only after that,
// and a live bundle arriving in between met a nil writer.
func TestNewSessionCanQueue(t *testing.T) {
	g := &Gateway{cfg: Config{QueueSize: 4, WriteTimeout: time.Second}, Metrics: newMetrics(nil)}
	var k channel.Keys
	s := newSession(g, channel.New(discardConn{}, &k, channel.ServerSide), protocol.ClientID{0xc1})
	if !s.enqueue(channel.Outgoing{Type: channel.TypePing, Body: make([]byte, 8)}) {
		t.Fatal("a new session refused a frame")
	}
	s.out.wait()
}

// TestDeliveryLagStamps: the delivery lag is observed once per Deliver
// frame written, under the path that queued it, and never for another
// frame; the stamps stay beside their frames across batches.
func TestDeliveryLagStamps(t *testing.T) {
	g := &Gateway{cfg: Config{QueueSize: 64, WriteTimeout: time.Second}, Metrics: newMetrics(nil)}
	var k channel.Keys
	s := newSession(g, channel.New(discardConn{}, &k, channel.ServerSide), protocol.ClientID{0xc1})
	stored := time.Now().Add(-time.Minute).UnixNano()
	ping := channel.Outgoing{Type: channel.TypePing, Body: make([]byte, 8)}
	deliver := channel.Outgoing{Type: channel.TypeDeliver, Body: make([]byte, protocol.MaxFrameBody)} // a batch holds a few
	for i := range 10 {
		s.enqueue(ping)
		if i%2 == 0 {
			s.enqueueStamped(deliver, stamp{stored: stored, path: pathLive})
		} else {
			s.enqueueWaitStamped(deliver, stamp{stored: stored, path: pathCatchUp})
		}
	}
	s.out.wait()
	count := func(p deliveryPath) uint64 {
		var m dto.Metric
		if err := g.Metrics.deliveryLag[p].(prometheus.Metric).Write(&m); err != nil {
			t.Fatal(err)
		}
		if n := m.GetHistogram().GetSampleCount(); n > 0 && m.GetHistogram().GetSampleSum() < 60*float64(n) {
			t.Errorf("%s: lag %v s over %d frames stored a minute ago", pathNames[p], m.GetHistogram().GetSampleSum(), n)
		}
		return m.GetHistogram().GetSampleCount()
	}
	if live, catchUp := count(pathLive), count(pathCatchUp); live != 5 || catchUp != 5 {
		t.Errorf("observed %d live and %d catch-up deliveries, want 5 and 5", live, catchUp)
	}
	if n := g.Metrics.FramesOut(); n != 20 {
		t.Errorf("%d frames written, want 20", n)
	}
}
