package keyserver

import (
	"cmp"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/commsec/communicator/protocol"
	"github.com/commsec/communicator/protocol/bundle"
	"github.com/commsec/communicator/streams"
)

// publishEpoch makes the new epoch's key, escrows it, wraps it to every
// member and publishes the bundles; then it records in the bookkeeping
// bucket that the epoch is complete and purges the escrow. The key lives
// in this function and, until the epoch is complete, in its escrow
// (escrow.go). Without an escrow the epoch is still published: only a
// crash before it is complete then costs a new epoch.
func (k *Keyserver) publishEpoch(ctx context.Context, c *change) error {
	m := c.event.Members
	start := time.Now()
	var key [protocol.GroupKeySize]byte
	defer clear(key[:])
	if _, err := rand.Read(key[:]); err != nil {
		return fmt.Errorf("keyserver: group key: %w", err)
	}
	digest := [protocol.HashSize]byte(m.Digest)
	rev, escrowErr := k.storeEscrow(ctx, m.Group, m.Epoch, &digest, &key)
	if escrowErr != nil {
		k.log.Warn().Err(escrowErr).Str("group", m.Group.String()).Uint32("epoch", uint32(m.Epoch)).
			Msg("epoch key not escrowed; a crash before its bundles are all published will open another epoch")
	}
	to, crash := k.faultCrash(m.Group, m.Epoch, c.recipients)
	if err := k.publishBundles(ctx, m.Group, m.Epoch, to, &digest, &key); err != nil {
		return err
	}
	if crash {
		return errFaultCrash
	}
	if err := k.completeEpoch(ctx, m.Group, m.Epoch); err != nil {
		return err
	}
	if escrowErr == nil {
		k.dropEscrow(ctx, m.Group, rev)
	}
	took := time.Since(start)
	k.Metrics.rekeyTime.Observe(took.Seconds())
	k.Metrics.rekeys.Inc()
	k.Metrics.bundles.Add(float64(len(c.recipients)))
	k.log.Info().Str("group", m.Group.String()).Uint32("epoch", uint32(m.Epoch)).Str("cause", c.event.Type.String()).
		Int("members", len(c.recipients)).Dur("took", took).Msg("epoch opened")
	return nil
}

// completeEpoch records that every bundle of g's epoch e is published.
//
// It never lowers the record: two keyservers rekeying one group at once
// may finish out of order, and a record left at the older epoch sent the
// next start's recovery to rekey a complete epoch again (its escrow
// already dropped). So the write is a compare-and-swap on the record.
func (k *Keyserver) completeEpoch(ctx context.Context, g protocol.GroupID, e protocol.Epoch) error {
	key, value := epochKey(g), []byte(strconv.FormatUint(uint64(e), 10))
	for {
		entry, err := k.kv.Get(ctx, key)
		switch {
		case errors.Is(err, jetstream.ErrKeyNotFound):
			_, err = k.kv.Create(ctx, key, value)
		case err != nil:
		default:
			if recorded, perr := strconv.ParseUint(string(entry.Value()), 10, 32); perr == nil && protocol.Epoch(recorded) >= e {
				return nil // a later epoch is recorded complete already
			}
			_, err = k.kv.Update(ctx, key, value, entry.Revision())
		}
		if err == nil {
			return nil
		}
		if !streams.IsCASFailure(err) {
			return fmt.Errorf("keyserver: recording epoch %d of %s: %w", e, g, err)
		}
	}
}

// errFaultCrash ends an epoch's publication where Config.FaultCrashAfterBundles says.
var errFaultCrash = errors.New("keyserver: fault injected: stopped while publishing an epoch's bundles")

// faultCrash returns the recipients to publish to before an injected
// crash, and whether there is one.
func (k *Keyserver) faultCrash(g protocol.GroupID, e protocol.Epoch, to []bundle.Recipient) ([]bundle.Recipient, bool) {
	if k.cfg.FaultCrashAfterBundles == nil {
		return to, false
	}
	n := k.cfg.FaultCrashAfterBundles(g, e)
	if n < 0 || n >= len(to) {
		return to, false
	}
	return to[:n], true
}

