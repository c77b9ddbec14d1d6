package handshake_test

// Fuzz targets for the handshake's decoders and state machines. The oracles
// follow the spec in the package comment (signed inputs, key schedule),
// written out again here so that a change to either side shows.

import (
	"bytes"
	"crypto/ecdh"
	"crypto/ed25519"
	"crypto/hkdf"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"io"
	"math/big"
	"math/rand/v2"
	"net"
	"testing"
	"time"

	"github.com/commsec/communicator/protocol"
	"github.com/commsec/communicator/protocol/channel"
	"github.com/commsec/communicator/protocol/handshake"
	"github.com/commsec/communicator/protocol/keys"
)

// Fixed parties: keys from fixed seeds, ephemeral keys from fixed ChaCha8
// streams, so every run of a target is deterministic.
var (
	fuzzClientKey = seededKey(0xc1)
	fuzzServerKey = seededKey(0x5e)
	fuzzOtherKey  = seededKey(0x07)
)

func seededKey(b byte) *keys.SigningKey {
	seed := [32]byte{b, b, b}
	return keys.NewSigningKey(&seed)
}

func clientRand() io.Reader { return rand.NewChaCha8([32]byte{'c'}) }
func serverRand() io.Reader { return rand.NewChaCha8([32]byte{'s'}) }

// ephemeralOf returns the X25519 key a side makes from its fixed stream:
// newEphemeral reads the scalar as the first 32 bytes.
func ephemeralOf(tb testing.TB, r io.Reader) *ecdh.PrivateKey {
	var scalar [32]byte
	if _, err := io.ReadFull(r, scalar[:]); err != nil {
		tb.Fatal(err)
	}
	priv, err := ecdh.X25519().NewPrivateKey(scalar[:])
	if err != nil {
		tb.Fatal(err)
	}
	return priv
}

// flow is one complete, valid handshake between the fixed parties.
type flow struct{ m1, m2, m3, m4 []byte }

func validFlow(tb testing.TB) flow {
	tb.Helper()
	c := handshake.NewClientHandshake(fuzzClientKey, fuzzServerKey.Public(), clientRand())
	s := handshake.NewServerHandshake(fuzzServerKey, serverRand())
	var fl flow
	var err error
	step := func(e error) {
		if e != nil && err == nil {
			err = e
		}
	}
	fl.m1, err = c.WriteM1()
	step(s.ReadM1(fl.m1))
	fl.m2, _ = s.WriteM2()
	fl.m3, _ = s.WriteM3()
	step(c.ReadM2(fl.m2))
	step(c.ReadM3(fl.m3))
	fl.m4, _ = c.WriteM4()
	step(s.ReadM4(fl.m4))
	if err != nil {
		tb.Fatalf("valid flow: %v", err)
	}
	return fl
}

// variants returns b and damaged copies: truncated, extended, bit-flipped.
func variants(b []byte) [][]byte {
	out := [][]byte{b, nil}
	if len(b) > 0 {
		out = append(out, b[:len(b)-1], b[:len(b)/2])
	}
	out = append(out, append(bytes.Clone(b), 0))
	for _, i := range []int{0, 1, 2, 3, 4, len(b) / 2, len(b) - 1} {
		if i >= 0 && i < len(b) {
			c := bytes.Clone(b)
			c[i] ^= 0x01
			out = append(out, c)
		}
	}
	return out
}

// withEphemeral returns key message m with its X25519 share replaced.
func withEphemeral(m []byte, u [32]byte) []byte {
	c := bytes.Clone(m)
	copy(c[handshake.HeaderSize+protocol.PublicKeySize:], u[:])
	return c
}

// Shares every key message seed is also tried with: low-order (0 and 1),
// non-canonical (p = 2^255-19, and 9 with the top bit set).
var oddShares = [][32]byte{
	{},
	{1},
	{0xed, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
		0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f},
	{9, 31: 0x80},
}

var p25519 = new(big.Int).Sub(new(big.Int).Lsh(big.NewInt(1), 255), big.NewInt(19))

