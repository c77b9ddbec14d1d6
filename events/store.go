package events

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"time"

	"github.com/commsec/communicator/events/record"
	"github.com/commsec/communicator/streams"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// ErrConflict means the aggregate changed since the caller read it: reload
// and retry. JetStream reports it as 10071, or 10164 on replicated streams.
var ErrConflict = errors.New("events: aggregate changed concurrently (conflict)")

// StoreConfig configures the event stream.
type StoreConfig struct {
	Replicas int // 1 on one machine, 3 on a cluster
}

// Store is the event log on JetStream.
type Store struct {
	js          jetstream.JetStream
	stream      jetstream.Stream
	checkpoints jetstream.Stream // nil: looked up when needed (see Checkpoint)
}

// StreamConfig is the event stream's configuration: file storage, limits
// retention with no limit and no age, deletes and purges denied, one
// subject per aggregate.
func StreamConfig(c StoreConfig) jetstream.StreamConfig {
	return jetstream.StreamConfig{
		Name:        streams.Events,
		Description: "Communicator keyserver events: signed, hash-chained, never deleted",
		Subjects:    []string{streams.AllEvents},
		Storage:     jetstream.FileStorage,
		Retention:   jetstream.LimitsPolicy,
		Discard:     jetstream.DiscardNew,
		MaxAge:      0,
		MaxMsgSize:  record.MaxSize,
		DenyDelete:  true,
		DenyPurge:   true,
		Replicas:    max(c.Replicas, 1),
		Duplicates:  2 * time.Minute,
		AllowDirect: false, // reads go to the leader, never to a replica that lags
	}
}

// OpenStore creates or updates the event stream and the checkpoint stream.
func OpenStore(ctx context.Context, js jetstream.JetStream, c StoreConfig) (*Store, error) {
	st, err := js.CreateOrUpdateStream(ctx, StreamConfig(c))
	if err != nil {
		return nil, fmt.Errorf("events: stream %s: %w", streams.Events, err)
	}
	cp, err := js.CreateOrUpdateStream(ctx, CheckpointConfig(c))
	if err != nil {
		return nil, fmt.Errorf("events: stream %s: %w", streams.Checkpoints, err)
	}
	return &Store{js: js, stream: st, checkpoints: cp}, nil
}

// Append stores rec as the next event of aggregate, if the aggregate's last
// stored event is still at stream sequence expected (0: none yet). It
// returns the new event's stream sequence. A retry of the same record is
// answered from JetStream's duplicate window (Nats-Msg-Id is the record's
// hash), so retrying after a lost acknowledgement is safe.
func (s *Store) Append(ctx context.Context, aggregate string, rec record.Record, expected uint64) (uint64, error) {
	msg := nats.NewMsg(Subject(aggregate))
	msg.Data = rec
	h := rec.Hash()
	msg.Header.Set(jetstream.MsgIDHeader, hex.EncodeToString(h[:]))
	ack, err := s.js.PublishMsg(ctx, msg, jetstream.WithExpectLastSequencePerSubject(expected))
	if err != nil {
		if IsConflict(err) {
			return 0, fmt.Errorf("%w: %s", ErrConflict, aggregate)
		}
		return 0, fmt.Errorf("events: append to %s: %w", aggregate, err)
	}
	return ack.Sequence, nil
}

// IsConflict reports whether err is JetStream's wrong-last-sequence error.
func IsConflict(err error) bool {
	var apiErr *jetstream.APIError
	if !errors.As(err, &apiErr) {
		return errors.Is(err, ErrConflict)
	}
	return apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence ||
		apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequenceConstant
}

// Replay calls fn for every record on subjects matching filter from stream
// sequence from on, up to the last one stored when Replay starts, in
// order. It stops at fn's first error and returns it.
func (s *Store) Replay(ctx context.Context, filter string, from uint64, fn func(Stored) error) error {
	last, err := s.stream.GetLastMsgForSubject(ctx, filter)
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("events: replay %s: %w", filter, err)
	}
	if last.Sequence < from {
		return nil
	}
	cons, err := s.orderedFrom(ctx, filter, from)
	if err != nil {
		return err
	}
	it, err := cons.Messages(jetstream.PullMaxMessages(4096))
	if err != nil {
		return fmt.Errorf("events: replay %s: %w", filter, err)
	}
	defer it.Stop()
	for {
		msg, err := it.Next(jetstream.NextContext(ctx))
		if err != nil {
			return fmt.Errorf("events: replay %s: %w", filter, err)
		}
		m, err := stored(msg)
		if err != nil {
			return err
		}
		if err := fn(m); err != nil {
			return err
		}
		if m.Seq >= last.Sequence {
			return nil
		}
	}
}

func (s *Store) orderedFrom(ctx context.Context, filter string, from uint64) (jetstream.Consumer, error) {
	cfg := jetstream.OrderedConsumerConfig{
		FilterSubjects: []string{filter},
		DeliverPolicy:  jetstream.DeliverByStartSequencePolicy,
		OptStartSeq:    max(from, 1),
	}
	cons, err := s.js.OrderedConsumer(ctx, streams.Events, cfg)
	if err != nil {
		return nil, fmt.Errorf("events: consumer on %s: %w", filter, err)
	}
	return cons, nil
}

func stored(msg jetstream.Msg) (Stored, error) {
	meta, err := msg.Metadata()
	if err != nil {
		return Stored{}, fmt.Errorf("events: message metadata: %w", err)
	}
	return Stored{Seq: meta.Sequence.Stream, Subject: msg.Subject(), Record: record.Record(msg.Data()), Time: meta.Timestamp}, nil
}

// Follow calls fn, on one goroutine, for every record on subjects matching
// filter stored after stream sequence after, as they arrive, until the
// returned stop function is called.
func (s *Store) Follow(ctx context.Context, filter string, after uint64, fn func(Stored)) (stop func(), err error) {
	cons, err := s.orderedFrom(ctx, filter, after+1)
	if err != nil {
		return nil, err
	}
	cc, err := cons.Consume(func(msg jetstream.Msg) {
		if m, err := stored(msg); err == nil {
			fn(m)
		}
	})
	if err != nil {
		return nil, fmt.Errorf("events: follow %s: %w", filter, err)
	}
	return cc.Stop, nil
}

// LastSeq is the stream's last sequence (0 when empty).
func (s *Store) LastSeq(ctx context.Context) (uint64, error) {
	info, err := s.stream.Info(ctx)
	if err != nil {
		return 0, fmt.Errorf("events: stream info: %w", err)
	}
	return info.State.LastSeq, nil
}

// OpenReadOnly opens the existing event stream without creating or
// changing it, for auditors whose credentials may only read.
func OpenReadOnly(ctx context.Context, js jetstream.JetStream) (*Store, error) {
	st, err := js.Stream(ctx, streams.Events)
	if err != nil {
		return nil, fmt.Errorf("events: stream %s: %w", streams.Events, err)
	}
	return &Store{js: js, stream: st}, nil
}

// Subject is the JetStream subject of an aggregate: "comm.events." and its
// name (PROTOCOL.md §15.8).
func Subject(aggregate string) string { return streams.EventSubject(aggregate) }

// AggregateOf returns the aggregate of a subject in the log.
func AggregateOf(subject string) (string, bool) {
	return streams.ParseEventSubject(subject)
}
