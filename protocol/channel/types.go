package channel

import (
	"encoding/binary"
	"strconv"

	"github.com/commsec/communicator/protocol"
)

// Type is a frame type. Its byte value is on the wire.
type Type byte

// The frame types. C→S: sent by the client only; S→C: by the server only.
const (
	TypeReady      Type = 0x10 // S→C  key confirmation, always counter 0; body empty
	TypeError      Type = 0x11 // both code(2); the sender closes after it
	TypePing       Type = 0x12 // both opaque(8)
	TypePong       Type = 0x13 // both the Ping's opaque(8)
	TypeClose      Type = 0x14 // both empty; graceful end, the sender closes after it
	TypeKeyBundle  Type = 0x20 // S→C  a signed key bundle (package bundle)
	TypeSend       Type = 0x21 // C→S  a group message envelope (package envelope)
	TypeSendAck    Type = 0x22 // S→C  group(16) | counter(8) | status(2)
	TypeDeliver    Type = 0x23 // S→C  cursor(8) | envelope
	TypeDeliverAck Type = 0x24 // C→S  cursor(8): all deliveries up to it are processed
	TypeGroups     Type = 0x25 // S→C  group(16) × n: the client's groups; after the connect's bundles, and on every change
)

var typeNames = map[Type]string{
	TypeReady: "ready", TypeError: "error", TypePing: "ping", TypePong: "pong",
	TypeClose: "close", TypeKeyBundle: "key_bundle", TypeSend: "send",
	TypeSendAck: "send_ack", TypeDeliver: "deliver", TypeDeliverAck: "deliver_ack", TypeGroups: "groups",
}

func (t Type) String() string {
	if n, ok := typeNames[t]; ok {
		return n
	}
	return "unknown"
}

func (t Type) known() bool { _, ok := typeNames[t]; return ok }

// Direction is who sends a frame.
type Direction byte

// The two directions.
const (
	ClientToServer Direction = 1
	ServerToClient Direction = 2
)

func (d Direction) accepts(t Type) bool {
	switch t {
	case TypeError, TypePing, TypePong, TypeClose:
		return true
	case TypeSend, TypeDeliverAck:
		return d == ClientToServer
	case TypeReady, TypeKeyBundle, TypeSendAck, TypeDeliver, TypeGroups:
		return d == ServerToClient
	}
	return false
}

// Fixed body sizes of the types that have one.
const (
	ErrorBodySize      = 2
	PingBodySize       = 8
	SendAckBodySize    = protocol.GroupIDSize + 8 + 2
	DeliverAckBodySize = 8
	CursorSize         = 8
)

var fixedBody = map[Type]int{
	TypeReady: 0, TypeError: ErrorBodySize, TypePing: PingBodySize,
	TypePong: PingBodySize, TypeClose: 0, TypeSendAck: SendAckBodySize,
	TypeDeliverAck: DeliverAckBodySize,
}

// checkBody checks the sizes the channel knows; the bodies that carry an
// envelope or a bundle are checked by their own packages.
func checkBody(f Frame) error {
	if n, ok := fixedBody[f.Type]; ok && len(f.Body) != n {
		return protocol.ErrFrameBody
	}
	if f.Type == TypeDeliver && len(f.Body) < CursorSize {
		return protocol.ErrFrameBody
	}
	if f.Type == TypeGroups && len(f.Body)%protocol.GroupIDSize != 0 {
		return protocol.ErrFrameBody
	}
	return nil
}

// MaxGroups is the most groups a Groups frame lists (its body's limit).
const MaxGroups = protocol.MaxFrameBody / protocol.GroupIDSize

// AppendGroups appends the body of a Groups frame.
func AppendGroups(dst []byte, groups []protocol.GroupID) []byte {
	for _, g := range groups {
		dst = append(dst, g[:]...)
	}
	return dst
}

// ParseGroups parses the body of a Groups frame.
func ParseGroups(b []byte) ([]protocol.GroupID, error) {
	if len(b)%protocol.GroupIDSize != 0 {
		return nil, protocol.ErrFrameBody
	}
	out := make([]protocol.GroupID, len(b)/protocol.GroupIDSize)
	for i := range out {
		copy(out[i][:], b[i*protocol.GroupIDSize:])
	}
	return out, nil
}