// canonical is the spec's rule for an X25519 share: a little-endian number
// below 2^255-19 (which also means the top bit is clear).
func canonical(u [32]byte) bool {
	be := make([]byte, 32)
	for i := range u {
		be[31-i] = u[i]
	}
	return new(big.Int).SetBytes(be).Cmp(p25519) < 0
}

// signedInput is label | version | suite(2) | SHA-256(msgs...).
func signedInput(label string, msgs ...[]byte) []byte {
	h := sha256.New()
	for _, m := range msgs {
		h.Write(m)
	}
	in := append([]byte(label), protocol.Version)
	in = binary.BigEndian.AppendUint16(in, uint16(protocol.SuiteX25519Ed25519))
	return h.Sum(in)
}

// sigValid reports whether m is a well-formed signature message of type
// typ whose signature verifies under pub over label and the transcript.
func sigValid(m []byte, typ byte, pub [32]byte, label string, transcript ...[]byte) bool {
	msg, err := handshake.Parse(m, typ)
	if err != nil {
		return false
	}
	sig := msg.(*handshake.SigMessage).Sig
	return ed25519.Verify(pub[:], signedInput(label, transcript...), sig[:])
}

// scheduleKeys is the spec's key schedule for a finished transcript.
func scheduleKeys(tb testing.TB, shared []byte, fl flow) channel.Keys {
	tb.Helper()
	salt := sha256.Sum256(bytes.Join([][]byte{fl.m1, fl.m2, fl.m3, fl.m4}, nil))
	var k channel.Keys
	for _, d := range []struct {
		dst   []byte
		label string
	}{{k.C2S[:], protocol.LabelKeyC2S}, {k.S2C[:], protocol.LabelKeyS2C}} {
		info := append([]byte(d.label), protocol.Version)
		info = binary.BigEndian.AppendUint16(info, uint16(protocol.SuiteX25519Ed25519))
		out, err := hkdf.Key(sha256.New, shared, salt[:], string(info), 32)
		if err != nil {
			tb.Fatal(err)
		}
		copy(d.dst, out)
	}
	return k
}

// agree is X25519(priv, u), or nil for a malformed share or a zero result.
func agree(priv *ecdh.PrivateKey, u [32]byte) []byte {
	if !canonical(u) {
		return nil
	}
	pub, err := ecdh.X25519().NewPublicKey(u[:])
	if err != nil {
		return nil
	}
	shared, err := priv.ECDH(pub)
	if err != nil {
		return nil
	}
	return shared
}

// FuzzParse checks that Parse, for every wanted type, returns only the
// documented result types and that whatever it accepts is canonical:
// Marshal gives back the input byte for byte.
func FuzzParse(f *testing.F) {
	fl := validFlow(f)
	errMsgs := [][]byte{
		(&handshake.ErrorMessage{Suite: protocol.SuiteX25519Ed25519, Code: protocol.CodeBusy}).Marshal(),
		(&handshake.ErrorMessage{Suite: 0x1234, Code: 0xfffe}).Marshal(),
	}
	for _, m := range append([][]byte{fl.m1, fl.m2, fl.m3, fl.m4}, errMsgs...) {
		for _, v := range variants(m) {
			f.Add(v)
		}
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		for _, want := range []byte{handshake.TypeM1, handshake.TypeM2, handshake.TypeM3, handshake.TypeM4} {
			checkParse(t, b, want)
		}
	})
}

