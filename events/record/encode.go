package record

import (
	"encoding/binary"
	"fmt"
	"math"

	"github.com/commsec/communicator/protocol"
)

// The layout (PROTOCOL.md §15.2). All integers are big-endian; a string
// is its length as uint16 followed by its bytes.
const (
	HeaderSize  = 1 + 1 + 8 + protocol.HashSize + 8 + protocol.PublicKeySize + RequestSize // 98
	MinSize     = HeaderSize + protocol.GroupIDSize + protocol.SignatureSize               // a group.deleted record
	MaxSize     = 1 << 20                                                                  // JetStream's default maximum message size
	maxString   = math.MaxUint16
	clientsSize = protocol.PublicKeySize
)

// Encode returns the body of e's record (everything the signature covers).
// It refuses an event Decode would refuse, so that every body it returns
// decodes to e.
func Encode(e *Event) ([]byte, error) {
	if err := e.encodable(); err != nil {
		return nil, err
	}
	b := make([]byte, 0, e.size())
	b = append(b, Version, byte(e.Type))
	b = binary.BigEndian.AppendUint64(b, e.Seq)
	b = append(b, e.Prev[:]...)
	b = binary.BigEndian.AppendUint64(b, uint64(e.Time))
	b = append(b, e.Actor[:]...)
	b = append(b, e.Request[:]...)
	switch e.Type {
	case ClientRegistered:
		b = append(b, e.Client.ID[:]...)
		b = append(b, e.Client.Wrap[:]...)
		b = appendString(b, e.Client.Name)
	case ClientRevoked:
		b = append(b, e.Client.ID[:]...)
		b = appendString(b, e.Client.Reason)
	case GroupCreated:
		b = append(b, e.Group.ID[:]...)
		b = binary.BigEndian.AppendUint64(b, e.Group.Policy.MaxMessages)
		b = binary.BigEndian.AppendUint64(b, uint64(e.Group.Policy.MaxAge))
		b = appendString(b, e.Group.Name)
	case GroupDeleted:
		b = append(b, e.Group.ID[:]...)
	case MembersAdded, MembersRemoved, GroupRekeyed:
		m := e.Members
		b = append(b, m.Group[:]...)
		b = binary.BigEndian.AppendUint32(b, uint32(m.Epoch))
		b = append(b, m.Digest[:]...)
		b = binary.BigEndian.AppendUint32(b, uint32(len(m.Clients)))
		for _, id := range m.Clients {
			b = append(b, id[:]...)
		}
		b = appendString(b, m.Reason)
	}
	return b, nil
}

func appendString(b []byte, s string) []byte {
	b = binary.BigEndian.AppendUint16(b, uint16(len(s)))
	return append(b, s...)
}

// size is the length of e's body.
func (e *Event) size() int {
	n := HeaderSize
	switch e.Type {
	case ClientRegistered:
		n += 2*protocol.PublicKeySize + 2 + len(e.Client.Name)
	case ClientRevoked:
		n += protocol.PublicKeySize + 2 + len(e.Client.Reason)
	case GroupCreated:
		n += protocol.GroupIDSize + 16 + 2 + len(e.Group.Name)
	case GroupDeleted:
		n += protocol.GroupIDSize
	case MembersAdded, MembersRemoved, GroupRekeyed:
		n += protocol.GroupIDSize + 4 + protocol.HashSize + 4 + len(e.Members.Clients)*clientsSize + 2 + len(e.Members.Reason)
	}
	return n
}

// encodable checks that e has a record: a known type with its payload
// and no other, zero in the fields its type does not carry, and every
// rule of Decode.
func (e *Event) encodable() error {
	fail := func(why string) error { return fmt.Errorf("%w: cannot encode %s %s", ErrMalformed, e.Type, why) }
	if e.Seq == 0 {
		return fail("at position 0")
	}
	var ok bool
	switch e.Type {
	case ClientRegistered:
		ok = e.Client != nil && e.Group == nil && e.Members == nil && e.Client.Reason == "" && len(e.Client.Name) <= maxString
	case ClientRevoked:
		ok = e.Client != nil && e.Group == nil && e.Members == nil && e.Client.Wrap == [32]byte{} && e.Client.Name == "" && len(e.Client.Reason) <= maxString
	case GroupCreated:
		ok = e.Group != nil && e.Client == nil && e.Members == nil && len(e.Group.Name) <= maxString
	case GroupDeleted:
		ok = e.Group != nil && e.Client == nil && e.Members == nil && e.Group.Name == "" && e.Group.Policy == Policy{}
	case MembersAdded, MembersRemoved, GroupRekeyed:
		m := e.Members
		ok = m != nil && e.Client == nil && e.Group == nil && len(m.Reason) <= maxString && validEpoch(m.Epoch) &&
			(e.Type != GroupRekeyed || len(m.Clients) == 0) && len(m.Clients) <= math.MaxUint32
	default:
		return fail("is not a type")
	}
	if !ok {
		return fail("with the wrong payload or a field its type does not carry")
	}
	if e.size()+protocol.SignatureSize > MaxSize {
		return fail("is larger than MaxSize")
	}
	return nil
}

// validEpoch: epochs run from 1 to 2^32-2 (PROTOCOL.md §2.3).
func validEpoch(e protocol.Epoch) bool { return e != 0 && e != math.MaxUint32 }