// SendStatus is the relay's verdict on a group message, in a SendAck.
type SendStatus uint16

// The statuses. A refusal names the sender's own standing when that is
// what refused it (4 to 8); every other reason stays on the server (1).
// Every status but 0, 2 and 3 is a refusal: the envelope is never sent
// again.
const (
	StatusAccepted    SendStatus = 0 // stored for delivery
	StatusRefused     SendStatus = 1 // not relayed, and never will be: do not send it again
	StatusDuplicate   SendStatus = 2 // this very envelope was accepted before (an earlier send's acknowledgement was lost)
	StatusRetry       SendStatus = 3 // not decided (no relay available): send the same envelope again later
	StatusOldEpoch    SendStatus = 4 // refused: its epoch is no longer accepted; seal anew under a newer key
	StatusNotMember   SendStatus = 5 // refused: the sender is not a member of the group's current epoch
	StatusRevoked     SendStatus = 6 // refused: the sender is revoked
	StatusNoGroup     SendStatus = 7 // refused: the group does not exist, or was deleted
	StatusFutureEpoch SendStatus = 8 // refused: its epoch was never opened
)

// Refused reports whether s refuses the envelope for good.
func (s SendStatus) Refused() bool {
	return s != StatusAccepted && s != StatusDuplicate && s != StatusRetry
}

func (s SendStatus) String() string {
	switch s {
	case StatusAccepted:
		return "accepted"
	case StatusRefused:
		return "refused"
	case StatusDuplicate:
		return "duplicate"
	case StatusRetry:
		return "retry"
	case StatusOldEpoch:
		return "old_epoch"
	case StatusNotMember:
		return "not_member"
	case StatusRevoked:
		return "revoked"
	case StatusNoGroup:
		return "no_group"
	case StatusFutureEpoch:
		return "future_epoch"
	}
	return "status(" + strconv.Itoa(int(s)) + ")"
}

// SendAck acknowledges one group message the client sent.
type SendAck struct {
	Group   protocol.GroupID
	Counter uint64
	Status  SendStatus
}

// AppendSendAck appends the body of a SendAck frame.
func AppendSendAck(dst []byte, a SendAck) []byte {
	dst = append(dst, a.Group[:]...)
	dst = binary.BigEndian.AppendUint64(dst, a.Counter)
	return binary.BigEndian.AppendUint16(dst, uint16(a.Status))
}

// ParseSendAck parses the body of a SendAck frame.
func ParseSendAck(b []byte) (SendAck, error) {
	if len(b) != SendAckBodySize {
		return SendAck{}, protocol.ErrFrameBody
	}
	var a SendAck
	copy(a.Group[:], b)
	a.Counter = binary.BigEndian.Uint64(b[protocol.GroupIDSize:])
	a.Status = SendStatus(binary.BigEndian.Uint16(b[protocol.GroupIDSize+8:]))
	return a, nil
}

// AppendDeliver appends the body of a Deliver frame.
func AppendDeliver(dst []byte, cursor uint64, envelope []byte) []byte {
	dst = binary.BigEndian.AppendUint64(dst, cursor)
	return append(dst, envelope...)
}

// ParseDeliver splits a Deliver body into its cursor and envelope.
func ParseDeliver(b []byte) (cursor uint64, envelope []byte, err error) {
	if len(b) < CursorSize {
		return 0, nil, protocol.ErrFrameBody
	}
	return binary.BigEndian.Uint64(b), b[CursorSize:], nil
}

// ParseUint64 parses the 8-byte body of DeliverAck, Ping and Pong frames.
func ParseUint64(b []byte) (uint64, error) {
	if len(b) != 8 {
		return 0, protocol.ErrFrameBody
	}
	return binary.BigEndian.Uint64(b), nil
}

// ParseError parses the body of an Error frame.
func ParseError(b []byte) (protocol.Code, error) {
	if len(b) != ErrorBodySize {
		return 0, protocol.ErrFrameBody
	}
	return protocol.Code(binary.BigEndian.Uint16(b)), nil
}
