// Package fold is the pure fold of the keyserver's event log: the State
// that records build up (who is registered, who is in which group), the
// rules that say whether an event is a valid change of it (PROTOCOL.md
// §15.5), and an index of each client's groups. It needs no NATS: package
// events verifies records and feeds them in; tests fold histories of
// their own.
package fold

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/commsec/communicator/events/record"
	"github.com/commsec/communicator/protocol"
)

// Errors of changes that are not valid in the current state. The keyserver
// refuses commands with them; the projection refuses such events in the log.
var (
	ErrClientExists    = errors.New("client already registered")
	ErrUnknownClient   = errors.New("unknown client")
	ErrClientRevoked   = errors.New("client is revoked")
	ErrGroupExists     = errors.New("group already exists")
	ErrUnknownGroup    = errors.New("unknown group")
	ErrGroupDeleted    = errors.New("group is deleted")
	ErrAlreadyMember   = errors.New("already a member")
	ErrNotMember       = errors.New("not a member")
	ErrNoClients       = errors.New("no clients named")
	ErrDuplicateClient = errors.New("client named twice")
	ErrNoMembers       = errors.New("group has no members")
	ErrWrongEpoch      = errors.New("epoch is not the next one")
	ErrDigestMismatch  = errors.New("member digest does not match the member list")
	ErrBadName         = errors.New("invalid name")
)

// Client is a registered client.
type Client struct {
	ID         protocol.ClientID
	Wrap       [protocol.PublicKeySize]byte
	Name       string
	Registered time.Time
	Revoked    bool
	RevokedAt  time.Time
}

// Group is a group and its current epoch.
type Group struct {
	ID         protocol.GroupID
	Name       string
	Policy     record.Policy
	Created    time.Time
	Epoch      protocol.Epoch // 0 until the first member is added
	EpochStart time.Time
	Members    map[protocol.ClientID]struct{}       // members of the current epoch
	Joined     map[protocol.ClientID]protocol.Epoch // the epoch each member's current membership began
	Digest     [protocol.HashSize]byte              // bundle.MemberDigest of Members
	Deleted    bool
	// sorted lists Members in ascending byte order. apply keeps the two in
	// step, so that checking a change of members needs neither a copy of
	// the set nor a sort.
	sorted []protocol.ClientID
}

// IsMember reports whether id is a member of the current epoch.
func (g *Group) IsMember(id protocol.ClientID) bool {
	_, ok := g.Members[id]
	return ok
}

// MayRead reports whether id, a member now, was one in epoch e: the
// epochs whose messages it may be delivered.
func (g *Group) MayRead(id protocol.ClientID, e protocol.Epoch) bool {
	joined, ok := g.Joined[id]
	return ok && e >= joined
}

// MemberList returns the members in ascending byte order.
func (g *Group) MemberList() []protocol.ClientID {
	if len(g.Members) == 0 {
		return nil
	}
	return slices.Clone(g.memberList())
}

// memberList is MemberList without the copy: the caller must not modify
// it. A Group that apply did not build gets its list sorted afresh.
func (g *Group) memberList() []protocol.ClientID {
	if len(g.sorted) == len(g.Members) {
		return g.sorted
	}
	ids := slices.Collect(maps.Keys(g.Members))
	slices.SortFunc(ids, compareIDs)
	return ids
}

func compareIDs(a, b protocol.ClientID) int { return bytes.Compare(a[:], b[:]) }

// State is the fold of the log: who is registered and who is in which
// group. Apply is the only way to change it.
type State struct {
	Clients map[protocol.ClientID]*Client
	Groups  map[protocol.GroupID]*Group
	names   map[string]protocol.GroupID  // names of live groups
	cnames  map[string]protocol.ClientID // names of live clients
	// member lists, per client, the live groups whose current epoch it
	// is a member of (see GroupsOf), in no particular order.
	member map[protocol.ClientID][]protocol.GroupID
}

// NewState returns the state of an empty log.
func NewState() *State {
	return &State{
		Clients: map[protocol.ClientID]*Client{},
		Groups:  map[protocol.GroupID]*Group{},
		names:   map[string]protocol.GroupID{},
		cnames:  map[string]protocol.ClientID{},
		member:  map[protocol.ClientID][]protocol.GroupID{},
	}
}

