package gateway

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"

	"github.com/commsec/communicator/events/fold"
	"github.com/commsec/communicator/protocol"
	"github.com/commsec/communicator/protocol/channel"
	"github.com/commsec/communicator/protocol/envelope"
	"github.com/commsec/communicator/streams"
)

// session is one authenticated client connection.
type session struct {
	gw   *Gateway
	conn *channel.Conn
	id   protocol.ClientID
	// ctx ends when the session stops: its delivery goroutines (a pass,
	// the bundle push) stop with it.
	ctx      context.Context
	cancel   context.CancelFunc
	out      outbox
	done     chan struct{}
	stopOnce sync.Once
	inflight chan struct{}
	failed   atomic.Bool
	// dl is the delivery state machine of each shard (deliverystate.go);
	// sent numbers the Deliver frames and maps them back (deliveries.go).
	dl   []delivery
	sent deliveries
	// bundles orders the client's bundles: the live feed's go straight
	// out only while no push is reading the stream (bundles.go).
	bundles bundleOrder
	// bundlesSkipped: the connect pushed no bundle (bundlesCovered), and
	// no push has read the stream since (epochOpened).
	bundlesSkipped atomic.Bool
	// groupsMu orders the Groups frames; groupsSent: the first was queued.
	groupsMu   sync.Mutex
	groupsSent bool
}

// newSession makes a session whose outbox is ready: from the moment
// start registers it, bundle pushes and deliveries may queue frames.
func newSession(g *Gateway, conn *channel.Conn, id protocol.ClientID) *session {
	s := &session{
		gw: g, conn: conn, id: id,
		done:     make(chan struct{}),
		inflight: make(chan struct{}, g.cfg.MaxInflight),
		dl:       make([]delivery, max(int(g.shards), 1)),
	}
	s.ctx, s.cancel = context.WithCancel(g.rootContext())
	s.out.init(s)
	return s
}

// logAt starts a log line of the gateway's logger at level, naming the
// session's client and address. A session keeps no logger of its own: a
// zerolog context holds a 500-byte buffer, more than the rest of an idle
// session's heap.
func (s *session) logAt(level zerolog.Level) *zerolog.Event {
	e := s.gw.log.WithLevel(level)
	if e == nil {
		return nil
	}
	return e.Str("client", s.id.Short()).Stringer("remote", s.conn.NetConn().RemoteAddr())
}

// start sets the session up and starts its reader on a goroutine of its
// own, which serves the session until the client leaves or fails.
//
// The reader of an idle session is parked in a read for hours, so its
// stack is most of what the connection costs. Setting up (the cursor's
// read from NATS, the log line) and the handshake's cryptography grow a
// goroutine's stack to 4 or 8 KiB, and the reader, parked with about
// 1 KiB in use, would keep that (the runtime halves a stack only while
// less than a quarter of it is in use): a fresh goroutine starts at 2 KiB.
//
// The session is registered in its groups before it takes their live
// feeds, and takes them before anything reads the stream (runDelivery):
// a message stored meanwhile is in one or the other, maybe both.
func (s *session) start() {
	g := s.gw
	groups := g.groupsOf(s.id)
	sv, calls := g.cursors.load(s.id)
	for i := range s.dl {
		s.dl[i].init(sv.cursor.at(i))
	}
	_, warm := g.interest.memberLast(s.id)
	added := g.sessions.add(s, groups)
	cold, fresh, err := g.interest.acquire(added, &s.id)
	if err != nil {
		g.sessions.remove(s)
		s.fail("feed_unavailable", fmt.Errorf("%w: %w", protocol.ErrUnavailable, err))
		return
	}
	s.sent.startEpochs(sv.epochs)
	if warm {
		// The client left recently (its bundle feed still lingers): the
		// bundles it confirmed then are not pushed again. Otherwise,
		// in doubt, every one is, unless it confirmed the current epoch
		// of each of its groups (runDelivery).
		s.sent.startBundles(sv.bundle)
	}
	g.Metrics.connections.Add(1)
	s.logAt(zerolog.InfoLevel).Int("groups", len(groups)).Stringer("cursor", sv.cursor).Msg("client connected")
	g.wg.Add(2)
	go s.runDelivery(cold, fresh, calls, sv.bundle)
	go s.run()
}

// cursor is the client's cursor now: per shard, what it acknowledged.
func (s *session) cursor() cursorVec {
	v := make(cursorVec, len(s.dl))
	for i := range s.dl {
		v[i] = s.dl[i].acknowledged()
	}
	return v
}

// saved is what the gateway keeps of the client now: its cursor, the
// bundles it confirmed, and per group of it the newest epoch confirmed.
func (s *session) saved() saved {
	sv := saved{cursor: s.cursor(), bundle: s.sent.confirmedBundle()}
	epochs := s.sent.confirmedEpochs()
	s.gw.proj.Read(func(st *fold.State) { sv.epochs = epochs.only(st, s.id) })
	return sv
}

// acked records that the client acknowledged the shard up to seq.
func (s *session) acked(shard int, seq uint64) { s.dl[shard].acked(seq) }

