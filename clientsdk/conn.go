package clientsdk

import (
	"context"
	"io"
	"net"
	"slices"
	"time"

	"github.com/commsec/communicator/protocol"
	"github.com/commsec/communicator/protocol/channel"
	"github.com/commsec/communicator/protocol/handshake"
)

func handshakeClient(nc net.Conn, cfg Config) (*channel.Conn, error) {
	return handshake.Client(nc, handshake.ClientConfig{
		Identity: cfg.Identity.Sig, ServerKey: cfg.ServerKey, Timeout: cfg.HandshakeTimeout,
	})
}

// run keeps the client connected until Close.
func (c *Client) run(conn *channel.Conn) {
	defer close(c.done)
	defer close(c.msgs)
	for {
		c.attach(conn)
		err := c.serve(conn)
		c.detach(conn)
		if c.isClosed() {
			return
		}
		c.cfg.Logf("clientsdk: connection lost: %v", err)
		if conn = c.reconnect(); conn == nil {
			return
		}
	}
}

func (c *Client) isClosed() bool {
	select {
	case <-c.closed:
		return true
	default:
		return false
	}
}

// reconnect retries until it connects or the client is closed (then it
// returns nil), waiting as backoff says before each attempt.
func (c *Client) reconnect() *channel.Conn {
	b := newBackoff(c.cfg, c.randN)
	for {
		select {
		case <-c.closed:
			return nil
		case <-time.After(b.next()):
		}
		ctx, cancel := context.WithTimeout(c.ctx, c.cfg.HandshakeTimeout)
		conn, err := c.connect(ctx)
		cancel()
		if err == nil {
			return conn
		}
		c.cfg.Logf("clientsdk: reconnect: %v", err)
	}
}

// backoff is the schedule of the waits before each reconnection attempt
// of a connection that was up and dropped. The first attempt waits a
// uniformly random time in [0, ReconnectSpread): when a gateway restarts,
// all its clients lose their connections at the same instant, and
// without the spread they would all come back within MinBackoff. Each
// later attempt waits its base, from MinBackoff doubling up to
// MaxBackoff, jittered down to between half of it and all of it.
type backoff struct {
	spread, base, max time.Duration
	started           bool
	randN             func(n int64) int64 // uniform in [0, n), n > 0
}

func newBackoff(cfg Config, randN func(int64) int64) *backoff {
	return &backoff{spread: cfg.ReconnectSpread, base: cfg.MinBackoff, max: cfg.MaxBackoff, randN: randN}
}

// next is the wait before the next attempt.
func (b *backoff) next() time.Duration {
	if !b.started {
		b.started = true
		if b.spread > 0 {
			return time.Duration(b.randN(int64(b.spread)))
		}
	}
	w := b.base
	b.base = min(2*b.base, b.max)
	return w/2 + time.Duration(b.randN(int64(w)/2+1))
}

// attach makes conn current and sends again every message still waiting
// for its acknowledgement, in counter order.
func (c *Client) attach(conn *channel.Conn) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.conn = conn
	c.inbox.reset()
	select {
	case <-c.synced: // the last connection's: this one has not synced yet
		c.synced = make(chan struct{})
	default:
	}
	keys := make([]outKey, 0, len(c.unacked))
	for k := range c.unacked {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, func(a, b outKey) int {
		if a.counter < b.counter {
			return -1
		}
		return 1
	})
	for _, k := range keys {
		c.write(conn, channel.TypeSend, c.unacked[k].env)
	}
}

// write writes one frame within WriteTimeout; a failed write fails the
// connection, which reconnects.
func (c *Client) write(conn *channel.Conn, t channel.Type, body []byte) error {
	conn.NetConn().SetWriteDeadline(time.Now().Add(c.cfg.WriteTimeout))
	return conn.WriteFrame(t, body)
}

func (c *Client) detach(conn *channel.Conn) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.conn == conn {
		c.conn = nil
	}
	conn.Close()
}

// serve reads frames until the connection ends.
func (c *Client) serve(conn *channel.Conn) error {
	stop := make(chan struct{})
	kick := make(chan struct{}, 1)
	done := make(chan struct{})
	defer func() {
		close(stop)
		conn.NetConn().SetWriteDeadline(time.Now()) // a ping or an acknowledgement blocked in a write gives up
		<-done
	}()
	go func() {
		defer close(done)
		c.keepalive(conn, stop, kick)
	}()
	for {
		f, err := conn.ReadFrame()
		if err != nil {
			return err
		}
		if err := c.handle(conn, f); err != nil {
			return err
		}
		if f.Type == channel.TypeDeliver || f.Type == channel.TypeKeyBundle {
			select { // something may be processed and not acknowledged yet
			case kick <- struct{}{}:
			default:
			}
		}
	}
}

func (c *Client) handle(conn *channel.Conn, f channel.Frame) error {
	switch f.Type {
	case channel.TypeKeyBundle:
		if err := c.onBundle(f.Body); err != nil {
			c.flushAck(conn, false) // what was processed is not delivered again
			return err
		}
	case channel.TypeDeliver:
		c.onDeliver(conn, f.Body)
	case channel.TypeSendAck:
		c.onSendAck(f.Body)
	case channel.TypeGroups:
		c.onGroups(f.Body)
	case channel.TypePing:
		return c.write(conn, channel.TypePong, f.Body)
	case channel.TypeError:
		code, _ := channel.ParseError(f.Body)
		return &protocol.PeerError{Code: code}
	case channel.TypeClose:
		return io.EOF
	}
	return nil
}

// ackDelay bounds how long a processed delivery waits for its
// acknowledgement when fewer than a batch came (flushAck).
const ackDelay = 100 * time.Millisecond

// keepalive pings the gateway and flushes delivery acknowledgements:
// ackDelay after a kick (a frame that may have been processed without
// its acknowledgement), then not again until the next kick. An idle
// connection wakes only to ping: a device asleep between messages stays
// asleep (before, a 100 ms ticker woke it ten times a second).
func (c *Client) keepalive(conn *channel.Conn, stop, kick <-chan struct{}) {
	ack := time.NewTimer(ackDelay)
	ack.Stop()
	var ackDue <-chan time.Time // nil while no flush is armed
	ping := time.NewTicker(c.cfg.PingInterval)
	defer ping.Stop()
	for {
		select {
		case <-stop:
			ack.Stop()
			return
		case <-kick:
			if ackDue == nil {
				ack.Reset(ackDelay)
				ackDue = ack.C
			}
		case <-ackDue:
			ackDue = nil
			c.ackFlushes.Add(1)
			c.flushAck(conn, false)
		case <-ping.C:
			c.write(conn, channel.TypePing, make([]byte, channel.PingBodySize))
		}
	}
}

// onGroups records the client's groups as the gateway tells them; the
// first Groups frame of a connection comes after every bundle it pushed at
// connect, so the client then holds every key it may use.
func (c *Client) onGroups(body []byte) {
	groups, err := channel.ParseGroups(body)
	if err != nil {
		return
	}
	set := make(map[protocol.GroupID]bool, len(groups))
	for _, g := range groups {
		set[g] = true
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.groups = set
	select {
	case <-c.synced:
	default:
		close(c.synced)
	}
	close(c.keyed) // a WaitKey for a group the client left learns it now
	c.keyed = make(chan struct{})
}