// GroupsOf lists the live groups whose current epoch id is a member of,
// in ascending byte order, in a new slice (nil if none).
func (s *State) GroupsOf(id protocol.ClientID) []protocol.GroupID {
	gs := s.member[id]
	if len(gs) == 0 {
		return nil
	}
	out := slices.Clone(gs)
	slices.SortFunc(out, func(a, b protocol.GroupID) int { return bytes.Compare(a[:], b[:]) })
	return out
}

// InAnyGroup reports whether id is a member of a live group.
func (s *State) InAnyGroup(id protocol.ClientID) bool { return len(s.member[id]) > 0 }

func (s *State) join(id protocol.ClientID, g protocol.GroupID) {
	s.member[id] = append(s.member[id], g)
}

func (s *State) leave(id protocol.ClientID, g protocol.GroupID) {
	gs := s.member[id]
	i := slices.Index(gs, g)
	if i < 0 {
		return
	}
	gs[i] = gs[len(gs)-1]
	if gs = gs[:len(gs)-1]; len(gs) == 0 {
		delete(s.member, id)
		return
	}
	s.member[id] = gs
}

// ClientByName finds a live (not revoked) client by name.
func (s *State) ClientByName(name string) (*Client, bool) {
	id, ok := s.cnames[name]
	if !ok {
		return nil, false
	}
	return s.Clients[id], true
}

// GroupByName finds a live group by name.
func (s *State) GroupByName(name string) (*Group, bool) {
	id, ok := s.names[name]
	if !ok {
		return nil, false
	}
	return s.Groups[id], true
}

// Check reports whether e is a valid change of the current state.
func (s *State) Check(e *record.Event) error {
	_, err := s.check(e)
	return err
}

// Apply folds e in if it is a valid change of the current state, and
// otherwise returns why not and changes nothing. The caller has checked
// the record's chain and signature.
func (s *State) Apply(e *record.Event) error {
	next, err := s.check(e)
	if err != nil {
		return err
	}
	s.apply(e, next)
	return nil
}

// check is Check; for a change of members it also returns the new
// epoch's members in ascending order, for apply.
func (s *State) check(e *record.Event) ([]protocol.ClientID, error) {
	switch e.Type {
	case record.ClientRegistered:
		return nil, s.checkRegister(e.Client)
	case record.ClientRevoked:
		_, err := s.liveClient(e.Client.ID)
		return nil, err
	case record.GroupCreated:
		return nil, s.checkCreate(e.Group)
	case record.GroupDeleted:
		_, err := s.liveGroup(e.Group.ID)
		return nil, err
	case record.MembersAdded, record.MembersRemoved, record.GroupRekeyed:
		return s.checkEpoch(e.Type, e.Members)
	}
	return nil, fmt.Errorf("%w: unknown type %s", record.ErrMalformed, e.Type)
}

func (s *State) checkRegister(c *record.ClientPayload) error {
	if _, ok := s.Clients[c.ID]; ok {
		return fmt.Errorf("%w: %s", ErrClientExists, c.ID.Short())
	}
	if _, taken := s.cnames[c.Name]; taken && c.Name != "" {
		return fmt.Errorf("%w: name %q is taken", ErrClientExists, c.Name)
	}
	return checkName(c.Name)
}

func (s *State) checkCreate(g *record.GroupPayload) error {
	if _, ok := s.Groups[g.ID]; ok {
		return fmt.Errorf("%w: id %s", ErrGroupExists, g.ID)
	}
	if _, ok := s.names[g.Name]; ok {
		return fmt.Errorf("%w: name %q", ErrGroupExists, g.Name)
	}
	if g.Name == "" {
		return fmt.Errorf("%w: a group needs a name", ErrBadName)
	}
	return checkName(g.Name)
}

// checkName allows names that are safe in logs, subjects and terminals.
func checkName(name string) error {
	if len(name) > 64 {
		return fmt.Errorf("%w: %q is longer than 64 bytes", ErrBadName, name)
	}
	for _, r := range name {
		ok := r == '-' || r == '_' || r == '.' || r >= '0' && r <= '9' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z'
		if !ok {
			return fmt.Errorf("%w: %q (use letters, digits, '-', '_', '.')", ErrBadName, name)
		}
	}
	return nil
}

func (s *State) liveClient(id protocol.ClientID) (*Client, error) {
	c, ok := s.Clients[id]
	switch {
	case !ok:
		return nil, fmt.Errorf("%w: %s", ErrUnknownClient, id.Short())
	case c.Revoked:
		return nil, fmt.Errorf("%w: %s", ErrClientRevoked, id.Short())
	}
	return c, nil
}

