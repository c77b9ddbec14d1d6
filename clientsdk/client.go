// Package clientsdk is what a device embeds to talk to the Communicator:
// it connects to a gateway, proves its identity in the handshake, installs
// the group keys the keyserver wraps to it, sends group messages and
// receives its groups' messages, reconnecting with backoff.
//
// The client's state (counters, replay state, group keys) lives in a
// clientstate.Store. A restarted client never reuses a send counter and
// never hands the application a message it already handed over: messages
// arrive at least once on the wire and exactly once to the application.
//
//	c, err := clientsdk.Dial(ctx, clientsdk.Config{Addr: "gw:7400", Identity: id,
//		ServerKey: pkS, KeyserverKey: pkKs, Store: &clientstate.FileStore{Path: "state"}})
//	...
//	err = c.Send(ctx, group, []byte("hello"))
//	for m := range c.Messages() { ... }
package clientsdk

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/commsec/communicator/protocol"
	"github.com/commsec/communicator/protocol/channel"
	"github.com/commsec/communicator/protocol/clientstate"
	"github.com/commsec/communicator/protocol/keys"
	"github.com/commsec/communicator/protocol/replay"
)

// Config configures a client.
type Config struct {
	Addr         string                       // the gateway, host:port
	Identity     *keys.ClientIdentity         // Sk_Cn and the key-wrap key
	ServerKey    [protocol.PublicKeySize]byte // Pk_S, from registration
	KeyserverKey [protocol.PublicKeySize]byte // Pk_Ks, from registration
	// Store keeps the client's state; nil keeps it in memory only (a
	// restart then forgets counters: use a FileStore on real devices).
	Store        clientstate.Store
	StateOptions clientstate.Options
	// ReconnectSpread spreads the first reconnection attempt after a lost
	// connection uniformly over [0, ReconnectSpread) (default 2 s; negative:
	// no spread, the first attempt waits as the backoff's first step), so
	// that the clients of a restarted gateway do not all come back at the
	// same instant.
	ReconnectSpread time.Duration
	// Backoff between the later reconnection attempts: from MinBackoff
	// (100 ms), doubling up to MaxBackoff (30 s), each wait jittered
	// between half of its step and all of it.
	MinBackoff, MaxBackoff time.Duration
	HandshakeTimeout       time.Duration // default 10 s
	PingInterval           time.Duration // default 30 s
	// WriteTimeout bounds each write to the gateway (default 10 s): a
	// gateway that stops reading fails the connection, which reconnects,
	// instead of holding a Send past its context.
	WriteTimeout time.Duration
	// ResealWait bounds the wait for a newer key when the relay refuses a
	// message's epoch as old (default 5 s): Send then seals the payload
	// anew under the newer key, once.
	ResealWait time.Duration
	// MaxInflight bounds how far a new message's counter may be above the
	// oldest message to the same group still waiting for its verdict
	// (default and most: replay.Size/2 = 128), and so the sends in flight;
	// a Send past it waits. It keeps every message sent again inside the
	// relays' and receivers' replay window (PROTOCOL.md §8.6).
	MaxInflight int
	// Buffer is the capacity of the Messages channel (default 64).
	Buffer int
	// Dial opens the TCP connection (net.Dialer by default).
	Dial func(ctx context.Context, addr string) (net.Conn, error)
	// Logf receives diagnostics (nil discards them).
	Logf func(format string, args ...any)
}

