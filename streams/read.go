package streams

import (
	"context"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// ReadStored calls fn for every stored message of stream on subjects from
// sequence from on, in order, up to the last one stored when it starts,
// until fn returns false. It reads through an ordered consumer, served by
// the stream's leader, so that a lagging replica cannot hide a message.
func ReadStored(ctx context.Context, js jetstream.JetStream, stream string, subjects []string, from uint64, fn func(jetstream.Msg) bool) error {
	cons, err := js.OrderedConsumer(ctx, stream, jetstream.OrderedConsumerConfig{
		FilterSubjects: subjects, DeliverPolicy: jetstream.DeliverByStartSequencePolicy, OptStartSeq: max(from, 1),
	})
	if err != nil {
		return fmt.Errorf("streams: read %s: %w", stream, err)
	}
	defer forget(js, stream, cons)
	return drain(ctx, cons, fn)
}

// ReadStoredSince is ReadStored from the first message stored at or
// after t.
func ReadStoredSince(ctx context.Context, js jetstream.JetStream, stream string, subjects []string, t time.Time, fn func(jetstream.Msg) bool) error {
	cons, err := js.OrderedConsumer(ctx, stream, jetstream.OrderedConsumerConfig{
		FilterSubjects: subjects, DeliverPolicy: jetstream.DeliverByStartTimePolicy, OptStartTime: &t,
	})
	if err != nil {
		return fmt.Errorf("streams: read %s: %w", stream, err)
	}
	defer forget(js, stream, cons)
	return drain(ctx, cons, fn)
}

// FirstSince returns the sequence of the first message of stream on
// subject stored at or after t (ok false if there is none).
func FirstSince(ctx context.Context, js jetstream.JetStream, stream, subject string, t time.Time) (seq uint64, ok bool, err error) {
	cons, err := js.OrderedConsumer(ctx, stream, jetstream.OrderedConsumerConfig{
		FilterSubjects: []string{subject}, DeliverPolicy: jetstream.DeliverByStartTimePolicy, OptStartTime: &t,
	})
	if err != nil {
		return 0, false, fmt.Errorf("streams: read %s: %w", stream, err)
	}
	defer forget(js, stream, cons)
	err = drain(ctx, cons, func(m jetstream.Msg) bool {
		if meta, err := m.Metadata(); err == nil {
			seq, ok = meta.Sequence.Stream, true
		}
		return false
	})
	return seq, ok, err
}

// forget deletes an ordered consumer that has been read (best effort).
// Left alone it would stay on the server for five minutes after its
// reader stopped, and a burst of connections, each reading through one,
// would reach the server's limit on consumers, which then refuses every
// read.
func forget(js jetstream.JetStream, stream string, cons jetstream.Consumer) {
	info := cons.CachedInfo()
	if info == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	js.DeleteConsumer(ctx, stream, info.Name)
}

func drain(ctx context.Context, cons jetstream.Consumer, fn func(jetstream.Msg) bool) error {
	info, err := cons.Info(ctx)
	if err != nil || info.NumPending == 0 {
		return err
	}
	it, err := cons.Messages(jetstream.PullMaxMessages(256))
	if err != nil {
		return err
	}
	defer it.Stop()
	for {
		msg, err := it.Next(jetstream.NextContext(ctx))
		if err != nil {
			return err
		}
		meta, err := msg.Metadata()
		if err != nil {
			return err
		}
		if !fn(msg) || meta.NumPending == 0 {
			return nil
		}
	}
}
