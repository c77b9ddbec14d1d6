package keyserver

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"

	"github.com/commsec/communicator/events"
	"github.com/commsec/communicator/events/fold"
	"github.com/commsec/communicator/events/record"
	"github.com/commsec/communicator/protocol"
	"github.com/commsec/communicator/protocol/bundle"
	"github.com/commsec/communicator/protocol/keys"
)

// Actor is who asked for a change: an operator key and the request's nonce
// (both recorded in the event). The zero Actor is the keyserver itself.
type Actor struct {
	Key     [32]byte
	Request []byte // the admin request's nonce (admin.Request.Nonce, 16 bytes)
}

// sign records a in e, unless a is the keyserver itself (the Writer
// records its own key then).
func (a Actor) sign(e *record.Event) {
	if a.Key != ([32]byte{}) {
		e.Actor = a.Key
		copy(e.Request[:], a.Request)
	}
}

const maxAttempts = 5

// change is one command's effect: the event to append and, for a change
// that opens an epoch, the members to wrap the new key to.
type change struct {
	event      *record.Event
	recipients []bundle.Recipient
}

// execute builds the change against the current state and appends it,
// rebuilding and retrying when another keyserver instance won the race.
func (k *Keyserver) execute(ctx context.Context, a Actor, build func(*fold.State) (*change, error)) (*change, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	for attempt := 1; ; attempt++ {
		var c *change
		var err error
		var view uint64
		k.proj.ReadAt(func(s *fold.State, seq uint64) {
			c, err = build(s)
			view = seq
		})
		if err != nil {
			return nil, err
		}
		a.sign(c.event)
		_, err = k.writer.Append(ctx, c.event)
		if errors.Is(err, events.ErrConflict) && attempt < maxAttempts {
			k.Metrics.conflicts.Inc()
			k.log.Warn().Str("aggregate", c.event.Aggregate()).Int("attempt", attempt).Msg("conflict with another writer; retrying")
			continue
		}
		if err != nil && attempt < maxAttempts && k.behind(ctx, view) {
			continue // refused on a view that another instance had moved on: decide again
		}
		if err != nil {
			return nil, err
		}
		k.Metrics.events.Inc()
		if c.event.Members != nil {
			if err := k.publishEpoch(ctx, c); err != nil {
				return c, err
			}
		}
		return c, nil
	}
}

// ErrInvalidClientID refuses a ClientID that is no valid Ed25519 public
// key (PROTOCOL.md §2.3): under a key of small order, signatures can be
// made without a private key, so anyone could speak as that client.
var ErrInvalidClientID = errors.New("the client id is not a valid Ed25519 public key (non-canonical, no point, or of small order)")

// RegisterClient registers a client's public keys under an optional name.
func (k *Keyserver) RegisterClient(ctx context.Context, a Actor, pub keys.ClientPublic, name string) error {
	if !keys.ValidPublicKey((*[protocol.PublicKeySize]byte)(&pub.ID)) {
		return ErrInvalidClientID
	}
	_, err := k.execute(ctx, a, func(*fold.State) (*change, error) {
		return &change{event: record.NewClientRegistered(pub.ID, pub.Wrap, name)}, nil
	})
	return err
}

// RevokeClient revokes a client and removes it from every group it is in,
// each removal opening a new epoch without it. It may be run again: a
// client already revoked (named by its hex id, or by the name it had) is
// not revoked twice, and what an interrupted revocation left undone (its
// removal from some groups) is done.
func (k *Keyserver) RevokeClient(ctx context.Context, a Actor, ref, reason string) error {
	var (
		id      protocol.ClientID
		revoked bool
		err     error
	)
	k.proj.Read(func(s *fold.State) { id, revoked, err = findForRevoke(s, ref) })
	if err != nil {
		return err
	}
	if !revoked {
		_, err := k.execute(ctx, a, func(*fold.State) (*change, error) {
			return &change{event: record.NewClientRevoked(id, reason)}, nil
		})
		if err != nil && !errors.Is(err, fold.ErrClientRevoked) { // revoked meanwhile: go on
			return err
		}
	}
	return k.removeFromAllGroups(ctx, a, id)
}

