package events

import (
	"encoding/binary"
	"math"
	"time"

	"github.com/vmihailenco/msgpack/v5"

	"github.com/commsec/communicator/internal/msgpacksafe"
	"github.com/commsec/communicator/protocol"
)

// Decoding records. A replay decodes every event of the log, so Decode
// reads the encoding msgpack.Marshal makes of an Event (maps keyed by the
// field names, each field once, integers of any width) with the small
// parser below, which allocates only the event itself and checks every
// length against the bytes that are left before it allocates. Anything
// else that msgpack would accept (fields as arrays, strings as bin, nil
// for a payload, unknown fields…) goes to msgpack.Unmarshal, so that both
// paths accept the same records with the same result; msgpacksafe.Check runs
// first, because msgpack allocates what a length claims before reading
// (a 72-byte record claiming a 4 GiB byte string made it allocate 4 GiB).

// decodeEvent decodes the msgpack encoding of an Event.
func decodeEvent(data []byte) (*Event, error) {
	if e, ok := parseEvent(data); ok {
		return e, nil
	}
	if err := msgpacksafe.Check(data); err != nil {
		return nil, err
	}
	var e Event
	if err := msgpack.Unmarshal(data, &e); err != nil {
		return nil, err
	}
	return &e, nil
}

// parser reads the canonical encoding; its methods report false on
// anything else.
type parser struct{ b []byte }

func (p *parser) code() (byte, bool) {
	if len(p.b) == 0 {
		return 0, false
	}
	c := p.b[0]
	p.b = p.b[1:]
	return c, true
}

func (p *parser) take(n int) ([]byte, bool) {
	if n < 0 || n > len(p.b) {
		return nil, false
	}
	v := p.b[:n]
	p.b = p.b[n:]
	return v, true
}

// length reads a big-endian length of size bytes.
func (p *parser) length(size int) (int, bool) {
	b, ok := p.take(size)
	if !ok {
		return 0, false
	}
	switch size {
	case 1:
		return int(b[0]), true
	case 2:
		return int(binary.BigEndian.Uint16(b)), true
	}
	return int(binary.BigEndian.Uint32(b)), true
}

// mapLen reads a map header whose entries can fit in what is left.
func (p *parser) mapLen() (int, bool) {
	c, ok := p.code()
	n := 0
	switch {
	case !ok:
		return 0, false
	case c >= 0x80 && c <= 0x8f:
		n = int(c & 0x0f)
	case c == 0xde:
		n, ok = p.length(2)
	case c == 0xdf:
		n, ok = p.length(4)
	default:
		return 0, false
	}
	return n, ok && n <= len(p.b)/2
}

// arrayLen reads an array header whose elements can fit in what is left.
func (p *parser) arrayLen() (int, bool) {
	c, ok := p.code()
	n := 0
	switch {
	case !ok:
		return 0, false
	case c >= 0x90 && c <= 0x9f:
		n = int(c & 0x0f)
	case c == 0xdc:
		n, ok = p.length(2)
	case c == 0xdd:
		n, ok = p.length(4)
	default:
		return 0, false
	}
	return n, ok && n <= len(p.b)
}

// strBytes reads a string, without copying it.
func (p *parser) strBytes() ([]byte, bool) {
	c, ok := p.code()
	n := 0
	switch {
	case !ok:
		return nil, false
	case c >= 0xa0 && c <= 0xbf:
		n = int(c & 0x1f)
	case c == 0xd9:
		n, ok = p.length(1)
	case c == 0xda:
		n, ok = p.length(2)
	case c == 0xdb:
		n, ok = p.length(4)
	default:
		return nil, false
	}
	if !ok {
		return nil, false
	}
	return p.take(n)
}

func (p *parser) str() (string, bool) {
	b, ok := p.strBytes()
	return string(b), ok
}

// binBytes reads a byte string (nil for msgpack nil), without copying it.
func (p *parser) binBytes() (b []byte, isNil bool, ok bool) {
	c, ok := p.code()
	n := 0
	switch {
	case !ok:
		return nil, false, false
	case c == 0xc0:
		return nil, true, true
	case c == 0xc4:
		n, ok = p.length(1)
	case c == 0xc5:
		n, ok = p.length(2)
	case c == 0xc6:
		n, ok = p.length(4)
	default:
		return nil, false, false
	}
	if !ok {
		return nil, false, false
	}
	b, ok = p.take(n)
	return b, false, ok
}

// bytes reads a byte string into a new slice, as msgpack does: nil for
// nil, empty but not nil for an empty string.
func (p *parser) bytes() ([]byte, bool) {
	b, isNil, ok := p.binBytes()
	if !ok || isNil {
		return nil, ok
	}
	return append(make([]byte, 0, len(b)), b...), true
}

// fixed reads a byte string of exactly len(dst) bytes into dst.
func (p *parser) fixed(dst []byte) bool {
	b, isNil, ok := p.binBytes()
	if !ok || isNil || len(b) != len(dst) {
		return false
	}
	copy(dst, b)
	return true
}

// uint reads an unsigned integer of any width that is at most max.
func (p *parser) uint(max uint64) (uint64, bool) {
	c, ok := p.code()
	var v uint64
	switch {
	case !ok:
		return 0, false
	case c <= 0x7f:
		v = uint64(c)
	case c >= 0xcc && c <= 0xcf:
		b, ok := p.take(1 << (c - 0xcc))
		if !ok {
			return 0, false
		}
		v = beUint(b)
	default:
		return 0, false
	}
	return v, v <= max
}

