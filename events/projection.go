package events

import (
	"bytes"
	"context"
	"errors"
	"fmt"
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
	record    Record   // kept only while its signature is unverified
}

// Projection folds the log into a State, verifying each event first. It is
// safe for concurrent use: one goroutine applies, any number read.
type Projection struct {
	mu       sync.RWMutex
	ks       [protocol.PublicKeySize]byte
	state    *State
	heads    map[string]*Head
	lastSeq  uint64        // the last record seen, applied or refused
	advanced chan struct{} // closed when lastSeq grows
	// deferred: signatures are checked at the aggregate heads only (see
	// DeferSignatures); unverified lists the heads still to check.
	deferred   bool
	unverified map[string]bool
}

// NewProjection starts an empty projection that trusts the keyserver key ks.
func NewProjection(ks [protocol.PublicKeySize]byte) *Projection {
	return &Projection{ks: ks, state: NewState(), heads: map[string]*Head{}, unverified: map[string]bool{}, advanced: make(chan struct{})}
}

// Apply verifies one stored record and folds it in. A refused record
// changes nothing and yields an *ApplyError; the projection stays
// consistent with the authentic history, so the caller may go on.
func (p *Projection) Apply(m Stored) (*Event, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	defer p.seen(m.Seq)
	e, err := p.verify(m)
	if err != nil {
		return nil, &ApplyError{Seq: m.Seq, Subject: m.Subject, Err: err}
	}
	p.state.apply(e)
	h := &Head{Seq: e.Seq, Hash: m.Record.Hash(), StreamSeq: m.Seq}
	if p.deferred {
		h.record = m.Record
		p.unverified[e.Aggregate] = true
	}
	p.heads[e.Aggregate] = h
	return e, nil
}

// seen advances the log position and wakes WaitFor callers.
func (p *Projection) seen(seq uint64) {
	if seq <= p.lastSeq {
		return
	}
	p.lastSeq = seq
	close(p.advanced)
	p.advanced = make(chan struct{})
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

func (p *Projection) verify(m Stored) (*Event, error) {
	e, err := m.Record.Decode()
	if err != nil {
		return nil, err
	}
	if agg, ok := AggregateOf(m.Subject); !ok || agg != e.Aggregate {
		return nil, fmt.Errorf("%w: %s holds an event of %s", ErrWrongSubject, m.Subject, e.Aggregate)
	}
	if err := p.checkChain(e); err != nil {
		return nil, err
	}
	if !p.deferred {
		if err := m.Record.Verify(&p.ks); err != nil {
			return nil, err
		}
	}
	if err := p.state.Check(e); err != nil {
		return nil, err
	}
	return e, nil
}

func (p *Projection) checkChain(e *Event) error {
	h := p.heads[e.Aggregate]
	var seq uint64
	var hash []byte
	if h != nil {
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
// were deferred, and ends deferral.
func (p *Projection) VerifyHeads() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	var errs []error
	for agg := range p.unverified {
		h := p.heads[agg]
		if err := h.record.Verify(&p.ks); err != nil {
			errs = append(errs, &ApplyError{Seq: h.StreamSeq, Subject: Subject(agg), Err: err})
		}
		h.record = nil
	}
	clear(p.unverified)
	p.deferred = false
	return errors.Join(errs...)
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

func (p *Projection) headLocked(aggregate string) Head {
	if h := p.heads[aggregate]; h != nil {
		return Head{Seq: h.Seq, Hash: h.Hash, StreamSeq: h.StreamSeq}
	}
	return Head{}
}

// LastSeq is the stream sequence of the last record seen, applied or
// refused: the position from which to follow the log.
func (p *Projection) LastSeq() uint64 {
	p.mu.RLock()
	defer p.mu.RUnlock()
	return p.lastSeq
}

// KeyserverKey is the key the projection trusts.
func (p *Projection) KeyserverKey() [protocol.PublicKeySize]byte { return p.ks }
