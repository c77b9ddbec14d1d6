package record

import (
	"encoding/hex"
	"strings"

	"github.com/commsec/communicator/protocol"
)

// An event belongs to one aggregate, the client or group it changes,
// named "client.<ClientID hex>" or "group.<GroupID hex>" (lowercase). The
// record does not carry the name: its type and payload determine it.

const (
	clientPrefix = "client."
	groupPrefix  = "group."
)

// ClientAggregate names a client's aggregate.
func ClientAggregate(id protocol.ClientID) string { return clientPrefix + id.String() }

// GroupAggregate names a group's aggregate.
func GroupAggregate(id protocol.GroupID) string { return groupPrefix + id.String() }

// Key identifies an aggregate in a form the garbage collector need not
// scan: a log holds a head for every client and group.
type Key struct {
	Group bool
	ID    [protocol.PublicKeySize]byte // a ClientID, or a GroupID and zeros
}

// Key returns the key of the event's aggregate.
func (e *Event) Key() Key {
	var k Key
	switch {
	case e.Client != nil:
		k.ID = e.Client.ID
	case e.Group != nil:
		k.Group = true
		copy(k.ID[:], e.Group.ID[:])
	case e.Members != nil:
		k.Group = true
		copy(k.ID[:], e.Members.Group[:])
	}
	return k
}

// Aggregate returns the name of the event's aggregate.
func (e *Event) Aggregate() string { return e.Key().Name() }

// Name is the aggregate's name.
func (k Key) Name() string {
	if k.Group {
		return GroupAggregate(protocol.GroupID(k.ID[:protocol.GroupIDSize]))
	}
	return ClientAggregate(k.ID)
}

// ParseAggregate is the key of an aggregate's name, as ClientAggregate or
// GroupAggregate writes it (lowercase hex only).
func ParseAggregate(name string) (Key, bool) {
	var k Key
	prefix, id := clientPrefix, k.ID[:]
	if strings.HasPrefix(name, groupPrefix) {
		k.Group = true
		prefix, id = groupPrefix, k.ID[:protocol.GroupIDSize]
	}
	if len(name) != len(prefix)+2*len(id) || name[:len(prefix)] != prefix {
		return k, false
	}
	h := name[len(prefix):]
	if _, err := hex.Decode(id, []byte(h)); err != nil || strings.ToLower(h) != h {
		return k, false
	}
	return k, true
}
