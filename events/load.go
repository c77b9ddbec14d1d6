package events

import (
	"context"
	"errors"
	"fmt"

	"github.com/commsec/communicator/streams"
)

// Load rebuilds the projection of the whole log. Each event's chain and
// validity are checked as it is applied, and signatures at the aggregate
// heads (see DeferSignatures); with a checkpoint (see Checkpoint) whose log
// hash the replay matches, only the heads after the checkpoint. If a head's
// signature fails or the log does not match the checkpoint, Load replays
// again checking every signature, so that a forged event is refused alone
// instead of making the whole log unusable. Applied events are passed to
// applied, refused ones to refused and skipped (either may be nil), and so
// is a checkpoint that does not verify. On the fast path applied sees
// events before their heads' signatures are checked, and again if Load
// falls back: use it only for bookkeeping that tolerates that.
func Load(ctx context.Context, store *Store, ks [32]byte, applied func(*Event), refused func(error)) (*Projection, error) {
	if refused == nil {
		refused = func(error) {}
	}
	if applied == nil {
		applied = func(*Event) {}
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
	p = NewProjection(ks)
	p.quiet = true
	if err := replayPrepared(ctx, store, applyTo(p, applied, refused)); err != nil {
		return nil, err
	}
	p.quiet = false
	return p, nil
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

// loadDeferred is Load's fast path. It returns no projection and no error
// when Load must replay again checking every signature.
func loadDeferred(ctx context.Context, store *Store, ks [32]byte, cp *Checkpoint, applied func(*Event), refused func(error)) (*Projection, error) {
	p := NewProjection(ks)
	p.DeferSignatures(true)
	p.quiet = true
	var skipped []error
	apply := applyTo(p, applied, func(err error) { skipped = append(skipped, err) })
	var atCheckpoint *[32]byte // the log hash after the records up to cp.Seq
	fn := apply
	if cp != nil {
		p.covered = cp.Seq
		fn = func(r prepared) error {
			if atCheckpoint == nil && r.m.Seq > cp.Seq {
				h, _ := p.LogHash()
				atCheckpoint = &h
			}
			return apply(r)
		}
	}
	if err := replayPrepared(ctx, store, fn); err != nil {
		return nil, err
	}
	if cp != nil {
		if h, last := p.LogHash(); atCheckpoint == nil && last >= cp.Seq {
			atCheckpoint = &h
		}
		if atCheckpoint == nil || *atCheckpoint != cp.Log {
			refused(fmt.Errorf("events: the log does not match the checkpoint at %d, replaying with every signature checked", cp.Seq))
			return nil, nil
		}
		p.setCheckpointed(cp.Seq)
	}
	if err := p.VerifyHeads(); err != nil {
		refused(fmt.Errorf("events: a head signature failed, replaying with every signature checked: %w", err))
		return nil, nil
	}
	for _, err := range skipped {
		refused(err)
	}
	p.quiet = false
	return p, nil
}

func applyTo(p *Projection, applied func(*Event), refused func(error)) func(prepared) error {
	return func(r prepared) error {
		e, err := p.applyPrepared(r)
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

// Follow keeps p up to date with events appended after it was loaded,
// verifying every signature. onApplied (may be nil) sees each applied
// event, including those a Writer on p applied itself as it stored them;
// refused (may be nil) each refused one. It returns a stop function.
func Follow(ctx context.Context, store *Store, p *Projection, onApplied func(*Event), refused func(error)) (func(), error) {
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