func (s *State) liveGroup(id protocol.GroupID) (*Group, error) {
	g, ok := s.Groups[id]
	switch {
	case !ok:
		return nil, fmt.Errorf("%w: %s", ErrUnknownGroup, id)
	case g.Deleted:
		return nil, fmt.Errorf("%w: %s", ErrGroupDeleted, g.Name)
	}
	return g, nil
}

// checkEpoch checks an event that opens the group's next epoch and
// returns the epoch's members.
func (s *State) checkEpoch(t record.Type, m *record.MembersPayload) ([]protocol.ClientID, error) {
	g, err := s.liveGroup(m.Group)
	if err != nil {
		return nil, err
	}
	if m.Epoch != g.Epoch+1 {
		return nil, fmt.Errorf("%w: %d after %d", ErrWrongEpoch, m.Epoch, g.Epoch)
	}
	next, digest, err := s.nextMembers(t, g, m.Clients)
	if err != nil {
		return nil, err
	}
	if t == record.GroupRekeyed && len(next) == 0 {
		return nil, fmt.Errorf("%w: %s", ErrNoMembers, g.Name)
	}
	if digest != m.Digest {
		return nil, ErrDigestMismatch
	}
	return next, nil
}

// nextMembers returns the members after the change in ascending order and
// their digest, or why the change is invalid. It leaves g as it is.
func (s *State) nextMembers(t record.Type, g *Group, clients []protocol.ClientID) ([]protocol.ClientID, [protocol.HashSize]byte, error) {
	var none [protocol.HashSize]byte
	cur := g.memberList()
	if t == record.GroupRekeyed {
		if len(clients) != 0 {
			return nil, none, fmt.Errorf("%w: a rekey names no clients", record.ErrMalformed)
		}
		if len(cur) > 0 && len(g.sorted) == len(cur) {
			return cur, g.Digest, nil // apply set Digest from a checked event with these members
		}
		return cur, memberDigest(cur), nil
	}
	if len(clients) == 0 {
		return nil, none, ErrNoClients
	}
	seen := make(map[protocol.ClientID]bool, len(clients))
	for _, id := range clients {
		if seen[id] {
			return nil, none, fmt.Errorf("%w: %s", ErrDuplicateClient, id.Short())
		}
		seen[id] = true
		if err := s.checkMember(t, g, id); err != nil {
			return nil, none, err
		}
	}
	changed := slices.Clone(clients)
	slices.SortFunc(changed, compareIDs)
	var next []protocol.ClientID
	if t == record.MembersAdded {
		next = mergeSorted(cur, changed)
	} else {
		next = subtractSorted(cur, changed)
	}
	return next, memberDigest(next), nil
}

// memberDigest is bundle.MemberDigest of a list already in ascending
// order: SHA-256(LabelMemberDigest | count (4 bytes, big-endian) | ids),
// without MemberDigest's copy and sort, and hashing the ids a few
// kilobytes at a time rather than one by one (a group of thousands
// changes members in a few microseconds).
func memberDigest(sorted []protocol.ClientID) [protocol.HashSize]byte {
	h := sha256.New()
	h.Write([]byte(protocol.LabelMemberDigest))
	var buf [64 * protocol.PublicKeySize]byte
	h.Write(binary.BigEndian.AppendUint32(buf[:0], uint32(len(sorted))))
	for len(sorted) > 0 {
		n := min(len(sorted), 64)
		for i, id := range sorted[:n] {
			copy(buf[i*protocol.PublicKeySize:], id[:])
		}
		h.Write(buf[:n*protocol.PublicKeySize])
		sorted = sorted[n:]
	}
	var d [protocol.HashSize]byte
	h.Sum(d[:0])
	return d
}

// checkMember checks that id may be added to or removed from g.
func (s *State) checkMember(t record.Type, g *Group, id protocol.ClientID) error {
	member := g.IsMember(id)
	if t == record.MembersRemoved {
		if !member {
			return fmt.Errorf("%w: %s", ErrNotMember, id.Short())
		}
		return nil
	}
	if _, err := s.liveClient(id); err != nil {
		return err
	}
	if member {
		return fmt.Errorf("%w: %s", ErrAlreadyMember, id.Short())
	}
	return nil
}

