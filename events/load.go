package events

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"sync"

	"github.com/commsec/communicator/events/fold"
	"github.com/commsec/communicator/events/record"
	"github.com/commsec/communicator/protocol"
	"github.com/commsec/communicator/streams"
)

// Loader folds a log with the signatures deferred to the aggregates'
// heads: each record's subject, chain and validity are checked as it is
// applied, and because every signed body names the hash of its
// predecessor, a valid signature on an aggregate's last record
// authenticates its whole history (PROTOCOL.md §15.6). VerifyHeads must
// succeed before the state is trusted. A cold start (Load) and an audit
// use it; a Projection never defers.
type Loader struct {
	l *ledger
	// unverified holds the records of the heads still to check. Those up
	// to stream sequence covered are not kept: a checkpoint vouches for
	// them if the log hash matches it (see Load).
	unverified map[record.Key]record.Record
	covered    uint64
}

// NewLoader starts an empty fold that trusts the keyserver key ks.
func NewLoader(ks [protocol.PublicKeySize]byte) *Loader {
	return &Loader{l: newLedger(ks), unverified: map[record.Key]record.Record{}}
}

// Apply checks one stored record, but for its signature, and folds it
// in; a refused one changes nothing and yields an *ApplyError.
func (ld *Loader) Apply(m Stored) (*record.Event, error) {
	return ld.apply(prepare(m))
}

func (ld *Loader) apply(r prepared) (*record.Event, error) {
	e, err := ld.l.admit(r, false)
	if err == nil && r.m.Seq > ld.covered {
		ld.unverified[e.Key()] = r.m.Record
	}
	return e, err
}

