package record

import (
	"fmt"
	"time"

	"github.com/commsec/communicator/protocol"
)

// Version is the record's version byte: the protocol version
// (protocol.Version), as in every other layout of docs/PROTOCOL.md.
const Version = protocol.Version

// Type is the kind of a change; its byte is in the record. The names
// String returns are stable too: audits show them.
type Type uint8

// The event types (PROTOCOL.md §15.3).
const (
	ClientRegistered Type = 1
	ClientRevoked    Type = 2
	GroupCreated     Type = 3
	MembersAdded     Type = 4
	MembersRemoved   Type = 5
	GroupRekeyed     Type = 6
	GroupDeleted     Type = 7
)

var typeNames = [...]string{
	ClientRegistered: "client.registered",
	ClientRevoked:    "client.revoked",
	GroupCreated:     "group.created",
	MembersAdded:     "group.members_added",
	MembersRemoved:   "group.members_removed",
	GroupRekeyed:     "group.rekeyed",
	GroupDeleted:     "group.deleted",
}

// Valid reports whether t is one of the types above.
func (t Type) Valid() bool { return t >= ClientRegistered && t <= GroupDeleted }

func (t Type) String() string {
	if !t.Valid() {
		return fmt.Sprintf("type(%d)", uint8(t))
	}
	return typeNames[t]
}

// Event is one change. Exactly one payload pointer is set, the one its
// Type names; fields a type does not carry are zero.
type Event struct {
	Type    Type
	Seq     uint64                       // position in its aggregate, from 1
	Prev    [protocol.HashSize]byte      // hash of the aggregate's previous record; zeros for Seq 1
	Time    int64                        // unix nanoseconds, keyserver clock
	Actor   [protocol.PublicKeySize]byte // the operator key that asked; the keyserver's for automatic changes
	Request [RequestSize]byte            // the operator's admin request nonce; zeros for automatic changes
	Client  *ClientPayload               // ClientRegistered, ClientRevoked
	Group   *GroupPayload                // GroupCreated, GroupDeleted
	Members *MembersPayload              // MembersAdded, MembersRemoved, GroupRekeyed
}

// RequestSize is the size of an admin request nonce.
const RequestSize = 16

// ClientPayload is the payload of ClientRegistered (ID, Wrap, Name) and
// ClientRevoked (ID, Reason).
type ClientPayload struct {
	ID     protocol.ClientID
	Wrap   [protocol.PublicKeySize]byte // X25519 key-wrap public key
	Name   string
	Reason string
}

// GroupPayload is the payload of GroupCreated (all fields) and
// GroupDeleted (ID only).
type GroupPayload struct {
	ID     protocol.GroupID
	Name   string
	Policy Policy
}

// Policy is a group's automatic rekey policy; zero fields disable a limit.
type Policy struct {
	MaxMessages uint64
	MaxAge      time.Duration
}

// MembersPayload is the payload of the events that open a new epoch:
// MembersAdded, MembersRemoved (naming Clients) and GroupRekeyed (naming
// none).
type MembersPayload struct {
	Group   protocol.GroupID
	Epoch   protocol.Epoch
	Digest  [protocol.HashSize]byte // bundle.MemberDigest of the new epoch's members
	Clients []protocol.ClientID     // added or removed, in the order the command named them
	Reason  string
}

// Errors of decoding and verifying records. They are protocol errors:
// protocol.Reason names them as PROTOCOL.md §15.7 does.
var (
	ErrMalformed    = protocol.ErrEventMalformed
	ErrVersion      = protocol.ErrEventVersion
	ErrBadSignature = protocol.ErrBadEventSignature
	ErrChainBroken  = protocol.ErrEventChainBroken
	ErrWrongSubject = protocol.ErrEventWrongSubject
)

// When returns the event's time.
func (e *Event) When() time.Time { return time.Unix(0, e.Time).UTC() }

// The constructors below build the payload of each kind of change; the
// writer completes the rest (position, chain, time, signature).

// NewClientRegistered registers a client with its key-wrap key.
func NewClientRegistered(id protocol.ClientID, wrap [protocol.PublicKeySize]byte, name string) *Event {
	return &Event{Type: ClientRegistered, Client: &ClientPayload{ID: id, Wrap: wrap, Name: name}}
}

// NewClientRevoked revokes a client.
func NewClientRevoked(id protocol.ClientID, reason string) *Event {
	return &Event{Type: ClientRevoked, Client: &ClientPayload{ID: id, Reason: reason}}
}

// NewGroupCreated creates a group.
func NewGroupCreated(id protocol.GroupID, name string, p Policy) *Event {
	return &Event{Type: GroupCreated, Group: &GroupPayload{ID: id, Name: name, Policy: p}}
}

// NewGroupDeleted deletes a group.
func NewGroupDeleted(id protocol.GroupID) *Event {
	return &Event{Type: GroupDeleted, Group: &GroupPayload{ID: id}}
}

// NewEpoch opens epoch e of group g: t is MembersAdded or MembersRemoved
// (naming clients) or GroupRekeyed (naming none); digest is the new
// epoch's MemberDigest.
func NewEpoch(t Type, g protocol.GroupID, e protocol.Epoch, clients []protocol.ClientID, digest [protocol.HashSize]byte, reason string) *Event {
	return &Event{Type: t, Members: &MembersPayload{Group: g, Epoch: e, Clients: clients, Digest: digest, Reason: reason}}
}