func epochKey(g protocol.GroupID) string { return "epoch." + g.String() }

// bundleBatch is the most bundles that go into one atomic batch publish. The
// server stores a batch with one fsync where it would sync each bundle
// published alone; that sync, not the wrapping, bounded a rekey. It is
// nats-server's default maximum batch size (max_batch_size).
const bundleBatch = 1000

// minAtomicBatch is the fewest bundles sent as an atomic batch; fewer go
// one by one, asynchronously. The server stages each batch in a store of
// its own, which costs about as much as 20 to 30 synced writes here (a
// 2-member rekey took 6.5 ms in batches, 1 ms one by one).
const minAtomicBatch = 32

// maxBundleWorkers keeps the batches one rekey has open (at most one per
// worker: the one the server commits while the worker wraps the next)
// well below nats-server's default of 50 open atomic batches per stream.
const maxBundleWorkers = 16

// batchAttempts is how often a batch is sent before its rekey fails. A
// batch the server calls incomplete (a message of it went missing on the
// way) was not stored at all, so sending it again under a new batch id
// cannot store a bundle twice.
const batchAttempts = 3

// publishBundles wraps key to every recipient on k.cfg.Workers goroutines,
// each taking the next recipient itself and publishing its bundles in
// atomic batches, and returns once JetStream has acknowledged all of them.
// A recipient whose key cannot be wrapped to does not stop the others; its
// error is returned after them.
func (k *Keyserver) publishBundles(ctx context.Context, g protocol.GroupID, e protocol.Epoch, to []bundle.Recipient,
	digest *[protocol.HashSize]byte, key *[protocol.GroupKeySize]byte) error {
	p := &bundlePublisher{k: k, g: g, e: e, to: to, digest: digest, key: key,
		msgID: g.String() + "." + strconv.FormatUint(uint64(e), 10) + "."}
	workers := max(min(k.cfg.Workers, maxBundleWorkers, len(to)), 1)
	wrapErrs := make([]error, workers)
	pubErrs := make([]error, workers)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			wrapErrs[w], pubErrs[w] = p.work(ctx)
		}()
	}
	wg.Wait()
	for _, errs := range [][]error{pubErrs, wrapErrs} {
		for _, err := range errs {
			if err != nil {
				return err
			}
		}
	}
	return nil
}

// bundlePublisher is one epoch's bundles being wrapped and published.
type bundlePublisher struct {
	k      *Keyserver
	g      protocol.GroupID
	e      protocol.Epoch
	to     []bundle.Recipient
	digest *[protocol.HashSize]byte
	key    *[protocol.GroupKeySize]byte
	msgID  string       // the message id's prefix: group.epoch.
	next   atomic.Int64 // the next recipient to wrap to
	failed atomic.Bool  // a publish failed: stop
}

// work wraps to recipients until none is left and publishes their bundles
// a batch at a time, while the server commits its previous batch. It
// returns the first wrap error and a publish error.
func (p *bundlePublisher) work(ctx context.Context) (wrapErr, pubErr error) {
	batch := make([]*nats.Msg, 0, bundleBatch)
	var committing *sentBatch
	for !p.failed.Load() {
		i := int(p.next.Add(1) - 1)
		if i >= len(p.to) {
			break
		}
		b, err := bundle.Wrap(p.k.cfg.Key, p.g, p.e, p.to[i], p.digest, p.key)
		if err != nil {
			wrapErr = cmp.Or(wrapErr, err)
			continue
		}
		msg := nats.NewMsg(streams.BundleSubject(p.g, b.Member))
		msg.Data = b.Marshal()
		msg.Header.Set(jetstream.MsgIDHeader, p.msgID+b.Member.String())
		if batch = append(batch, msg); len(batch) < bundleBatch {
			continue
		}
		if committing, pubErr = p.handOver(ctx, committing, batch); pubErr != nil {
			return wrapErr, pubErr
		}
		batch = make([]*nats.Msg, 0, bundleBatch)
	}
	if committing, pubErr = p.handOver(ctx, committing, batch); pubErr == nil {
		pubErr = p.settle(ctx, committing)
	}
	return wrapErr, pubErr
}

