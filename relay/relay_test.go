package relay

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/commsec/communicator/events/record"
	"github.com/commsec/communicator/internal/natsauth"
	"github.com/commsec/communicator/internal/natstest"
	"github.com/commsec/communicator/keyserver"
	"github.com/commsec/communicator/protocol"
	"github.com/commsec/communicator/protocol/envelope"
	"github.com/commsec/communicator/protocol/keys"
	"github.com/commsec/communicator/protocol/replay"
	"github.com/commsec/communicator/streams"
)

// world is a NATS server with a keyserver, a group ops of alice and bob,
// and carol who is registered but not a member.
type world struct {
	t                 *testing.T
	srv               *natstest.Server
	nc                *nats.Conn // the keyserver's
	gw                *nats.Conn // a gateway's: it sends to the relays
	js                jetstream.JetStream
	ks                *keys.SigningKey
	k                 *keyserver.Keyserver
	shards            streams.Shards // K of the accepted envelopes
	group             protocol.GroupID
	alice, bob, carol *keys.ClientIdentity
}

func newWorld(t *testing.T) *world { return newWorldTTL(t, time.Second) }

// newWorldTTL is newWorld with the relays' partition leases lasting ttl:
// tests that send many messages in a row on a loaded machine take a
// longer one, so that a late renewal does not move their partition.
func newWorldTTL(t *testing.T, ttl time.Duration) *world {
	srv := natstest.Start(t)
	nc := srv.Conn(t, natsauth.Keyserver)
	js, _ := jetstream.New(nc)
	ks, _ := keys.GenerateSigningKey(nil)
	k, err := keyserver.Start(t.Context(), nc, keyserver.Config{Key: ks, Streams: streams.Config{LeaseTTL: ttl}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(k.Close)
	w := &world{t: t, srv: srv, nc: nc, gw: srv.Conn(t, natsauth.Gateway), js: js, ks: ks, k: k}
	if w.shards, err = streams.LoadShards(t.Context(), js); err != nil {
		t.Fatal(err)
	}
	w.alice, w.bob, w.carol = w.register("alice"), w.register("bob"), w.register("carol")
	if w.group, err = k.CreateGroup(t.Context(), keyserver.Actor{}, "ops", record.Policy{}); err != nil {
		t.Fatal(err)
	}
	if _, err := k.AddMembers(t.Context(), keyserver.Actor{}, "ops", []string{"alice", "bob"}); err != nil {
		t.Fatal(err)
	}
	return w
}

func (w *world) register(name string) *keys.ClientIdentity {
	id, _ := keys.GenerateClientIdentity(nil)
	if err := w.k.RegisterClient(w.t.Context(), keyserver.Actor{}, id.Public(), name); err != nil {
		w.t.Fatal(err)
	}
	return id
}

func (w *world) relay(cfg Config) *Relay {
	w.t.Helper()
	cfg.KeyserverKey = w.ks.Public()
	r, err := Start(w.t.Context(), w.srv.Conn(w.t, natsauth.Relay), cfg)
	if err != nil {
		w.t.Fatal(err)
	}
	w.t.Cleanup(r.Close)
	return r
}

// env seals a message signed by its sender; the key does not matter to
// the relay.
func env(from *keys.ClientIdentity, g protocol.GroupID, epoch protocol.Epoch, counter uint64) []byte {
	return envWith(from, g, epoch, counter, fmt.Sprint("message ", counter))
}

func envWith(from *keys.ClientIdentity, g protocol.GroupID, epoch protocol.Epoch, counter uint64, payload string) []byte {
	h := envelope.Header{Group: g, Epoch: epoch, Sender: from.ID(), Counter: counter}
	e, _ := envelope.Seal(nil, h, &[32]byte{1}, []byte(payload), from.Sig, nil)
	return e
}

// send is what a gateway does: the envelope to the partition's relay, with
// the authenticated sender.
func (w *world) send(as *keys.ClientIdentity, e []byte) (Verdict, string) {
	return w.sendWithin(as, e, 5*time.Second)
}

func (w *world) sendWithin(as *keys.ClientIdentity, e []byte, d time.Duration) (Verdict, string) {
	h, err := envelope.ParseHeader(e)
	if err != nil {
		h.Group = w.group // a malformed envelope, sent to ops's partition
	}
	m := nats.NewMsg(streams.InboundSubject(h.Group))
	m.Data = e
	m.Header.Set(streams.HeaderSender, as.ID().String())
	reply, err := w.gw.RequestMsg(m, d)
	if err != nil {
		return "", err.Error()
	}
	return streams.Verdict(reply.Header.Get(streams.HeaderStatus)), reply.Header.Get(streams.HeaderReason)
}

// stored counts the envelopes stored on every shard.
func (w *world) stored() int {
	n := 0
	for _, name := range w.shards.All() {
		n += w.storedIn(name)
	}
	return n
}

// storedIn counts the envelopes stored on one shard's stream.
func (w *world) storedIn(stream string) int {
	s, err := w.js.Stream(w.t.Context(), stream)
	if err != nil {
		w.t.Fatal(err)
	}
	info, err := s.Info(w.t.Context())
	if err != nil {
		w.t.Fatal(err)
	}
	return int(info.State.Msgs)
}

func TestAcceptanceRules(t *testing.T) {
	w := newWorld(t)
	w.relay(Config{EpochWait: 50 * time.Millisecond})
	cases := []struct {
		name    string
		as      *keys.ClientIdentity
		env     []byte
		verdict Verdict
		cause   string
	}{
		{"member", w.alice, env(w.alice, w.group, 1, 1), Accepted, ""},
		{"next counter", w.alice, env(w.alice, w.group, 1, 5), Accepted, ""},
		{"a counter skipped, then sent (in the window)", w.alice, env(w.alice, w.group, 1, 3), Accepted, ""},
		{"a counter far ahead", w.alice, env(w.alice, w.group, 1, 300), Accepted, ""},
		{"a counter below the window", w.alice, env(w.alice, w.group, 1, 4), Refused, "replayed_counter"},
		{"another sender's counter space", w.bob, env(w.bob, w.group, 1, 1), Accepted, ""},
		{"non-member", w.carol, env(w.carol, w.group, 1, 1), Refused, "not_member"},
		{"sender is not the authenticated client", w.bob, env(w.alice, w.group, 1, 9), Refused, "sender_mismatch"},
		{"epoch the relay's whole log has not opened", w.alice, env(w.alice, w.group, 7, 10), Refused, "future_epoch"},
		{"unknown group", w.alice, env(w.alice, protocol.GroupID{9}, 1, 1), Refused, "unknown_group"},
	}
	for _, c := range cases {
		v, r := w.send(c.as, c.env)
		if v != c.verdict || r != c.cause {
			t.Errorf("%s: got %s %s, want %s %s", c.name, v, r, c.verdict, c.cause)
		}
	}
	if n := w.stored(); n != 5 {
		t.Fatalf("%d messages stored, want 5", n)
	}
}

func TestEpochGraceAndRemoval(t *testing.T) {
	w := newWorld(t)
	w.relay(Config{Grace: time.Hour})
	ctx := t.Context()
	if _, err := w.k.RemoveMembers(ctx, keyserver.Actor{}, "ops", []string{"bob"}, "left"); err != nil {
		t.Fatal(err)
	}
	if v, r := w.send(w.alice, env(w.alice, w.group, 1, 1)); v != Accepted {
		t.Fatalf("previous epoch within the grace: %s %s", v, r)
	}
	if v, r := w.send(w.alice, env(w.alice, w.group, 2, 2)); v != Accepted {
		t.Fatalf("current epoch: %s %s", v, r)
	}
	if v, r := w.send(w.alice, env(w.alice, w.group, 1, 3)); v != Refused || r != "old_epoch" {
		t.Fatalf("previous epoch after the sender's own newer one: %s %s", v, r)
	}
	if v, r := w.send(w.bob, env(w.bob, w.group, 2, 1)); v != Refused || r != "not_member" {
		t.Fatalf("removed member: %s %s", v, r)
	}
	w.k.Rekey(ctx, keyserver.Actor{}, "ops", "")
	if v, r := w.send(w.alice, env(w.alice, w.group, 1, 4)); v != Refused || r != "old_epoch" {
		t.Fatalf("two epochs back: %s %s", v, r)
	}
	w.k.RevokeClient(ctx, keyserver.Actor{}, "alice", "stolen")
	if v, r := w.send(w.alice, env(w.alice, w.group, 4, 3)); v != Refused || r != "sender_revoked" {
		t.Fatalf("revoked: %s %s", v, r)
	}
}

// TestCrashAfterStore: the relay stores an envelope (its counter's record
// in the same write) and "crashes" before it replies. The sender's retry
// of the same envelope is a duplicate, stored once; another envelope with
// that counter is a duplicate too (the counter is taken), not stored.
func TestCrashAfterStore(t *testing.T) {
	w := newWorld(t)
	var crash atomic.Bool
	crash.Store(true)
	w.relay(Config{FaultAfterStore: func() error {
		if crash.Load() {
			return errors.New("crash")
		}
		return nil
	}})
	e := env(w.alice, w.group, 1, 1)
	if v, _ := w.sendWithin(w.alice, e, 300*time.Millisecond); v != "" {
		t.Fatalf("the crashed relay answered %q", v)
	}
	crash.Store(false)
	if v, r := w.send(w.alice, e); v != Duplicate {
		t.Fatalf("retry after the crash: %s %s, want duplicate", v, r)
	}
	if n := w.stored(); n != 1 {
		t.Fatalf("%d messages stored, want exactly 1", n)
	}
	if v, r := w.send(w.alice, env(w.alice, w.group, 1, 1)); v != Duplicate {
		t.Fatalf("same counter, other bytes: %s %s", v, r)
	}
	if n := w.stored(); n != 1 {
		t.Fatalf("%d messages stored, want exactly 1", n)
	}
	if v, r := w.send(w.alice, env(w.alice, w.group, 1, 2)); v != Accepted {
		t.Fatalf("the next counter: %s %s", v, r)
	}
}

// TestConcurrentRelaysNeverAcceptTwice: two relays race on the same
// (group, sender, counter) through their own workers; exactly one accepts.
func TestConcurrentRelaysNeverAcceptTwice(t *testing.T) {
	w := newWorld(t)
	r1, r2 := w.relay(Config{}), w.relay(Config{})
	const n = 50
	var accepted atomic.Int64
	var perCounter [n + 1]atomic.Int32
	var wg sync.WaitGroup
	for c := uint64(1); c <= n; c++ {
		e := env(w.alice, w.group, 1, c)
		h, _ := envelope.ParseHeader(e)
		for _, r := range []*Relay{r1, r2} {
			wg.Add(1)
			go func() {
				defer wg.Done()
				m := nats.NewMsg("direct")
				m.Data = e
				m.Header.Set(streams.HeaderSender, w.alice.ID().String())
				v, _ := r.accept(context.Background(), &job{msg: m, header: h, received: time.Now()})
				if v == Accepted {
					accepted.Add(1)
					perCounter[h.Counter].Add(1)
				}
			}()
		}
	}
	wg.Wait()
	for c := range perCounter {
		if perCounter[c].Load() > 1 {
			t.Fatalf("counter %d accepted twice", c)
		}
	}
	if int64(w.stored()) != accepted.Load() {
		t.Fatalf("%d stored for %d acceptances", w.stored(), accepted.Load())
	}
	t.Logf("accepted %d of %d (the rest lost a race to a higher counter), conflicts %d+%d", accepted.Load(), n, r1.Metrics.Conflicts(), r2.Metrics.Conflicts())
}

func TestPartitionsShareAndFailOver(t *testing.T) {
	w := newWorld(t)
	r1 := w.relay(Config{})
	if len(r1.Owned()) != streams.Partitions {
		t.Fatalf("a lone relay owns %d partitions", len(r1.Owned()))
	}
	r2 := w.relay(Config{})
	natstest.CheckFor(t, 15*time.Second, 50*time.Millisecond, func() error {
		a, b := len(r1.Owned()), len(r2.Owned())
		if a+b != streams.Partitions || a != streams.Partitions/2 {
			return fmt.Errorf("split %d/%d", a, b)
		}
		return nil
	})
	r1.Close() // releases its partitions: r2 takes them on its next tick
	natstest.CheckFor(t, 15*time.Second, 50*time.Millisecond, func() error {
		if n := len(r2.Owned()); n != streams.Partitions {
			return fmt.Errorf("the survivor owns %d", n)
		}
		return nil
	})
	if v, r := w.send(w.alice, env(w.alice, w.group, 1, 1)); v != Accepted {
		t.Fatalf("after fail-over: %s %s", v, r)
	}
}

// TestTrimKeepsTheLastEnvelope: with a short retention, the janitor
// removes old envelopes but keeps each sender's last, whose replay window
// still knows every counter taken: one of them again is a duplicate (not
// stored again), one below the window is refused.
func TestTrimKeepsTheLastEnvelope(t *testing.T) {
	w := newWorld(t)
	now := time.Now()
	var offset atomic.Int64
	r := w.relay(Config{Streams: streams.Config{Retention: time.Hour}, TrimInterval: time.Hour,
		Now: func() time.Time { return now.Add(time.Duration(offset.Load())) }})
	for c := uint64(1); c <= 5; c++ {
		if v, r := w.send(w.alice, env(w.alice, w.group, 1, c)); v != Accepted {
			t.Fatalf("counter %d: %s %s", c, v, r)
		}
	}
	w.send(w.bob, env(w.bob, w.group, 1, 1))
	offset.Store(int64(2 * time.Hour)) // everything is now older than the retention
	if err := r.Trim(t.Context()); err != nil {
		t.Fatal(err)
	}
	if n := w.stored(); n != 2 {
		t.Fatalf("%d envelopes after the trim, want each sender's last (2)", n)
	}
	r.Close()
	w.relay(Config{}) // a fresh relay knows only what the bucket kept
	if v, r := w.send(w.alice, env(w.alice, w.group, 1, 4)); v != Duplicate {
		t.Fatalf("a counter taken before the trim: %s %s", v, r)
	}
	if n := w.stored(); n != 2 {
		t.Fatalf("%d envelopes after the duplicate, want 2", n)
	}
	if v, r := w.send(w.alice, env(w.alice, w.group, 1, 5+replay.Size)); v != Accepted {
		t.Fatalf("a counter a window ahead: %s %s", v, r)
	}
	if v, r := w.send(w.alice, env(w.alice, w.group, 1, 5)); v != Refused || r != "replayed_counter" {
		t.Fatalf("a counter below the window now: %s %s", v, r)
	}
}

// TestRelayCloseUnderLoad: a relay closed while its partitions' messages
// are still arriving (and its one worker's queue is full) shuts down
// cleanly. Before, Close closed the workers while a subscription callback
// was still handing a message over: a send on a closed channel, a panic
// that took down the whole process of commstack.
func TestRelayCloseUnderLoad(t *testing.T) {
	for round := range 3 {
		w := newWorld(t)
		r := w.relay(Config{Workers: 1})
		for i := range 2000 {
			m := nats.NewMsg(streams.InboundSubject(w.group))
			m.Data = env(w.alice, w.group, 1, uint64(i+1))
			m.Header.Set(streams.HeaderSender, w.alice.ID().String())
			m.Reply = w.gw.NewRespInbox()
			if err := w.gw.PublishMsg(m); err != nil {
				t.Fatal(err)
			}
		}
		w.gw.Flush()
		natstest.CheckFor(t, 10*time.Second, time.Millisecond, func() error {
			if n := w.stored(); n == 0 {
				return errors.New("nothing stored yet")
			}
			return nil
		})
		r.Close() // must not panic
		t.Logf("round %d: closed with %d stored", round, w.stored())
	}
}

// TestForeignReplyDropped: in a deployment in one account (no natsauth
// accounts), a request whose reply subject is neither a cross-account
// response nor a gateway's inbox is dropped, counted and logged: answering
// would purge the accepted stream with the relay's rights.
func TestForeignReplyDropped(t *testing.T) {
	_, nc := natstest.Open(t)
	ks, _ := keys.GenerateSigningKey(nil)
	k, err := keyserver.Start(t.Context(), nc, keyserver.Config{Key: ks, Streams: streams.Config{LeaseTTL: time.Second}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(k.Close)
	alice, _ := keys.GenerateClientIdentity(nil)
	k.RegisterClient(t.Context(), keyserver.Actor{}, alice.Public(), "alice")
	g, _ := k.CreateGroup(t.Context(), keyserver.Actor{}, "ops", record.Policy{})
	k.AddMembers(t.Context(), keyserver.Actor{}, "ops", []string{"alice"})
	r, err := Start(t.Context(), nc, Config{KeyserverKey: ks.Public()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(r.Close)
	natstest.CheckFor(t, 10*time.Second, 10*time.Millisecond, func() error {
		if len(r.Owned()) != streams.Partitions {
			return errors.New("partitions not all owned")
		}
		return nil
	})
	send := func(counter uint64, reply string) {
		m := nats.NewMsg(streams.InboundSubject(g))
		m.Data, m.Reply = env(alice, g, 1, counter), reply
		m.Header.Set(streams.HeaderSender, alice.ID().String())
		if err := nc.PublishMsg(m); err != nil {
			t.Fatal(err)
		}
	}
	gwInbox := natsauth.InboxPrefix(natsauth.Gateway) + ".test"
	answers, _ := nc.SubscribeSync(gwInbox)
	send(1, gwInbox)
	if _, err := answers.NextMsg(5 * time.Second); err != nil {
		t.Fatal(err)
	}
	shards, err := streams.LoadShards(t.Context(), mustJS(t, nc))
	if err != nil {
		t.Fatal(err)
	}
	send(2, "$JS.API.STREAM.PURGE."+shards.Stream(g))
	natstest.CheckFor(t, 10*time.Second, 10*time.Millisecond, func() error {
		if n := r.Metrics.ForeignReplies(); n != 1 {
			return fmt.Errorf("%d foreign replies counted", n)
		}
		return nil
	})
	st, _ := mustJS(t, nc).Stream(t.Context(), shards.Stream(g))
	if info, _ := st.Info(t.Context()); info.State.Msgs != 1 {
		t.Fatalf("%d messages stored, want 1: the dropped request must neither purge nor be stored", info.State.Msgs)
	}
}

// TestFarFutureEpochRefused: an epoch further ahead of the relay's view of
// the log than MaxEpochLead is refused at once, without waiting for the
// log (EpochWait is an hour here); one within the lead that the whole log
// has not opened is refused after its wait. Before, every future epoch,
// even 2^32-2, was answered "retry", so a client following the spec
// retried forever.
func TestFarFutureEpochRefused(t *testing.T) {
	w := newWorld(t)
	w.relay(Config{EpochWait: time.Hour})
	for _, e := range []protocol.Epoch{1 + MaxEpochLead + 1, 1000, 1<<32 - 2} {
		if v, r := w.send(w.alice, env(w.alice, w.group, e, uint64(e))); v != Refused || r != "future_epoch" {
			t.Errorf("epoch %d: %s %s, want refused future_epoch", e, v, r)
		}
	}
	w2 := newWorld(t)
	w2.relay(Config{EpochWait: 50 * time.Millisecond})
	if v, r := w2.send(w2.alice, env(w2.alice, w2.group, 1+MaxEpochLead, 1)); v != Refused || r != "future_epoch" {
		t.Errorf("epoch %d, never opened: %s %s, want refused future_epoch", 1+MaxEpochLead, v, r)
	}
}

// TestFutureEpochDoesNotStallPartition: one member floods its partition
// with envelopes of epochs the log has not opened, near and far; another
// member's message in the same group, on a relay with a single worker,
// is still decided at once. Before, each near-future envelope held the
// worker for EpochWait, and dispatch blocked the partition's callback
// once the worker's queue was full: the other member's send timed out.
func TestFutureEpochDoesNotStallPartition(t *testing.T) {
	w := newWorld(t)
	r := w.relay(Config{Workers: 1})
	answers := make(chan *nats.Msg, 512)
	inbox := w.gw.NewRespInbox()
	sub, err := w.gw.ChanSubscribe(inbox, answers)
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Unsubscribe()
	for i := range 400 {
		e := protocol.Epoch(2) // the next epoch: waits for the log
		if i%2 == 1 {
			e = 1000 // far ahead: refused at once
		}
		m := nats.NewMsg(streams.InboundSubject(w.group))
		m.Data, m.Reply = env(w.alice, w.group, e, uint64(i+1)), inbox
		m.Header.Set(streams.HeaderSender, w.alice.ID().String())
		if err := w.gw.PublishMsg(m); err != nil {
			t.Fatal(err)
		}
	}
	if v, reason := w.send(w.bob, env(w.bob, w.group, 1, 1)); v != Accepted {
		t.Fatalf("bob's message behind alice's flood: %s %s", v, reason)
	}
	natstest.CheckFor(t, 20*time.Second, 10*time.Millisecond, func() error {
		if n := len(answers); n < 400 {
			return fmt.Errorf("%d of alice's 400 envelopes answered", n)
		}
		return nil
	})
	counts := map[string]int{}
	for range 400 {
		m := <-answers
		counts[m.Header.Get(streams.HeaderStatus)+"/"+m.Header.Get(streams.HeaderReason)]++
	}
	t.Logf("alice's flood: %v; waiting at the end %d", counts, r.room.len())
	if counts["refused/future_epoch"] < 200 || counts["accepted/"] != 0 {
		t.Errorf("alice's flood answered %v", counts)
	}
}

// TestCounterJumpBounded: a counter more than MaxCounterJump above the
// last accepted one, and counter 2^64-1, are refused, so that one envelope
// cannot use up a sender's counter space; a jump of exactly the bound is
// accepted. Before, counter 2^64-1 was accepted and every later message of
// the sender in the group refused.
func TestCounterJumpBounded(t *testing.T) {
	w := newWorld(t)
	w.relay(Config{})
	steps := []struct {
		counter uint64
		verdict Verdict
		reason  string
	}{
		{1, Accepted, ""},
		{1 + protocol.MaxCounterJump + 1, Refused, "counter_jump"},
		{protocol.ExhaustedCounter, Refused, "counter_exhausted"},
		{1 + protocol.MaxCounterJump, Accepted, ""},
		{1 + protocol.MaxCounterJump + 64, Accepted, ""}, // a reboot's block reservation
	}
	for _, s := range steps {
		if v, r := w.send(w.alice, env(w.alice, w.group, 1, s.counter)); v != s.verdict || r != s.reason {
			t.Errorf("counter %d: %s %s, want %s %s", s.counter, v, r, s.verdict, s.reason)
		}
	}
}

// TestWindowAcceptsOutOfOrder: a pipelining sender's counters arrive out of
// order (a retry after later ones were accepted); every one inside the
// window is accepted, once. Before, the relay accepted only counters above
// the last, and refused the earlier ones for good.
func TestWindowAcceptsOutOfOrder(t *testing.T) {
	w := newWorld(t)
	w.relay(Config{})
	order := []uint64{10, 3, 7, 1, 9, 2, 8, 4, 6, 5, replay.Size} // the last puts 1 at the bottom edge
	for _, c := range order {
		if v, r := w.send(w.alice, env(w.alice, w.group, 1, c)); v != Accepted {
			t.Fatalf("counter %d: %s %s", c, v, r)
		}
	}
	for _, c := range []uint64{1, 7, 10} {
		if v, r := w.send(w.alice, env(w.alice, w.group, 1, c)); v != Duplicate {
			t.Fatalf("counter %d again: %s %s", c, v, r)
		}
	}
	if n := w.stored(); n != len(order) {
		t.Fatalf("%d stored, want %d", n, len(order))
	}
}

// TestResendOfStoredIsDuplicate: the store of counter 1 lands but its
// answer is lost; the sender's counter 2 is accepted; then its resend of 1
// comes. It is a duplicate (the message is stored), not a refusal. Before,
// "duplicate" was only for the very last counter, so the sender was told
// "refused" for a message stored and delivered.
func TestResendOfStoredIsDuplicate(t *testing.T) {
	w := newWorld(t)
	var crash atomic.Bool
	crash.Store(true)
	w.relay(Config{FaultAfterStore: func() error {
		if crash.Swap(false) {
			return errors.New("the answer is lost")
		}
		return nil
	}})
	first := env(w.alice, w.group, 1, 1)
	if v, _ := w.sendWithin(w.alice, first, 300*time.Millisecond); v != "" {
		t.Fatalf("the lost answer came: %q", v)
	}
	if v, r := w.send(w.alice, env(w.alice, w.group, 1, 2)); v != Accepted {
		t.Fatalf("counter 2: %s %s", v, r)
	}
	if v, r := w.send(w.alice, first); v != Duplicate {
		t.Fatalf("the resend of counter 1 after 2: %s %s, want duplicate", v, r)
	}
	if n := w.stored(); n != 2 {
		t.Fatalf("%d stored, want 2", n)
	}
}

// TestWindowRefusesBelow: a counter a whole window below the highest one
// accepted is refused: it cannot be told from a replay.
func TestWindowRefusesBelow(t *testing.T) {
	w := newWorld(t)
	w.relay(Config{})
	top := uint64(1 + replay.Size)
	for _, c := range []uint64{top, 2} {
		if v, r := w.send(w.alice, env(w.alice, w.group, 1, c)); v != Accepted {
			t.Fatalf("counter %d: %s %s", c, v, r)
		}
	}
	if v, r := w.send(w.alice, env(w.alice, w.group, 1, 1)); v != Refused || r != "replayed_counter" {
		t.Fatalf("a counter a window below: %s %s", v, r)
	}
}

// TestRelayStopsAfterLeaseLapse: a relay that could not renew its leases
// for longer than their TTL (a paused container: its renewals stalled,
// here by holding the lock every renewal takes) still has its partitions'
// subscriptions, and a message reaches it. It must not decide it: another
// relay may own the partition by now. It answers "retry", stores nothing,
// and decides again once a renewal or a new claim proves the lease.
// Before, the paused relay worked through its queue for partitions it no
// longer held.
func TestRelayStopsAfterLeaseLapse(t *testing.T) {
	w := newWorld(t) // leases of 1 s
	r := w.relay(Config{})
	if v, reason := w.send(w.alice, env(w.alice, w.group, 1, 1)); v != Accepted {
		t.Fatalf("before the pause: %s %s", v, reason)
	}
	r.parts.mu.Lock() // the pause: no renewal from here on
	time.Sleep(1500 * time.Millisecond)
	v, reason := w.send(w.alice, env(w.alice, w.group, 1, 2))
	r.parts.mu.Unlock()
	if v != Retry || reason != "lease_lapsed" {
		t.Fatalf("past the lease: %s %s, want retry lease_lapsed", v, reason)
	}
	if n := w.stored(); n != 1 {
		t.Fatalf("%d stored, want 1: the relay decided past its lease", n)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		v, reason := w.send(w.alice, env(w.alice, w.group, 1, 2))
		if v == Accepted {
			break
		}
		if v != Retry && v != "" || time.Now().After(deadline) {
			t.Fatalf("after the pause: %s %s, want accepted once the lease is renewed", v, reason)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if got := r.Metrics.Verdicts()["retry/lease_lapsed"]; got == 0 {
		t.Fatalf("no retry/lease_lapsed counted: %v", r.Metrics.Verdicts())
	}
}

// TestRelayRefusesUnsignedOrMissigned: a gateway attests alice as the
// sender (as a compromised gateway would) of envelopes in alice's name
// that alice did not sign: signed by bob, a member; her signature flipped
// or taken from another header; no signature at all. The relay refuses
// each as bad_signature (or malformed, when too short to be an
// envelope), counts and logs the reason, stores nothing, and leaves
// alice's replay window alone: her real message with the same counter
// is accepted after them.
func TestRelayRefusesUnsignedOrMissigned(t *testing.T) {
	w := newWorldTTL(t, 10*time.Second)
	r := w.relay(Config{})
	real := envWith(w.alice, w.group, 1, 7, "alice's real message")
	other := envWith(w.alice, w.group, 1, 8, "alice's next message, long enough to parse without its signature: 64 bytes and more")
	unsigned := func(e []byte) []byte { return bytes.Clone(e[:len(e)-envelope.SignatureSize]) }
	resigned := func(e []byte, sig []byte) []byte { return append(unsigned(e), sig...) }
	bobSig := w.bob.Sig.Sign(envelope.SignatureInput(envWith(w.alice, w.group, 1, 7, "wire 1M to bob -- alice")))
	otherHeader := bytes.Clone(other)
	otherHeader[60] = 7 // counter 8 -> 7, her signature over counter 8
	flipped := bytes.Clone(real)
	flipped[len(flipped)-1] ^= 1
	cases := []struct {
		name   string
		env    []byte
		reason string
	}{
		{"signed by bob, a member", resigned(envWith(w.alice, w.group, 1, 7, "wire 1M to bob -- alice"), bobSig[:]), "bad_signature"},
		{"her signature, one bit off", flipped, "bad_signature"},
		{"her signature over another header", otherHeader, "bad_signature"},
		{"stripped signature", unsigned(real), "malformed_envelope"},
		{"no signature, long enough to parse", unsigned(other), "bad_signature"},
	}
	for _, c := range cases {
		if v, reason := w.send(w.alice, c.env); v != Refused || reason != c.reason {
			t.Errorf("%s: %s %s, want refused %s", c.name, v, reason, c.reason)
		}
	}
	if n := w.stored(); n != 0 {
		t.Fatalf("%d forged messages stored", n)
	}
	if got := r.Metrics.Verdicts()["refused/bad_signature"]; got != 4 {
		t.Errorf("refused/bad_signature counted %d times, want 4", got)
	}
	if v, reason := w.send(w.alice, real); v != Accepted {
		t.Fatalf("alice's real message after the forgeries: %s %s", v, reason)
	}
}

// TestGraceEndsByCount: the previous epoch's grace ends after
// protocol.RetireAfter messages of the group stored from the first of
// the current epoch on, as clients retire the key (PROTOCOL.md §8.1 rule
// 4, §8.3), however long the time grace.
func TestGraceEndsByCount(t *testing.T) {
	w := newWorldTTL(t, 10*time.Second)
	w.relay(Config{Grace: time.Hour})
	if _, err := w.k.Rekey(t.Context(), keyserver.Actor{}, "ops", ""); err != nil {
		t.Fatal(err)
	}
	if v, r := w.send(w.bob, env(w.bob, w.group, 1, 1)); v != Accepted {
		t.Fatalf("previous epoch before any message of the current one: %s %s", v, r)
	}
	for c := uint64(1); c < protocol.RetireAfter; c++ {
		if v, r := w.send(w.alice, env(w.alice, w.group, 2, c)); v != Accepted {
			t.Fatalf("current epoch, counter %d: %s %s", c, v, r)
		}
	}
	if v, r := w.send(w.bob, env(w.bob, w.group, 1, 2)); v != Accepted { // the RetireAfter-th from the first of epoch 2
		t.Fatalf("previous epoch, last message of the grace: %s %s", v, r)
	}
	if v, r := w.send(w.bob, env(w.bob, w.group, 1, 3)); v != Refused || r != "old_epoch" {
		t.Fatalf("previous epoch after %d messages: %s %s", protocol.RetireAfter, v, r)
	}
}

// TestGraceNeedsACount: a relay started after the epoch change cannot
// know how many messages of the current epoch another relay stored, so
// it gives the previous epoch no grace (the sender seals again).
func TestGraceNeedsACount(t *testing.T) {
	w := newWorldTTL(t, 10*time.Second)
	if _, err := w.k.Rekey(t.Context(), keyserver.Actor{}, "ops", ""); err != nil {
		t.Fatal(err)
	}
	w.relay(Config{Grace: time.Hour})
	if v, r := w.send(w.bob, env(w.bob, w.group, 1, 1)); v != Refused || r != "old_epoch" {
		t.Fatalf("previous epoch at a relay that did not count: %s %s", v, r)
	}
	if v, r := w.send(w.bob, env(w.bob, w.group, 2, 2)); v != Accepted {
		t.Fatalf("current epoch: %s %s", v, r)
	}
}

func mustJS(t *testing.T, nc *nats.Conn) jetstream.JetStream {
	t.Helper()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	return js
}