// run serves the session's frames until the client leaves or fails, then
// ends the session. (Its frame and the reader's stay small: they are on
// the stack of every idle connection.)
func (s *session) run() {
	s.end(s.reader())
}

// end ends the session after its reader has stopped with err.
func (s *session) end(err error) {
	g := s.gw
	defer g.wg.Done()
	s.shutdown()
	s.out.wait()
	g.interest.release(g.sessions.remove(s), &s.id, true)
	g.cursors.ended(s.id, s.saved())
	g.Metrics.connections.Add(-1)
	s.logAt(zerolog.InfoLevel).Err(err).Msg("client disconnected")
}

// shutdown closes the connection once; reader and writer then end.
func (s *session) shutdown() { s.stop(func() { s.conn.Close() }) }

// stop ends the session once: the writer stops taking frames, then
// closeConn closes the connection.
func (s *session) stop(closeConn func()) {
	s.stopOnce.Do(func() {
		close(s.done)
		s.cancel()
		for i := range s.dl {
			s.dl[i].close()
		}
		s.out.close()
		closeConn()
	})
}

// fail tells the client a generic code, counts the reason and shuts down;
// only the first failure of a session counts. The Error frame is written
// (within a second) before the connection closes, on a goroutine of its
// own: fail never waits for a client.
func (s *session) fail(reason string, err error) {
	if !s.failed.CompareAndSwap(false, true) {
		return
	}
	s.gw.Metrics.drop(reason)
	s.logAt(zerolog.InfoLevel).Str("reason", reason).Err(err).Msg("closing connection")
	s.stop(func() {
		go func() {
			s.conn.NetConn().SetWriteDeadline(time.Now().Add(time.Second))
			s.conn.Fail(err)
		}()
	})
}

// reader handles the client's frames until an error or a Close frame.
func (s *session) reader() error {
	for {
		s.setIdleDeadline()
		f, err := s.conn.ReadFrame()
		if err != nil {
			return s.readFailed(err)
		}
		if done, err := s.handle(f); done || err != nil {
			return err
		}
	}
}

// setIdleDeadline gives the client IdleTimeout to send its next frame.
// Not inlined: its locals would sit on every parked reader's stack.
//
//go:noinline
func (s *session) setIdleDeadline() {
	s.conn.NetConn().SetReadDeadline(time.Now().Add(s.gw.cfg.IdleTimeout))
}

func (s *session) readFailed(err error) error {
	select {
	case <-s.done:
		return nil // we closed it
	default:
	}
	var ne interface{ Timeout() bool }
	switch {
	case errors.Is(err, io.EOF):
		return nil
	case errors.As(err, &ne) && ne.Timeout():
		s.fail("idle", protocol.ErrIdle)
	default:
		s.fail(protocol.Reason(err), err)
	}
	return err
}

// handle acts on one frame; done reports a graceful end.
func (s *session) handle(f channel.Frame) (done bool, err error) {
	switch f.Type {
	case channel.TypeSend:
		return false, s.handleSend(f.Body)
	case channel.TypeDeliverAck:
		cursor, _ := channel.ParseUint64(f.Body)
		if !s.sent.ack(cursor, s.acked) {
			// A cursor past every delivery would move the client's
			// position over messages it never got: they would be lost.
			err := fmt.Errorf("%w: DeliverAck for cursor %d, past the deliveries", protocol.ErrAckBeyondDelivered, cursor)
			s.fail(protocol.Reason(err), err)
			return true, err
		}
		s.gw.cursors.mark(s.id, s.saved())
	case channel.TypePing:
		s.enqueue(channel.Outgoing{Type: channel.TypePong, Body: append([]byte(nil), f.Body...)})
	case channel.TypeClose:
		return true, nil
	case channel.TypeError:
		code, _ := channel.ParseError(f.Body)
		return true, &protocol.PeerError{Code: code}
	}
	return false, nil
}

// handleSend checks the envelope's length and sender and forwards it to
// the relay; the relay's verdict comes back as a SendAck.
func (s *session) handleSend(body []byte) error {
	h, err := envelope.ParseHeader(body)
	if err != nil {
		s.fail(protocol.Reason(err), err)
		return err
	}
	if h.Sender != s.id {
		s.gw.Metrics.send(streams.VerdictRefused, streams.ReasonSenderMismatch)
		s.logAt(zerolog.DebugLevel).Str("reason", string(streams.ReasonSenderMismatch)).Msg("send refused")
		s.sendAck(channel.SendAck{Group: h.Group, Counter: h.Counter, Status: channel.StatusRefused}, false)
		return nil
	}
	select {
	case s.inflight <- struct{}{}:
	case <-s.done:
		return nil
	}
	s.gw.relay.send(s, h, append([]byte(nil), body...))
	return nil
}

// sendAck queues the relay's verdict; release frees an in-flight slot.
func (s *session) sendAck(a channel.SendAck, release bool) {
	if release {
		<-s.inflight
	}
	s.enqueue(channel.Outgoing{Type: channel.TypeSendAck, Body: channel.AppendSendAck(nil, a)})
}
