package streams

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Atomic batch publish (nats-server 2.12, ADR-50): the messages of a batch
// carry one batch id and their position; the last one, the commit, is
// published as a request whose acknowledgement says that the whole batch
// is stored, with one fsync, or none of it.
const (
	HeaderBatchID     = "Nats-Batch-Id"
	HeaderBatchSeq    = "Nats-Batch-Sequence"
	HeaderBatchCommit = "Nats-Batch-Commit"
	// MaxAtomicBatch is nats-server's default max_batch_size: the most
	// messages one atomic batch may hold.
	MaxAtomicBatch = 1000
)

// JetStream's error codes of atomic batch publish.
const (
	ErrCodeAtomicDisabled  jetstream.ErrorCode = 10174 // the stream does not allow atomic publish
	ErrCodeIncompleteBatch jetstream.ErrorCode = 10176 // a message of the batch went missing: nothing stored
)

// PublishAtomic publishes msgs (at most MaxAtomicBatch, each with a
// Header, all to one stream) as one atomic batch under a fresh batch id:
// all but the last as plain messages, the last as the commit. The
// returned future resolves with the commit's acknowledgement.
func PublishAtomic(js jetstream.JetStream, msgs []*nats.Msg) (jetstream.PubAckFuture, error) {
	return PublishAtomicDropping(js, msgs, nil)
}

// PublishAtomicDropping is PublishAtomic that leaves out the messages
// (never the commit) at the batch positions drop (from 1) names: a fault
// injection, for tests of what an incomplete batch does.
func PublishAtomicDropping(js jetstream.JetStream, msgs []*nats.Msg, drop func(seq int) bool) (jetstream.PubAckFuture, error) {
	if len(msgs) == 0 || len(msgs) > MaxAtomicBatch {
		return nil, fmt.Errorf("streams: an atomic batch of %d messages (1 to %d)", len(msgs), MaxAtomicBatch)
	}
	var id [16]byte
	_, _ = rand.Read(id[:]) // crypto/rand.Read never fails
	batchID := hex.EncodeToString(id[:])
	for i, msg := range msgs {
		if msg.Header == nil {
			msg.Header = nats.Header{}
		}
		msg.Header.Set(HeaderBatchID, batchID)
		msg.Header.Set(HeaderBatchSeq, strconv.Itoa(i+1))
		if i == len(msgs)-1 {
			break
		}
		if drop != nil && drop(i+1) {
			continue
		}
		if err := js.Conn().PublishMsg(msg); err != nil {
			return nil, fmt.Errorf("streams: atomic batch: %w", err)
		}
	}
	last := msgs[len(msgs)-1]
	last.Header.Set(HeaderBatchCommit, "1")
	f, err := js.PublishMsgAsync(last)
	if err != nil {
		return nil, fmt.Errorf("streams: atomic batch commit: %w", err)
	}
	return f, nil
}

// WaitAck waits for a publish's acknowledgement.
func WaitAck(ctx context.Context, f jetstream.PubAckFuture) error {
	select {
	case <-f.Ok():
		return nil
	case err := <-f.Err():
		return err
	case <-ctx.Done():
		return fmt.Errorf("streams: waiting for an acknowledgement: %w", ctx.Err())
	}
}

// IsAPIError reports whether err is JetStream's error code.
func IsAPIError(err error, code jetstream.ErrorCode) bool {
	var apiErr *jetstream.APIError
	return errors.As(err, &apiErr) && apiErr.ErrorCode == code
}

// AllowAtomic turns atomic batch publish on for an existing stream (a
// key-value bucket's configuration cannot say it).
func AllowAtomic(ctx context.Context, js jetstream.JetStream, stream string) error {
	s, err := js.Stream(ctx, stream)
	if err != nil {
		return fmt.Errorf("streams: %s: %w", stream, err)
	}
	cfg := s.CachedInfo().Config
	if cfg.AllowAtomicPublish {
		return nil
	}
	cfg.AllowAtomicPublish = true
	if _, err := whilePlacing(ctx, func() (jetstream.Stream, error) { return js.UpdateStream(ctx, cfg) }); err != nil {
		return fmt.Errorf("streams: %s: allowing atomic publish: %w", stream, err)
	}
	return nil
}

// IsCASFailure reports whether err is a compare-and-swap that lost: a KV
// Create of a key that exists, or a write whose expected last sequence
// (of the stream, or of its subject: a KV Update's revision) was not the
// stream's.
func IsCASFailure(err error) bool {
	var apiErr *jetstream.APIError
	if errors.Is(err, jetstream.ErrKeyExists) {
		return true
	}
	return errors.As(err, &apiErr) && (apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence ||
		apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequenceConstant)
}
