package keyserver

import (
	"context"
	"fmt"
	"strconv"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/commsec/communicator/events"
	"github.com/commsec/communicator/protocol"
)

// recover finishes what a crash may have interrupted: a revoked client
// still in a group is removed, and a group whose current epoch's bundles
// were not all published gets a new epoch (the old key is gone with the
// crashed process).
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
		k.log.Warn().Str("group", g.id.String()).Uint32("epoch", uint32(g.epoch)).Msg("recovery: bundles of the current epoch incomplete; rekeying")
		reason := fmt.Sprintf("recovery: bundles of epoch %d incomplete", g.epoch)
		if _, err := k.Rekey(ctx, Actor{}, g.id.String(), reason); err != nil {
			return err
		}
	}
	return nil
}

func (k *Keyserver) revokedMembers() []protocol.ClientID {
	var out []protocol.ClientID
	k.proj.Read(func(s *events.State) {
		for id, c := range s.Clients {
			if c.Revoked && isMemberAnywhere(s, id) {
				out = append(out, id)
			}
		}
	})
	return out
}

func isMemberAnywhere(s *events.State, id protocol.ClientID) bool {
	for _, g := range s.Groups {
		if !g.Deleted && g.IsMember(id) {
			return true
		}
	}
	return false
}

type groupEpoch struct {
	id    protocol.GroupID
	epoch protocol.Epoch
}

// groupsWithEpoch lists live groups that have members, with their epoch.
func (k *Keyserver) groupsWithEpoch() []groupEpoch {
	var out []groupEpoch
	k.proj.Read(func(s *events.State) {
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
	w, err := k.kv.WatchAll(ctx, jetstream.IgnoreDeletes())
	if err != nil {
		return nil, fmt.Errorf("keyserver: bookkeeping: %w", err)
	}
	defer w.Stop()
	out := map[string]protocol.Epoch{}
	for e := range w.Updates() {
		if e == nil { // all current values delivered
			return out, nil
		}
		n, err := strconv.ParseUint(string(e.Value()), 10, 32)
		if err != nil {
			return nil, fmt.Errorf("keyserver: bookkeeping key %s holds %q: %w", e.Key(), e.Value(), err)
		}
		out[e.Key()] = protocol.Epoch(n)
	}
	return nil, fmt.Errorf("keyserver: bookkeeping watch ended early: %w", ctx.Err())
}