// mergeSorted returns the union of two disjoint ascending lists, in a new
// slice.
func mergeSorted(a, b []protocol.ClientID) []protocol.ClientID {
	out := make([]protocol.ClientID, 0, len(a)+len(b))
	for len(a) > 0 && len(b) > 0 {
		if compareIDs(a[0], b[0]) < 0 {
			out, a = append(out, a[0]), a[1:]
		} else {
			out, b = append(out, b[0]), b[1:]
		}
	}
	return append(append(out, a...), b...)
}

// subtractSorted returns a without the members of b (both ascending, b a
// subset of a), in a new slice.
func subtractSorted(a, b []protocol.ClientID) []protocol.ClientID {
	out := make([]protocol.ClientID, 0, len(a)-len(b))
	for _, id := range a {
		if len(b) > 0 && id == b[0] {
			b = b[1:]
			continue
		}
		out = append(out, id)
	}
	return out
}

// NextDigest returns the digest the event changing g's members would carry.
func (s *State) NextDigest(t record.Type, g *Group, clients []protocol.ClientID) ([protocol.HashSize]byte, error) {
	_, digest, err := s.nextMembers(t, g, clients)
	return digest, err
}

// apply folds a checked event into the state; next is what check
// returned for it.
func (s *State) apply(e *record.Event, next []protocol.ClientID) {
	at := e.When()
	switch e.Type {
	case record.ClientRegistered:
		c := &Client{ID: e.Client.ID, Wrap: e.Client.Wrap, Name: e.Client.Name, Registered: at}
		s.Clients[c.ID] = c
		if c.Name != "" {
			s.cnames[c.Name] = c.ID
		}
	case record.ClientRevoked:
		c := s.Clients[e.Client.ID]
		c.Revoked, c.RevokedAt = true, at
		delete(s.cnames, c.Name)
	case record.GroupCreated:
		s.Groups[e.Group.ID] = &Group{ID: e.Group.ID, Name: e.Group.Name, Policy: e.Group.Policy, Created: at,
			Members: map[protocol.ClientID]struct{}{}, Joined: map[protocol.ClientID]protocol.Epoch{}}
		s.names[e.Group.Name] = e.Group.ID
	case record.GroupDeleted:
		g := s.Groups[e.Group.ID]
		g.Deleted = true
		delete(s.names, g.Name)
		for id := range g.Members {
			s.leave(id, g.ID)
		}
	case record.MembersAdded, record.MembersRemoved, record.GroupRekeyed:
		s.applyEpoch(e.Type, e.Members, next, at)
	}
}

func (s *State) applyEpoch(t record.Type, m *record.MembersPayload, next []protocol.ClientID, at time.Time) {
	g := s.Groups[m.Group]
	g.sorted = next
	for _, id := range m.Clients {
		if t == record.MembersAdded {
			g.Members[id] = struct{}{}
			g.Joined[id] = m.Epoch
			s.join(id, g.ID)
		} else {
			delete(g.Members, id)
			delete(g.Joined, id)
			s.leave(id, g.ID)
		}
	}
	g.Epoch, g.EpochStart = m.Epoch, at
	g.Digest = m.Digest
}

// Digest is a hash of the whole state in a canonical order: two services
// that folded the same log have the same digest.
func (s *State) Digest() [32]byte {
	h := sha256.New()
	cids := slices.Collect(maps.Keys(s.Clients))
	slices.SortFunc(cids, func(a, b protocol.ClientID) int { return bytes.Compare(a[:], b[:]) })
	for _, id := range cids {
		c := s.Clients[id]
		fmt.Fprintf(h, "client %x %x %q %d %t %d\n", c.ID, c.Wrap, c.Name, c.Registered.UnixNano(), c.Revoked, c.RevokedAt.UnixNano())
	}
	gids := slices.Collect(maps.Keys(s.Groups))
	slices.SortFunc(gids, func(a, b protocol.GroupID) int { return bytes.Compare(a[:], b[:]) })
	for _, id := range gids {
		g := s.Groups[id]
		fmt.Fprintf(h, "group %x %q %d %d %d %d %x %t\n", g.ID, g.Name, g.Policy.MaxMessages, g.Policy.MaxAge,
			g.Epoch, g.EpochStart.UnixNano(), g.Digest, g.Deleted)
	}
	var d [32]byte
	h.Sum(d[:0])
	return d
}
