package events

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"runtime"
	"strings"
	"sync"
	"time"

	"github.com/commsec/communicator/protocol"
)

// Stored is a record as read from the log.
type Stored struct {
	Seq     uint64 // the stream sequence
	Subject string
	Record  Record
	Time    time.Time // when JetStream stored it
}

// ApplyError names the event the projection refused and why.
type ApplyError struct {
	Seq     uint64 // stream sequence of the refused event
	Subject string
	Err     error
}

func (e *ApplyError) Error() string {
	return fmt.Sprintf("events: event %d on %s refused: %v", e.Seq, e.Subject, e.Err)
}

func (e *ApplyError) Unwrap() error { return e.Err }

// Head is the last applied event of an aggregate.
type Head struct {
	Seq       uint64   // the aggregate's event count
	Hash      [32]byte // hash of its last record
	StreamSeq uint64   // stream sequence of its last record: the expected sequence of the next append
}

// aggKey names an aggregate in a form the garbage collector need not
// scan: the projection holds a head for every client and group.
type aggKey struct {
	group bool
	id    [protocol.PublicKeySize]byte // a ClientID, or a GroupID and zeros
}

// keyOf is the key of a decoded event's aggregate (Decode has checked
// that Aggregate names it).
func keyOf(e *Event) aggKey {
	var k aggKey
	switch {
	case e.Client != nil:
		k.id = e.Client.ID
	case e.Group != nil:
		k.group = true
		copy(k.id[:], e.Group.ID[:])
	case e.Members != nil:
		k.group = true
		copy(k.id[:], e.Members.Group[:])
	}
	return k
}

// parseAggregate is the key of an aggregate's name, as ClientAggregate or
// GroupAggregate writes it.
func parseAggregate(name string) (aggKey, bool) {
	var k aggKey
	prefix, id := clientPrefix, k.id[:]
	if strings.HasPrefix(name, groupPrefix) {
		k.group = true
		prefix, id = groupPrefix, k.id[:protocol.GroupIDSize]
	}
	if len(name) != len(prefix)+2*len(id) {
		return k, false
	}
	if _, err := hex.Decode(id, []byte(name[len(prefix):])); err != nil {
		return k, false
	}
	return k, isAggregate(name, prefix, id)
}

func (k aggKey) name() string {
	if k.group {
		return GroupAggregate(protocol.GroupID(k.id[:protocol.GroupIDSize]))
	}
	return ClientAggregate(k.id)
}

// Projection folds the log into a State, verifying each event first. It is
// safe for concurrent use: one goroutine applies, any number read.
type Projection struct {
	refusedTail map[string]uint64 // aggregate → its last refused record (rare: a forged or corrupt log)
	mu          sync.RWMutex
	ks          [protocol.PublicKeySize]byte
	state       *State
	heads       map[aggKey]Head
	lastSeq     uint64        // the last record seen, applied or refused
	logHash     [32]byte      // of the records applied so far (see Checkpoint)
	advanced    chan struct{} // closed when lastSeq grows
	// deferred: signatures are checked at the aggregate heads only (see
	// DeferSignatures); unverified holds the records of the heads still to
	// check. Those up to stream sequence covered are not kept: a
	// checkpoint vouches for them if the log hash matches it (see Load).
	deferred   bool
	covered    uint64
	unverified map[aggKey]Record
	// quiet: nobody else can see the projection yet (Load is building
	// it), so seen need not wake waiters.
	quiet bool
	// checkpointed is the stream sequence of the newest checkpoint known
	// to cover this projection's history (see Writer.Checkpoint).
	checkpointed uint64
}

// NewProjection starts an empty projection that trusts the keyserver key ks.
func NewProjection(ks [protocol.PublicKeySize]byte) *Projection {
	return &Projection{ks: ks, state: NewState(), heads: map[aggKey]Head{}, unverified: map[aggKey]Record{},
		advanced: make(chan struct{})}
}

// Apply verifies one stored record and folds it in. A refused record
// changes nothing and yields an *ApplyError; the projection stays
// consistent with the authentic history, so the caller may go on.
func (p *Projection) Apply(m Stored) (*Event, error) {
	return p.applyPrepared(prepare(m))
}