// int reads an integer of any width, signed or not, as msgpack does for
// an int64 (a uint64 above MaxInt64 wraps).
func (p *parser) int() (int64, bool) {
	c, ok := p.code()
	switch {
	case !ok:
		return 0, false
	case c <= 0x7f || c >= 0xe0:
		return int64(int8(c)), true
	case c >= 0xcc && c <= 0xcf:
		b, ok := p.take(1 << (c - 0xcc))
		return int64(beUint(b)), ok
	case c >= 0xd0 && c <= 0xd3:
		b, ok := p.take(1 << (c - 0xd0))
		if !ok {
			return 0, false
		}
		shift := 64 - 8*len(b)
		return int64(beUint(b)<<shift) >> shift, true // sign-extend
	}
	return 0, false
}

func beUint(b []byte) uint64 {
	var v uint64
	for _, x := range b {
		v = v<<8 | uint64(x)
	}
	return v
}

// fields reads a map of distinct known keys, calling field for each; it
// fails on a repeated key (msgpack would merge the values) or an unknown
// one (msgpack would skip it).
func (p *parser) fields(keys []string, field func(i int) bool) bool {
	n, ok := p.mapLen()
	if !ok {
		return false
	}
	var seen uint32
	for range n {
		k, ok := p.strBytes()
		if !ok {
			return false
		}
		i := indexOf(keys, k)
		if i < 0 || seen&(1<<i) != 0 || !field(i) {
			return false
		}
		seen |= 1 << i
	}
	return true
}

func indexOf(keys []string, k []byte) int {
	for i, key := range keys {
		if key == string(k) {
			return i
		}
	}
	return -1
}

var (
	eventKeys   = []string{"v", "t", "a", "n", "p", "ts", "by", "rq", "c", "g", "m"}
	clientKeys  = []string{"id", "wrap", "name", "why"}
	groupKeys   = []string{"id", "name", "policy"}
	policyKeys  = []string{"msgs", "age"}
	membersKeys = []string{"g", "e", "c", "d", "why"}
	types       = []Type{ClientRegistered, ClientRevoked, GroupCreated, MembersAdded, MembersRemoved, GroupRekeyed, GroupDeleted}
)

// parseEvent reads the canonical encoding of an Event.
func parseEvent(data []byte) (*Event, bool) {
	p := &parser{b: data}
	e := new(Event)
	ok := p.fields(eventKeys, func(i int) bool {
		var ok bool
		var v uint64
		switch i {
		case 0:
			v, ok = p.uint(math.MaxUint8)
			e.Format = uint8(v)
		case 1:
			e.Type, ok = p.eventType()
		case 2:
			e.Aggregate, ok = p.str()
		case 3:
			e.Seq, ok = p.uint(math.MaxUint64)
		case 4:
			e.Prev, ok = p.bytes()
		case 5:
			e.Time, ok = p.int()
		case 6:
			e.Actor, ok = p.bytes()
		case 7:
			e.Request, ok = p.bytes()
		case 8:
			e.Client, ok = p.client()
		case 9:
			e.Group, ok = p.group()
		case 10:
			e.Members, ok = p.members()
		}
		return ok
	})
	return e, ok
}

// eventType reads a Type, sharing the constant's string when it is one.
func (p *parser) eventType() (Type, bool) {
	b, ok := p.strBytes()
	if !ok {
		return "", false
	}
	for _, t := range types {
		if string(t) == string(b) {
			return t, true
		}
	}
	return Type(b), true
}

func (p *parser) client() (*ClientPayload, bool) {
	c := new(ClientPayload)
	ok := p.fields(clientKeys, func(i int) bool {
		var ok bool
		switch i {
		case 0:
			ok = p.fixed(c.ID[:])
		case 1:
			c.Wrap, ok = p.bytes()
		case 2:
			c.Name, ok = p.str()
		case 3:
			c.Reason, ok = p.str()
		}
		return ok
	})
	return c, ok
}

func (p *parser) group() (*GroupPayload, bool) {
	g := new(GroupPayload)
	ok := p.fields(groupKeys, func(i int) bool {
		var ok bool
		switch i {
		case 0:
			ok = p.fixed(g.ID[:])
		case 1:
			g.Name, ok = p.str()
		case 2:
			ok = p.policy(&g.Policy)
		}
		return ok
	})
	return g, ok
}

func (p *parser) policy(pol *Policy) bool {
	return p.fields(policyKeys, func(i int) bool {
		var ok bool
		switch i {
		case 0:
			pol.MaxMessages, ok = p.uint(math.MaxUint64)
		case 1:
			var age int64
			age, ok = p.int()
			pol.MaxAge = time.Duration(age)
		}
		return ok
	})
}

func (p *parser) members() (*MembersPayload, bool) {
	m := new(MembersPayload)
	ok := p.fields(membersKeys, func(i int) bool {
		var ok bool
		var v uint64
		switch i {
		case 0:
			ok = p.fixed(m.Group[:])
		case 1:
			v, ok = p.uint(math.MaxUint32)
			m.Epoch = protocol.Epoch(v)
		case 2:
			m.Clients, ok = p.clientIDs()
		case 3:
			m.Digest, ok = p.bytes()
		case 4:
			m.Reason, ok = p.str()
		}
		return ok
	})
	return m, ok
}

// clientIDs reads an array of client ids; an empty one is empty but not
// nil, as msgpack makes it.
func (p *parser) clientIDs() ([]protocol.ClientID, bool) {
	n, ok := p.arrayLen()
	if !ok || n > len(p.b)/(2+protocol.PublicKeySize) {
		return nil, false
	}
	ids := make([]protocol.ClientID, n)
	for i := range ids {
		if !p.fixed(ids[i][:]) {
			return nil, false
		}
	}
	return ids, true
}
