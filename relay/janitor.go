package relay

import (
	"context"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/commsec/communicator/events/fold"
	"github.com/commsec/communicator/protocol"
	"github.com/commsec/communicator/streams"
)

// The janitor keeps the accepted envelopes to the retention period: for
// each (group, sender) of the partitions this relay owns, on the shard of
// its group, it removes the
// envelopes older than the retention period but always keeps the last
// one, which records the sender's last accepted counter. (An age limit on
// the stream would let that record expire, and with it the protection
// against replays of old messages.)

// runJanitor trims every interval until the returned function is called.
func (r *Relay) runJanitor(interval time.Duration) func() {
	stop, done := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		t := time.NewTicker(interval)
		defer t.Stop()
		for {
			select {
			case <-stop:
				return
			case <-t.C:
				ctx, cancel := context.WithTimeout(context.Background(), interval)
				if err := r.Trim(ctx); err != nil {
					r.log.Warn().Err(err).Msg("retention trim incomplete")
				}
				cancel()
			}
		}
	}()
	return func() { close(stop); <-done }
}

// Trim removes, in the partitions this relay owns, every accepted envelope
// older than the retention period except each (group, sender)'s last.
func (r *Relay) Trim(ctx context.Context) error {
	cutoff := r.cfg.Now().Add(-r.retention())
	for _, g := range r.ownedGroups() {
		stream := r.accepted.shard(g)
		info, err := stream.Info(ctx, jetstream.WithSubjectFilter(r.accepted.k.GroupFilter(g)))
		if err != nil {
			return fmt.Errorf("relay: trim %s: %w", g, err)
		}
		for subject, n := range info.State.Subjects {
			if n < 2 {
				continue
			}
			if err := r.trim(ctx, stream, subject, cutoff); err != nil {
				return err
			}
		}
	}
	return nil
}

func (r *Relay) retention() time.Duration {
	if r.cfg.Streams.Retention > 0 {
		return r.cfg.Streams.Retention
	}
	return streams.DefaultRetention
}

// ownedGroups lists the live groups of the partitions this relay owns.
func (r *Relay) ownedGroups() []protocol.GroupID {
	owned := map[int]bool{}
	for _, p := range r.parts.owned() {
		owned[p] = true
	}
	var out []protocol.GroupID
	r.proj.Read(func(s *fold.State) {
		for id := range s.Groups {
			if owned[streams.Partition(id)] {
				out = append(out, id)
			}
		}
	})
	return out
}

// trim purges a subject's envelopes older than cutoff from its shard,
// keeping its last.
func (r *Relay) trim(ctx context.Context, stream jetstream.Stream, subject string, cutoff time.Time) error {
	first, found, err := streams.FirstSince(ctx, r.js, stream.CachedInfo().Config.Name, subject, cutoff)
	if err != nil {
		return fmt.Errorf("relay: trim %s: %w", subject, err)
	}
	keep := jetstream.WithPurgeKeep(1) // everything is older than cutoff
	if found {
		keep = jetstream.WithPurgeSequence(first) // purges below it
	}
	if err := stream.Purge(ctx, jetstream.WithPurgeSubject(subject), keep); err != nil {
		return fmt.Errorf("relay: trim %s: %w", subject, err)
	}
	r.Metrics.trims.Inc()
	return nil
}
