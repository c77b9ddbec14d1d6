package events

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/commsec/communicator/protocol/keys"
)

// Writer appends events signed by the keyserver, each chained to the head
// of its aggregate in the projection, and waits until the projection has
// applied it (the projection's follower is the only applier).
type Writer struct {
	store *Store
	proj  *Projection
	key   *keys.SigningKey
	now   func() time.Time
}

// NewWriter returns a Writer; now is the clock (time.Now if nil).
func NewWriter(store *Store, proj *Projection, key *keys.SigningKey, now func() time.Time) *Writer {
	if now == nil {
		now = time.Now
	}
	return &Writer{store: store, proj: proj, key: key, now: now}
}

// Append completes e (format, position, previous hash, time), checks it
// against the state it will change, signs and appends it. On ErrConflict
// the projection has caught up with the competing event when Append
// returns, so the caller can rebuild its change and try again.
func (w *Writer) Append(ctx context.Context, e *Event) (uint64, error) {
	var head Head
	var err error
	w.proj.Read(func(s *State) {
		head = w.proj.headLocked(e.Aggregate)
		w.complete(e, head)
		err = s.Check(e)
	})
	if err != nil {
		return 0, err
	}
	rec, err := Sign(e, w.key)
	if err != nil {
		return 0, err
	}
	seq, err := w.store.Append(ctx, e.Aggregate, rec, head.StreamSeq)
	if errors.Is(err, ErrConflict) {
		return 0, errors.Join(err, w.catchUp(ctx, e.Aggregate))
	}
	if err != nil {
		return 0, err
	}
	return seq, w.proj.WaitFor(ctx, seq)
}

func (w *Writer) complete(e *Event, head Head) {
	e.Format = Format
	e.Seq = head.Seq + 1
	e.Prev = nil
	if head.Seq > 0 {
		e.Prev = head.Hash[:]
	}
	e.Time = w.now().UnixNano()
	if e.Actor == nil {
		pub := w.key.Public()
		e.Actor = pub[:]
	}
}

// catchUp waits until the projection has seen the aggregate's last event.
func (w *Writer) catchUp(ctx context.Context, aggregate string) error {
	last, err := w.store.stream.GetLastMsgForSubject(ctx, Subject(aggregate))
	if err != nil {
		return fmt.Errorf("events: after a conflict on %s: %w", aggregate, err)
	}
	return w.proj.WaitFor(ctx, last.Sequence)
}