func checkParse(t *testing.T, b []byte, want byte) {
	msg, err := handshake.Parse(b, want)
	var peer *protocol.PeerError
	switch m := msg.(type) {
	case nil:
		if err == nil || errors.As(err, &peer) {
			t.Fatalf("Parse(%x, %d) = nil, %v", b, want, err)
		}
		return
	case *handshake.KeyMessage:
		if err != nil || m.Type != want || (want != handshake.TypeM1 && want != handshake.TypeM2) {
			t.Fatalf("Parse(%x, %d) = key message of type %d, %v", b, want, m.Type, err)
		}
	case *handshake.SigMessage:
		if err != nil || m.Type != want || (want != handshake.TypeM3 && want != handshake.TypeM4) {
			t.Fatalf("Parse(%x, %d) = signature message of type %d, %v", b, want, m.Type, err)
		}
	case *handshake.ErrorMessage:
		if !errors.As(err, &peer) || peer.Code != m.Code {
			t.Fatalf("Parse(%x, %d) = error message %+v with %v, want its PeerError", b, want, m, err)
		}
	default:
		t.Fatalf("Parse(%x, %d) returned a %T", b, want, msg)
	}
	if _, n, err := handshake.ParseHeader(b); err != nil || len(b) != handshake.HeaderSize+n {
		t.Fatalf("Parse accepted %x but ParseHeader gives body %d, %v", b, n, err)
	}
	if got := msg.(interface{ Marshal() []byte }).Marshal(); !bytes.Equal(got, b) {
		t.Fatalf("Parse(%x, %d) is not canonical: Marshal gives %x", b, want, got)
	}
}

// FuzzServerHandshake drives a ServerHandshake with the fixed server key on
// arbitrary M1 and M4. Each step must succeed exactly when the spec says
// so: M1 a well-formed M1 with a canonical share, M2 unless the X25519
// result is zero, M4 only with the client's real signature over M1|M2|M3.
// After a failure every step must refuse to run.
func FuzzServerHandshake(f *testing.F) {
	fl := validFlow(f)
	for _, m4 := range variants(fl.m4) {
		f.Add(fl.m1, m4)
	}
	for _, m1 := range variants(fl.m1) {
		f.Add(m1, fl.m4)
	}
	for _, u := range oddShares {
		f.Add(withEphemeral(fl.m1, u), fl.m4)
	}
	f.Add(fl.m1, fl.m3)
	f.Add(fl.m4, fl.m1)
	f.Fuzz(func(t *testing.T, m1, m4 []byte) {
		s := handshake.NewServerHandshake(fuzzServerKey, serverRand())
		ok := checkServerM1(t, s, m1)
		if !ok {
			return
		}
		m2, ok := checkServerM2(t, s, m1)
		if !ok {
			return
		}
		m3, err := s.WriteM3()
		if err != nil {
			t.Fatalf("WriteM3: %v", err)
		}
		checkServerM4(t, s, flow{m1, m2, m3, m4})
	})
}

func checkServerM1(t *testing.T, s *handshake.ServerHandshake, m1 []byte) bool {
	err := s.ReadM1(m1)
	msg, perr := handshake.Parse(m1, handshake.TypeM1)
	want := perr == nil && canonical(msg.(*handshake.KeyMessage).Ephemeral)
	if (err == nil) != want {
		t.Fatalf("ReadM1(%x) = %v, want success %v", m1, err, want)
	}
	if err != nil {
		serverRefuses(t, s)
	}
	return err == nil
}

func checkServerM2(t *testing.T, s *handshake.ServerHandshake, m1 []byte) ([]byte, bool) {
	priv := ephemeralOf(t, serverRand())
	msg, _ := handshake.Parse(m1, handshake.TypeM1)
	shared := agree(priv, msg.(*handshake.KeyMessage).Ephemeral)
	m2, err := s.WriteM2()
	if (err == nil) != (shared != nil) {
		t.Fatalf("WriteM2 after M1 %x = %v, want success %v", m1, err, shared != nil)
	}
	if err != nil {
		serverRefuses(t, s)
		return nil, false
	}
	want := handshake.KeyMessage{Type: handshake.TypeM2, Identity: fuzzServerKey.Public()}
	copy(want.Ephemeral[:], priv.PublicKey().Bytes())
	if !bytes.Equal(m2, want.Marshal()) {
		t.Fatalf("WriteM2 = %x, want %x", m2, want.Marshal())
	}
	return m2, true
}

