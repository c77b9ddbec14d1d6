package events

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"time"

	"github.com/vmihailenco/msgpack/v5"

	"github.com/commsec/communicator/protocol"
	"github.com/commsec/communicator/protocol/keys"
	"github.com/commsec/communicator/streams"
)

// Format is the event format version.
const Format = 1

// Limits on records read from the log.
const (
	MaxRecordSize = 1 << 20 // JetStream's default maximum message size
	minRecordSize = protocol.SignatureSize + 8
)

// Type names an event. The strings are stable: they are in the log.
type Type string

// The event types.
const (
	ClientRegistered Type = "client.registered"
	ClientRevoked    Type = "client.revoked"
	GroupCreated     Type = "group.created"
	MembersAdded     Type = "group.members_added"
	MembersRemoved   Type = "group.members_removed"
	GroupRekeyed     Type = "group.rekeyed"
	GroupDeleted     Type = "group.deleted"
)

// Event is one change. Exactly one of the payload pointers is set, the one
// its Type names.
type Event struct {
	Format    uint8           `msgpack:"v"`
	Type      Type            `msgpack:"t"`
	Aggregate string          `msgpack:"a"`
	Seq       uint64          `msgpack:"n"`
	Prev      []byte          `msgpack:"p"`
	Time      int64           `msgpack:"ts"` // unix nanoseconds, keyserver clock
	Actor     []byte          `msgpack:"by"` // the operator key that asked; the keyserver's for automatic changes
	Request   []byte          `msgpack:"rq,omitempty"`
	Client    *ClientPayload  `msgpack:"c,omitempty"`
	Group     *GroupPayload   `msgpack:"g,omitempty"`
	Members   *MembersPayload `msgpack:"m,omitempty"`
}

// ClientPayload is the payload of ClientRegistered and ClientRevoked.
type ClientPayload struct {
	ID     protocol.ClientID `msgpack:"id"`
	Wrap   []byte            `msgpack:"wrap,omitempty"` // X25519 key-wrap public key
	Name   string            `msgpack:"name,omitempty"`
	Reason string            `msgpack:"why,omitempty"`
}

// GroupPayload is the payload of GroupCreated and GroupDeleted.
type GroupPayload struct {
	ID     protocol.GroupID `msgpack:"id"`
	Name   string           `msgpack:"name,omitempty"`
	Policy Policy           `msgpack:"policy"`
}

// Policy is a group's automatic rekey policy; zero fields disable a limit.
type Policy struct {
	MaxMessages uint64        `msgpack:"msgs,omitempty"`
	MaxAge      time.Duration `msgpack:"age,omitempty"`
}

// MembersPayload is the payload of the events that open a new epoch:
// MembersAdded, MembersRemoved and GroupRekeyed.
type MembersPayload struct {
	Group   protocol.GroupID    `msgpack:"g"`
	Epoch   protocol.Epoch      `msgpack:"e"`
	Clients []protocol.ClientID `msgpack:"c,omitempty"` // added or removed
	Digest  []byte              `msgpack:"d"`           // bundle.MemberDigest of the new epoch's members
	Reason  string              `msgpack:"why,omitempty"`
}

// Errors of decoding and verifying records.
var (
	ErrMalformed    = errors.New("events: malformed record")
	ErrBadSignature = errors.New("events: signature does not verify")
	ErrWrongSubject = errors.New("events: event stored under another aggregate's subject")
	ErrChainBroken  = errors.New("events: hash chain broken")
)

// Record is a signed, encoded event as stored in the log.
type Record []byte

// Sign encodes e and signs it with the keyserver's key.
func Sign(e *Event, ks *keys.SigningKey) (Record, error) {
	data, err := msgpack.Marshal(e)
	if err != nil {
		return nil, fmt.Errorf("events: encode: %w", err)
	}
	sig := ks.Sign(signedInput(data))
	return append(data, sig[:]...), nil
}

func signedInput(data []byte) []byte {
	return append([]byte(protocol.LabelEvent), data...)
}

// Hash is the record's hash: the next event of its aggregate names it in Prev.
func (r Record) Hash() [32]byte { return sha256.Sum256(r) }

