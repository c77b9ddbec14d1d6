package clientsdk

import (
	"context"
	"time"

	"github.com/commsec/communicator/protocol"
	"github.com/commsec/communicator/protocol/channel"
	"github.com/commsec/communicator/protocol/envelope"
)

type outKey struct {
	group   protocol.GroupID
	counter uint64
}

// outgoing is a sent message awaiting its SendAck.
type outgoing struct {
	env      []byte
	epoch    protocol.Epoch
	done     chan channel.SendStatus
	attempts int
}

// Send seals payload for group g under the newest key the client holds,
// with the next counter, and waits until the relay has accepted it (nil),
// refused it (an error that is ErrRefused: ErrOldEpoch, ErrNotMember,
// ErrRevoked, ErrNoGroup, ErrFutureEpoch, or ErrRefused itself for any
// other reason) or ctx ends.
//
// Before sealing it waits until the gateway has pushed the connection's
// key bundles and told the client its groups, so that it seals under the
// newest key (a client offline across rekeys gets them at connect); a
// group the gateway does not list is ErrNotMember at once. If the relay
// refuses the message's epoch as old (a rekey crossed it), Send waits for
// the newer key (ResealWait), seals the payload anew with a new counter
// and sends it once more. Across reconnections the same envelope is sent
// again until its fate is known; the relay stores it at most once.
//
// Up to MaxInflight sends to one group may wait for their verdicts at
// once; more wait for a place before they seal.
func (c *Client) Send(ctx context.Context, g protocol.GroupID, payload []byte) error {
	_, err := c.SendWithResult(ctx, g, payload)
	return err
}

// SendResult is what became of one Send.
type SendResult struct {
	// Status is the last SendAck's: StatusAccepted, StatusDuplicate (it
	// was stored by an earlier copy whose answer was lost), or a refusal.
	// Zero with an error that is not a refusal.
	Status channel.SendStatus
	// Counters are the counters the payload was sealed with, in order:
	// two when it was sealed anew after an old epoch.
	Counters []uint64
	// Retries counts the "retry" answers (SendAck status 3) along the way.
	Retries int
}

// SendWithResult is Send, and also says what became of the message.
func (c *Client) SendWithResult(ctx context.Context, g protocol.GroupID, payload []byte) (SendResult, error) {
	var r SendResult
	if c.isClosed() {
		return r, ErrClosed
	}
	if err := c.WaitSynced(ctx); err != nil {
		return r, err
	}
	if known, member := c.member(g); known && !member {
		return r, ErrNotMember
	}
	epoch, err := c.sendOnce(ctx, g, payload, &r)
	if err != nil || r.Status != channel.StatusOldEpoch {
		return r, errOf(r.Status, err)
	}
	c.cfg.Logf("clientsdk: epoch %d of %s refused as old; sealing anew under a newer key", epoch, g)
	if err := c.waitNewer(ctx, g, epoch); err != nil {
		return r, errOf(r.Status, nil)
	}
	_, err = c.sendOnce(ctx, g, payload, &r)
	return r, errOf(r.Status, err)
}

// member reports whether the gateway has told the client its groups, and
// whether g is one of them.
func (c *Client) member(g protocol.GroupID) (known, member bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.groups != nil, c.groups[g]
}

// errOf is Send's answer for a SendAck status.
func errOf(s channel.SendStatus, err error) error {
	if err != nil {
		return err
	}
	switch s {
	case channel.StatusAccepted, channel.StatusDuplicate:
		return nil
	case channel.StatusOldEpoch:
		return ErrOldEpoch
	case channel.StatusNotMember:
		return ErrNotMember
	case channel.StatusRevoked:
		return ErrRevoked
	case channel.StatusNoGroup:
		return ErrNoGroup
	case channel.StatusFutureEpoch:
		return ErrFutureEpoch
	}
	return ErrRefused
}

// waitNewer waits, at most ResealWait, until the client holds a key of g
// newer than epoch.
func (c *Client) waitNewer(ctx context.Context, g protocol.GroupID, epoch protocol.Epoch) error {
	ctx, cancel := context.WithTimeout(ctx, c.cfg.ResealWait)
	defer cancel()
	for {
		c.mu.Lock()
		ch := c.keyed
		c.mu.Unlock()
		if c.Epoch(g) > epoch {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		case <-c.closed:
			return ErrClosed
		}
	}
}

// flight is one group's sends waiting for their verdicts. A counter is
// sealed only while it is less than MaxInflight above the oldest counter
// of the group still unanswered: so a message sent again is never a
// replay window (PROTOCOL.md §8.6) below a counter the relays accepted,
// however long it waits. Counting the sends would not do: while one
// waits, the others come and go and the counters climb.
type flight struct {
	turn    chan struct{}       // one sealer at a time (a mutex a context can give up on)
	waiting map[uint64]struct{} // counters sealed, not yet answered nor given up
	last    uint64              // the last counter sealed
	changed chan struct{}       // closed when a counter leaves waiting
}

