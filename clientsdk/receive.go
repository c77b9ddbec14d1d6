package clientsdk

import (
	"errors"
	"fmt"

	"github.com/commsec/communicator/protocol"
	"github.com/commsec/communicator/protocol/bundle"
	"github.com/commsec/communicator/protocol/channel"
	"github.com/commsec/communicator/protocol/envelope"
)

// inbox tracks deliveries of the current connection. They arrive in cursor
// order; the acknowledged cursor never passes a delivery still waiting for
// its key, so an unprocessed message is delivered again after a reconnect.
type inbox struct {
	waiting   []waiting // no key yet, in cursor order
	processed uint64    // last cursor processed
	acked     uint64    // last cursor acknowledged to the gateway
	sinceAck  int
	// skipped is the first cursor left unprocessed because waiting was
	// full (0: none): nothing from it on is acknowledged on this
	// connection, and once a key comes the client reconnects, so that
	// the gateway delivers it again.
	skipped uint64
}

type waiting struct {
	cursor uint64
	env    []byte
}

const maxWaiting = 256

func (in *inbox) reset() { *in = inbox{} }

// ackable is the highest cursor with everything up to it processed.
func (in *inbox) ackable() uint64 {
	a := in.processed
	if len(in.waiting) > 0 {
		a = min(a, in.waiting[0].cursor-1)
	}
	if in.skipped > 0 {
		a = min(a, in.skipped-1)
	}
	return a
}

var errNoKeyYet = errors.New("no key for this epoch yet")

// onDeliver opens a delivered envelope and hands it to the application,
// or keeps it until its epoch's key arrives.
func (c *Client) onDeliver(conn *channel.Conn, body []byte) {
	cursor, env, err := channel.ParseDeliver(body)
	if err != nil {
		return
	}
	env = append([]byte(nil), env...)
	err = c.process(env)
	c.mu.Lock()
	switch {
	case errors.Is(err, errNoKeyYet) && len(c.inbox.waiting) < maxWaiting:
		c.inbox.waiting = append(c.inbox.waiting, waiting{cursor, env})
	case errors.Is(err, errNoKeyYet):
		// Too many waiting: leave it, and everything after it,
		// unacknowledged; it comes again after a reconnect.
		if c.inbox.skipped == 0 {
			c.inbox.skipped = cursor
			c.cfg.Logf("clientsdk: %d deliveries wait for their key; later ones are left for the next connection", maxWaiting)
		}
	default:
		c.inbox.processed = cursor
		c.inbox.sinceAck++
	}
	c.mu.Unlock()
	c.flushAck(conn, true)
}

// process applies the client's acceptance rules (PROTOCOL.md §8.2), in
// this order: the envelope is signed by the sender it names (before
// anything else is done with it), its epoch is not retired for its group
// or its sender, its counter is fresh in its sender's window, it opens
// under its epoch's key; then it is counted, and persisted before the
// application sees it. A message refused is dropped (and acknowledged);
// one whose key has not come yet waits (errNoKeyYet).
func (c *Client) process(env []byte) error {
	h, err := envelope.Verify(env)
	if err != nil {
		c.cfg.Logf("clientsdk: dropped a message not signed by its sender: %v", err)
		return err
	}
	key, err := c.state.Key(h.Group, h.Epoch)
	if errors.Is(err, protocol.ErrRetiredEpoch) {
		c.cfg.Logf("clientsdk: dropped counter %d of epoch %d from %s in %s: %v", h.Counter, h.Epoch, h.Sender, h.Group, err)
		return err // its key is retired and will not come back
	}
	if err != nil {
		if newest, k, cerr := c.state.Current(h.Group); cerr == nil {
			clear(k[:])
			if h.Epoch < newest {
				// Keys come in epoch order: one below the newest held
				// will not come (PROTOCOL.md 5.6). Dropped, and
				// acknowledged.
				c.cfg.Logf("clientsdk: dropped counter %d of epoch %d from %s in %s: its key will not come (epoch %d held)", h.Counter, h.Epoch, h.Sender, h.Group, newest)
				return fmt.Errorf("clientsdk: %w: below the newest key held", protocol.ErrUnknownEpoch)
			}
		}
		return errNoKeyYet
	}
	defer clear(key[:])
	if err := c.state.Check(h); err != nil {
		c.cfg.Logf("clientsdk: dropped counter %d of epoch %d from %s in %s: %v", h.Counter, h.Epoch, h.Sender, h.Group, err)
		return err // retired for its sender, or replayed: dropped, and acknowledged
	}
	payload, err := envelope.OpenVerified(nil, env, &key)
	if err != nil {
		c.cfg.Logf("clientsdk: dropped a message that does not open: %v", err)
		return err
	}
	if err := c.state.Accept(h); err != nil {
		if errors.Is(err, protocol.ErrReplayedMessage) || errors.Is(err, protocol.ErrRetiredEpoch) {
			return err // decided meanwhile by a concurrent delivery: dropped, and acknowledged
		}
		c.cfg.Logf("clientsdk: state not saved, message kept for later: %v", err)
		return errNoKeyYet // not handed over, not acknowledged
	}
	m := Message{Group: h.Group, Sender: h.Sender, Epoch: h.Epoch, Counter: h.Counter, Payload: payload}
	select {
	case c.msgs <- m:
	case <-c.closed:
	}
	return nil
}

