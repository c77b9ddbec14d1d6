package events_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/commsec/communicator/events"
	"github.com/commsec/communicator/events/fold"
	"github.com/commsec/communicator/events/record"
	"github.com/commsec/communicator/internal/natstest"
	"github.com/commsec/communicator/protocol"
	"github.com/commsec/communicator/protocol/bundle"
	"github.com/commsec/communicator/protocol/keys"
	"github.com/commsec/communicator/streams"
)

// service is one keyserver-like writer with its own projection follower.
type service struct {
	proj *events.Projection
	w    *events.Writer
}

type fixture struct {
	t     *testing.T
	ctx   context.Context
	nc    *nats.Conn
	ks    *keys.SigningKey
	store *events.Store
}

func newFixture(t *testing.T) *fixture {
	_, nc := natstest.Open(t)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	store, err := events.OpenStore(ctx, js, events.StoreConfig{})
	if err != nil {
		t.Fatal(err)
	}
	ks, _ := keys.GenerateSigningKey(nil)
	return &fixture{t: t, ctx: ctx, nc: nc, ks: ks, store: store}
}

// service loads the log and follows it, like every service does.
func (f *fixture) service() *service {
	f.t.Helper()
	p, err := events.Load(f.ctx, f.store, f.ks.Public(), nil, func(err error) { f.t.Logf("refused: %v", err) })
	if err != nil {
		f.t.Fatal(err)
	}
	stop, err := events.Follow(f.ctx, f.store, p, nil, nil)
	if err != nil {
		f.t.Fatal(err)
	}
	f.t.Cleanup(stop)
	return &service{proj: p, w: events.NewWriter(f.store, p, f.ks, nil)}
}

func (s *service) must(t *testing.T, e *record.Event) {
	t.Helper()
	if _, err := s.w.Append(t.Context(), e); err != nil {
		t.Fatalf("%s: %v", e.Type, err)
	}
}

func newClient(t *testing.T) (protocol.ClientID, [32]byte) {
	id, err := keys.GenerateClientIdentity(nil)
	if err != nil {
		t.Fatal(err)
	}
	return id.ID(), id.Wrap.Public()
}

