package events

import (
	"context"
	"errors"
	"fmt"
)

// All is the filter of every event.
const All = SubjectPrefix + ">"

// Load rebuilds the projection of the whole log. Each event's chain and
// validity are checked as it is applied and signatures at the aggregate
// heads (see DeferSignatures); if a head's signature fails, Load replays
// again checking every signature, so that a forged event is refused alone
// instead of making the whole log unusable. Applied events are passed to
// applied, refused ones to refused and skipped (either may be nil). On the
// fast path applied sees events before their heads' signatures are
// checked, and again if Load falls back: use it only for bookkeeping that
// tolerates that.
func Load(ctx context.Context, store *Store, ks [32]byte, applied func(*Event), refused func(error)) (*Projection, error) {
	if refused == nil {
		refused = func(error) {}
	}
	if applied == nil {
		applied = func(*Event) {}
	}
	p := NewProjection(ks)
	p.DeferSignatures(true)
	var skipped []error
	if err := store.Replay(ctx, All, 1, applyTo(p, applied, func(err error) { skipped = append(skipped, err) })); err != nil {
		return nil, err
	}
	headErr := p.VerifyHeads()
	if headErr == nil {
		for _, err := range skipped {
			refused(err)
		}
		return p, nil
	}
	refused(fmt.Errorf("events: a head signature failed, replaying with every signature checked: %w", headErr))
	p = NewProjection(ks)
	if err := store.Replay(ctx, All, 1, applyTo(p, applied, refused)); err != nil {
		return nil, err
	}
	return p, nil
}

func applyTo(p *Projection, applied func(*Event), refused func(error)) func(Stored) error {
	return func(m Stored) error {
		e, err := p.Apply(m)
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
// event; refused (may be nil) each refused one. It returns a stop function.
func Follow(ctx context.Context, store *Store, p *Projection, onApplied func(*Event), refused func(error)) (func(), error) {
	return store.Follow(ctx, All, p.LastSeq(), func(m Stored) {
		e, err := p.Apply(m)
		switch {
		case err != nil && refused != nil:
			refused(err)
		case err == nil && onApplied != nil:
			onApplied(e)
		}
	})
}
