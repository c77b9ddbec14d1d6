package events

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/commsec/communicator/protocol"
	"github.com/commsec/communicator/protocol/bundle"
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
	Policy     Policy
	Created    time.Time
	Epoch      protocol.Epoch // 0 until the first member is added
	EpochStart time.Time
	Members    map[protocol.ClientID]struct{} // members of the current epoch
	Digest     [protocol.HashSize]byte        // bundle.MemberDigest of Members
	Deleted    bool
}

// IsMember reports whether id is a member of the current epoch.
func (g *Group) IsMember(id protocol.ClientID) bool {
	_, ok := g.Members[id]
	return ok
}

// MemberList returns the members in ascending byte order.
func (g *Group) MemberList() []protocol.ClientID {
	ids := slices.Collect(maps.Keys(g.Members))
	slices.SortFunc(ids, func(a, b protocol.ClientID) int { return bytes.Compare(a[:], b[:]) })
	return ids
}

// State is the fold of the log: who is registered and who is in which group.
type State struct {
	Clients map[protocol.ClientID]*Client
	Groups  map[protocol.GroupID]*Group
	names   map[string]protocol.GroupID  // names of live groups
	cnames  map[string]protocol.ClientID // names of live clients
}

// NewState returns the state of an empty log.
func NewState() *State {
	return &State{
		Clients: map[protocol.ClientID]*Client{},
		Groups:  map[protocol.GroupID]*Group{},
		names:   map[string]protocol.GroupID{},
		cnames:  map[string]protocol.ClientID{},
	}
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
func (s *State) Check(e *Event) error {
	switch e.Type {
	case ClientRegistered:
		return s.checkRegister(e.Client)
	case ClientRevoked:
		_, err := s.liveClient(e.Client.ID)
		return err
	case GroupCreated:
		return s.checkCreate(e.Group)
	case GroupDeleted:
		_, err := s.liveGroup(e.Group.ID)
		return err
	case MembersAdded, MembersRemoved, GroupRekeyed:
		return s.checkEpoch(e.Type, e.Members)
	}
	return fmt.Errorf("%w: unknown type %q", ErrMalformed, e.Type)
}

func (s *State) checkRegister(c *ClientPayload) error {
	if _, ok := s.Clients[c.ID]; ok {
		return fmt.Errorf("%w: %s", ErrClientExists, c.ID.Short())
	}
	if _, taken := s.cnames[c.Name]; taken && c.Name != "" {
		return fmt.Errorf("%w: name %q is taken", ErrClientExists, c.Name)
	}
	if len(c.Wrap) != protocol.PublicKeySize {
		return fmt.Errorf("%w: key-wrap key of %d bytes", ErrMalformed, len(c.Wrap))
	}
	return checkName(c.Name)
}

func (s *State) checkCreate(g *GroupPayload) error {
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

// checkEpoch checks an event that opens the group's next epoch.
func (s *State) checkEpoch(t Type, m *MembersPayload) error {
	g, err := s.liveGroup(m.Group)
	if err != nil {
		return err
	}
	if m.Epoch != g.Epoch+1 {
		return fmt.Errorf("%w: %d after %d", ErrWrongEpoch, m.Epoch, g.Epoch)
	}
	next, err := s.nextMembers(t, g, m.Clients)
	if err != nil {
		return err
	}
	if t == GroupRekeyed && len(next) == 0 {
		return fmt.Errorf("%w: %s", ErrNoMembers, g.Name)
	}
	if d := digestOf(next); !bytes.Equal(d[:], m.Digest) {
		return ErrDigestMismatch
	}
	return nil
}

// nextMembers returns the member set after the change, or why it is invalid.
func (s *State) nextMembers(t Type, g *Group, clients []protocol.ClientID) (map[protocol.ClientID]struct{}, error) {
	if t == GroupRekeyed {
		if len(clients) != 0 {
			return nil, fmt.Errorf("%w: a rekey names no clients", ErrMalformed)
		}
		return g.Members, nil
	}
	if len(clients) == 0 {
		return nil, ErrNoClients
	}
	next := maps.Clone(g.Members)
	if next == nil {
		next = map[protocol.ClientID]struct{}{}
	}
	seen := make(map[protocol.ClientID]bool, len(clients))
	for _, id := range clients {
		if seen[id] {
			return nil, fmt.Errorf("%w: %s", ErrDuplicateClient, id.Short())
		}
		seen[id] = true
		if err := s.changeMember(t, next, id); err != nil {
			return nil, err
		}
	}
	return next, nil
}

func (s *State) changeMember(t Type, set map[protocol.ClientID]struct{}, id protocol.ClientID) error {
	_, member := set[id]
	if t == MembersRemoved {
		if !member {
			return fmt.Errorf("%w: %s", ErrNotMember, id.Short())
		}
		delete(set, id)
		return nil
	}
	if _, err := s.liveClient(id); err != nil {
		return err
	}
	if member {
		return fmt.Errorf("%w: %s", ErrAlreadyMember, id.Short())
	}
	set[id] = struct{}{}
	return nil
}

// Digest returns bundle.MemberDigest of a member set.
func digestOf(set map[protocol.ClientID]struct{}) [protocol.HashSize]byte {
	return bundle.MemberDigest(slices.Collect(maps.Keys(set)))
}

// NextDigest returns the digest the event changing g's members would carry.
func (s *State) NextDigest(t Type, g *Group, clients []protocol.ClientID) ([protocol.HashSize]byte, error) {
	next, err := s.nextMembers(t, g, clients)
	if err != nil {
		return [protocol.HashSize]byte{}, err
	}
	return digestOf(next), nil
}

// apply folds a checked event into the state.
func (s *State) apply(e *Event) {
	at := e.When()
	switch e.Type {
	case ClientRegistered:
		c := &Client{ID: e.Client.ID, Name: e.Client.Name, Registered: at}
		copy(c.Wrap[:], e.Client.Wrap)
		s.Clients[c.ID] = c
		if c.Name != "" {
			s.cnames[c.Name] = c.ID
		}
	case ClientRevoked:
		c := s.Clients[e.Client.ID]
		c.Revoked, c.RevokedAt = true, at
		delete(s.cnames, c.Name)
	case GroupCreated:
		s.Groups[e.Group.ID] = &Group{ID: e.Group.ID, Name: e.Group.Name, Policy: e.Group.Policy, Created: at, Members: map[protocol.ClientID]struct{}{}}
		s.names[e.Group.Name] = e.Group.ID
	case GroupDeleted:
		g := s.Groups[e.Group.ID]
		g.Deleted = true
		delete(s.names, g.Name)
	case MembersAdded, MembersRemoved, GroupRekeyed:
		s.applyEpoch(e.Type, e.Members, at)
	}
}

func (s *State) applyEpoch(t Type, m *MembersPayload, at time.Time) {
	g := s.Groups[m.Group]
	for _, id := range m.Clients {
		if t == MembersAdded {
			g.Members[id] = struct{}{}
		} else {
			delete(g.Members, id)
		}
	}
	g.Epoch, g.EpochStart = m.Epoch, at
	g.Digest = [protocol.HashSize]byte(m.Digest)
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
