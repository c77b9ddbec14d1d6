package keyserver

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/commsec/communicator/events/fold"
	"github.com/commsec/communicator/protocol"
	"github.com/commsec/communicator/streams"
)

// runPolicies starts the automatic rekeys: by epoch age on a ticker, and by
// message count from the accepted-messages stream. It returns a stop
// function.
func (k *Keyserver) runPolicies() func() {
	ctx, cancel := context.WithCancel(context.Background())
	due := make(chan rekeyDue, 64)
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); k.ageLoop(ctx, due) }()
	go func() { defer wg.Done(); k.rekeyLoop(ctx, due) }()
	stopCount, err := k.countMessages(ctx, due)
	if err != nil {
		k.log.Error().Err(err).Msg("message-count rekey policy disabled")
		stopCount = func() {}
	}
	return func() {
		stopCount()
		cancel()
		wg.Wait()
	}
}

// rekeyDue asks for a policy rekey of group while it is at epoch.
type rekeyDue struct {
	group  protocol.GroupID
	epoch  protocol.Epoch
	reason string
}

// rekeyLoop performs due rekeys one at a time, skipping a request whose
// epoch has already moved on.
func (k *Keyserver) rekeyLoop(ctx context.Context, due <-chan rekeyDue) {
	for {
		select {
		case <-ctx.Done():
			return
		case d := <-due:
			if k.currentEpoch(d.group) != d.epoch {
				continue
			}
			if _, err := k.Rekey(ctx, Actor{}, d.group.String(), d.reason); err != nil && ctx.Err() == nil {
				k.log.Error().Err(err).Str("group", d.group.String()).Msg("policy rekey failed")
			}
		}
	}
}

func (k *Keyserver) currentEpoch(g protocol.GroupID) protocol.Epoch {
	var e protocol.Epoch
	k.proj.Read(func(s *fold.State) {
		if grp := s.Groups[g]; grp != nil && !grp.Deleted {
			e = grp.Epoch
		}
	})
	return e
}

func (k *Keyserver) ageLoop(ctx context.Context, due chan<- rekeyDue) {
	t := time.NewTicker(k.cfg.PolicyInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			for _, d := range k.agedGroups() {
				select {
				case due <- d:
				case <-ctx.Done():
					return
				}
			}
		}
	}
}

// agedGroups lists groups whose epoch is older than their policy allows.
func (k *Keyserver) agedGroups() []rekeyDue {
	now := k.cfg.Now()
	var out []rekeyDue
	k.proj.Read(func(s *fold.State) {
		for id, g := range s.Groups {
			age := g.Policy.MaxAge
			if g.Deleted || age <= 0 || len(g.Members) == 0 || now.Sub(g.EpochStart) < age {
				continue
			}
			out = append(out, rekeyDue{id, g.Epoch, fmt.Sprintf("policy: epoch older than %v", age)})
		}
	})
	return out
}

// countMessages counts accepted messages per group in its current epoch
// (from the Comm-Epoch header; headers only, no payload), reading every
// shard of the accepted envelopes, and asks for a rekey when a group's
// policy limit is reached.
func (k *Keyserver) countMessages(ctx context.Context, due chan<- rekeyDue) (func(), error) {
	c := &msgCounter{k: k, due: due, counts: map[protocol.GroupID]epochCount{}}
	var stops []func()
	stop := func() {
		for _, s := range stops {
			s()
		}
	}
	for i := range int(k.shards) {
		cfg := jetstream.OrderedConsumerConfig{FilterSubjects: []string{streams.AcceptedShardPrefix(i) + "*.*"}, HeadersOnly: true,
			DeliverPolicy: jetstream.DeliverNewPolicy}
		if start, ok := k.oldestCountedEpoch(); ok {
			cfg.DeliverPolicy, cfg.OptStartTime = jetstream.DeliverByStartTimePolicy, &start
		}
		cons, err := k.js.OrderedConsumer(ctx, streams.AcceptedShard(i), cfg)
		if err != nil {
			stop()
			return nil, fmt.Errorf("keyserver: message counter of shard %d: %w", i, err)
		}
		cc, err := cons.Consume(c.count)
		if err != nil {
			stop()
			return nil, fmt.Errorf("keyserver: message counter of shard %d: %w", i, err)
		}
		stops = append(stops, cc.Stop)
	}
	return stop, nil
}

// oldestCountedEpoch is the start of the oldest current epoch of a group
// with a message limit: counting from there makes the counts exact after a
// restart.
func (k *Keyserver) oldestCountedEpoch() (time.Time, bool) {
	var oldest time.Time
	k.proj.Read(func(s *fold.State) {
		for _, g := range s.Groups {
			if !g.Deleted && g.Policy.MaxMessages > 0 && g.Epoch > 0 && (oldest.IsZero() || g.EpochStart.Before(oldest)) {
				oldest = g.EpochStart
			}
		}
	})
	return oldest, !oldest.IsZero()
}

type epochCount struct {
	epoch protocol.Epoch
	n     uint64
}

type msgCounter struct {
	k      *Keyserver
	due    chan<- rekeyDue
	mu     sync.Mutex // a consumer per shard; a group's messages are all on one
	counts map[protocol.GroupID]epochCount
}

func (c *msgCounter) count(msg jetstream.Msg) {
	_, g, _, ok := streams.ParseShardSubject(msg.Subject())
	if !ok {
		return
	}
	e, err := strconv.ParseUint(msg.Headers().Get(streams.HeaderEpoch), 10, 32)
	if err != nil {
		return
	}
	var limit uint64
	var current protocol.Epoch
	c.k.proj.Read(func(s *fold.State) {
		if grp := s.Groups[g]; grp != nil && !grp.Deleted {
			limit, current = grp.Policy.MaxMessages, grp.Epoch
		}
	})
	if limit == 0 || protocol.Epoch(e) != current {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	ec := c.counts[g]
	if ec.epoch != current {
		ec = epochCount{epoch: current}
	}
	ec.n++
	c.counts[g] = ec
	if ec.n == limit {
		select {
		case c.due <- rekeyDue{g, current, fmt.Sprintf("policy: %d messages in the epoch", limit)}:
		default:
			c.k.log.Warn().Str("group", g.String()).Msg("rekey queue full; policy rekey deferred to the next message")
			ec.n--
			c.counts[g] = ec
		}
	}
}
