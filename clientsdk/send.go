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
	done     chan error
	attempts int
}

// Send seals payload for group g under its current epoch's key with the
// next counter and waits until the relay has accepted it (nil), refused it
// (ErrRefused) or ctx ends. Across reconnections the same envelope is sent
// again until its fate is known; the relay stores it at most once.
func (c *Client) Send(ctx context.Context, g protocol.GroupID, payload []byte) error {
	if c.isClosed() {
		return ErrClosed
	}
	env, counter, err := c.seal(g, payload)
	if err != nil {
		return err
	}
	o := &outgoing{env: env, done: make(chan error, 1)}
	k := outKey{g, counter}
	c.mu.Lock()
	c.unacked[k] = o
	conn := c.conn
	c.mu.Unlock()
	if conn != nil {
		conn.WriteFrame(channel.TypeSend, env) // on failure the reconnection sends it again
	}
	select {
	case err := <-o.done:
		return err
	case <-ctx.Done():
		c.forget(k)
		return ctx.Err()
	case <-c.closed:
		return ErrClosed
	}
}

func (c *Client) seal(g protocol.GroupID, payload []byte) ([]byte, uint64, error) {
	epoch, key, err := c.state.Current(g)
	if err != nil {
		return nil, 0, ErrNoKey
	}
	defer clear(key[:])
	counter, err := c.state.NextCounter(g)
	if err != nil {
		return nil, 0, err
	}
	h := envelope.Header{Group: g, Epoch: epoch, Sender: c.cfg.Identity.ID(), Counter: counter}
	env, err := envelope.Seal(nil, h, &key, payload, nil)
	return env, counter, err
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
	switch a.Status {
	case channel.StatusAccepted, channel.StatusDuplicate:
		delete(c.unacked, k)
		o.done <- nil
	case channel.StatusRetry:
		o.attempts++
		time.AfterFunc(min(time.Duration(o.attempts)*200*time.Millisecond, 5*time.Second), func() { c.resend(k) })
	default:
		delete(c.unacked, k)
		o.done <- ErrRefused
	}
}

func (c *Client) resend(k outKey) {
	c.mu.Lock()
	o, conn := c.unacked[k], c.conn
	c.mu.Unlock()
	if o != nil && conn != nil {
		conn.WriteFrame(channel.TypeSend, o.env)
	}
}
