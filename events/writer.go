package events

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/commsec/communicator/events/record"
	"github.com/commsec/communicator/protocol/keys"
)

// Writer appends events signed by the keyserver, each chained to the head
// of its aggregate in the projection, and returns once the projection has
// applied it. When the projection has seen every record before the new
// one, the Writer applies its event itself (it made the signature); else
// it waits for the projection's follower. Every checkpointInterval events
// it stores a checkpoint (see Checkpoint).
type Writer struct {
	store *Store
	proj  *Projection
	key   *keys.SigningKey
	now   func() time.Time
	// own: the key is the one the projection trusts, so the Writer may
	// apply its events and sign checkpoints.
	own           bool
	checkpointing atomic.Bool
}

// NewWriter returns a Writer; now is the clock (time.Now if nil).
func NewWriter(store *Store, proj *Projection, key *keys.SigningKey, now func() time.Time) *Writer {
	if now == nil {
		now = time.Now
	}
	return &Writer{store: store, proj: proj, key: key, now: now, own: key.Public() == proj.KeyserverKey()}
}

// Append completes e (position, previous hash, time, actor), checks it
// against the state it will change, signs and appends it. On ErrConflict
// the projection has caught up with the competing event when Append
// returns, so the caller can rebuild its change and try again.
func (w *Writer) Append(ctx context.Context, e *record.Event) (uint64, error) {
	agg := e.Aggregate()
	var expected uint64
	var err error
	w.proj.mu.RLock()
	w.complete(e, w.proj.l.head(agg))
	expected = w.proj.l.expected(agg)
	err = w.proj.l.state.Check(e)
	w.proj.mu.RUnlock()
	if err != nil {
		return 0, err
	}
	rec, err := record.Sign(e, w.key)
	if err != nil {
		return 0, err
	}
	seq, err := w.store.Append(ctx, agg, rec, expected)
	if errors.Is(err, ErrConflict) {
		return 0, errors.Join(err, w.catchUp(ctx, agg))
	}
	if err != nil {
		return 0, err
	}
	if !w.own || !w.proj.applyOwn(Stored{Seq: seq, Subject: Subject(agg), Record: rec}) {
		if err := w.proj.WaitFor(ctx, seq); err != nil {
			return seq, err
		}
	}
	w.maybeCheckpoint()
	return seq, nil
}

func (w *Writer) complete(e *record.Event, head Head) {
	e.Seq, e.Prev = head.Seq+1, head.Hash // the zero Head is the genesis
	e.Time = w.now().UnixNano()
	if e.Actor == ([32]byte{}) {
		e.Actor = w.key.Public()
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

// Checkpoint signs the projection's log hash and stores it as the newest
// checkpoint, so that the next Load checks only the signatures of the
// events appended after it. The projection must have checked the signature
// of every event it applied (it has, once Load has returned it).
func (w *Writer) Checkpoint(ctx context.Context) error {
	if !w.own {
		return errors.New("events: checkpoint: the writer's key is not the one the projection trusts")
	}
	cp, ok := w.proj.checkpoint()
	if !ok {
		return errors.New("events: checkpoint: the projection is empty")
	}
	if err := w.store.saveCheckpoint(ctx, record.SignCheckpoint(cp, w.key)); err != nil {
		return err
	}
	w.proj.setCheckpointed(cp.Seq)
	return nil
}

// maybeCheckpoint stores a checkpoint, in the background, when the last
// one is checkpointInterval events old. An append neither waits for it nor
// fails with it: a checkpoint not stored is tried again after the next
// append.
func (w *Writer) maybeCheckpoint() {
	if !w.own || w.proj.sinceCheckpoint() < checkpointInterval || !w.checkpointing.CompareAndSwap(false, true) {
		return
	}
	go func() {
		defer w.checkpointing.Store(false)
		ctx, cancel := context.WithTimeout(context.Background(), checkpointTimeout)
		defer cancel()
		_ = w.Checkpoint(ctx)
	}()
}