func checkServerM4(t *testing.T, s *handshake.ServerHandshake, fl flow) {
	client, _ := handshake.Parse(fl.m1, handshake.TypeM1)
	id := client.(*handshake.KeyMessage).Identity
	valid := sigValid(fl.m4, handshake.TypeM4, id, protocol.LabelClientSig, fl.m1, fl.m2, fl.m3)
	err := s.ReadM4(fl.m4)
	if (err == nil) != valid {
		t.Fatalf("ReadM4(%x) after M1 %x = %v, want success %v", fl.m4, fl.m1, err, valid)
	}
	if err != nil {
		serverRefuses(t, s)
		return
	}
	if s.Peer() != protocol.ClientID(id) {
		t.Fatalf("Peer = %v, want the M1 identity", s.Peer())
	}
	k, err := s.Keys()
	if err != nil {
		t.Fatalf("Keys: %v", err)
	}
	shared := agree(ephemeralOf(t, serverRand()), client.(*handshake.KeyMessage).Ephemeral)
	if want := scheduleKeys(t, shared, fl); *k != want {
		t.Fatal("server keys differ from the spec's key schedule")
	}
	if _, err := s.Keys(); !errors.Is(err, protocol.ErrOutOfOrder) {
		t.Fatalf("second Keys = %v, want ErrOutOfOrder", err)
	}
}

// serverRefuses checks that a failed ServerHandshake runs no further step.
func serverRefuses(t *testing.T, s *handshake.ServerHandshake) {
	t.Helper()
	if _, err := s.WriteM2(); !errors.Is(err, protocol.ErrOutOfOrder) {
		t.Fatalf("WriteM2 after failure = %v", err)
	}
	if _, err := s.WriteM3(); !errors.Is(err, protocol.ErrOutOfOrder) {
		t.Fatalf("WriteM3 after failure = %v", err)
	}
	if err := s.ReadM4(nil); !errors.Is(err, protocol.ErrOutOfOrder) {
		t.Fatalf("ReadM4 after failure = %v", err)
	}
	if k, err := s.Keys(); k != nil || !errors.Is(err, protocol.ErrOutOfOrder) {
		t.Fatalf("Keys after failure = %v, %v", k, err)
	}
}

// FuzzClientHandshake drives a ClientHandshake of the fixed client with
// arbitrary M2 and M3. M2 must be accepted exactly when it names the
// expected server key with a canonical, non-low-order share; M3 only with
// the server's real signature over M1|M2. A server error message comes
// back as its PeerError.
func FuzzClientHandshake(f *testing.F) {
	fl := validFlow(f)
	for _, m3 := range variants(fl.m3) {
		f.Add(fl.m2, m3)
	}
	for _, m2 := range variants(fl.m2) {
		f.Add(m2, fl.m3)
	}
	for _, u := range oddShares {
		f.Add(withEphemeral(fl.m2, u), fl.m3)
	}
	other := handshake.KeyMessage{Type: handshake.TypeM2, Identity: fuzzOtherKey.Public()}
	copy(other.Ephemeral[:], fl.m2[handshake.HeaderSize+protocol.PublicKeySize:])
	f.Add(other.Marshal(), fl.m3)
	f.Add((&handshake.ErrorMessage{Suite: protocol.SuiteX25519Ed25519, Code: protocol.CodeDenied}).Marshal(), fl.m3)
	f.Add(fl.m1, fl.m4)
	f.Fuzz(func(t *testing.T, m2, m3 []byte) {
		c := handshake.NewClientHandshake(fuzzClientKey, fuzzServerKey.Public(), clientRand())
		m1, err := c.WriteM1()
		if err != nil {
			t.Fatal(err)
		}
		if !checkClientM2(t, c, m2) {
			return
		}
		checkClientRest(t, c, flow{m1: m1, m2: m2, m3: m3})
	})
}

func checkClientM2(t *testing.T, c *handshake.ClientHandshake, m2 []byte) bool {
	err := c.ReadM2(m2)
	msg, perr := handshake.Parse(m2, handshake.TypeM2)
	var peer, got *protocol.PeerError
	if errors.As(perr, &peer) && (!errors.As(err, &got) || *got != *peer) {
		t.Fatalf("ReadM2(%x) = %v, want the server's %v", m2, err, peer)
	}
	want := perr == nil
	if want {
		m := msg.(*handshake.KeyMessage)
		want = m.Identity == fuzzServerKey.Public() && agree(ephemeralOf(t, clientRand()), m.Ephemeral) != nil
	}
	if (err == nil) != want {
		t.Fatalf("ReadM2(%x) = %v, want success %v", m2, err, want)
	}
	if err != nil {
		clientRefuses(t, c)
	}
	return err == nil
}