// findForRevoke resolves the client a revocation names: a client by hex
// id, revoked or not; a live client by name; else the revoked client that
// had the name (a revocation frees it), preferring one still in a group.
func findForRevoke(s *fold.State, ref string) (id protocol.ClientID, revoked bool, err error) {
	if c, err := findClient(s, ref); err == nil {
		return c.ID, c.Revoked, nil
	}
	var best *fold.Client
	for _, c := range s.Clients {
		if !c.Revoked || c.Name != ref || ref == "" {
			continue
		}
		if best == nil || s.InAnyGroup(c.ID) && !s.InAnyGroup(best.ID) ||
			s.InAnyGroup(c.ID) == s.InAnyGroup(best.ID) && c.RevokedAt.After(best.RevokedAt) {
			best = c
		}
	}
	if best == nil {
		return id, false, fmt.Errorf("%w: %q", fold.ErrUnknownClient, ref)
	}
	return best.ID, true, nil
}

func (k *Keyserver) removeFromAllGroups(ctx context.Context, a Actor, id protocol.ClientID) error {
	var groups []protocol.GroupID
	k.proj.Read(func(s *fold.State) { groups = s.GroupsOf(id) })
	for _, g := range groups {
		if _, err := k.RemoveMembers(ctx, a, g.String(), []string{id.String()}, "client revoked"); err != nil {
			return fmt.Errorf("keyserver: removing revoked %s from %s: %w", id.Short(), g, err)
		}
	}
	return nil
}

// CreateGroup creates an empty group with a random id.
func (k *Keyserver) CreateGroup(ctx context.Context, a Actor, name string, p record.Policy) (protocol.GroupID, error) {
	var id protocol.GroupID
	if _, err := rand.Read(id[:]); err != nil {
		return id, err
	}
	_, err := k.execute(ctx, a, func(*fold.State) (*change, error) {
		return &change{event: record.NewGroupCreated(id, name, p)}, nil
	})
	return id, err
}

// DeleteGroup deletes a group; its members keep nothing they could use.
func (k *Keyserver) DeleteGroup(ctx context.Context, a Actor, ref string) error {
	_, err := k.execute(ctx, a, func(s *fold.State) (*change, error) {
		g, err := findGroup(s, ref)
		if err != nil {
			return nil, err
		}
		return &change{event: record.NewGroupDeleted(g.ID)}, nil
	})
	return err
}

// AddMembers adds clients to a group, opening a new epoch.
func (k *Keyserver) AddMembers(ctx context.Context, a Actor, group string, clients []string) (protocol.Epoch, error) {
	return k.changeEpoch(ctx, a, record.MembersAdded, group, clients, "")
}

// RemoveMembers removes clients from a group, opening a new epoch.
func (k *Keyserver) RemoveMembers(ctx context.Context, a Actor, group string, clients []string, reason string) (protocol.Epoch, error) {
	return k.changeEpoch(ctx, a, record.MembersRemoved, group, clients, reason)
}

// Rekey opens a new epoch with the same members and a fresh key.
func (k *Keyserver) Rekey(ctx context.Context, a Actor, group, reason string) (protocol.Epoch, error) {
	return k.changeEpoch(ctx, a, record.GroupRekeyed, group, nil, reason)
}

func (k *Keyserver) changeEpoch(ctx context.Context, a Actor, t record.Type, group string, clients []string, reason string) (protocol.Epoch, error) {
	c, err := k.execute(ctx, a, func(s *fold.State) (*change, error) {
		return buildEpoch(s, t, group, clients, reason)
	})
	if c == nil {
		return 0, err
	}
	return c.event.Members.Epoch, err
}

// buildEpoch builds the event that opens g's next epoch and the list of
// the new epoch's members to wrap its key to.
func buildEpoch(s *fold.State, t record.Type, group string, refs []string, reason string) (*change, error) {
	g, err := findGroup(s, group)
	if err != nil {
		return nil, err
	}
	ids := make([]protocol.ClientID, 0, len(refs))
	for _, ref := range refs {
		c, err := findClient(s, ref)
		if err != nil {
			return nil, err
		}
		ids = append(ids, c.ID)
	}
	digest, err := s.NextDigest(t, g, ids)
	if err != nil {
		return nil, err
	}
	e := record.NewEpoch(t, g.ID, g.Epoch+1, ids, digest, reason)
	return &change{event: e, recipients: recipients(s, g, t, ids)}, nil
}

