package events

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/commsec/communicator/events/fold"
	"github.com/commsec/communicator/events/record"
	"github.com/commsec/communicator/protocol"
)

// Stored is a record as read from the log.
type Stored struct {
	Seq     uint64 // the stream sequence
	Subject string
	Record  record.Record
	Time    time.Time // when JetStream stored it
}

// Projection is the verified fold of the log that every service reads.
// Each record it applies has its subject, chain, signature and validity
// checked (PROTOCOL.md §15.4); a cold start builds one with a Loader,
// which may defer signatures, and hands it over only once they hold. It
// is safe for concurrent use: one goroutine applies, any number read.
type Projection struct {
	mu       sync.RWMutex
	l        *ledger
	advanced chan struct{} // closed when the position grows
	// checkpointed is the stream sequence of the newest checkpoint known
	// to cover this projection's history (see Writer.Checkpoint).
	checkpointed uint64
}

// NewProjection starts an empty projection that trusts the keyserver key ks.
func NewProjection(ks [protocol.PublicKeySize]byte) *Projection {
	return newProjection(newLedger(ks))
}

func newProjection(l *ledger) *Projection {
	return &Projection{l: l, advanced: make(chan struct{})}
}

// Apply verifies one stored record and folds it in. A refused record
// changes nothing and yields an *ApplyError; the projection stays
// consistent with the authentic history, so the caller may go on.
func (p *Projection) Apply(m Stored) (*record.Event, error) {
	r := prepare(m)
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.applyLocked(r)
}

func (p *Projection) applyLocked(r prepared) (*record.Event, error) {
	before := p.l.lastSeq
	defer p.wake(before)
	return p.l.admit(r, true)
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
	if m.Seq != p.l.lastSeq+1 {
		return false
	}
	r := prepare(m)
	e, err := p.l.verify(r, false)
	if err != nil || p.l.state.Apply(e) != nil {
		return false // the follower refuses it, as it would have
	}
	before := p.l.lastSeq
	p.l.commit(r, e)
	p.wake(before)
	return true
}

// applyFollowed is Apply for the follower: a record the projection has
// already seen was applied by its writer (applyOwn), and is decoded again
// only to hand it to the follower's callback.
func (p *Projection) applyFollowed(m Stored) (*record.Event, error) {
	r := prepare(m)
	p.mu.Lock()
	defer p.mu.Unlock()
	if m.Seq <= p.l.lastSeq {
		return r.e, r.err
	}
	return p.applyLocked(r)
}

// wake wakes WaitFor callers if the position grew past before.
func (p *Projection) wake(before uint64) {
	if p.l.lastSeq > before {
		close(p.advanced)
		p.advanced = make(chan struct{})
	}
}

// WaitFor waits until the projection has seen the record at stream
// sequence seq (applied or refused), or ctx ends.
func (p *Projection) WaitFor(ctx context.Context, seq uint64) error {
	for {
		p.mu.RLock()
		done, ch := p.l.lastSeq >= seq, p.advanced
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

// Read calls f with the state under the read lock; f must not keep it.
func (p *Projection) Read(f func(*fold.State)) {
	p.mu.RLock()
	defer p.mu.RUnlock()
	f(p.l.state)
}

// ReadAt is Read that also passes the log position the state is at.
func (p *Projection) ReadAt(f func(s *fold.State, seq uint64)) {
	p.mu.RLock()
	defer p.mu.RUnlock()
	f(p.l.state, p.l.lastSeq)
}

// Head returns a copy of an aggregate's head (zero if it has no events).
func (p *Projection) Head(aggregate string) Head {
	p.mu.RLock()
	defer p.mu.RUnlock()
	return p.l.head(aggregate)
}

// LastSeq is the stream sequence of the last record seen, applied or
// refused: the position from which to follow the log.
func (p *Projection) LastSeq() uint64 {
	p.mu.RLock()
	defer p.mu.RUnlock()
	return p.l.lastSeq
}

// LogHash returns the log hash of the records applied so far (see
// record.ChainLog) and the stream sequence of the last record seen.
func (p *Projection) LogHash() ([32]byte, uint64) {
	p.mu.RLock()
	defer p.mu.RUnlock()
	return p.l.logHash, p.l.lastSeq
}

// KeyserverKey is the key the projection trusts.
func (p *Projection) KeyserverKey() [protocol.PublicKeySize]byte { return p.l.ks }

// WaitUntil waits until cond holds for the state, re-checking each time
// the projection advances, or until ctx ends. cond runs under the read
// lock and must not keep the state.
func (p *Projection) WaitUntil(ctx context.Context, cond func(*fold.State) bool) error {
	for {
		p.mu.RLock()
		ok, ch := cond(p.l.state), p.advanced
		p.mu.RUnlock()
		if ok {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return fmt.Errorf("events: waiting for the log: %w", ctx.Err())
		}
	}
}
