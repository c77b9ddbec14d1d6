package events

import (
	"fmt"

	"github.com/commsec/communicator/events/fold"
	"github.com/commsec/communicator/events/record"
	"github.com/commsec/communicator/protocol"
)

// ApplyError names the event a replay refused and why.
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

// prepared is a record decoded and hashed, the work of applying it that
// needs no ledger: the loader does it on another goroutine, ahead.
type prepared struct {
	m    Stored
	e    *record.Event
	err  error // of decoding
	hash [32]byte
}

func prepare(m Stored) prepared {
	r := prepared{m: m, hash: m.Record.Hash()}
	r.e, r.err = m.Record.Decode()
	return r
}

// ledger is the verified fold of a log: the state, every aggregate's
// head, the log hash (see record.ChainLog) and the position. It is what
// a Projection guards and what a Loader builds; it has no lock.
type ledger struct {
	ks          [protocol.PublicKeySize]byte
	state       *fold.State
	heads       map[record.Key]Head
	refusedTail map[string]uint64 // aggregate → its last refused record (rare: a forged or corrupt log)
	lastSeq     uint64            // the last record seen, applied or refused
	logHash     [32]byte          // of the records applied so far
}

func newLedger(ks [protocol.PublicKeySize]byte) *ledger {
	return &ledger{ks: ks, state: fold.NewState(), heads: map[record.Key]Head{}}
}

// admit verifies a record (PROTOCOL.md §15.4: subject, chain, signature
// if sig, validity in the state) and folds it in. A refused record
// changes nothing but the position, and yields an *ApplyError.
func (l *ledger) admit(r prepared, sig bool) (*record.Event, error) {
	l.lastSeq = max(l.lastSeq, r.m.Seq)
	e, err := l.verify(r, sig)
	if err == nil {
		err = l.state.Apply(e)
	}
	if err != nil {
		l.refusedOn(r.m)
		return nil, &ApplyError{Seq: r.m.Seq, Subject: r.m.Subject, Err: err}
	}
	l.commit(r, e)
	return e, nil
}

// commit records an event the state has applied: its aggregate's head,
// the log hash, the position.
func (l *ledger) commit(r prepared, e *record.Event) {
	l.heads[e.Key()] = Head{Seq: e.Seq, Hash: r.hash, StreamSeq: r.m.Seq}
	l.logHash = record.ChainLog(&l.logHash, r.m.Seq, &r.hash)
	l.lastSeq = max(l.lastSeq, r.m.Seq)
}

// verify checks a decoded record's subject, chain and, if sig, signature.
func (l *ledger) verify(r prepared, sig bool) (*record.Event, error) {
	m, e := r.m, r.e
	if r.err != nil {
		return nil, r.err
	}
	agg := e.Aggregate()
	if a, ok := AggregateOf(m.Subject); !ok || a != agg {
		return nil, fmt.Errorf("%w: %s holds an event of %s", record.ErrWrongSubject, m.Subject, agg)
	}
	h := l.heads[e.Key()]
	if err := e.Follows(h.Seq, h.Hash); err != nil {
		return nil, err
	}
	if sig {
		if err := m.Record.Verify(&l.ks); err != nil {
			return nil, err
		}
	}
	return e, nil
}

// refusedOn remembers the stream sequence of a refused record on an
// aggregate's subject: the next append to that aggregate must expect it
// as the subject's last message, or it would conflict forever.
func (l *ledger) refusedOn(m Stored) {
	agg, ok := AggregateOf(m.Subject)
	if !ok {
		return
	}
	if l.refusedTail == nil {
		l.refusedTail = map[string]uint64{}
	}
	l.refusedTail[agg] = max(l.refusedTail[agg], m.Seq)
}

// head returns an aggregate's head (zero if it has no events).
func (l *ledger) head(aggregate string) Head {
	k, ok := record.ParseAggregate(aggregate)
	if !ok {
		return Head{}
	}
	return l.heads[k]
}

// expected is the stream sequence an append to aggregate must expect as
// its subject's last: its head's, or a later refused record's.
func (l *ledger) expected(aggregate string) uint64 {
	return max(l.head(aggregate).StreamSeq, l.refusedTail[aggregate])
}