// prepared is a record decoded and hashed, the work of applying it that
// needs no projection: Load does it on another goroutine, ahead.
type prepared struct {
	m    Stored
	e    *Event
	err  error // of decoding
	hash [32]byte
}

func prepare(m Stored) prepared {
	r := prepared{m: m, hash: m.Record.Hash()}
	r.e, r.err = m.Record.Decode()
	return r
}

func (p *Projection) applyPrepared(r prepared) (*Event, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.applyLocked(r)
}

func (p *Projection) applyLocked(r prepared) (*Event, error) {
	defer p.seen(r.m.Seq)
	e, next, err := p.verify(r, !p.deferred)
	if err != nil {
		p.refusedOn(r.m)
		return nil, &ApplyError{Seq: r.m.Seq, Subject: r.m.Subject, Err: err}
	}
	p.commit(r, e, next)
	return e, nil
}

// commit folds a verified event in: the state, its aggregate's head and
// the log hash.
func (p *Projection) commit(r prepared, e *Event, next []protocol.ClientID) {
	p.state.apply(e, next)
	m, hash, k := r.m, r.hash, keyOf(e)
	p.heads[k] = Head{Seq: e.Seq, Hash: hash, StreamSeq: m.Seq}
	switch {
	case p.deferred && m.Seq > p.covered:
		p.unverified[k] = m.Record
	case len(p.unverified) > 0:
		delete(p.unverified, k)
	}
	p.logHash = chainLog(&p.logHash, m.Seq, &hash)
}

// applyOwn applies a record its writer has just appended at stream
// sequence m.Seq, so that the writer need not wait for the follower. It
// does so only if the projection has seen every record before it and the
// event is still valid; it skips the signature, which the writer made
// with the key the projection trusts. The follower then skips the record
// (see applyFollowed).
func (p *Projection) applyOwn(m Stored) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.deferred || m.Seq != p.lastSeq+1 {
		return false
	}
	r := prepare(m)
	e, next, err := p.verify(r, false)
	if err != nil {
		return false // the follower refuses it, as it would have
	}
	p.commit(r, e, next)
	p.seen(m.Seq)
	return true
}

// applyFollowed is Apply for the follower: a record the projection has
// already seen was applied by its writer (applyOwn), and is decoded again
// only to hand it to the follower's callback.
func (p *Projection) applyFollowed(m Stored) (*Event, error) {
	r := prepare(m)
	p.mu.Lock()
	defer p.mu.Unlock()
	if m.Seq <= p.lastSeq {
		return r.e, r.err
	}
	return p.applyLocked(r)
}

// seen advances the log position and wakes WaitFor callers.
func (p *Projection) seen(seq uint64) {
	if seq <= p.lastSeq {
		return
	}
	p.lastSeq = seq
	if !p.quiet {
		close(p.advanced)
		p.advanced = make(chan struct{})
	}
}

// WaitFor waits until the projection has seen the record at stream
// sequence seq (applied or refused), or ctx ends.
func (p *Projection) WaitFor(ctx context.Context, seq uint64) error {
	for {
		p.mu.RLock()
		done, ch := p.lastSeq >= seq, p.advanced
		p.mu.RUnlock()
		if done {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return fmt.Errorf("events: waiting for event %d: %w", seq, ctx.Err())
		}
	}
}

// verify checks a decoded record against the projection: subject, chain,
// signature if sig, validity. It returns the event and, for a change of
// members, the new members.
func (p *Projection) verify(r prepared, sig bool) (*Event, []protocol.ClientID, error) {
	m, e := r.m, r.e
	if r.err != nil {
		return nil, nil, r.err
	}
	if agg, ok := AggregateOf(m.Subject); !ok || agg != e.Aggregate {
		return nil, nil, fmt.Errorf("%w: %s holds an event of %s", ErrWrongSubject, m.Subject, e.Aggregate)
	}
	if err := p.checkChain(e); err != nil {
		return nil, nil, err
	}
	if sig {
		if err := m.Record.Verify(&p.ks); err != nil {
			return nil, nil, err
		}
	}
	next, err := p.state.check(e)
	if err != nil {
		return nil, nil, err
	}
	return e, next, nil
}

