// Package channel is the authenticated channel that follows the handshake:
// length-prefixed frames, each MAC'd with HMAC-SHA256 under the key of its
// direction and numbered by a 64-bit counter that must be exactly the next
// expected one.
//
// Frame layout (all integers big-endian):
//
//	length   4  bytes that follow: 1 + 8 + len(body) + 32
//	type     1  Type
//	counter  8  0 for the first frame in each direction, then +1
//	body     n  0..protocol.MaxFrameBody bytes, layout fixed by type
//	tag     32  HMAC-SHA256(direction key, length|type|counter|body)
//
// The receiver checks the length against the limits before it allocates,
// verifies the tag, then the counter, then that the type is one its
// direction may carry. Anything unexpected is fatal for the channel.
package channel

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"hash"
	"math"

	"github.com/commsec/communicator/protocol"
)

// Frame layout sizes.
const (
	LengthSize = 4
	HeaderSize = LengthSize + 1 + 8 // length, type, counter
	Overhead   = HeaderSize + protocol.MACSize
	// MinLength and MaxLength bound the length field.
	MinLength = Overhead - LengthSize
	MaxLength = MinLength + protocol.MaxFrameBody
)

// Frame is one opened frame. Body aliases the reader's buffer and is valid
// until the next read.
type Frame struct {
	Type    Type
	Counter uint64
	Body    []byte
}

// Keys are the two directional MAC keys the handshake derives.
type Keys struct {
	C2S [32]byte // client to server
	S2C [32]byte // server to client
}

// Wipe zeroes both keys.
func (k *Keys) Wipe() {
	clear(k.C2S[:])
	clear(k.S2C[:])
}

// Sealer MACs outgoing frames of one direction. The zero value is unusable;
// use NewSealer. Sealing does not allocate when dst has room.
type Sealer struct {
	mac  hash.Hash
	next uint64
	sum  [protocol.MACSize]byte
}

// NewSealer returns a Sealer for frames MAC'd under key, starting at
// counter 0. It keeps no copy of key beyond the HMAC state.
func NewSealer(key *[32]byte) *Sealer {
	return &Sealer{mac: hmac.New(sha256.New, key[:])}
}

// Seal appends the next frame of type t with body to dst.
func (s *Sealer) Seal(dst []byte, t Type, body []byte) ([]byte, error) {
	return s.SealParts(dst, t, nil, body)
}

// SealParts appends the next frame of type t whose body is head followed
// by body: a Deliver frame's own cursor before an envelope that many
// connections share, without copying the envelope first.
func (s *Sealer) SealParts(dst []byte, t Type, head, body []byte) ([]byte, error) {
	if s.mac == nil {
		return dst, protocol.ErrChannelClosed
	}
	if len(head)+len(body) > protocol.MaxFrameBody {
		return dst, protocol.ErrBodyTooLarge
	}
	if s.next == math.MaxUint64 {
		return dst, protocol.ErrCounterExhausted
	}
	start := len(dst)
	dst = binary.BigEndian.AppendUint32(dst, uint32(MinLength+len(head)+len(body)))
	dst = append(dst, byte(t))
	dst = binary.BigEndian.AppendUint64(dst, s.next)
	dst = append(dst, head...)
	dst = append(dst, body...)
	s.mac.Reset()
	s.mac.Write(dst[start:])
	dst = append(dst, s.mac.Sum(s.sum[:0])...)
	s.next++
	return dst, nil
}

// Wipe drops the HMAC state; the Sealer refuses to seal afterwards.
func (s *Sealer) Wipe() {
	if s.mac != nil {
		s.mac.Reset()
	}
	s.mac = nil
	clear(s.sum[:])
}

// Opener verifies incoming frames of one direction.
type Opener struct {
	mac     hash.Hash
	accepts func(Type) bool
	ownKey  [32]byte // the other direction's key, only to name a reflection
	next    uint64
	sum     [protocol.MACSize]byte
}

// NewOpener returns an Opener for frames MAC'd under key and sent by the
// other side in direction dir. ownKey is this side's sending key: a frame
// that verifies under it is reported as reflected.
func NewOpener(key, ownKey *[32]byte, dir Direction) *Opener {
	o := &Opener{mac: hmac.New(sha256.New, key[:]), accepts: dir.accepts}
	o.ownKey = *ownKey
	return o
}

// Open checks one complete frame (length field included) and returns it.
// The returned Body aliases frame. After an error the Opener is wiped.
func (o *Opener) Open(frame []byte) (Frame, error) {
	f, err := o.open(frame)
	if err != nil {
		o.Wipe()
		return Frame{}, err
	}
	return f, nil
}

func (o *Opener) open(frame []byte) (Frame, error) {
	if o.mac == nil {
		return Frame{}, protocol.ErrChannelClosed
	}
	if err := checkLength(frame); err != nil {
		return Frame{}, err
	}
	n := len(frame) - protocol.MACSize
	o.mac.Reset()
	o.mac.Write(frame[:n])
	if !hmac.Equal(o.mac.Sum(o.sum[:0]), frame[n:]) {
		return Frame{}, o.macFailure(frame)
	}
	f := Frame{
		Type:    Type(frame[LengthSize]),
		Counter: binary.BigEndian.Uint64(frame[LengthSize+1:]),
		Body:    frame[HeaderSize:n],
	}
	if err := o.checkCounter(f.Counter); err != nil {
		return Frame{}, err
	}
	if err := o.checkType(f); err != nil {
		return Frame{}, err
	}
	o.next++
	return f, nil
}

func checkLength(frame []byte) error {
	if len(frame) < LengthSize {
		return protocol.ErrTruncatedFrame
	}
	length := binary.BigEndian.Uint32(frame)
	if err := CheckLength(length); err != nil {
		return err
	}
	if uint64(len(frame)) != LengthSize+uint64(length) {
		return protocol.ErrTruncatedFrame
	}
	return nil
}

// CheckLength checks a frame's length field against the limits; readers
// call it before they allocate or read the rest.
func CheckLength(length uint32) error {
	switch {
	case length < MinLength:
		return protocol.ErrFrameTooShort
	case length > MaxLength:
		return protocol.ErrFrameTooLarge
	}
	return nil
}

// macFailure tells a reflected frame (MAC'd under our own sending key)
// from any other failure. It runs only on the failure path.
func (o *Opener) macFailure(frame []byte) error {
	n := len(frame) - protocol.MACSize
	m := hmac.New(sha256.New, o.ownKey[:])
	m.Write(frame[:n])
	if hmac.Equal(m.Sum(nil), frame[n:]) {
		return protocol.ErrReflectedFrame
	}
	return protocol.ErrBadMAC
}

// checkCounter applies PROTOCOL.md §5.3 step 5: counter 2^64-1 first
// (no sender may use it), then exactly the next one.
func (o *Opener) checkCounter(c uint64) error {
	switch {
	case c == math.MaxUint64:
		return protocol.ErrCounterExhausted
	case c < o.next:
		return protocol.ErrReplayedFrame
	case c > o.next:
		return protocol.ErrSkippedFrame
	}
	return nil
}

func (o *Opener) checkType(f Frame) error {
	if !f.Type.known() {
		return protocol.ErrUnknownFrameType
	}
	if !o.accepts(f.Type) || (f.Type == TypeReady && f.Counter != 0) {
		return protocol.ErrUnexpectedFrame
	}
	return checkBody(f)
}

// Wipe drops the HMAC state and zeroes the key copy.
func (o *Opener) Wipe() {
	if o.mac != nil {
		o.mac.Reset()
	}
	o.mac = nil
	clear(o.ownKey[:])
	clear(o.sum[:])
}