func checkClientRest(t *testing.T, c *handshake.ClientHandshake, fl flow) {
	valid := sigValid(fl.m3, handshake.TypeM3, fuzzServerKey.Public(), protocol.LabelServerSig, fl.m1, fl.m2)
	err := c.ReadM3(fl.m3)
	if (err == nil) != valid {
		t.Fatalf("ReadM3(%x) = %v, want success %v", fl.m3, err, valid)
	}
	if err != nil {
		clientRefuses(t, c)
		return
	}
	fl.m4, err = c.WriteM4()
	if err != nil {
		t.Fatalf("WriteM4: %v", err)
	}
	if !sigValid(fl.m4, handshake.TypeM4, fuzzClientKey.Public(), protocol.LabelClientSig, fl.m1, fl.m2, fl.m3) {
		t.Fatalf("WriteM4 = %x, not the client's signature over M1|M2|M3", fl.m4)
	}
	k, err := c.Keys()
	if err != nil {
		t.Fatalf("Keys: %v", err)
	}
	m2, _ := handshake.Parse(fl.m2, handshake.TypeM2)
	shared := agree(ephemeralOf(t, clientRand()), m2.(*handshake.KeyMessage).Ephemeral)
	if want := scheduleKeys(t, shared, fl); *k != want {
		t.Fatal("client keys differ from the spec's key schedule")
	}
}

// clientRefuses checks that a failed ClientHandshake runs no further step.
func clientRefuses(t *testing.T, c *handshake.ClientHandshake) {
	t.Helper()
	if err := c.ReadM3(nil); !errors.Is(err, protocol.ErrOutOfOrder) {
		t.Fatalf("ReadM3 after failure = %v", err)
	}
	if m4, err := c.WriteM4(); m4 != nil || !errors.Is(err, protocol.ErrOutOfOrder) {
		t.Fatalf("WriteM4 after failure = %x, %v", m4, err)
	}
	if k, err := c.Keys(); k != nil || !errors.Is(err, protocol.ErrOutOfOrder) {
		t.Fatalf("Keys after failure = %v, %v", k, err)
	}
}

// scriptConn is a net.Conn that reads a fixed script and swallows writes.
type scriptConn struct {
	r      *bytes.Reader
	out    bytes.Buffer
	closed bool
}

func (c *scriptConn) Read(p []byte) (int, error) {
	if c.closed {
		return 0, net.ErrClosed
	}
	return c.r.Read(p)
}

func (c *scriptConn) Write(p []byte) (int, error) {
	if c.closed {
		return 0, net.ErrClosed
	}
	return c.out.Write(p)
}

func (c *scriptConn) Close() error                     { c.closed = true; return nil }
func (c *scriptConn) LocalAddr() net.Addr              { return &net.TCPAddr{} }
func (c *scriptConn) RemoteAddr() net.Addr             { return &net.TCPAddr{} }
func (c *scriptConn) SetDeadline(time.Time) error      { return nil }
func (c *scriptConn) SetReadDeadline(time.Time) error  { return nil }
func (c *scriptConn) SetWriteDeadline(time.Time) error { return nil }