// flushAck sends a DeliverAck when enough deliveries are processed, or any
// time the ticker asks (force false only flushes a change).
func (c *Client) flushAck(conn *channel.Conn, batch bool) {
	c.mu.Lock()
	cursor := c.inbox.ackable()
	due := cursor > c.inbox.acked && (!batch || c.inbox.sinceAck >= 32)
	if due {
		c.inbox.acked, c.inbox.sinceAck = cursor, 0
	}
	c.mu.Unlock()
	if due {
		var body [8]byte
		putUint64(body[:], cursor)
		c.write(conn, channel.TypeDeliverAck, body[:])
	}
}

func putUint64(b []byte, v uint64) {
	for i := 7; i >= 0; i-- {
		b[i] = byte(v)
		v >>= 8
	}
}

// onBundle verifies a key bundle and installs the key, then retries the
// deliveries that were waiting for it; errRedeliver if deliveries were
// left for want of room: the connection ends, and the next one has them.
func (c *Client) onBundle(body []byte) error {
	b, err := bundle.Parse(body)
	if err != nil {
		c.cfg.Logf("clientsdk: malformed bundle: %v", err)
		return nil
	}
	key, err := b.Open(&c.cfg.KeyserverKey, c.cfg.Identity)
	if err != nil {
		c.refuseBundle(b, err)
		return nil
	}
	_, had := c.state.Key(b.Group, b.Epoch)
	fresh := had != nil
	err = c.state.InstallKey(b.Group, b.Epoch, &key)
	clear(key[:])
	if err != nil {
		if !errors.Is(err, protocol.ErrStaleEpoch) {
			c.cfg.Logf("clientsdk: key of epoch %d not installed: %v", b.Epoch, err)
		}
		return nil
	}
	c.mu.Lock()
	close(c.keyed)
	c.keyed = make(chan struct{})
	c.mu.Unlock()
	c.retryWaiting(b.Group, b.Epoch)
	c.mu.Lock()
	skipped := c.inbox.skipped
	c.mu.Unlock()
	if skipped > 0 && fresh {
		return errRedeliver
	}
	return nil
}

// errRedeliver ends a connection on which deliveries were left
// unprocessed (the waiting list was full) once a key came that may open
// them: the next connection delivers them again, from the last
// acknowledgement.
var errRedeliver = errors.New("deliveries left for want of room, and a key came: reconnecting to have them again")

// refuseBundle records a refused bundle for BundleError. Only the first
// is logged: with a wrong KeyserverKey every bundle fails alike.
func (c *Client) refuseBundle(b *bundle.Bundle, err error) {
	err = fmt.Errorf("clientsdk: key bundle of %s epoch %d refused: %w", b.Group, b.Epoch, err)
	c.mu.Lock()
	first := c.bundleErr == nil
	if first {
		c.bundleErr = err
	}
	c.mu.Unlock()
	if first {
		c.cfg.Logf("%v", err)
	}
}

// retryWaiting processes the waiting deliveries again; those of the
// group that still have no key although a newer epoch's has come are
// dropped (their epoch's key will not come).
func (c *Client) retryWaiting(g protocol.GroupID, installed protocol.Epoch) {
	c.mu.Lock()
	list := c.inbox.waiting
	c.inbox.waiting = nil
	c.mu.Unlock()
	var still []waiting
	for _, w := range list {
		h, _ := envelope.ParseHeader(w.env)
		err := c.process(w.env)
		if errors.Is(err, errNoKeyYet) && !(h.Group == g && h.Epoch < installed) {
			still = append(still, w)
		}
	}
	c.mu.Lock()
	c.inbox.waiting = append(still, c.inbox.waiting...)
	if len(c.inbox.waiting) == 0 && len(list) > 0 {
		c.inbox.processed = max(c.inbox.processed, list[len(list)-1].cursor)
	}
	c.mu.Unlock()
}
