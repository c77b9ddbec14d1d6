package vectors

import (
	"bytes"
	"crypto/ecdh"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"io"
	mathrand "math/rand/v2"

	"github.com/commsec/communicator/protocol"
	"github.com/commsec/communicator/protocol/handshake"
	"github.com/commsec/communicator/protocol/keys"
)

// Seed fixes the generator's randomness.
const Seed = "communicator test vectors v1...."

// Generate makes every vector. All randomness comes from a ChaCha8 stream
// with a fixed seed, except the encapsulation inside crypto/hpke, which
// reads crypto/rand: callers fix that with testing/cryptotest.SetGlobalRandom.
func Generate() ([]*Vector, error) {
	g := &gen{rnd: mathrand.NewChaCha8([32]byte([]byte(Seed)))}
	g.handshakes()
	g.frames()
	g.envelopes()
	g.bundles()
	g.keyfiles()
	g.laterFrames() // after the rest: the cases before it keep their bytes
	g.windows()
	g.events()
	return g.out, g.err
}

type gen struct {
	rnd io.Reader
	out []*Vector
	err error
}

func (g *gen) b32() [32]byte {
	var b [32]byte
	g.rnd.Read(b[:])
	return b
}

func (g *gen) bytes(n int) []byte {
	b := make([]byte, n)
	g.rnd.Read(b)
	return b
}

func (g *gen) check(err error) {
	if err != nil && g.err == nil {
		g.err = err
	}
}

// emit adds a vector named file with a comment, kind and expectation.
func (g *gen) emit(file, comment, kind, expect string) *Vector {
	v := &Vector{File: file + ".txt", Comment: []string{comment}}
	v.add("kind", kind)
	v.add("expect", expect)
	g.out = append(g.out, v)
	return v
}

// flip returns a copy of b with bit 0 of byte i flipped.
func flip(b []byte, i int) []byte {
	c := bytes.Clone(b)
	c[i] ^= 1
	return c
}

// party is a handshake participant with fixed keys.
type party struct {
	seed, eph [32]byte
	key       *keys.SigningKey
}

func (g *gen) party() party {
	p := party{seed: g.b32(), eph: g.b32()}
	p.key = keys.NewSigningKey(&p.seed)
	return p
}

// transcript is one honest handshake, step by step.
type transcript struct {
	m1, m2, m3, m4 []byte
	kc, ks         [2][32]byte // [c2s, s2c] as the client and the server derived them
}

func (g *gen) honest(c, s party) transcript {
	var t transcript
	ch := handshake.NewClientHandshake(c.key, s.key.Public(), bytes.NewReader(c.eph[:]))
	sh := handshake.NewServerHandshake(s.key, bytes.NewReader(s.eph[:]))
	var err error
	t.m1, err = ch.WriteM1()
	g.check(err)
	g.check(sh.ReadM1(t.m1))
	t.m2, err = sh.WriteM2()
	g.check(err)
	t.m3, err = sh.WriteM3()
	g.check(err)
	g.check(ch.ReadM2(t.m2))
	g.check(ch.ReadM3(t.m3))
	t.m4, err = ch.WriteM4()
	g.check(err)
	g.check(sh.ReadM4(t.m4))
	kc, err := ch.Keys()
	g.check(err)
	ks, err := sh.Keys()
	g.check(err)
	if err == nil {
		t.kc = [2][32]byte{kc.C2S, kc.S2C}
		t.ks = [2][32]byte{ks.C2S, ks.S2C}
	}
	return t
}

// signedInput builds label | version | suite | th as docs/PROTOCOL.md
// writes it, independently of package handshake.
func signedInput(label string, th []byte) []byte {
	b := append([]byte(label), protocol.Version)
	b = binary.BigEndian.AppendUint16(b, uint16(protocol.SuiteX25519Ed25519))
	return append(b, th...)
}

func hashOf(msgs ...[]byte) []byte {
	h := sha256.New()
	for _, m := range msgs {
		h.Write(m)
	}
	return h.Sum(nil)
}

func x25519(scalar [32]byte, peer []byte) []byte {
	priv, _ := ecdh.X25519().NewPrivateKey(scalar[:])
	pub, err := ecdh.X25519().NewPublicKey(peer)
	if err != nil {
		return nil
	}
	out, _ := priv.ECDH(pub)
	return out
}

// withHeader returns msg with its 4-byte header replaced.
func withHeader(msg []byte, version, typ byte, suite uint16) []byte {
	c := bytes.Clone(msg)
	c[0], c[1] = version, typ
	binary.BigEndian.PutUint16(c[2:], suite)
	return c
}

// withEphemeral returns a key message (M1 or M2) with its share replaced.
func withEphemeral(msg []byte, share []byte) []byte {
	c := bytes.Clone(msg)
	copy(c[handshake.HeaderSize+protocol.PublicKeySize:], share)
	return c
}

func sigMessage(typ byte, sig [64]byte) []byte {
	m := handshake.SigMessage{Type: typ, Sig: sig}
	return m.Marshal()
}

func mustHex(s string) []byte {
	var b []byte
	_, err := fmt.Sscanf(s, "%x", &b)
	if err != nil {
		panic(err)
	}
	return b
}