// Verify checks the signature against the keyserver's public key.
func (r Record) Verify(ks *[protocol.PublicKeySize]byte) error {
	if len(r) < minRecordSize {
		return ErrMalformed
	}
	n := len(r) - protocol.SignatureSize
	sig := [protocol.SignatureSize]byte(r[n:])
	if !keys.Verify(ks, signedInput(r[:n]), &sig) {
		return ErrBadSignature
	}
	return nil
}

// Decode parses the event of a record without verifying it.
func (r Record) Decode() (*Event, error) {
	if len(r) < minRecordSize || len(r) > MaxRecordSize {
		return nil, fmt.Errorf("%w: %d bytes", ErrMalformed, len(r))
	}
	e, err := decodeEvent(r[:len(r)-protocol.SignatureSize])
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	if err := e.check(); err != nil {
		return nil, err
	}
	return e, nil
}

// check validates the shape of a decoded event: version, one payload that
// matches the type, the aggregate it claims.
func (e *Event) check() error {
	if e.Format != Format {
		return fmt.Errorf("%w: format %d", ErrMalformed, e.Format)
	}
	if e.Seq == 0 || (e.Seq == 1) != (len(e.Prev) == 0) || (len(e.Prev) != 0 && len(e.Prev) != 32) {
		return fmt.Errorf("%w: seq %d with %d-byte prev", ErrMalformed, e.Seq, len(e.Prev))
	}
	if len(e.Actor) != 0 && len(e.Actor) != protocol.PublicKeySize {
		return fmt.Errorf("%w: actor", ErrMalformed)
	}
	prefix, id, err := e.aggregateOfPayload()
	if err != nil {
		return err
	}
	if !isAggregate(e.Aggregate, prefix, id) {
		return fmt.Errorf("%w: aggregate %q, payload is about %q", ErrMalformed, e.Aggregate, prefix+hex.EncodeToString(id))
	}
	return nil
}

// aggregateOfPayload returns the aggregate the payload is about, as the
// prefix and id of its name (see ClientAggregate and GroupAggregate).
func (e *Event) aggregateOfPayload() (prefix string, id []byte, err error) {
	switch {
	case (e.Type == ClientRegistered || e.Type == ClientRevoked) && e.Client != nil && e.Group == nil && e.Members == nil:
		return clientPrefix, e.Client.ID[:], nil
	case (e.Type == GroupCreated || e.Type == GroupDeleted) && e.Group != nil && e.Client == nil && e.Members == nil:
		return groupPrefix, e.Group.ID[:], nil
	case (e.Type == MembersAdded || e.Type == MembersRemoved || e.Type == GroupRekeyed) && e.Members != nil && e.Client == nil && e.Group == nil:
		if len(e.Members.Digest) != protocol.HashSize {
			return "", nil, fmt.Errorf("%w: member digest", ErrMalformed)
		}
		return groupPrefix, e.Members.Group[:], nil
	}
	return "", nil, fmt.Errorf("%w: type %q with the wrong payload", ErrMalformed, e.Type)
}

// isAggregate reports whether agg is prefix followed by id in lowercase
// hex, without building that name.
func isAggregate(agg, prefix string, id []byte) bool {
	const digits = "0123456789abcdef"
	if len(agg) != len(prefix)+2*len(id) || agg[:len(prefix)] != prefix {
		return false
	}
	h := agg[len(prefix):]
	for i, b := range id {
		if h[2*i] != digits[b>>4] || h[2*i+1] != digits[b&0x0f] {
			return false
		}
	}
	return true
}

// When returns the event's time.
func (e *Event) When() time.Time { return time.Unix(0, e.Time).UTC() }

const (
	clientPrefix = "client."
	groupPrefix  = "group."
)

// ClientAggregate names a client's aggregate.
func ClientAggregate(id protocol.ClientID) string { return clientPrefix + id.String() }

// GroupAggregate names a group's aggregate.
func GroupAggregate(id protocol.GroupID) string { return groupPrefix + id.String() }

// Subject is the JetStream subject of an aggregate.
func Subject(aggregate string) string { return streams.EventSubject(aggregate) }

// AggregateOf returns the aggregate of a subject in the log.
func AggregateOf(subject string) (string, bool) {
	return streams.ParseEventSubject(subject)
}
