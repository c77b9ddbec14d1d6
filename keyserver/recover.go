package keyserver

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/commsec/communicator/events/fold"
	"github.com/commsec/communicator/events/record"
	"github.com/commsec/communicator/protocol"
	"github.com/commsec/communicator/protocol/bundle"
	"github.com/commsec/communicator/streams"
)

// recover finishes what a crash may have interrupted: a revoked client
// still in a group is removed, and a group whose current epoch's bundles
// were not all published gets the missing ones, wrapping the epoch's key
// from its escrow; without a usable escrow, the group gets a new epoch
// (the key was gone with the crashed process) and the log says why.
func (k *Keyserver) recover(ctx context.Context) error {
	for _, id := range k.revokedMembers() {
		k.log.Warn().Str("client", id.Short()).Msg("recovery: revoked client still in groups; removing")
		if err := k.removeFromAllGroups(ctx, Actor{}, id); err != nil {
			return err
		}
	}
	done, err := k.completedEpochs(ctx)
	if err != nil {
		return err
	}
	for _, g := range k.groupsWithEpoch() {
		if done[epochKey(g.id)] == g.epoch {
			continue
		}
		err := k.completeFromEscrow(ctx, g)
		if err == nil {
			continue
		}
		k.log.Warn().Err(err).Str("group", g.id.String()).Uint32("epoch", uint32(g.epoch)).
			Msg("recovery: bundles of the current epoch incomplete and its key not recovered from escrow; rekeying")
		reason := fmt.Sprintf("recovery: bundles of epoch %d incomplete", g.epoch)
		if _, err := k.Rekey(ctx, Actor{}, g.id.String(), reason); err != nil {
			return err
		}
	}
	if err := k.dropStaleEscrows(ctx); err != nil {
		k.log.Warn().Err(err).Msg("recovery: escrows of complete epochs not purged; the next start tries again")
	}
	return nil
}

// completeFromEscrow publishes the bundles of g's current epoch that are
// missing, with the epoch's key from its escrow, and records the epoch
// complete.
func (k *Keyserver) completeFromEscrow(ctx context.Context, g groupEpoch) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	var digest [protocol.HashSize]byte
	var to []bundle.Recipient
	k.proj.Read(func(s *fold.State) {
		grp := s.Groups[g.id]
		digest, to = grp.Digest, recipients(s, grp, record.GroupRekeyed, nil)
	})
	key, rev, err := k.openEscrow(ctx, g.id, g.epoch, &digest)
	defer clear(key[:])
	if err != nil {
		return err
	}
	have, err := k.bundled(ctx, g.id, g.epoch)
	if err != nil {
		return err
	}
	missing := slices.DeleteFunc(slices.Clone(to), func(r bundle.Recipient) bool { return have[r.ID] })
	if err := k.publishBundles(ctx, g.id, g.epoch, missing, &digest, &key); err != nil {
		return err
	}
	if err := k.completeEpoch(ctx, g.id, g.epoch); err != nil {
		return err
	}
	k.dropEscrow(ctx, g.id, rev)
	k.Metrics.bundles.Add(float64(len(missing)))
	k.log.Warn().Str("group", g.id.String()).Uint32("epoch", uint32(g.epoch)).Int("published", len(missing)).
		Int("members", len(to)).Msg("recovery: bundles of the current epoch completed with its key from escrow")
	return nil
}

// bundled returns the members of g whose last bundle is of epoch e.
func (k *Keyserver) bundled(ctx context.Context, g protocol.GroupID, e protocol.Epoch) (map[protocol.ClientID]bool, error) {
	cons, err := k.js.OrderedConsumer(ctx, streams.Bundles, jetstream.OrderedConsumerConfig{
		FilterSubjects: []string{streams.GroupBundles(g)}, DeliverPolicy: jetstream.DeliverLastPerSubjectPolicy,
	})
	if err != nil {
		return nil, fmt.Errorf("keyserver: reading the bundles of %s: %w", g, err)
	}
	defer k.forgetConsumer(streams.Bundles, cons)
	have := map[protocol.ClientID]bool{}
	info, err := cons.Info(ctx)
	if err != nil || info.NumPending == 0 {
		return have, err
	}
	it, err := cons.Messages(jetstream.PullMaxMessages(1024))
	if err != nil {
		return nil, fmt.Errorf("keyserver: reading the bundles of %s: %w", g, err)
	}
	defer it.Stop()
	for {
		msg, err := it.Next(jetstream.NextContext(ctx))
		if err != nil {
			return nil, fmt.Errorf("keyserver: reading the bundles of %s: %w", g, err)
		}
		if b, err := bundle.Parse(msg.Data()); err == nil && b.Group == g && b.Epoch == e {
			have[b.Member] = true
		}
		meta, err := msg.Metadata()
		if err != nil || meta.NumPending == 0 {
			return have, err
		}
	}
}