// epoch builds the event that opens g's next epoch in s's view.
func (s *service) epoch(t *testing.T, typ record.Type, g protocol.GroupID, ids ...protocol.ClientID) *record.Event {
	t.Helper()
	var e *record.Event
	var err error
	s.proj.Read(func(st *fold.State) {
		grp := st.Groups[g]
		var d [32]byte
		if d, err = st.NextDigest(typ, grp, ids); err == nil {
			e = record.NewEpoch(typ, g, grp.Epoch+1, ids, d, "test")
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	return e
}

func TestFoldAndReplayDigest(t *testing.T) {
	f := newFixture(t)
	s := f.service()
	a, aw := newClient(t)
	b, bw := newClient(t)
	s.must(t, record.NewClientRegistered(a, aw, "alice"))
	s.must(t, record.NewClientRegistered(b, bw, "bob"))
	g := protocol.GroupID{7}
	s.must(t, record.NewGroupCreated(g, "ops", record.Policy{MaxMessages: 100}))
	s.must(t, s.epoch(t, record.MembersAdded, g, a, b))
	s.must(t, s.epoch(t, record.MembersRemoved, g, b))
	s.must(t, s.epoch(t, record.GroupRekeyed, g))
	s.must(t, record.NewClientRevoked(b, "lost"))

	var live [32]byte
	s.proj.Read(func(st *fold.State) {
		live = st.Digest()
		grp := st.Groups[g]
		if grp.Epoch != 3 || !grp.IsMember(a) || grp.IsMember(b) {
			t.Fatalf("group after the changes: epoch %d members %v", grp.Epoch, grp.MemberList())
		}
		if grp.Digest != bundle.MemberDigest([]protocol.ClientID{a}) {
			t.Fatal("group digest is not the digest of its members")
		}
		if !st.Clients[b].Revoked {
			t.Fatal("bob is not revoked")
		}
	})
	replayed := f.service()
	replayed.proj.Read(func(st *fold.State) {
		if st.Digest() != live {
			t.Fatal("state rebuilt by replay differs from the live state")
		}
	})
}

func TestInvalidChangesRefused(t *testing.T) {
	f := newFixture(t)
	s := f.service()
	a, aw := newClient(t)
	b, _ := newClient(t)
	s.must(t, record.NewClientRegistered(a, aw, "alice"))
	g := protocol.GroupID{1}
	s.must(t, record.NewGroupCreated(g, "ops", record.Policy{}))
	s.must(t, s.epoch(t, record.MembersAdded, g, a))
	digest := bundle.MemberDigest([]protocol.ClientID{a})
	cases := []struct {
		name string
		e    *record.Event
		want error
	}{
		{"register twice", record.NewClientRegistered(a, aw, "alice2"), fold.ErrClientExists},
		{"name taken", record.NewClientRegistered(b, aw, "alice"), fold.ErrClientExists},
		{"bad name", record.NewClientRegistered(b, aw, "a b"), fold.ErrBadName},
		{"revoke unknown", record.NewClientRevoked(b, ""), fold.ErrUnknownClient},
		{"group exists", record.NewGroupCreated(g, "other", record.Policy{}), fold.ErrGroupExists},
		{"group name taken", record.NewGroupCreated(protocol.GroupID{2}, "ops", record.Policy{}), fold.ErrGroupExists},
		{"add unknown client", record.NewEpoch(record.MembersAdded, g, 2, []protocol.ClientID{b}, digest, ""), fold.ErrUnknownClient},
		{"add a member", record.NewEpoch(record.MembersAdded, g, 2, []protocol.ClientID{a}, digest, ""), fold.ErrAlreadyMember},
		{"remove a non-member", record.NewEpoch(record.MembersRemoved, g, 2, []protocol.ClientID{b}, digest, ""), fold.ErrNotMember},
		{"skip an epoch", record.NewEpoch(record.GroupRekeyed, g, 5, nil, digest, ""), fold.ErrWrongEpoch},
		{"wrong digest", record.NewEpoch(record.GroupRekeyed, g, 2, nil, [32]byte{}, ""), fold.ErrDigestMismatch},
		{"unknown group", record.NewGroupDeleted(protocol.GroupID{9}), fold.ErrUnknownGroup},
		{"add nobody", record.NewEpoch(record.MembersAdded, g, 2, nil, digest, ""), fold.ErrNoClients},
		{"name twice", record.NewEpoch(record.MembersRemoved, g, 2, []protocol.ClientID{a, a}, digest, ""), fold.ErrDuplicateClient},
	}
	for _, c := range cases {
		if _, err := s.w.Append(f.ctx, c.e); !errors.Is(err, c.want) {
			t.Errorf("%s: got %v, want %v", c.name, err, c.want)
		}
	}
}

// TestConcurrentWritersNeverFork: two keyserver instances append to the
// same group at once; the group's history stays one chain, the loser of
// each race gets ErrConflict, catches up and retries.
func TestConcurrentWritersNeverFork(t *testing.T) {
	f := newFixture(t)
	s1, s2 := f.service(), f.service()
	g := protocol.GroupID{3}
	a, aw := newClient(t)
	s1.must(t, record.NewClientRegistered(a, aw, "alice"))
	s1.must(t, record.NewGroupCreated(g, "ops", record.Policy{}))
	s1.must(t, s1.epoch(t, record.MembersAdded, g, a))
	const perWriter = 20
	var conflicts [2]int
	var wg sync.WaitGroup
	if err := s2.proj.WaitFor(f.ctx, s1.proj.LastSeq()); err != nil {
		t.Fatal(err)
	}
	for i, s := range []*service{s1, s2} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for done := 0; done < perWriter; {
				// The event is built on the writer's view; if the other
				// writer's event reached that view before Append checked
				// it, the change is stale: build it again, as after a
				// conflict.
				before := s.proj.LastSeq()
				_, err := s.w.Append(f.ctx, s.epoch(t, record.GroupRekeyed, g))
				switch {
				case errors.Is(err, events.ErrConflict),
					errors.Is(err, fold.ErrWrongEpoch) && s.proj.LastSeq() != before:
					conflicts[i]++
				case err != nil:
					t.Error(err)
					return
				default:
					done++
				}
			}
		}()
	}
	wg.Wait()
	if conflicts[0]+conflicts[1] == 0 {
		t.Log("no conflict happened in this run; the chain check below still holds")
	}
	want := protocol.Epoch(1 + 2*perWriter)
	last, err := f.store.LastSeq(f.ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []*service{s1, s2, f.service()} {
		if err := s.proj.WaitFor(f.ctx, last); err != nil {
			t.Fatal(err)
		}
		s.proj.Read(func(st *fold.State) {
			if e := st.Groups[g].Epoch; e != want {
				t.Fatalf("epoch %d, want %d: the history forked or lost an event", e, want)
			}
		})
	}
	t.Logf("conflicts: %d and %d", conflicts[0], conflicts[1])
}

// TestTamperedEventRefused: an event modified and re-published to its
// subject through a raw NATS connection is refused, and the state stays
// that of the authentic log.
func TestTamperedEventRefused(t *testing.T) {
	f := newFixture(t)
	s := f.service()
	a, aw := newClient(t)
	b, bw := newClient(t)
	g := protocol.GroupID{4}
	s.must(t, record.NewClientRegistered(a, aw, "alice"))
	s.must(t, record.NewClientRegistered(b, bw, "mallory"))
	s.must(t, record.NewGroupCreated(g, "ops", record.Policy{}))
	s.must(t, s.epoch(t, record.MembersAdded, g, a))
	var before [32]byte
	s.proj.Read(func(st *fold.State) { before = st.Digest() })

	// Take the group's last event, swap alice for mallory, keep the rest.
	js, _ := jetstream.New(f.nc)
	stream, _ := js.Stream(f.ctx, streams.Events)
	last, err := stream.GetLastMsgForSubject(f.ctx, events.Subject(record.GroupAggregate(g)))
	if err != nil {
		t.Fatal(err)
	}
	forged := forge(t, last.Data, a, b)
	refused := make(chan error, 1)
	stop, _ := events.Follow(f.ctx, f.store, events.NewProjection(f.ks.Public()), nil, func(err error) {
		select {
		case refused <- err:
		default:
		}
	})
	defer stop()
	if err := f.nc.Publish(last.Subject, forged); err != nil {
		t.Fatal(err)
	}
	f.nc.Flush()
	select {
	case err := <-refused:
		t.Logf("refused: %v", err)
	case <-time.After(10 * time.Second):
		t.Fatal("the forged event was not refused")
	}
	again := f.service()
	again.proj.Read(func(st *fold.State) {
		if st.Digest() != before || st.Groups[g].IsMember(b) {
			t.Fatal("the forged event changed the state")
		}
	})
}

// forge replaces client a by b in an encoded record, keeping its signature.
func forge(t *testing.T, rec []byte, a, b protocol.ClientID) []byte {
	out := append([]byte(nil), rec...)
	for i := 0; i+32 <= len(out); i++ {
		if protocol.ClientID(out[i:i+32]) == a {
			copy(out[i:], b[:])
			return out
		}
	}
	t.Fatal("client not found in the record")
	return nil
}

func TestAppendConflictCodes(t *testing.T) {
	f := newFixture(t)
	a, aw := newClient(t)
	rec, err := record.Sign(&record.Event{Type: record.ClientRegistered, Seq: 1,
		Client: &record.ClientPayload{ID: a, Wrap: aw}}, f.ks)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.store.Append(f.ctx, record.ClientAggregate(a), rec, 0); err != nil {
		t.Fatal(err)
	}
	if _, err := f.store.Append(f.ctx, record.ClientAggregate(a), append(rec[:len(rec):len(rec)], 0), 0); !errors.Is(err, events.ErrConflict) {
		t.Fatalf("second first event: got %v, want ErrConflict", err)
	}
	if !events.IsConflict(&jetstream.APIError{ErrorCode: 10164}) {
		t.Fatal("10164 (replicated streams) is not mapped to a conflict")
	}
}

// TestNextDigestIsMemberDigest: through random additions and removals
// in a group, the digest the state computes for the next epoch (from its
// sorted member list) is bundle.MemberDigest of the new members, and the
// projection applies the events that carry it.
func TestNextDigestIsMemberDigest(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	p := events.NewProjection(fuzzKS.Public())
	seq := uint64(0)
	heads := map[string]events.Head{}
	apply := func(e *record.Event) {
		t.Helper()
		h := heads[e.Aggregate()]
		e.Seq, e.Prev = h.Seq+1, h.Hash
		rec, err := record.Sign(e, fuzzKS)
		if err != nil {
			t.Fatal(err)
		}
		seq++
		if _, err := p.Apply(events.Stored{Seq: seq, Subject: events.Subject(e.Aggregate()), Record: rec}); err != nil {
			t.Fatal(err)
		}
		heads[e.Aggregate()] = events.Head{Seq: e.Seq, Hash: rec.Hash()}
	}
	var clients []protocol.ClientID
	for range 200 {
		var id protocol.ClientID
		for i := range id {
			id[i] = byte(rng.UintN(256))
		}
		clients = append(clients, id)
		apply(record.NewClientRegistered(id, [32]byte{1}, ""))
	}
	g := protocol.GroupID{9}
	apply(record.NewGroupCreated(g, "g", record.Policy{}))
	members := map[protocol.ClientID]bool{}
	for epoch := protocol.Epoch(1); epoch <= 40; epoch++ {
		typ := record.MembersAdded
		if len(members) > 0 && rng.IntN(3) == 0 {
			typ = record.MembersRemoved
		}
		var changed []protocol.ClientID
		for _, id := range clients {
			if members[id] == (typ == record.MembersRemoved) && rng.IntN(8) == 0 {
				changed = append(changed, id)
			}
		}
		if len(changed) == 0 {
			typ, changed = record.GroupRekeyed, nil
			if len(members) == 0 {
				continue
			}
		}
		for _, id := range changed {
			members[id] = typ == record.MembersAdded
			if !members[id] {
				delete(members, id)
			}
		}
		var list []protocol.ClientID
		for id := range members {
			list = append(list, id)
		}
		want := bundle.MemberDigest(list)
		var got [32]byte
		var err error
		p.Read(func(s *fold.State) { got, err = s.NextDigest(typ, s.Groups[g], changed) })
		if err != nil || got != want {
			t.Fatalf("epoch %d (%s of %d): NextDigest = %x, %v; MemberDigest = %x", epoch, typ, len(changed), got, err, want)
		}
		apply(record.NewEpoch(typ, g, epoch, changed, want, ""))
		p.Read(func(s *fold.State) {
			if l := s.Groups[g].MemberList(); len(l) != len(members) || !slices.IsSortedFunc(l, func(a, b protocol.ClientID) int { return bytes.Compare(a[:], b[:]) }) {
				t.Fatalf("epoch %d: member list of %d, want %d sorted", epoch, len(l), len(members))
			}
		})
	}
}

// TestWriterEventsReachFollowers: the Writer applies its own events to
// its projection as they are stored; its follower still hands each one to
// onApplied, once, and refuses none; another service applies them all.
func TestWriterEventsReachFollowers(t *testing.T) {
	f := newFixture(t)
	p, err := events.Load(f.ctx, f.store, f.ks.Public(), nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	seen := map[uint64]int{}
	var refused []error
	stop, err := events.Follow(f.ctx, f.store, p, func(e *record.Event) {
		mu.Lock()
		defer mu.Unlock()
		seen[e.Seq]++
	}, func(err error) {
		mu.Lock()
		defer mu.Unlock()
		refused = append(refused, err)
	})
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	w := events.NewWriter(f.store, p, f.ks, nil)
	g := protocol.GroupID{5}
	if _, err := w.Append(f.ctx, record.NewGroupCreated(g, "ops", record.Policy{})); err != nil {
		t.Fatal(err)
	}
	const n = 30
	for range n {
		a, aw := newClient(t)
		if _, err := w.Append(f.ctx, record.NewClientRegistered(a, aw, "")); err != nil {
			t.Fatal(err)
		}
	}
	natstest.CheckFor(t, 10*time.Second, 10*time.Millisecond, func() error {
		mu.Lock()
		defer mu.Unlock()
		if len(refused) > 0 {
			t.Fatalf("the follower refused the writer's events: %v", refused)
		}
		if len(seen) != 1 || seen[1] != n+1 { // every event is the first of its aggregate
			return fmt.Errorf("onApplied saw %v", seen)
		}
		return nil
	})
	other := f.service()
	if a, b := digest(p), digest(other.proj); a != b {
		t.Fatal("the writer's projection and a replay differ")
	}
}

func digest(p *events.Projection) (d [32]byte) {
	p.Read(func(s *fold.State) { d = s.Digest() })
	return d
}

// TestCheckpoints: Load with a checkpoint builds the same state as
// without; a checkpoint that does not verify, or whose log hash the log
// does not match, is reported and Load checks every signature instead; an
// event forged after a checkpoint is refused.
func TestCheckpoints(t *testing.T) {
	f := newFixture(t)
	s := f.service()
	a, aw := newClient(t)
	b, bw := newClient(t)
	g := protocol.GroupID{6}
	s.must(t, record.NewClientRegistered(a, aw, "alice"))
	s.must(t, record.NewClientRegistered(b, bw, "bob"))
	s.must(t, record.NewGroupCreated(g, "ops", record.Policy{}))
	s.must(t, s.epoch(t, record.MembersAdded, g, a, b))
	if err := s.w.Checkpoint(f.ctx); err != nil {
		t.Fatal(err)
	}
	s.must(t, s.epoch(t, record.MembersRemoved, g, b))
	want := digest(s.proj)

	load := func() (*events.Projection, []error) {
		var refused []error
		p, err := events.Load(f.ctx, f.store, f.ks.Public(), nil, func(err error) { refused = append(refused, err) })
		if err != nil {
			t.Fatal(err)
		}
		if digest(p) != want {
			t.Fatal("the loaded state differs from the live one")
		}
		return p, refused
	}
	if _, refused := load(); len(refused) != 0 {
		t.Fatalf("refused with a good checkpoint: %v", refused)
	}

	js, _ := jetstream.New(f.nc)
	publish := func(wire []byte) {
		t.Helper()
		if _, err := js.Publish(f.ctx, streams.CheckpointSubject, wire); err != nil {
			t.Fatal(err)
		}
	}
	hash, seq := s.proj.LogHash()
	other, _ := keys.GenerateSigningKey(nil)
	for name, wire := range map[string][]byte{
		"signed by another key": record.SignCheckpoint(record.Checkpoint{Seq: seq, Log: hash}, other),
		"another log hash":      record.SignCheckpoint(record.Checkpoint{Seq: seq, Log: [32]byte{1}}, f.ks),
		"beyond the log":        record.SignCheckpoint(record.Checkpoint{Seq: seq + 5, Log: hash}, f.ks),
		"truncated":             record.SignCheckpoint(record.Checkpoint{Seq: seq, Log: hash}, f.ks)[:record.CheckpointSize-1],
	} {
		publish(wire)
		if _, refused := load(); len(refused) != 1 {
			t.Errorf("%s: refused %v, want the checkpoint reported", name, refused)
		}
	}

	// A good checkpoint again, then an event forged after it: chained to
	// the group's head, valid, but signed by another key.
	publish(record.SignCheckpoint(record.Checkpoint{Seq: seq, Log: hash}, f.ks))
	agg := record.GroupAggregate(g)
	head := s.proj.Head(agg)
	forged := s.epoch(t, record.GroupRekeyed, g)
	forged.Seq, forged.Prev, forged.Time = head.Seq+1, head.Hash, time.Now().UnixNano()
	rec, err := record.Sign(forged, other)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.store.Append(f.ctx, agg, rec, head.StreamSeq); err != nil {
		t.Fatal(err)
	}
	p, refused := load()
	if len(refused) < 2 || !errors.Is(refused[len(refused)-1], record.ErrBadSignature) {
		t.Fatalf("refused %v: want the failed head, then the forged event", refused)
	}
	if h := p.Head(agg); h.Seq != head.Seq || h.Hash != head.Hash {
		t.Fatal("the forged event is the group's head")
	}
}

// TestCheckpointWire: a checkpoint parses back, and any change of its
// bytes is refused.
func TestCheckpointWire(t *testing.T) {
	ks, _ := keys.GenerateSigningKey(nil)
	pub := ks.Public()
	c := record.Checkpoint{Seq: 1234, Log: [32]byte{9, 8, 7}}
	wire := record.SignCheckpoint(c, ks)
	if len(wire) != record.CheckpointSize {
		t.Fatalf("%d bytes", len(wire))
	}
	if got, err := record.ParseCheckpoint(wire, &pub); err != nil || got != c {
		t.Fatalf("ParseCheckpoint = %+v, %v", got, err)
	}
	for i := range wire {
		bad := bytes.Clone(wire)
		bad[i] ^= 0x40
		want := record.ErrBadCheckpointSignature
		if i == 0 {
			want = record.ErrCheckpointMalformed // the version
		}
		if _, err := record.ParseCheckpoint(bad, &pub); !errors.Is(err, want) {
			t.Fatalf("byte %d changed: %v, want %v", i, err, want)
		}
	}
}

// TestForgedTailDoesNotFreezeAggregate: a forged record published last on
// a group's subject is refused, and the keyserver can still append to the
// group (its next append expects the forged record as the subject's last).
func TestForgedTailDoesNotFreezeAggregate(t *testing.T) {
	f := newFixture(t)
	s := f.service()
	a, aw := newClient(t)
	g := protocol.GroupID{6}
	s.must(t, record.NewClientRegistered(a, aw, "alice"))
	s.must(t, record.NewGroupCreated(g, "ops", record.Policy{}))
	s.must(t, s.epoch(t, record.MembersAdded, g, a))
	js, _ := jetstream.New(f.nc)
	stream, _ := js.Stream(f.ctx, streams.Events)
	last, err := stream.GetLastMsgForSubject(f.ctx, events.Subject(record.GroupAggregate(g)))
	if err != nil {
		t.Fatal(err)
	}
	forged := append([]byte(nil), last.Data...)
	forged[len(forged)-1] ^= 1 // a bad signature
	ack, err := js.Publish(f.ctx, last.Subject, forged)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.proj.WaitFor(f.ctx, ack.Sequence); err != nil {
		t.Fatal(err)
	}
	s.must(t, s.epoch(t, record.GroupRekeyed, g))
	s.proj.Read(func(st *fold.State) {
		if e := st.Groups[g].Epoch; e != 2 {
			t.Fatalf("epoch %d after the rekey, want 2", e)
		}
	})
}

// TestLoadedProjectionChecksEverySignature: a projection handed over by
// Load (which deferred signatures to the heads) checks the signature of
// every record it applies after: an event chained to a head and valid in
// the state, but signed by another key, is refused and changes nothing.
func TestLoadedProjectionChecksEverySignature(t *testing.T) {
	f := newFixture(t)
	s := f.service()
	a, aw := newClient(t)
	g := protocol.GroupID{7}
	s.must(t, record.NewClientRegistered(a, aw, "alice"))
	s.must(t, record.NewGroupCreated(g, "ops", record.Policy{}))
	s.must(t, s.epoch(t, record.MembersAdded, g, a))
	p, err := events.Load(f.ctx, f.store, f.ks.Public(), nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	before := digest(p)
	agg := record.GroupAggregate(g)
	head := p.Head(agg)
	e := s.epoch(t, record.GroupRekeyed, g)
	e.Seq, e.Prev, e.Actor = head.Seq+1, head.Hash, f.ks.Public()
	other, _ := keys.GenerateSigningKey(nil)
	rec, err := record.Sign(e, other)
	if err != nil {
		t.Fatal(err)
	}
	_, err = p.Apply(events.Stored{Seq: p.LastSeq() + 1, Subject: events.Subject(agg), Record: rec})
	if !errors.Is(err, record.ErrBadSignature) {
		t.Fatalf("Apply of a record signed by another key: %v, want ErrBadSignature", err)
	}
	if digest(p) != before || p.Head(agg) != head {
		t.Fatal("the refused record changed the projection")
	}
	good, err := record.Sign(e, f.ks)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.Apply(events.Stored{Seq: p.LastSeq() + 1, Subject: events.Subject(agg), Record: good}); err != nil {
		t.Fatalf("the same record signed by the keyserver: %v", err)
	}
}
