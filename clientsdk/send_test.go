package clientsdk

import (
	"context"
	"errors"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/commsec/communicator/protocol"
	"github.com/commsec/communicator/protocol/bundle"
	"github.com/commsec/communicator/protocol/channel"
	"github.com/commsec/communicator/protocol/envelope"
	"github.com/commsec/communicator/protocol/handshake"
	"github.com/commsec/communicator/protocol/keys"
)

// script is a gateway that plays a fixed part over real TCP with the real
// handshake and channel: it lets a test put the SDK in situations a whole
// stack reaches only by luck (a rekey crossing a send).
type script struct {
	t          *testing.T
	ln         net.Listener
	server, ks *keys.SigningKey
	client     *keys.ClientIdentity
	group      protocol.GroupID
}

func newScript(t *testing.T) *script {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	server, _ := keys.GenerateSigningKey(nil)
	ks, _ := keys.GenerateSigningKey(nil)
	client, _ := keys.GenerateClientIdentity(nil)
	return &script{t: t, ln: ln, server: server, ks: ks, client: client, group: protocol.GroupID{0x5c}}
}

// serve runs part on the first connection, on a goroutine joined at the
// end of the test.
func (s *script) serve(part func(conn *channel.Conn)) {
	done := make(chan struct{})
	s.t.Cleanup(func() { <-done })
	go func() {
		defer close(done)
		nc, err := s.ln.Accept()
		if err != nil {
			return
		}
		conn, _, err := handshake.Server(nc, handshake.ServerConfig{Identity: s.server})
		if err != nil {
			s.t.Errorf("script: handshake: %v", err)
			return
		}
		defer conn.Close()
		part(conn)
	}()
}

// bundle is the client's bundle of epoch e, signed by the keyserver.
func (s *script) bundle(e protocol.Epoch) []byte {
	id := s.client.ID()
	members := bundle.MemberDigest([]protocol.ClientID{id})
	key := [32]byte{byte(e)}
	b, err := bundle.Wrap(s.ks, s.group, e, bundle.Recipient{ID: id, Wrap: s.client.Public().Wrap}, &members, &key)
	if err != nil {
		s.t.Fatal(err)
	}
	return b.Marshal()
}

func (s *script) dial() *Client { return s.dialWith(nil) }

// dialWith is dial with the configuration changed by adjust (if not nil).
func (s *script) dialWith(adjust func(*Config)) *Client {
	cfg := Config{Addr: s.ln.Addr().String(), Identity: s.client,
		ServerKey: s.server.Public(), KeyserverKey: s.ks.Public(), ResealWait: time.Second}
	if adjust != nil {
		adjust(&cfg)
	}
	c, err := Dial(context.Background(), cfg)
	if err != nil {
		s.t.Fatal(err)
	}
	s.t.Cleanup(func() { c.Close() })
	return c
}

// readSend reads frames until a Send and returns its envelope's header.
func readSend(t *testing.T, conn *channel.Conn) envelope.Header {
	for {
		f, err := conn.ReadFrame()
		if err != nil {
			t.Errorf("script: %v", err)
			return envelope.Header{}
		}
		if f.Type == channel.TypeSend {
			h, err := envelope.ParseHeader(f.Body)
			if err != nil {
				t.Errorf("script: %v", err)
			}
			return h
		}
	}
}

func ack(conn *channel.Conn, h envelope.Header, s channel.SendStatus) {
	conn.WriteFrame(channel.TypeSendAck, channel.AppendSendAck(nil, channel.SendAck{Group: h.Group, Counter: h.Counter, Status: s}))
}