// FuzzServer runs handshake.Server over a connection that delivers the
// input stream. It must not panic, must close the connection on failure,
// and may succeed only if the stream starts with an M1 and the client's
// real M4 for it.
func FuzzServer(f *testing.F) {
	fl := validFlow(f)
	f.Add(append(bytes.Clone(fl.m1), fl.m4...))
	f.Add(append(bytes.Clone(fl.m1), fl.m4[:10]...))
	f.Add(append(bytes.Clone(fl.m1), fl.m3...))
	f.Add(append((&handshake.ErrorMessage{Suite: 2, Code: protocol.CodeBusy}).Marshal(), fl.m4...))
	f.Add(fl.m1[:3])
	f.Fuzz(func(t *testing.T, in []byte) {
		nc := &scriptConn{r: bytes.NewReader(in)}
		conn, peer, err := handshake.Server(nc, handshake.ServerConfig{Identity: fuzzServerKey, Rand: serverRand()})
		if err != nil {
			if conn != nil || !nc.closed {
				t.Fatalf("Server failed (%v) but returned a channel or left the connection open", err)
			}
			return
		}
		defer conn.Close()
		m1 := in[:handshake.KeyMessageSize]
		m4 := in[handshake.KeyMessageSize : handshake.KeyMessageSize+handshake.SigMessageSize]
		out := nc.out.Bytes()
		m2, m3 := out[:handshake.KeyMessageSize], out[handshake.KeyMessageSize:handshake.KeyMessageSize+handshake.SigMessageSize]
		msg, _ := handshake.Parse(m1, handshake.TypeM1)
		id := msg.(*handshake.KeyMessage).Identity
		if !sigValid(m4, handshake.TypeM4, id, protocol.LabelClientSig, m1, m2, m3) || peer != protocol.ClientID(id) {
			t.Fatalf("Server accepted %x as client %v", in, peer)
		}
	})
}

// FuzzClient runs handshake.Client over a connection that delivers the
// input stream (M2, M3, then the server's first frame). It must not panic,
// must close the connection on failure, and may succeed only after the
// server's real M3 and a Ready frame under the derived keys.
func FuzzClient(f *testing.F) {
	fl := validFlow(f)
	c := handshake.NewClientHandshake(fuzzClientKey, fuzzServerKey.Public(), clientRand())
	c.WriteM1()
	c.ReadM2(fl.m2)
	c.ReadM3(fl.m3)
	c.WriteM4()
	k, err := c.Keys()
	if err != nil {
		f.Fatal(err)
	}
	hs := append(bytes.Clone(fl.m2), fl.m3...)
	ready, _ := channel.NewSealer(&k.S2C).Seal(bytes.Clone(hs), channel.TypeReady, nil)
	denied, _ := channel.NewSealer(&k.S2C).Seal(bytes.Clone(hs), channel.TypeError, []byte{0, byte(protocol.CodeDenied)})
	ping, _ := channel.NewSealer(&k.S2C).Seal(bytes.Clone(hs), channel.TypePing, make([]byte, 8))
	for _, in := range [][]byte{ready, denied, ping, hs, ready[:len(ready)-1]} {
		f.Add(in)
	}
	f.Add((&handshake.ErrorMessage{Suite: protocol.SuiteX25519Ed25519, Code: protocol.CodeBusy}).Marshal())
	f.Fuzz(func(t *testing.T, in []byte) {
		nc := &scriptConn{r: bytes.NewReader(in)}
		conn, err := handshake.Client(nc, handshake.ClientConfig{
			Identity: fuzzClientKey, ServerKey: fuzzServerKey.Public(), Rand: clientRand()})
		if err != nil {
			if conn != nil || !nc.closed {
				t.Fatalf("Client failed (%v) but returned a channel or left the connection open", err)
			}
			return
		}
		defer conn.Close()
		const hsLen = handshake.KeyMessageSize + handshake.SigMessageSize
		out := nc.out.Bytes()
		fl := flow{m1: out[:handshake.KeyMessageSize], m2: in[:handshake.KeyMessageSize],
			m3: in[handshake.KeyMessageSize:hsLen], m4: out[handshake.KeyMessageSize:hsLen]}
		if !sigValid(fl.m3, handshake.TypeM3, fuzzServerKey.Public(), protocol.LabelServerSig, fl.m1, fl.m2) {
			t.Fatalf("Client accepted %x without the server's signature", in)
		}
		m2, _ := handshake.Parse(fl.m2, handshake.TypeM2)
		k := scheduleKeys(t, agree(ephemeralOf(t, clientRand()), m2.(*handshake.KeyMessage).Ephemeral), fl)
		r := channel.NewReader(bytes.NewReader(in[hsLen:]), channel.NewOpener(&k.S2C, &k.C2S, channel.ServerToClient))
		if f, err := r.Read(); err != nil || f.Type != channel.TypeReady {
			t.Fatalf("Client accepted %x without a Ready frame (%v, %v)", in, f.Type, err)
		}
	})
}