func (c *Config) fill() error {
	switch {
	case c.Identity == nil:
		return errors.New("clientsdk: no identity")
	case c.Addr == "":
		return errors.New("clientsdk: no gateway address")
	case c.ServerKey == [32]byte{} || c.KeyserverKey == [32]byte{}:
		return errors.New("clientsdk: the server and keyserver public keys are required")
	}
	if c.Store == nil {
		c.Store = &clientstate.MemStore{}
	}
	if c.ReconnectSpread == 0 {
		c.ReconnectSpread = DefaultReconnectSpread
	}
	c.MinBackoff = orDefault(c.MinBackoff, 100*time.Millisecond)
	c.MaxBackoff = orDefault(c.MaxBackoff, 30*time.Second)
	c.HandshakeTimeout = orDefault(c.HandshakeTimeout, 10*time.Second)
	c.PingInterval = orDefault(c.PingInterval, 30*time.Second)
	c.WriteTimeout = orDefault(c.WriteTimeout, 10*time.Second)
	c.ResealWait = orDefault(c.ResealWait, 5*time.Second)
	if c.Buffer <= 0 {
		c.Buffer = 64
	}
	switch {
	case c.MaxInflight <= 0:
		c.MaxInflight = replay.Size / 2
	case c.MaxInflight > replay.Size/2:
		return fmt.Errorf("clientsdk: MaxInflight %d is above %d, half the replay window: a retried message could fall below it", c.MaxInflight, replay.Size/2)
	}
	if c.Dial == nil {
		var d net.Dialer
		c.Dial = func(ctx context.Context, addr string) (net.Conn, error) { return d.DialContext(ctx, "tcp", addr) }
	}
	if c.Logf == nil {
		c.Logf = func(string, ...any) {}
	}
	return nil
}

// DefaultReconnectSpread is Config.ReconnectSpread's default. The 18,000
// clients of a restarted gateway then arrive at about 9,000 a second
// instead of all within 100 ms: about twice what a gateway handshakes on
// 2 cores (docs/BENCHMARKS.md), so that its 256 handshake slots queue the
// rest for a moment rather than turn most of them away as busy, and a
// client waits 1 s on average.
const DefaultReconnectSpread = 2 * time.Second

func orDefault(v, d time.Duration) time.Duration {
	if v <= 0 {
		return d
	}
	return v
}

// Message is a group message handed to the application.
type Message struct {
	Group   protocol.GroupID
	Sender  protocol.ClientID
	Epoch   protocol.Epoch
	Counter uint64
	Payload []byte
}

// Errors of Send. Every refusal is ErrRefused (errors.Is); the relay names
// the sender's own standing when that is what refused it.
var (
	ErrRefused     = errors.New("clientsdk: the relay refused the message")
	ErrOldEpoch    = fmt.Errorf("%w: its epoch is no longer accepted, and no newer key for the group came", ErrRefused)
	ErrNotMember   = fmt.Errorf("%w: this client is not a member of the group", ErrRefused)
	ErrRevoked     = fmt.Errorf("%w: this client is revoked", ErrRefused)
	ErrNoGroup     = fmt.Errorf("%w: the group does not exist, or was deleted", ErrRefused)
	ErrFutureEpoch = fmt.Errorf("%w: its epoch was never opened", ErrRefused)
	ErrNoKey       = errors.New("clientsdk: no key for this group (not a member, or its bundle has not arrived yet)")
	ErrClosed      = errors.New("clientsdk: client closed")
)

// Client is a connected (or reconnecting) client. It is safe for
// concurrent use.
type Client struct {
	cfg   Config
	state *clientstate.State
	msgs  chan Message
	keyed chan struct{} // closed and replaced when a key is installed

	mu      sync.Mutex
	conn    *channel.Conn // nil while disconnected
	unacked map[outKey]*outgoing
	inbox   inbox
	// synced is closed when the gateway's first Groups frame on the
	// current connection has come (every bundle pushed at connect is
	// installed by then); replaced at every connection.
	synced chan struct{}
	// groups are the client's groups as the gateway last told them (nil:
	// not told yet).
	groups map[protocol.GroupID]bool
	// flights are each group's sends waiting for their verdicts (send.go).
	flights map[protocol.GroupID]*flight
	// bundleErr is the first key bundle refused since Dial (BundleError).
	bundleErr error

	// randN draws the reconnection waits (math/rand/v2's Int64N; tests
	// fix it).
	randN func(n int64) int64
	// ackFlushes counts the keepalive's armed acknowledgement flushes
	// (tests: an idle connection makes none).
	ackFlushes atomic.Uint64

	closed    chan struct{}
	closeOnce sync.Once
	done      chan struct{}
	// ctx ends at Close: a reconnection in progress stops with it.
	ctx    context.Context
	cancel context.CancelFunc
}

