package keyserver

import (
	"context"
	"crypto/rand"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/commsec/communicator/protocol"
	"github.com/commsec/communicator/protocol/bundle"
	"github.com/commsec/communicator/protocol/keys"
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

// publishBundles wraps key to every recipient on all workers and publishes
// each bundle asynchronously as it is made; it returns once JetStream has
// acknowledged all of them.
func (k *Keyserver) publishBundles(ctx context.Context, g protocol.GroupID, e protocol.Epoch, to []bundle.Recipient,
	digest *[protocol.HashSize]byte, key *[protocol.GroupKeySize]byte) error {
	made, errs := wrapAll(k.cfg.Key, g, e, to, digest, key, k.cfg.Workers)
	futures := make([]jetstream.PubAckFuture, 0, len(to))
	for b := range made {
		msg := nats.NewMsg(streams.BundleSubject(g, b.Member))
		msg.Data = b.Marshal()
		msg.Header.Set(jetstream.MsgIDHeader, fmt.Sprintf("%s.%d.%s", g, e, b.Member))
		f, err := k.js.PublishMsgAsync(msg)
		if err != nil {
			return fmt.Errorf("keyserver: publishing bundles of %s epoch %d: %w", g, e, err)
		}
		futures = append(futures, f)
	}
	if err := <-errs; err != nil {
		return err
	}
	return waitAcks(ctx, futures)
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

// wrapAll wraps key to every recipient on n goroutines. It sends the
// bundles on the first channel (in no particular order) and then the first
// error, or nil, on the second.
func wrapAll(ks *keys.SigningKey, g protocol.GroupID, e protocol.Epoch, to []bundle.Recipient,
	digest *[protocol.HashSize]byte, key *[protocol.GroupKeySize]byte, n int) (<-chan *bundle.Bundle, <-chan error) {
	made := make(chan *bundle.Bundle, 256)
	errs := make(chan error, 1)
	work := make(chan bundle.Recipient)
	var wg sync.WaitGroup
	var once sync.Once
	var first error
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for r := range work {
				b, err := bundle.Wrap(ks, g, e, r, digest, key)
				if err != nil {
					once.Do(func() { first = err })
					continue
				}
				made <- b
			}
		}()
	}
	go func() {
		for _, r := range to {
			work <- r
		}
		close(work)
		wg.Wait()
		close(made)
		errs <- first
	}()
	return made, errs
}