// handOver waits until the previous batch is stored and sends the next
// one (if it holds any bundle and no other batch failed), returning it as
// the one being committed.
func (p *bundlePublisher) handOver(ctx context.Context, prev *sentBatch, next []*nats.Msg) (*sentBatch, error) {
	if err := p.settle(ctx, prev); err != nil {
		return nil, err
	}
	if len(next) == 0 || p.failed.Load() {
		return nil, nil
	}
	sent, err := p.send(next, 1)
	if err != nil {
		p.failed.Store(true)
	}
	return sent, err
}

// sentBatch is a batch sent, waiting for its acknowledgements: one, the
// commit's, for an atomic batch; one per bundle for bundles sent one by
// one.
type sentBatch struct {
	msgs    []*nats.Msg
	acks    []jetstream.PubAckFuture
	atomic  bool
	attempt int // from 1
}

// send publishes msgs as an atomic batch, or one by one when there are
// too few for a batch to pay.
func (p *bundlePublisher) send(msgs []*nats.Msg, attempt int) (*sentBatch, error) {
	if len(msgs) < minAtomicBatch {
		return p.sendEach(msgs)
	}
	return p.sendAtomic(msgs, attempt)
}

// sendEach publishes every bundle as its own message.
func (p *bundlePublisher) sendEach(msgs []*nats.Msg) (*sentBatch, error) {
	b := &sentBatch{msgs: msgs, attempt: 1}
	for _, msg := range msgs {
		f, err := p.k.js.PublishMsgAsync(msg)
		if err != nil {
			return nil, fmt.Errorf("keyserver: publishing bundles of %s epoch %d: %w", p.g, p.e, err)
		}
		b.acks = append(b.acks, f)
	}
	return b, nil
}

// sendAtomic publishes msgs as one atomic batch, whose commit's
// acknowledgement says the whole batch is stored (or none of it).
func (p *bundlePublisher) sendAtomic(msgs []*nats.Msg, attempt int) (*sentBatch, error) {
	var drop func(int) bool
	if f := p.k.cfg.FaultDropBundle; f != nil {
		drop = func(seq int) bool { return f(attempt, seq) }
	}
	ack, err := streams.PublishAtomicDropping(p.k.js, msgs, drop)
	if err != nil {
		return nil, fmt.Errorf("keyserver: publishing bundles of %s epoch %d: %w", p.g, p.e, err)
	}
	return &sentBatch{msgs: msgs, acks: []jetstream.PubAckFuture{ack}, atomic: true, attempt: attempt}, nil
}

// settle waits until batch b is stored, sending an atomic batch again
// while the server calls it incomplete, up to batchAttempts in all. A nil
// b is settled.
func (p *bundlePublisher) settle(ctx context.Context, b *sentBatch) error {
	for b != nil {
		err := waitAcks(ctx, b.acks)
		if err == nil {
			return nil
		}
		if !b.atomic || !isIncompleteBatch(err) || b.attempt >= batchAttempts {
			p.failed.Store(true)
			return fmt.Errorf("keyserver: bundles of %s epoch %d not stored (attempt %d): %w", p.g, p.e, b.attempt, err)
		}
		p.k.log.Warn().Err(err).Str("group", p.g.String()).Int("attempt", b.attempt).Msg("bundle batch incomplete; sending it again")
		if b, err = p.send(b.msgs, b.attempt+1); err != nil {
			p.failed.Store(true)
			return err
		}
	}
	return nil
}

func isIncompleteBatch(err error) bool {
	return streams.IsAPIError(err, streams.ErrCodeIncompleteBatch)
}

func waitAcks(ctx context.Context, acks []jetstream.PubAckFuture) error {
	for _, f := range acks {
		select {
		case <-f.Ok():
		case err := <-f.Err():
			return err
		case <-ctx.Done():
			return fmt.Errorf("keyserver: waiting for bundle acknowledgements: %w", ctx.Err())
		}
	}
	return nil
}