// Dial loads the client's state, connects and completes the handshake;
// from then on the client keeps itself connected until Close. An error
// from the first handshake (a wrong server key, a client the gateway does
// not admit) is returned.
func Dial(ctx context.Context, cfg Config) (*Client, error) {
	if err := cfg.fill(); err != nil {
		return nil, err
	}
	st, err := clientstate.Load(cfg.Store, cfg.StateOptions)
	if err != nil {
		return nil, err
	}
	c := &Client{cfg: cfg, state: st, msgs: make(chan Message, cfg.Buffer), keyed: make(chan struct{}),
		unacked: map[outKey]*outgoing{}, closed: make(chan struct{}), done: make(chan struct{}), synced: make(chan struct{}),
		flights: map[protocol.GroupID]*flight{}, randN: rand.Int64N}
	c.ctx, c.cancel = context.WithCancel(context.Background())
	conn, err := c.connect(ctx)
	if err != nil {
		c.cancel()
		return nil, err
	}
	go c.run(conn)
	return c, nil
}

// connect opens one connection and runs the handshake.
func (c *Client) connect(ctx context.Context) (*channel.Conn, error) {
	nc, err := c.cfg.Dial(ctx, c.cfg.Addr)
	if err != nil {
		return nil, fmt.Errorf("clientsdk: dial %s: %w", c.cfg.Addr, err)
	}
	stop := context.AfterFunc(ctx, func() { nc.Close() }) // the handshake stops with ctx
	defer stop()
	conn, err := handshakeClient(nc, c.cfg)
	if err != nil {
		if ctx.Err() != nil {
			err = ctx.Err()
		}
		return nil, fmt.Errorf("clientsdk: handshake with %s: %w", c.cfg.Addr, err)
	}
	return conn, nil
}

// Messages delivers the group messages, each exactly once. It is closed
// when the client is closed.
func (c *Client) Messages() <-chan Message { return c.msgs }

// Groups lists the groups the client is a member of, as the gateway last
// told it; before the gateway has told it, the groups it holds a key for.
func (c *Client) Groups() []protocol.GroupID {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.groups == nil {
		return c.state.Groups()
	}
	out := make([]protocol.GroupID, 0, len(c.groups))
	for g := range c.groups {
		out = append(out, g)
	}
	slices.SortFunc(out, func(a, b protocol.GroupID) int { return bytes.Compare(a[:], b[:]) })
	return out
}

// WaitSynced waits until the gateway has pushed every key bundle of the
// current connection and told the client its groups.
func (c *Client) WaitSynced(ctx context.Context) error {
	c.mu.Lock()
	ch := c.synced
	c.mu.Unlock()
	select {
	case <-ch:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	case <-c.closed:
		return ErrClosed
	}
}

// WaitKey waits until the client holds a key for g.
func (c *Client) WaitKey(ctx context.Context, g protocol.GroupID) error {
	for {
		c.mu.Lock()
		ch := c.keyed
		c.mu.Unlock()
		if _, _, err := c.state.Current(g); err == nil {
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

// BundleError is why the client refused the first key bundle it refused
// since Dial, or nil: its signature does not verify under
// Config.KeyserverKey (protocol.ErrBadBundleSignature: a wrong Pk_Ks, or
// a forged bundle), it is for another client, or its key does not unwrap.
// A refused bundle's key is never installed. The bundles pushed at
// connect have all been handled once WaitSynced returns.
func (c *Client) BundleError() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.bundleErr
}

// Close ends the connection gracefully and stops reconnecting.
func (c *Client) Close() error {
	c.closeOnce.Do(func() {
		close(c.closed)
		c.cancel()
		c.mu.Lock()
		if c.conn != nil {
			c.conn.WriteFrame(channel.TypeClose, nil)
			c.conn.Close()
		}
		c.mu.Unlock()
	})
	<-c.done
	return nil
}

// Epoch is the newest epoch of g the client holds a key for (0: none).
func (c *Client) Epoch(g protocol.GroupID) protocol.Epoch {
	e, key, err := c.state.Current(g)
	clear(key[:])
	if err != nil {
		return 0
	}
	return e
}