// VerifyHeads checks the signature of every head applied since the
// checkpoint (or since the start), on all cores.
func (ld *Loader) VerifyHeads() error {
	type pending struct {
		k   record.Key
		rec record.Record
	}
	todo := make([]pending, 0, len(ld.unverified))
	for k, rec := range ld.unverified {
		todo = append(todo, pending{k, rec})
	}
	errs := make([]error, len(todo))
	var wg sync.WaitGroup
	workers := min(runtime.GOMAXPROCS(0), len(todo))
	for w := range workers {
		wg.Go(func() {
			for i := w; i < len(todo); i += workers {
				if err := todo[i].rec.Verify(&ld.l.ks); err != nil {
					errs[i] = &ApplyError{Seq: ld.l.heads[todo[i].k].StreamSeq, Subject: Subject(todo[i].k.Name()), Err: err}
				}
			}
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return err
	}
	clear(ld.unverified)
	return nil
}

// Read calls f with the state so far; f must not keep it.
func (ld *Loader) Read(f func(*fold.State)) { f(ld.l.state) }

// Head returns an aggregate's head (zero if it has no events).
func (ld *Loader) Head(aggregate string) Head { return ld.l.head(aggregate) }

// LogHash returns the log hash of the records applied so far and the
// stream sequence of the last record seen.
func (ld *Loader) LogHash() ([32]byte, uint64) { return ld.l.logHash, ld.l.lastSeq }

// projection hands the fold over to a Projection, once every head's
// signature holds; the loader is spent.
func (ld *Loader) projection() *Projection {
	if len(ld.unverified) > 0 {
		panic("events: a loader handed over unverified heads")
	}
	p := newProjection(ld.l)
	p.checkpointed = ld.covered
	ld.l = nil
	return p
}

// Load rebuilds the projection of the whole log. Each event's chain and
// validity are checked as it is applied, and signatures at the aggregate
// heads (see Loader); with a checkpoint whose log hash the replay matches,
// only the heads after the checkpoint. If a head's signature fails or the
// log does not match the checkpoint, Load replays again checking every
// signature, so that a forged event is refused alone instead of making
// the whole log unusable. Applied events are passed to applied, refused
// ones to refused (either may be nil), and so is a checkpoint that does
// not verify. On the fast path applied sees events before their heads'
// signatures are checked, and again if Load falls back: use it only for
// bookkeeping that tolerates that.
func Load(ctx context.Context, store *Store, ks [32]byte, applied func(*record.Event), refused func(error)) (*Projection, error) {
	if refused == nil {
		refused = func(error) {}
	}
	if applied == nil {
		applied = func(*record.Event) {}
	}
	cp, err := store.lastCheckpoint(ctx, &ks)
	if err != nil {
		refused(fmt.Errorf("events: ignoring the last checkpoint: %w", err))
		cp = nil
	}
	p, err := loadDeferred(ctx, store, ks, cp, applied, refused)
	if p != nil || err != nil {
		return p, err
	}
	l := newLedger(ks)
	err = replayPrepared(ctx, store, collect(func(r prepared) (*record.Event, error) { return l.admit(r, true) }, applied, refused))
	if err != nil {
		return nil, err
	}
	return newProjection(l), nil
}

// loadDeferred is Load's fast path. It returns no projection and no error
// when Load must replay again checking every signature.
func loadDeferred(ctx context.Context, store *Store, ks [32]byte, cp *record.Checkpoint, applied func(*record.Event), refused func(error)) (*Projection, error) {
	ld := NewLoader(ks)
	var skipped []error
	apply := collect(ld.apply, applied, func(err error) { skipped = append(skipped, err) })
	var atCheckpoint *[32]byte // the log hash after the records up to cp.Seq
	fn := apply
	if cp != nil {
		ld.covered = cp.Seq
		fn = func(r prepared) error {
			if atCheckpoint == nil && r.m.Seq > cp.Seq {
				h := ld.l.logHash
				atCheckpoint = &h
			}
			return apply(r)
		}
	}
	if err := replayPrepared(ctx, store, fn); err != nil {
		return nil, err
	}
	if cp != nil {
		if h, last := ld.LogHash(); atCheckpoint == nil && last >= cp.Seq {
			atCheckpoint = &h
		}
		if atCheckpoint == nil || *atCheckpoint != cp.Log {
			refused(fmt.Errorf("events: the log does not match the checkpoint at %d, replaying with every signature checked", cp.Seq))
			return nil, nil
		}
	}
	if err := ld.VerifyHeads(); err != nil {
		refused(fmt.Errorf("events: a head signature failed, replaying with every signature checked: %w", err))
		return nil, nil
	}
	for _, err := range skipped {
		refused(err)
	}
	return ld.projection(), nil
}

// collect adapts an apply step to the replay pipeline: a refused record
// goes to refused and the replay goes on; other errors end it.
func collect(apply func(prepared) (*record.Event, error), applied func(*record.Event), refused func(error)) func(prepared) error {
	return func(r prepared) error {
		e, err := apply(r)
		var ae *ApplyError
		switch {
		case errors.As(err, &ae):
			refused(err)
			return nil
		case err != nil:
			return err
		}
		applied(e)
		return nil
	}
}

// prepareBatch is how many records replayPrepared hands over at once.
const prepareBatch = 256

// replayPrepared replays the whole log into fn, in order, reading,
// decoding and hashing the records on a second goroutine ahead of it.
func replayPrepared(ctx context.Context, store *Store, fn func(prepared) error) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	const inFlight = 4
	batches := make(chan []prepared, inFlight)
	free := make(chan []prepared, inFlight+2) // batches to reuse
	read := make(chan error, 1)
	go func() {
		defer close(batches)
		batch := make([]prepared, 0, prepareBatch)
		send := func() error {
			select {
			case batches <- batch:
			case <-ctx.Done():
				return ctx.Err()
			}
			select {
			case batch = <-free:
			default:
				batch = make([]prepared, 0, prepareBatch)
			}
			return nil
		}
		err := store.Replay(ctx, streams.AllEvents, 1, func(m Stored) error {
			if batch = append(batch, prepare(m)); len(batch) == prepareBatch {
				return send()
			}
			return nil
		})
		if err == nil && len(batch) > 0 {
			err = send()
		}
		read <- err
	}()
	var err error
	for batch := range batches {
		for _, r := range batch {
			if err == nil {
				err = fn(r)
			}
		}
		if err != nil {
			cancel() // and drain what the reader has sent
		}
		clear(batch)
		select {
		case free <- batch[:0]:
		default:
		}
	}
	if rerr := <-read; err == nil {
		err = rerr
	}
	return err
}

// Follow keeps p up to date with events appended after it was loaded,
// verifying every signature. onApplied (may be nil) sees each applied
// event, including those a Writer on p applied itself as it stored them;
// refused (may be nil) each refused one. It returns a stop function.
func Follow(ctx context.Context, store *Store, p *Projection, onApplied func(*record.Event), refused func(error)) (func(), error) {
	return store.Follow(ctx, streams.AllEvents, p.LastSeq(), func(m Stored) {
		e, err := p.applyFollowed(m)
		switch {
		case err != nil && refused != nil:
			refused(err)
		case err == nil && onApplied != nil:
			onApplied(e)
		}
	})
}