// TestOldEpochSealedAnewOnce: the relay refuses a message's epoch as old
// (a rekey crossed it); the newer key arrives, and Send seals the payload
// anew under it, with a new counter, once, transparently.
func TestOldEpochSealedAnewOnce(t *testing.T) {
	s := newScript(t)
	var first, second envelope.Header
	s.serve(func(conn *channel.Conn) {
		conn.WriteFrame(channel.TypeKeyBundle, s.bundle(1))
		conn.WriteFrame(channel.TypeGroups, channel.AppendGroups(nil, []protocol.GroupID{s.group}))
		first = readSend(t, conn)
		conn.WriteFrame(channel.TypeKeyBundle, s.bundle(2))
		ack(conn, first, channel.StatusOldEpoch)
		second = readSend(t, conn)
		ack(conn, second, channel.StatusRetry)
		readSend(t, conn) // the same envelope again
		ack(conn, second, channel.StatusDuplicate)
		conn.ReadFrame() // until the client closes
	})
	c := s.dial()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	r, err := c.SendWithResult(ctx, s.group, []byte("hello"))
	if err != nil {
		t.Fatalf("send across a rekey: %v", err)
	}
	c.Close()
	if first.Epoch != 1 || second.Epoch != 2 || second.Counter <= first.Counter {
		t.Fatalf("first sealed in epoch %d counter %d, then epoch %d counter %d", first.Epoch, first.Counter, second.Epoch, second.Counter)
	}
	if r.Status != channel.StatusDuplicate || len(r.Counters) != 2 || r.Counters[0] != first.Counter || r.Counters[1] != second.Counter || r.Retries != 1 {
		t.Fatalf("result %+v, want duplicate, counters %d and %d, 1 retry", r, first.Counter, second.Counter)
	}
}

// TestSendRefusals: each refusal status reaches the caller as its own
// error (and as ErrRefused); an old epoch with no newer key coming is
// ErrOldEpoch after ResealWait; a group the gateway does not list is
// ErrNotMember at once, without sending.
func TestSendRefusals(t *testing.T) {
	statuses := []struct {
		status channel.SendStatus
		want   error
	}{
		{channel.StatusRefused, ErrRefused},
		{channel.StatusNotMember, ErrNotMember},
		{channel.StatusRevoked, ErrRevoked},
		{channel.StatusNoGroup, ErrNoGroup},
		{channel.StatusFutureEpoch, ErrFutureEpoch},
		{channel.StatusOldEpoch, ErrOldEpoch},
		{channel.SendStatus(99), ErrRefused},
	}
	s := newScript(t)
	var sent atomic.Int32
	s.serve(func(conn *channel.Conn) {
		conn.WriteFrame(channel.TypeKeyBundle, s.bundle(1))
		conn.WriteFrame(channel.TypeGroups, channel.AppendGroups(nil, []protocol.GroupID{s.group}))
		for _, st := range statuses {
			h := readSend(t, conn)
			sent.Add(1)
			ack(conn, h, st.status)
		}
		conn.ReadFrame()
	})
	c := s.dial()
	for _, st := range statuses {
		ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
		err := c.Send(ctx, s.group, []byte("x"))
		cancel()
		if !errors.Is(err, st.want) || !errors.Is(err, ErrRefused) {
			t.Errorf("status %v: %v, want %v", st.status, err, st.want)
		}
	}
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	if err := c.Send(ctx, protocol.GroupID{0xff}, []byte("x")); !errors.Is(err, ErrNotMember) {
		t.Errorf("a group the gateway does not list: %v", err)
	}
	c.Close()
	if n := int(sent.Load()); n != len(statuses) {
		t.Errorf("the script answered %d sends, want %d (the non-member send must not reach it)", n, len(statuses))
	}
}

