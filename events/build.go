package events

import (
	"github.com/commsec/communicator/protocol"
)

// The constructors below build the payload of each kind of change; Writer
// completes the rest (position, chain, time, signature).

// NewClientRegistered registers a client with its key-wrap key.
func NewClientRegistered(id protocol.ClientID, wrap [protocol.PublicKeySize]byte, name string) *Event {
	return &Event{Type: ClientRegistered, Aggregate: ClientAggregate(id),
		Client: &ClientPayload{ID: id, Wrap: wrap[:], Name: name}}
}

// NewClientRevoked revokes a client.
func NewClientRevoked(id protocol.ClientID, reason string) *Event {
	return &Event{Type: ClientRevoked, Aggregate: ClientAggregate(id),
		Client: &ClientPayload{ID: id, Reason: reason}}
}

// NewGroupCreated creates a group.
func NewGroupCreated(id protocol.GroupID, name string, p Policy) *Event {
	return &Event{Type: GroupCreated, Aggregate: GroupAggregate(id),
		Group: &GroupPayload{ID: id, Name: name, Policy: p}}
}

// NewGroupDeleted deletes a group.
func NewGroupDeleted(id protocol.GroupID) *Event {
	return &Event{Type: GroupDeleted, Aggregate: GroupAggregate(id), Group: &GroupPayload{ID: id}}
}

// NewEpoch opens epoch e of group g: t is MembersAdded or MembersRemoved
// (naming clients) or GroupRekeyed (naming none); digest is the new
// epoch's MemberDigest.
func NewEpoch(t Type, g protocol.GroupID, e protocol.Epoch, clients []protocol.ClientID, digest [protocol.HashSize]byte, reason string) *Event {
	return &Event{Type: t, Aggregate: GroupAggregate(g),
		Members: &MembersPayload{Group: g, Epoch: e, Clients: clients, Digest: digest[:], Reason: reason}}
}