func (p *Projection) checkChain(e *Event) error {
	var seq uint64
	var hash []byte
	if h, ok := p.heads[keyOf(e)]; ok {
		seq, hash = h.Seq, h.Hash[:]
	}
	if e.Seq != seq+1 {
		return fmt.Errorf("%w: %s event %d follows event %d", ErrChainBroken, e.Aggregate, e.Seq, seq)
	}
	if !bytes.Equal(e.Prev, hash) {
		return fmt.Errorf("%w: %s event %d does not name the hash of event %d", ErrChainBroken, e.Aggregate, e.Seq, seq)
	}
	return nil
}

// DeferSignatures switches signature checks to the aggregate heads: each
// record's hash chain is still checked as it is applied, and because every
// event's signed data names the hash of its predecessor, a valid signature
// on an aggregate's last event authenticates its whole history.
// VerifyHeads must then succeed before the state is trusted. Start-up
// replays use this; live updates do not.
func (p *Projection) DeferSignatures(on bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.deferred = on
}

// VerifyHeads checks the signature of every head applied while signatures
// were deferred, on all cores, and ends deferral.
func (p *Projection) VerifyHeads() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	type pending struct {
		k   aggKey
		rec Record
	}
	todo := make([]pending, 0, len(p.unverified))
	for k, rec := range p.unverified {
		todo = append(todo, pending{k, rec})
	}
	errs := make([]error, len(todo))
	var wg sync.WaitGroup
	workers := min(runtime.GOMAXPROCS(0), len(todo))
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < len(todo); i += workers {
				if err := todo[i].rec.Verify(&p.ks); err != nil {
					errs[i] = &ApplyError{Seq: p.heads[todo[i].k].StreamSeq, Subject: Subject(todo[i].k.name()), Err: err}
				}
			}
		}()
	}
	wg.Wait()
	clear(p.unverified)
	p.deferred, p.covered = false, 0
	return errors.Join(errs...)
}

// chainLog extends the log hash by the record at stream sequence seq:
// SHA-256(log | seq (8 bytes, big-endian) | hash of the record).
func chainLog(log *[32]byte, seq uint64, record *[32]byte) [32]byte {
	var in [32 + 8 + 32]byte
	copy(in[:32], log[:])
	binary.BigEndian.PutUint64(in[32:40], seq)
	copy(in[40:], record[:])
	return sha256.Sum256(in[:])
}

// Read calls f with the state under the read lock; f must not keep it.
func (p *Projection) Read(f func(*State)) {
	p.mu.RLock()
	defer p.mu.RUnlock()
	f(p.state)
}

// Head returns a copy of an aggregate's head (zero if it has no events).
func (p *Projection) Head(aggregate string) Head {
	p.mu.RLock()
	defer p.mu.RUnlock()
	return p.headLocked(aggregate)
}

// refusedOn remembers the stream sequence of a refused record on an
// aggregate's subject: the next append to that aggregate must expect it
// as the subject's last message, or it would conflict forever.
func (p *Projection) refusedOn(m Stored) {
	agg, ok := AggregateOf(m.Subject)
	if !ok {
		return
	}
	if p.refusedTail == nil {
		p.refusedTail = map[string]uint64{}
	}
	p.refusedTail[agg] = max(p.refusedTail[agg], m.Seq)
}

// expectedLocked is the stream sequence an append to aggregate must
// expect as its subject's last: its head's, or a later refused record's.
func (p *Projection) expectedLocked(aggregate string) uint64 {
	return max(p.headLocked(aggregate).StreamSeq, p.refusedTail[aggregate])
}

func (p *Projection) headLocked(aggregate string) Head {
	k, ok := parseAggregate(aggregate)
	if !ok {
		return Head{}
	}
	return p.heads[k]
}

// LastSeq is the stream sequence of the last record seen, applied or
// refused: the position from which to follow the log.
func (p *Projection) LastSeq() uint64 {
	p.mu.RLock()
	defer p.mu.RUnlock()
	return p.lastSeq
}

// ReadAt is Read that also passes the log position the state is at.
func (p *Projection) ReadAt(f func(s *State, seq uint64)) {
	p.mu.RLock()
	defer p.mu.RUnlock()
	f(p.state, p.lastSeq)
}

// KeyserverKey is the key the projection trusts.
func (p *Projection) KeyserverKey() [protocol.PublicKeySize]byte { return p.ks }
