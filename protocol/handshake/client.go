package handshake

import (
	"crypto/rand"
	"crypto/subtle"
	"io"

	"github.com/commsec/communicator/protocol"
	"github.com/commsec/communicator/protocol/channel"
	"github.com/commsec/communicator/protocol/keys"
)

var randReader io.Reader = rand.Reader

type clientStep int

const (
	clientStart  clientStep = iota // next: WriteM1
	clientSentM1                   // next: ReadM2
	clientReadM2                   // next: ReadM3
	clientReadM3                   // next: WriteM4
	clientSentM4                   // next: Keys
	clientDone
	clientFailed
)

// ClientHandshake is the client's side of one handshake. Its steps run in
// the order of the message flow; a step called out of order, or any step
// after a failure, returns protocol.ErrOutOfOrder.
type ClientHandshake struct {
	step      clientStep
	identity  *keys.SigningKey
	serverKey [protocol.PublicKeySize]byte
	rand      io.Reader
	eph       *ephemeral
	tr        transcript
	shared    [32]byte
	keys      *channel.Keys
}

// NewClientHandshake starts a handshake of identity with the server whose
// identity key is serverKey (Pk_S). rand is the source of the ephemeral key
// (crypto/rand if nil).
func NewClientHandshake(identity *keys.SigningKey, serverKey [protocol.PublicKeySize]byte, rand io.Reader) *ClientHandshake {
	return &ClientHandshake{identity: identity, serverKey: serverKey, rand: rand, tr: newTranscript()}
}

func (c *ClientHandshake) enter(want clientStep) error {
	if c.step != want {
		c.fail()
		return protocol.ErrOutOfOrder
	}
	return nil
}

// fail wipes every secret and refuses all further steps.
func (c *ClientHandshake) fail() {
	c.step = clientFailed
	c.eph.wipe()
	clear(c.shared[:])
	if c.keys != nil {
		c.keys.Wipe()
	}
}

func (c *ClientHandshake) failWith(err error) error {
	c.fail()
	return err
}

// WriteM1 returns M1: the client's identity and a fresh X25519 share.
func (c *ClientHandshake) WriteM1() ([]byte, error) {
	if err := c.enter(clientStart); err != nil {
		return nil, err
	}
	eph, err := newEphemeral(c.rand)
	if err != nil {
		return nil, c.failWith(err)
	}
	c.eph = eph
	m := KeyMessage{Type: TypeM1, Identity: c.identity.Public(), Ephemeral: eph.pub}
	b := m.Marshal()
	c.tr.add(b)
	c.step = clientSentM1
	return b, nil
}

// ReadM2 takes the server's identity and share. The identity must be the
// expected Pk_S. An ErrorMessage from the server yields a *protocol.PeerError.
func (c *ClientHandshake) ReadM2(b []byte) error {
	if err := c.enter(clientSentM1); err != nil {
		return err
	}
	msg, err := Parse(b, TypeM2)
	if err != nil {
		return c.failWith(err)
	}
	m := msg.(*KeyMessage)
	if subtle.ConstantTimeCompare(m.Identity[:], c.serverKey[:]) != 1 {
		return c.failWith(protocol.ErrWrongServerKey)
	}
	if c.shared, err = c.eph.agree(&m.Ephemeral); err != nil {
		return c.failWith(err)
	}
	c.eph.wipe()
	c.tr.add(b)
	c.step = clientReadM2
	return nil
}

// ReadM3 verifies the server's signature over H(M1|M2).
func (c *ClientHandshake) ReadM3(b []byte) error {
	if err := c.enter(clientReadM2); err != nil {
		return err
	}
	msg, err := Parse(b, TypeM3)
	if err != nil {
		return c.failWith(err)
	}
	th2 := c.tr.sum()
	if !verify(&c.serverKey, protocol.LabelServerSig, &th2, &msg.(*SigMessage).Sig) {
		return c.failWith(protocol.ErrBadServerSignature)
	}
	c.tr.add(b)
	c.step = clientReadM3
	return nil
}

// WriteM4 returns the client's signature over H(M1|M2|M3) and derives the
// channel keys.
func (c *ClientHandshake) WriteM4() ([]byte, error) {
	if err := c.enter(clientReadM3); err != nil {
		return nil, err
	}
	th3 := c.tr.sum()
	m := SigMessage{Type: TypeM4, Sig: c.identity.Sign(signedInput(protocol.LabelClientSig, &th3))}
	b := m.Marshal()
	c.tr.add(b)
	th4 := c.tr.sum()
	k, err := deriveKeys(&c.shared, &th4)
	clear(c.shared[:])
	if err != nil {
		return nil, c.failWith(err)
	}
	c.keys = k
	c.step = clientSentM4
	return b, nil
}

// Keys hands over the channel keys once; the caller wipes them (channel.New
// does). The client must verify the server's first frame (Ready) before it
// sends anything on the channel.
func (c *ClientHandshake) Keys() (*channel.Keys, error) {
	if err := c.enter(clientSentM4); err != nil {
		return nil, err
	}
	k := c.keys
	c.keys = nil
	c.step = clientDone
	return k, nil
}