func (c *Client) flightOf(g protocol.GroupID) *flight {
	c.mu.Lock()
	defer c.mu.Unlock()
	f := c.flights[g]
	if f == nil {
		f = &flight{turn: make(chan struct{}, 1), waiting: map[uint64]struct{}{}, changed: make(chan struct{})}
		c.flights[g] = f
	}
	return f
}

// sealInWindow waits until the group's next counter is within
// MaxInflight of its oldest unanswered one, then seals payload and
// records its counter as waiting; done takes it out again.
func (c *Client) sealInWindow(ctx context.Context, g protocol.GroupID, payload []byte) (env []byte, epoch protocol.Epoch, counter uint64, done func(), err error) {
	f := c.flightOf(g)
	select {
	case f.turn <- struct{}{}:
	case <-ctx.Done():
		return nil, 0, 0, nil, ctx.Err()
	case <-c.closed:
		return nil, 0, 0, nil, ErrClosed
	}
	defer func() { <-f.turn }()
	for {
		c.mu.Lock()
		oldest, ok := f.oldest()
		changed := f.changed
		c.mu.Unlock()
		if !ok || f.last+1-oldest < uint64(c.cfg.MaxInflight) {
			break
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return nil, 0, 0, nil, ctx.Err()
		case <-c.closed:
			return nil, 0, 0, nil, ErrClosed
		}
	}
	env, epoch, counter, err = c.seal(g, payload)
	if err != nil {
		return nil, 0, 0, nil, err
	}
	c.mu.Lock()
	f.waiting[counter] = struct{}{}
	f.last = counter
	c.mu.Unlock()
	return env, epoch, counter, func() {
		c.mu.Lock()
		defer c.mu.Unlock()
		delete(f.waiting, counter)
		close(f.changed)
		f.changed = make(chan struct{})
	}, nil
}

// oldest is the lowest counter waiting (c.mu held).
func (f *flight) oldest() (uint64, bool) {
	first, found := uint64(0), false
	for n := range f.waiting {
		if !found || n < first {
			first, found = n, true
		}
	}
	return first, found
}

// sendOnce seals and sends one envelope and waits for its final status
// (anything but retry, which it sends again), recorded in r.
func (c *Client) sendOnce(ctx context.Context, g protocol.GroupID, payload []byte, r *SendResult) (protocol.Epoch, error) {
	r.Status = 0
	env, epoch, counter, done, err := c.sealInWindow(ctx, g, payload)
	if err != nil {
		return 0, err
	}
	defer done()
	r.Counters = append(r.Counters, counter)
	o := &outgoing{env: env, epoch: epoch, done: make(chan channel.SendStatus, 1)}
	k := outKey{g, counter}
	c.mu.Lock()
	c.unacked[k] = o
	conn := c.conn
	c.mu.Unlock()
	if conn != nil {
		c.write(conn, channel.TypeSend, env) // on failure the reconnection sends it again
	}
	defer func() {
		c.mu.Lock()
		r.Retries += o.attempts
		c.mu.Unlock()
	}()
	select {
	case s := <-o.done:
		r.Status = s
		return epoch, nil
	case <-ctx.Done():
		c.forget(k)
		return epoch, ctx.Err()
	case <-c.closed:
		return epoch, ErrClosed
	}
}

func (c *Client) seal(g protocol.GroupID, payload []byte) ([]byte, protocol.Epoch, uint64, error) {
	epoch, key, err := c.state.Current(g)
	if err != nil {
		return nil, 0, 0, ErrNoKey
	}
	defer clear(key[:])
	counter, err := c.state.NextCounter(g)
	if err != nil {
		return nil, 0, 0, err
	}
	h := envelope.Header{Group: g, Epoch: epoch, Sender: c.cfg.Identity.ID(), Counter: counter}
	env, err := envelope.Seal(nil, h, &key, payload, c.cfg.Identity.Sig, nil)
	return env, epoch, counter, err
}

func (c *Client) forget(k outKey) {
	c.mu.Lock()
	delete(c.unacked, k)
	c.mu.Unlock()
}

// onSendAck resolves a waiting Send, or schedules a resend for "retry".
func (c *Client) onSendAck(body []byte) {
	a, err := channel.ParseSendAck(body)
	if err != nil {
		return
	}
	k := outKey{a.Group, a.Counter}
	c.mu.Lock()
	defer c.mu.Unlock()
	o := c.unacked[k]
	if o == nil {
		return
	}
	if a.Status == channel.StatusRetry {
		o.attempts++
		time.AfterFunc(min(time.Duration(o.attempts)*200*time.Millisecond, 5*time.Second), func() { c.resend(k) })
		return
	}
	delete(c.unacked, k)
	o.done <- a.Status
}

func (c *Client) resend(k outKey) {
	c.mu.Lock()
	o, conn := c.unacked[k], c.conn
	c.mu.Unlock()
	if o != nil && conn != nil {
		c.write(conn, channel.TypeSend, o.env)
	}
}

// Waiting is how many sends to g are sealed and waiting for their verdict
// (at most MaxInflight).
func (c *Client) Waiting(g protocol.GroupID) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	if f := c.flights[g]; f != nil {
		return len(f.waiting)
	}
	return 0
}
