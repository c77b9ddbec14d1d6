package keyserver

import (
	"cmp"
	"context"
	"crypto/rand"
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

// publishEpoch makes the new epoch's key, wraps it to every member and
// publishes the bundles; then it records in the bookkeeping bucket that the
// epoch is complete. The key exists only in this function.
func (k *Keyserver) publishEpoch(ctx context.Context, c *change) error {
	m := c.event.Members
	start := time.Now()
	var key [protocol.GroupKeySize]byte
	defer clear(key[:])
	if _, err := rand.Read(key[:]); err != nil {
		return fmt.Errorf("keyserver: group key: %w", err)
	}
	digest := [protocol.HashSize]byte(m.Digest)
	if err := k.publishBundles(ctx, m.Group, m.Epoch, c.recipients, &digest, &key); err != nil {
		return err
	}
	if _, err := k.kv.Put(ctx, epochKey(m.Group), []byte(strconv.FormatUint(uint64(m.Epoch), 10))); err != nil {
		return fmt.Errorf("keyserver: recording epoch %d of %s: %w", m.Epoch, m.Group, err)
	}
	k.Metrics.rekeys.Add(1)
	k.Metrics.bundles.Add(uint64(len(c.recipients)))
	k.log.Info().Str("group", m.Group.String()).Uint32("epoch", uint32(m.Epoch)).Str("cause", string(c.event.Type)).
		Int("members", len(c.recipients)).Dur("took", time.Since(start)).Msg("epoch opened")
	return nil
}

func epochKey(g protocol.GroupID) string { return "epoch." + g.String() }

// publishBatch is how many bundles a worker of publishBundles hands to
// the connection at once: a batch leaves in a few writes, instead of one
// write (and one read by the server) per bundle.
const publishBatch = 64

// asyncMaxPending caps the keyserver's unacknowledged asynchronous
// publishes. When the cap stays reached for 200 ms, as a disk that fsyncs
// every write can make it, the client library fails the next publish
// (ErrTooManyStalledMsgs); so publishBundles keeps at most half of it
// unacknowledged, waiting for the oldest acknowledgements first.
const asyncMaxPending = 4096

// publishBundles wraps key to every recipient on k.cfg.Workers goroutines,
// each taking the next recipient itself and publishing its bundles
// asynchronously a batch at a time, and returns once JetStream has
// acknowledged all of them. A recipient whose key cannot be wrapped to
// does not stop the others; its error is returned after them.
func (k *Keyserver) publishBundles(ctx context.Context, g protocol.GroupID, e protocol.Epoch, to []bundle.Recipient,
	digest *[protocol.HashSize]byte, key *[protocol.GroupKeySize]byte) error {
	p := &bundlePublisher{k: k, g: g, e: e, to: to, digest: digest, key: key,
		msgID: g.String() + "." + strconv.FormatUint(uint64(e), 10) + "."}
	workers := max(min(k.cfg.Workers, len(to)), 1)
	window := max(asyncMaxPending/2/workers-publishBatch, 0) // outstanding after a worker's batch
	futures := make([][]jetstream.PubAckFuture, workers)
	wrapErrs := make([]error, workers)
	pubErrs := make([]error, workers)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			futures[w], wrapErrs[w], pubErrs[w] = p.work(ctx, window)
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
	for _, fs := range futures {
		if err := waitAcks(ctx, fs); err != nil {
			return err
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

// work wraps to recipients until none is left and publishes the bundles,
// with at most window of them unacknowledged after each batch (so at most
// window + publishBatch at any time). It returns
// the acknowledgements still to wait for, the first wrap error and a
// publish error.
func (p *bundlePublisher) work(ctx context.Context, window int) (futures []jetstream.PubAckFuture, wrapErr, pubErr error) {
	batch := make([]*nats.Msg, 0, publishBatch)
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
		if batch = append(batch, msg); len(batch) == publishBatch {
			if futures, pubErr = p.publish(batch, futures); pubErr == nil {
				futures, pubErr = p.settle(ctx, futures, window)
			}
			if pubErr != nil {
				return futures, wrapErr, pubErr
			}
			batch = batch[:0]
		}
	}
	futures, pubErr = p.publish(batch, futures)
	return futures, wrapErr, pubErr
}

func (p *bundlePublisher) publish(batch []*nats.Msg, futures []jetstream.PubAckFuture) ([]jetstream.PubAckFuture, error) {
	for _, msg := range batch {
		f, err := p.k.js.PublishMsgAsync(msg)
		if err != nil {
			p.failed.Store(true)
			return futures, fmt.Errorf("keyserver: publishing bundles of %s epoch %d: %w", p.g, p.e, err)
		}
		futures = append(futures, f)
	}
	return futures, nil
}

// settle waits for the oldest acknowledgements until at most window
// remain outstanding, and returns those.
func (p *bundlePublisher) settle(ctx context.Context, futures []jetstream.PubAckFuture, window int) ([]jetstream.PubAckFuture, error) {
	n := len(futures) - window
	if n <= 0 {
		return futures, nil
	}
	if err := waitAcks(ctx, futures[:n]); err != nil {
		p.failed.Store(true)
		return nil, err
	}
	return futures[n:], nil
}

func waitAcks(ctx context.Context, futures []jetstream.PubAckFuture) error {
	for _, f := range futures {
		select {
		case <-f.Ok():
		case err := <-f.Err():
			return fmt.Errorf("keyserver: bundle not stored: %w", err)
		case <-ctx.Done():
			return fmt.Errorf("keyserver: waiting for bundle acknowledgements: %w", ctx.Err())
		}
	}
	return nil
}
