package record

import (
	"encoding/binary"
	"fmt"
	"time"

	"github.com/commsec/communicator/protocol"
)

// Decode parses a record's event without verifying its signature. It
// accepts exactly the records whose body Encode writes, and returns
// nothing on failure: an error wrapping ErrVersion or ErrMalformed.
func (r Record) Decode() (*Event, error) {
	if len(r) < MinSize || len(r) > MaxSize {
		return nil, fmt.Errorf("%w: %d bytes", ErrMalformed, len(r))
	}
	if r[0] != Version {
		return nil, fmt.Errorf("%w: %d", ErrVersion, r[0])
	}
	d := decoder{b: r[1 : len(r)-protocol.SignatureSize]}
	e := new(Event)
	e.Type = Type(d.byte())
	e.Seq = d.uint64()
	d.copy(e.Prev[:])
	e.Time = int64(d.uint64())
	d.copy(e.Actor[:])
	d.copy(e.Request[:])
	switch {
	case e.Seq == 0:
		return nil, fmt.Errorf("%w: position 0", ErrMalformed)
	case !e.Type.Valid():
		return nil, fmt.Errorf("%w: type %d", ErrMalformed, uint8(e.Type))
	}
	if err := d.payload(e); err != nil {
		return nil, err
	}
	if d.fail || len(d.b) != 0 {
		return nil, fmt.Errorf("%w: %s of the wrong length", ErrMalformed, e.Type)
	}
	return e, nil
}

// decoder reads fixed-width fields; once a read runs past the end it
// reads zeros and fail is set, so a truncated record costs one check.
type decoder struct {
	b    []byte
	fail bool
}

func (d *decoder) take(n int) []byte {
	if n > len(d.b) {
		d.fail, d.b = true, nil
		return nil
	}
	v := d.b[:n]
	d.b = d.b[n:]
	return v
}

func (d *decoder) copy(dst []byte) { copy(dst, d.take(len(dst))) }

func (d *decoder) byte() byte {
	if b := d.take(1); b != nil {
		return b[0]
	}
	return 0
}

func (d *decoder) uint32() uint32 {
	if b := d.take(4); b != nil {
		return binary.BigEndian.Uint32(b)
	}
	return 0
}

func (d *decoder) uint64() uint64 {
	if b := d.take(8); b != nil {
		return binary.BigEndian.Uint64(b)
	}
	return 0
}

// string reads a uint16 length and that many bytes.
func (d *decoder) string() string {
	var n int
	if b := d.take(2); b != nil {
		n = int(binary.BigEndian.Uint16(b))
	}
	return string(d.take(n))
}

func (d *decoder) payload(e *Event) error {
	switch e.Type {
	case ClientRegistered:
		c := new(ClientPayload)
		d.copy(c.ID[:])
		d.copy(c.Wrap[:])
		c.Name = d.string()
		e.Client = c
	case ClientRevoked:
		c := new(ClientPayload)
		d.copy(c.ID[:])
		c.Reason = d.string()
		e.Client = c
	case GroupCreated:
		g := new(GroupPayload)
		d.copy(g.ID[:])
		g.Policy.MaxMessages = d.uint64()
		g.Policy.MaxAge = time.Duration(d.uint64())
		g.Name = d.string()
		e.Group = g
	case GroupDeleted:
		g := new(GroupPayload)
		d.copy(g.ID[:])
		e.Group = g
	default:
		m, err := d.members(e.Type)
		if err != nil {
			return err
		}
		e.Members = m
	}
	return nil
}

func (d *decoder) members(t Type) (*MembersPayload, error) {
	m := new(MembersPayload)
	d.copy(m.Group[:])
	m.Epoch = protocol.Epoch(d.uint32())
	d.copy(m.Digest[:])
	n := d.uint32()
	switch {
	case d.fail:
		return nil, fmt.Errorf("%w: %s truncated", ErrMalformed, t)
	case !validEpoch(m.Epoch):
		return nil, fmt.Errorf("%w: epoch %d", ErrMalformed, m.Epoch)
	case t == GroupRekeyed && n != 0:
		return nil, fmt.Errorf("%w: a rekey naming %d clients", ErrMalformed, n)
	case uint64(n) > uint64(len(d.b)/clientsSize):
		return nil, fmt.Errorf("%w: %d clients in %d bytes", ErrMalformed, n, len(d.b))
	}
	if n > 0 {
		m.Clients = make([]protocol.ClientID, n)
		for i := range m.Clients {
			d.copy(m.Clients[i][:])
		}
	}
	m.Reason = d.string()
	return m, nil
}
