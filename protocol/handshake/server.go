package handshake

import (
	"io"

	"github.com/commsec/communicator/protocol"
	"github.com/commsec/communicator/protocol/channel"
	"github.com/commsec/communicator/protocol/keys"
)

type serverStep int

const (
	serverStart  serverStep = iota // next: ReadM1
	serverReadM1                   // next: WriteM2
	serverSentM2                   // next: WriteM3
	serverSentM3                   // next: ReadM4
	serverReadM4                   // next: Keys
	serverDone
	serverFailed
)

// ServerHandshake is the server's side of one handshake. Like
// ClientHandshake, its steps refuse to run out of order.
type ServerHandshake struct {
	step     serverStep
	identity *keys.SigningKey
	rand     io.Reader
	peer     KeyMessage
	eph      *ephemeral
	tr       transcript
	shared   [32]byte
	keys     *channel.Keys
}

// NewServerHandshake starts a handshake answered with identity (Sk_S). rand
// is the source of the ephemeral key (crypto/rand if nil).
func NewServerHandshake(identity *keys.SigningKey, rand io.Reader) *ServerHandshake {
	return &ServerHandshake{identity: identity, rand: rand, tr: newTranscript()}
}

func (s *ServerHandshake) enter(want serverStep) error {
	if s.step != want {
		s.fail()
		return protocol.ErrOutOfOrder
	}
	return nil
}

func (s *ServerHandshake) fail() {
	s.step = serverFailed
	s.eph.wipe()
	clear(s.shared[:])
	if s.keys != nil {
		s.keys.Wipe()
	}
}

func (s *ServerHandshake) failWith(err error) error {
	s.fail()
	return err
}

// ReadM1 takes the client's claimed identity and share. The identity is
// proven only by M4.
func (s *ServerHandshake) ReadM1(b []byte) error {
	if err := s.enter(serverStart); err != nil {
		return err
	}
	msg, err := Parse(b, TypeM1)
	if err != nil {
		return s.failWith(err)
	}
	s.peer = *msg.(*KeyMessage)
	if !canonicalX25519(&s.peer.Ephemeral) {
		return s.failWith(protocol.ErrNonCanonicalPoint)
	}
	s.tr.add(b)
	s.step = serverReadM1
	return nil
}

// WriteM2 returns the server's identity and a fresh share, and computes the
// X25519 result.
func (s *ServerHandshake) WriteM2() ([]byte, error) {
	if err := s.enter(serverReadM1); err != nil {
		return nil, err
	}
	eph, err := newEphemeral(s.rand)
	if err != nil {
		return nil, s.failWith(err)
	}
	s.eph = eph
	if s.shared, err = eph.agree(&s.peer.Ephemeral); err != nil {
		return nil, s.failWith(err)
	}
	eph.wipe()
	m := KeyMessage{Type: TypeM2, Identity: s.identity.Public(), Ephemeral: eph.pub}
	b := m.Marshal()
	s.tr.add(b)
	s.step = serverSentM2
	return b, nil
}

// WriteM3 returns the server's signature over H(M1|M2).
func (s *ServerHandshake) WriteM3() ([]byte, error) {
	if err := s.enter(serverSentM2); err != nil {
		return nil, err
	}
	th2 := s.tr.sum()
	m := SigMessage{Type: TypeM3, Sig: s.identity.Sign(signedInput(protocol.LabelServerSig, &th2))}
	b := m.Marshal()
	s.tr.add(b)
	s.step = serverSentM3
	return b, nil
}

// ReadM4 verifies the client's signature over H(M1|M2|M3) with the identity
// from M1, and derives the channel keys.
func (s *ServerHandshake) ReadM4(b []byte) error {
	if err := s.enter(serverSentM3); err != nil {
		return err
	}
	msg, err := Parse(b, TypeM4)
	if err != nil {
		return s.failWith(err)
	}
	th3 := s.tr.sum()
	if !verify(&s.peer.Identity, protocol.LabelClientSig, &th3, &msg.(*SigMessage).Sig) {
		return s.failWith(protocol.ErrBadClientSignature)
	}
	s.tr.add(b)
	th4 := s.tr.sum()
	k, err := deriveKeys(&s.shared, &th4)
	clear(s.shared[:])
	if err != nil {
		return s.failWith(err)
	}
	s.keys = k
	s.step = serverReadM4
	return nil
}

// Peer returns the client's identity; it is authenticated once ReadM4 has
// succeeded.
func (s *ServerHandshake) Peer() protocol.ClientID { return protocol.ClientID(s.peer.Identity) }

// Keys hands over the channel keys once; the caller wipes them.
func (s *ServerHandshake) Keys() (*channel.Keys, error) {
	if err := s.enter(serverReadM4); err != nil {
		return nil, err
	}
	k := s.keys
	s.keys = nil
	s.step = serverDone
	return k, nil
}