// forgetConsumer deletes an ordered consumer that has been read (best
// effort), rather than leave it on the server for minutes.
func (k *Keyserver) forgetConsumer(stream string, cons jetstream.Consumer) {
	if info := cons.CachedInfo(); info != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		k.js.DeleteConsumer(ctx, stream, info.Name)
	}
}

// dropStaleEscrows purges the escrows of epochs that are complete or
// past, and of groups gone: a crash between an epoch's completion and its
// escrow's purge leaves one. The escrow of an epoch still incomplete (one
// another keyserver instance is publishing) stays.
func (k *Keyserver) dropStaleEscrows(ctx context.Context) error {
	done, err := k.completedEpochs(ctx)
	if err != nil {
		return err
	}
	escrows, err := k.bucket(ctx, "escrow.>")
	if err != nil {
		return err
	}
	for _, entry := range escrows {
		b, err := bundle.Parse(entry.Value())
		if err == nil && k.currentEpoch(b.Group) == b.Epoch && done[epochKey(b.Group)] != b.Epoch {
			continue
		}
		k.log.Info().Str("key", entry.Key()).Msg("recovery: purging the escrow of a complete epoch")
		if err := k.kv.Purge(ctx, entry.Key(), jetstream.LastRevision(entry.Revision())); err != nil &&
			!errors.Is(err, jetstream.ErrKeyRevisionMismatch) {
			return fmt.Errorf("keyserver: purging %s: %w", entry.Key(), err)
		}
	}
	return nil
}

func (k *Keyserver) revokedMembers() []protocol.ClientID {
	var out []protocol.ClientID
	k.proj.Read(func(s *fold.State) {
		for id, c := range s.Clients {
			if c.Revoked && s.InAnyGroup(id) {
				out = append(out, id)
			}
		}
	})
	return out
}

type groupEpoch struct {
	id    protocol.GroupID
	epoch protocol.Epoch
}

// groupsWithEpoch lists live groups that have members, with their epoch.
func (k *Keyserver) groupsWithEpoch() []groupEpoch {
	var out []groupEpoch
	k.proj.Read(func(s *fold.State) {
		for id, g := range s.Groups {
			if !g.Deleted && len(g.Members) > 0 {
				out = append(out, groupEpoch{id, g.Epoch})
			}
		}
	})
	return out
}

// completedEpochs reads the bookkeeping bucket in one pass: per group key,
// the last epoch whose bundles were all published.
func (k *Keyserver) completedEpochs(ctx context.Context) (map[string]protocol.Epoch, error) {
	entries, err := k.bucket(ctx, "epoch.>")
	if err != nil {
		return nil, err
	}
	out := map[string]protocol.Epoch{}
	for _, e := range entries {
		n, err := strconv.ParseUint(string(e.Value()), 10, 32)
		if err != nil {
			return nil, fmt.Errorf("keyserver: bookkeeping key %s holds %q: %w", e.Key(), e.Value(), err)
		}
		out[e.Key()] = protocol.Epoch(n)
	}
	return out, nil
}

// bucket reads the current values of the bookkeeping bucket's keys that
// match filter, in one pass.
func (k *Keyserver) bucket(ctx context.Context, filter string) ([]jetstream.KeyValueEntry, error) {
	w, err := k.kv.Watch(ctx, filter, jetstream.IgnoreDeletes())
	if err != nil {
		return nil, fmt.Errorf("keyserver: bookkeeping: %w", err)
	}
	defer w.Stop()
	var out []jetstream.KeyValueEntry
	for e := range w.Updates() {
		if e == nil { // all current values delivered
			return out, nil
		}
		out = append(out, e)
	}
	return nil, fmt.Errorf("keyserver: bookkeeping watch ended early: %w", ctx.Err())
}
