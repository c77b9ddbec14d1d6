// Package handshake runs the Communicator's client-server handshake: the
// concept's M1..M4 with the fixes of the design decisions.
//
//	client                                   server
//	M1 = hdr | Pk_Cn | Q_A           ---->
//	                                 <----   M2 = hdr | Pk_S | Q_B
//	                                 <----   M3 = hdr | Sig_S(LabelServerSig | ver | suite | H(M1|M2))
//	M4 = hdr | Sig_C(LabelClientSig | ver | suite | H(M1|M2|M3))  ---->
//	         keys = HKDF-SHA256(ikm = X25519(a, Q_B) = X25519(b, Q_A), salt = H(M1|M2|M3|M4))
//	                                 <----   frame 0: Ready (MAC'd: key confirmation) or Error
//
// hdr is version(1) | type(1) | suite(2). Pk_Cn and Pk_S are Ed25519
// identity keys, Q_A and Q_B fresh X25519 shares. Instead of M2 the server
// may send an error message (hdr with type 0x0F, then code(2)) and close.
//
// ClientHandshake and ServerHandshake are the two state machines, pure and
// without I/O: each step refuses to run out of order. Client and Server run
// them over a net.Conn with a deadline.
package handshake

import (
	"encoding/binary"

	"github.com/commsec/communicator/protocol"
)

// Handshake message types.
const (
	TypeM1    byte = 0x01
	TypeM2    byte = 0x02
	TypeM3    byte = 0x03
	TypeM4    byte = 0x04
	TypeError byte = 0x0F
)

// Sizes of suite 1 messages.
const (
	HeaderSize     = 4
	KeyMessageSize = HeaderSize + 2*protocol.PublicKeySize // M1, M2
	SigMessageSize = HeaderSize + protocol.SignatureSize   // M3, M4
	ErrMessageSize = HeaderSize + 2
)

// Header is the start of every handshake message.
type Header struct {
	Version byte
	Type    byte
	Suite   protocol.Suite
}

func (h Header) append(dst []byte) []byte {
	dst = append(dst, h.Version, h.Type)
	return binary.BigEndian.AppendUint16(dst, uint16(h.Suite))
}

// ParseHeader checks the version and suite of a handshake message header and
// returns the size of the body that follows. A header of type TypeError is
// accepted with any suite so that a peer can say which one it supports.
func ParseHeader(b []byte) (Header, int, error) {
	if len(b) < HeaderSize {
		return Header{}, 0, protocol.ErrMessageLength
	}
	h := Header{Version: b[0], Type: b[1], Suite: protocol.Suite(binary.BigEndian.Uint16(b[2:]))}
	if h.Version != protocol.Version {
		return h, 0, protocol.ErrUnsupportedVersion
	}
	if h.Type == TypeError {
		return h, ErrMessageSize - HeaderSize, nil
	}
	if h.Suite != protocol.SuiteX25519Ed25519 {
		return h, 0, protocol.ErrUnsupportedSuite
	}
	switch h.Type {
	case TypeM1, TypeM2:
		return h, KeyMessageSize - HeaderSize, nil
	case TypeM3, TypeM4:
		return h, SigMessageSize - HeaderSize, nil
	}
	return h, 0, protocol.ErrUnexpectedMessage
}

// KeyMessage is M1 (client) or M2 (server): a long-term identity key and a
// fresh X25519 share.
type KeyMessage struct {
	Type      byte // TypeM1 or TypeM2
	Identity  [protocol.PublicKeySize]byte
	Ephemeral [protocol.PublicKeySize]byte
}

// Marshal returns the wire form.
func (m *KeyMessage) Marshal() []byte {
	b := make([]byte, 0, KeyMessageSize)
	b = Header{protocol.Version, m.Type, protocol.SuiteX25519Ed25519}.append(b)
	b = append(b, m.Identity[:]...)
	return append(b, m.Ephemeral[:]...)
}

// SigMessage is M3 (server) or M4 (client): a signature over the transcript.
type SigMessage struct {
	Type byte // TypeM3 or TypeM4
	Sig  [protocol.SignatureSize]byte
}

// Marshal returns the wire form.
func (m *SigMessage) Marshal() []byte {
	b := make([]byte, 0, SigMessageSize)
	b = Header{protocol.Version, m.Type, protocol.SuiteX25519Ed25519}.append(b)
	return append(b, m.Sig[:]...)
}

// ErrorMessage is what a server sends instead of M2 when it refuses M1 or
// is busy. Suite is the suite the server supports.
type ErrorMessage struct {
	Suite protocol.Suite
	Code  protocol.Code
}

// Marshal returns the wire form.
func (m *ErrorMessage) Marshal() []byte {
	b := make([]byte, 0, ErrMessageSize)
	b = Header{protocol.Version, TypeError, m.Suite}.append(b)
	return binary.BigEndian.AppendUint16(b, uint16(m.Code))
}

// Parse decodes one complete handshake message of the wanted type. If the
// message is an ErrorMessage instead, it returns it with a *protocol.PeerError.
// The result is a *KeyMessage, *SigMessage or *ErrorMessage.
func Parse(b []byte, want byte) (any, error) {
	h, n, err := ParseHeader(b)
	if err != nil {
		return nil, err
	}
	if len(b) != HeaderSize+n {
		return nil, protocol.ErrMessageLength
	}
	body := b[HeaderSize:]
	switch {
	case h.Type == TypeError:
		m := &ErrorMessage{Suite: h.Suite, Code: protocol.Code(binary.BigEndian.Uint16(body))}
		return m, &protocol.PeerError{Code: m.Code}
	case h.Type != want:
		return nil, protocol.ErrUnexpectedMessage
	case want == TypeM1 || want == TypeM2:
		m := &KeyMessage{Type: h.Type}
		copy(m.Identity[:], body)
		copy(m.Ephemeral[:], body[protocol.PublicKeySize:])
		return m, nil
	}
	m := &SigMessage{Type: h.Type}
	copy(m.Sig[:], body)
	return m, nil
}

// canonicalX25519 reports whether u is the canonical encoding of a field
// element below 2^255-19 with the unused top bit clear. Anything else is
// refused as malformed, so that every accepted share has one encoding.
func canonicalX25519(u *[32]byte) bool {
	if u[31]&0x80 != 0 {
		return false
	}
	if u[31] != 0x7f || u[0] < 0xed {
		return true
	}
	for _, b := range u[1:31] {
		if b != 0xff {
			return true
		}
	}
	return false // 2^255-19 <= u < 2^255
}