// recipients lists the new epoch's members and their key-wrap keys,
// leaving out revoked clients (their removal follows their revocation).
func recipients(s *fold.State, g *fold.Group, t record.Type, changed []protocol.ClientID) []bundle.Recipient {
	members := g.MemberList()
	switch t {
	case record.MembersAdded:
		members = append(members, changed...)
	case record.MembersRemoved:
		members = slices.DeleteFunc(members, func(id protocol.ClientID) bool { return slices.Contains(changed, id) })
	}
	out := make([]bundle.Recipient, 0, len(members))
	for _, id := range members {
		if c := s.Clients[id]; c != nil && !c.Revoked {
			out = append(out, bundle.Recipient{ID: id, Wrap: c.Wrap})
		}
	}
	return out
}

// findClient resolves a client by 64-digit hex id or by name.
func findClient(s *fold.State, ref string) (*fold.Client, error) {
	if len(ref) == 2*protocol.PublicKeySize {
		if id, err := protocol.ParseClientID(ref); err == nil {
			if c := s.Clients[id]; c != nil {
				return c, nil
			}
			return nil, fmt.Errorf("%w: %s", fold.ErrUnknownClient, id.Short())
		}
	}
	if c, ok := s.ClientByName(ref); ok {
		return c, nil
	}
	return nil, fmt.Errorf("%w: %q", fold.ErrUnknownClient, ref)
}

// findGroup resolves a live group by 32-digit hex id or by name.
func findGroup(s *fold.State, ref string) (*fold.Group, error) {
	if len(ref) == 2*protocol.GroupIDSize {
		if _, err := hex.DecodeString(ref); err == nil {
			id, _ := protocol.ParseGroupID(ref)
			if g := s.Groups[id]; g != nil {
				if g.Deleted {
					return nil, fmt.Errorf("%w: %s", fold.ErrGroupDeleted, g.Name)
				}
				return g, nil
			}
		}
	}
	if g, ok := s.GroupByName(ref); ok {
		return g, nil
	}
	return nil, fmt.Errorf("%w: %q", fold.ErrUnknownGroup, ref)
}

// Registration is one client to register in bulk.
type Registration struct {
	Public keys.ClientPublic
	Name   string
}

// RegisterClients registers many clients concurrently (their aggregates are
// independent), for provisioning a fleet. It returns the first error.
func (k *Keyserver) RegisterClients(ctx context.Context, a Actor, regs []Registration) error {
	for _, r := range regs {
		if !keys.ValidPublicKey((*[protocol.PublicKeySize]byte)(&r.Public.ID)) {
			return fmt.Errorf("%w: %x", ErrInvalidClientID, r.Public.ID)
		}
	}
	const inFlight = 64
	sem := make(chan struct{}, inFlight)
	errs := make(chan error, len(regs))
	for _, r := range regs {
		sem <- struct{}{}
		go func() {
			defer func() { <-sem }()
			e := record.NewClientRegistered(r.Public.ID, r.Public.Wrap, r.Name)
			a.sign(e)
			_, err := k.writer.Append(ctx, e)
			errs <- err
		}()
	}
	for range inFlight {
		sem <- struct{}{}
	}
	close(errs)
	for err := range errs {
		if err != nil {
			return err
		}
	}
	k.Metrics.events.Add(float64(len(regs)))
	return nil
}

// behind reports whether the log has moved on since view, the position
// a change was built on, and waits until the projection has the log's
// end: a change refused on a stale view (another keyserver instance wrote
// meanwhile) must be decided again.
func (k *Keyserver) behind(ctx context.Context, view uint64) bool {
	last, err := k.store.LastSeq(ctx)
	if err != nil || last <= view {
		return false
	}
	return k.proj.WaitFor(ctx, last) == nil
}