// TestBundleErrorWrongKeyserverKey: bundles signed by a key other than
// the client's KeyserverKey are refused, none installed; BundleError says
// why once the connect's bundles are handled, and only the first refusal
// is logged.
func TestBundleErrorWrongKeyserverKey(t *testing.T) {
	s := newScript(t)
	s.ks, _ = keys.GenerateSigningKey(nil) // signs the bundles; the client trusts another key
	trusted, _ := keys.GenerateSigningKey(nil)
	s.serve(func(conn *channel.Conn) {
		for e := range protocol.Epoch(3) {
			conn.WriteFrame(channel.TypeKeyBundle, s.bundle(e+1))
		}
		conn.WriteFrame(channel.TypeGroups, channel.AppendGroups(nil, []protocol.GroupID{s.group}))
		conn.ReadFrame() // until the client leaves
	})
	var logged atomic.Int32
	c, err := Dial(t.Context(), Config{Addr: s.ln.Addr().String(), Identity: s.client, ServerKey: s.server.Public(),
		KeyserverKey: trusted.Public(), Logf: func(string, ...any) { logged.Add(1) }})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.WaitSynced(t.Context()); err != nil {
		t.Fatal(err)
	}
	if err := c.BundleError(); !errors.Is(err, protocol.ErrBadBundleSignature) {
		t.Errorf("BundleError %v, want %v", err, protocol.ErrBadBundleSignature)
	}
	if e := c.Epoch(s.group); e != 0 {
		t.Errorf("a key of epoch %d was installed from a bundle that does not verify", e)
	}
	if n := logged.Load(); n != 1 {
		t.Errorf("logged %d times, want once", n)
	}
}

// TestInflightBoundsCounterSpread: while a message waits for its verdict,
// the client seals no counter MaxInflight or more above it, however many
// later messages are answered meanwhile: a message sent again must stay
// inside the relays' replay window. Before, MaxInflight counted the
// sends, and counters climbed past the window while one waited.
func TestInflightBoundsCounterSpread(t *testing.T) {
	s := newScript(t)
	var highest atomic.Uint64
	release := make(chan struct{})
	var releaseOnce sync.Once
	free := func() { releaseOnce.Do(func() { close(release) }) }
	s.serve(func(conn *channel.Conn) {
		var wmu sync.Mutex
		conn.WriteFrame(channel.TypeKeyBundle, s.bundle(1))
		conn.WriteFrame(channel.TypeGroups, channel.AppendGroups(nil, []protocol.GroupID{s.group}))
		first := readSend(t, conn) // never answered until released
		var wg sync.WaitGroup
		wg.Go(func() {
			<-release
			wmu.Lock()
			defer wmu.Unlock()
			ack(conn, first, channel.StatusAccepted)
		})
		defer wg.Wait()
		for {
			f, err := conn.ReadFrame()
			if err != nil {
				return // the client closed
			}
			if f.Type != channel.TypeSend {
				continue
			}
			h, err := envelope.ParseHeader(f.Body)
			if err != nil {
				t.Errorf("script: %v", err)
				return
			}
			highest.Store(max(highest.Load(), h.Counter))
			wmu.Lock()
			ack(conn, h, channel.StatusAccepted)
			wmu.Unlock()
		}
	})
	c := s.dialWith(func(cfg *Config) { cfg.MaxInflight = 4 })
	t.Cleanup(free) // first of the cleanups: a failing test must not leave the script waiting
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	firstDone := make(chan error, 1)
	go func() { firstDone <- c.Send(ctx, s.group, []byte("1")) }()
	for c.Waiting(s.group) == 0 {
		time.Sleep(time.Millisecond)
	}
	for _, p := range []string{"2", "3", "4"} {
		if err := c.Send(ctx, s.group, []byte(p)); err != nil {
			t.Fatal(err)
		}
	}
	fifth := make(chan error, 1)
	go func() { fifth <- c.Send(ctx, s.group, []byte("5")) }()
	select {
	case err := <-fifth:
		t.Fatalf("counter 5 sealed and answered (%v) while counter 1 waits, with MaxInflight 4", err)
	case <-time.After(300 * time.Millisecond):
	}
	if h := highest.Load(); h != 4 {
		t.Fatalf("highest counter sent while 1 waits: %d, want 4", h)
	}
	free()
	if err := <-firstDone; err != nil {
		t.Fatal(err)
	}
	if err := <-fifth; err != nil {
		t.Fatal(err)
	}
	if h := highest.Load(); h != 5 {
		t.Fatalf("highest counter after 1 was answered: %d, want 5", h)
	}
	c.Close()
}
