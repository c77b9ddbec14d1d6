package protocol_test

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/commsec/communicator/protocol"
	"github.com/commsec/communicator/protocol/bundle"
	"github.com/commsec/communicator/protocol/channel"
	"github.com/commsec/communicator/protocol/clientstate"
	"github.com/commsec/communicator/protocol/envelope"
	"github.com/commsec/communicator/protocol/handshake"
	"github.com/commsec/communicator/protocol/keys"
)

// fixture is a completed handshake's worth of keys and a few group objects.
type fixture struct {
	client, server, other *keys.SigningKey
	keys                  channel.Keys
	m1, m2, m3, m4        []byte
	ks, otherKS           *keys.SigningKey
	alice, bob            *keys.ClientIdentity
	group                 protocol.GroupID
	groupKey              [32]byte
}

func newFixture(t *testing.T) *fixture {
	f := &fixture{client: genKey(t), server: genKey(t), other: genKey(t), ks: genKey(t), otherKS: genKey(t)}
	c := handshake.NewClientHandshake(f.client, f.server.Public(), nil)
	s := handshake.NewServerHandshake(f.server, nil)
	f.m1 = must(c.WriteM1())
	mustOK(t, s.ReadM1(f.m1))
	f.m2, f.m3 = must(s.WriteM2()), must(s.WriteM3())
	mustOK(t, c.ReadM2(f.m2))
	mustOK(t, c.ReadM3(f.m3))
	f.m4 = must(c.WriteM4())
	mustOK(t, s.ReadM4(f.m4))
	f.keys = *must(c.Keys())
	f.alice, f.bob = must(keys.GenerateClientIdentity(nil)), must(keys.GenerateClientIdentity(nil))
	f.group = protocol.GroupID{1, 2, 3}
	f.groupKey = [32]byte{9, 9, 9}
	return f
}

func genKey(t *testing.T) *keys.SigningKey { return must(keys.GenerateSigningKey(nil)) }

// c2s returns the n-th client-to-server frame of type t.
func (f *fixture) c2s(n int, t channel.Type, body []byte) []byte {
	s := channel.NewSealer(&f.keys.C2S)
	var out []byte
	for i := 0; i <= n; i++ {
		out = must(s.Seal(nil, t, body))
	}
	return out
}

// serverOpen opens frames in order at the server and returns the last error.
func (f *fixture) serverOpen(frames ...[]byte) error {
	o := channel.NewOpener(&f.keys.C2S, &f.keys.S2C, channel.ClientToServer)
	var err error
	for _, fr := range frames {
		if _, err = o.Open(fr); err != nil {
			return err
		}
	}
	return err
}

func flipBit(b []byte, i int) []byte {
	c := bytes.Clone(b)
	c[i] ^= 0x01
	return c
}

// serverM1 runs a server handshake on a crafted M1 up to M2.
func (f *fixture) serverM1(m1 []byte) error {
	s := handshake.NewServerHandshake(f.server, nil)
	if err := s.ReadM1(m1); err != nil {
		return err
	}
	_, err := s.WriteM2()
	return err
}

func (f *fixture) serverM4(m4 []byte) error {
	s := handshake.NewServerHandshake(f.server, nil)
	must(0, s.ReadM1(f.m1))
	_, _ = s.WriteM2()
	_, _ = s.WriteM3()
	return s.ReadM4(m4)
}

func (f *fixture) clientM2(m2 []byte, server [32]byte) error {
	c := handshake.NewClientHandshake(f.client, server, nil)
	_, _ = c.WriteM1()
	return c.ReadM2(m2)
}

func (f *fixture) wrap(signer *keys.SigningKey, to *keys.ClientIdentity, e protocol.Epoch) *bundle.Bundle {
	d := bundle.MemberDigest([]protocol.ClientID{f.alice.ID(), f.bob.ID()})
	return must(bundle.Wrap(signer, f.group, e, bundle.Recipient{ID: to.ID(), Wrap: to.Wrap.Public()}, &d, &f.groupKey))
}

func (f *fixture) envelope(t *testing.T, counter uint64) ([]byte, envelope.Header) {
	h := envelope.Header{Group: f.group, Epoch: 2, Sender: f.alice.ID(), Counter: counter}
	return must(envelope.Seal(nil, h, &f.groupKey, []byte("hello"), f.alice.Sig, nil)), h
}

func (f *fixture) openEnvelope(env []byte) error {
	_, _, err := envelope.Open(nil, env, &f.groupKey)
	return err
}

func TestAdversarial(t *testing.T) {
	f := newFixture(t)
	ping := f.c2s(0, channel.TypePing, []byte("01234567"))
	env, _ := f.envelope(t, 5)
	cases := []struct {
		name string
		want error
		run  func() error
	}{
		{"frame reflected to its sender", protocol.ErrReflectedFrame, func() error {
			o := channel.NewOpener(&f.keys.S2C, &f.keys.C2S, channel.ServerToClient)
			_, err := o.Open(ping)
			return err
		}},
		{"replayed frame", protocol.ErrReplayedFrame, func() error { return f.serverOpen(ping, f.c2s(1, channel.TypePing, []byte("01234567")), ping) }},
		{"skipped counter", protocol.ErrSkippedFrame, func() error { return f.serverOpen(ping, f.c2s(2, channel.TypePing, []byte("01234567"))) }},
		{"truncated frame on the wire", protocol.ErrTruncatedFrame, func() error { return readStream(f, ping[:len(ping)-5]) }},
		{"flipped bit in length", protocol.ErrTruncatedFrame, func() error { return f.serverOpen(flipBit(ping, 3)) }},
		{"flipped bit in type", protocol.ErrBadMAC, func() error { return f.serverOpen(flipBit(ping, 4)) }},
		{"flipped bit in counter", protocol.ErrBadMAC, func() error { return f.serverOpen(flipBit(ping, 12)) }},
		{"flipped bit in body", protocol.ErrBadMAC, func() error { return f.serverOpen(flipBit(ping, 14)) }},
		{"flipped bit in tag", protocol.ErrBadMAC, func() error { return f.serverOpen(flipBit(ping, len(ping)-1)) }},
		{"oversized length on the wire", protocol.ErrFrameTooLarge, func() error { return readStream(f, []byte{0x7f, 0xff, 0xff, 0xff}) }},
		{"length under the minimum", protocol.ErrFrameTooShort, func() error { return readStream(f, []byte{0, 0, 0, 3, 1, 2, 3}) }},
		{"unknown frame type", protocol.ErrUnknownFrameType, func() error { return f.serverOpen(f.c2s(0, 0x66, nil)) }},
		{"server-only frame from the client", protocol.ErrUnexpectedFrame, func() error { return f.serverOpen(f.c2s(0, channel.TypeKeyBundle, nil)) }},
		{"wrong server key", protocol.ErrWrongServerKey, func() error { return f.clientM2(f.m2, f.other.Public()) }},
		{"client signature over another transcript", protocol.ErrBadClientSignature, func() error {
			return f.serverM4(sigMsg(handshake.TypeM4, f.client.Sign([]byte("another transcript"))))
		}},
		{"client signature by another key", protocol.ErrBadClientSignature, func() error {
			return f.serverM4(sigMsg(handshake.TypeM4, f.other.Sign([]byte("x"))))
		}},
		{"all-zero DH share from the client", protocol.ErrLowOrderPoint, func() error { return f.serverM1(withShare(f.m1, make([]byte, 32))) }},
		{"all-zero DH share from the server", protocol.ErrLowOrderPoint, func() error { return f.clientM2(withShare(f.m2, make([]byte, 32)), f.server.Public()) }},
		{"malformed share", protocol.ErrNonCanonicalPoint, func() error {
			return f.serverM1(withShare(f.m1, bytes.Repeat([]byte{0xff}, 32)))
		}},
		{"unknown suite", protocol.ErrUnsupportedSuite, func() error { return f.serverM1(withHdr(f.m1, protocol.Version, 1, 9)) }},
		{"unknown version", protocol.ErrUnsupportedVersion, func() error { return f.serverM1(withHdr(f.m1, 7, 1, 1)) }},
		{"M4 before M3", protocol.ErrOutOfOrder, func() error {
			s := handshake.NewServerHandshake(f.server, nil)
			must(0, s.ReadM1(f.m1))
			_, _ = s.WriteM2()
			return s.ReadM4(f.m4)
		}},
		{"bundle signed by another key", protocol.ErrBadBundleSignature, func() error {
			ks := f.ks.Public()
			_, err := f.wrap(f.otherKS, f.alice, 1).Open(&ks, f.alice)
			return err
		}},
		{"bundle for another member", protocol.ErrWrongMember, func() error {
			ks := f.ks.Public()
			_, err := f.wrap(f.ks, f.bob, 1).Open(&ks, f.alice)
			return err
		}},
		{"bundle for an older epoch", protocol.ErrStaleEpoch, func() error {
			st := must(clientstate.Load(&clientstate.MemStore{}, clientstate.Options{MaxEpochs: 2}))
			for e := protocol.Epoch(5); e <= 7; e++ {
				mustOK(t, st.InstallKey(f.group, e, &f.groupKey))
			}
			return st.InstallKey(f.group, 4, &f.groupKey)
		}},
		{"another key for an installed epoch", protocol.ErrEpochConflict, func() error {
			st := must(clientstate.Load(&clientstate.MemStore{}, clientstate.Options{}))
			mustOK(t, st.InstallKey(f.group, 1, &f.groupKey))
			return st.InstallKey(f.group, 1, &[32]byte{1})
		}},
		{"envelope with altered group", protocol.ErrBadEnvelopeSignature, func() error { return f.openEnvelope(flipBit(env, 1)) }},
		{"envelope with altered epoch", protocol.ErrBadEnvelopeSignature, func() error { return f.openEnvelope(flipBit(env, 20)) }},
		{"envelope with altered sender", protocol.ErrBadEnvelopeSignature, func() error { return f.openEnvelope(flipBit(env, 30)) }},
		{"envelope with altered counter", protocol.ErrBadEnvelopeSignature, func() error { return f.openEnvelope(flipBit(env, 60)) }},
		{"envelope with altered ciphertext", protocol.ErrBadEnvelopeSignature, func() error {
			return f.openEnvelope(flipBit(env, len(env)-envelope.SignatureSize-1))
		}},
		{"envelope with altered signature", protocol.ErrBadEnvelopeSignature, func() error { return f.openEnvelope(flipBit(env, len(env)-1)) }},
		{"envelope in alice's name signed by bob, a member", protocol.ErrBadEnvelopeSignature, func() error {
			sig := f.bob.Sig.Sign(envelope.SignatureInput(env))
			return f.openEnvelope(append(bytes.Clone(env[:len(env)-envelope.SignatureSize]), sig[:]...))
		}},
		{"envelope sealed by bob naming alice", protocol.ErrWrongSigner, func() error {
			h, _ := envelope.ParseHeader(env)
			_, err := envelope.Seal(nil, h, &f.groupKey, []byte("hello"), f.bob.Sig, nil)
			return err
		}},
		{"envelope under another group key, signed by its sender", protocol.ErrDecrypt, func() error {
			h, _ := envelope.ParseHeader(env)
			return f.openEnvelope(must(envelope.Seal(nil, h, &[32]byte{9}, []byte("hello"), f.alice.Sig, nil)))
		}},
		{"envelope for epoch 0", protocol.ErrBadEpoch, func() error {
			zero := append([]byte(nil), env...)
			binary.BigEndian.PutUint32(zero[17:], 0)
			return f.openEnvelope(zero)
		}},
		{"envelope truncated", protocol.ErrEnvelopeLength, func() error { return f.openEnvelope(env[:envelope.Overhead-1]) }},
		{"reused counter after a simulated restart", protocol.ErrReplayedMessage, func() error { return reusedCounter(t, f) }},
		{"key file of another kind", protocol.ErrKeyFileKind, func() error {
			_, err := keys.DecodeClientIdentity(keys.EncodePublicKey(keys.KindServerPublic, f.server.Public()))
			return err
		}},
		{"private key file readable by others", protocol.ErrKeyFileMode, func() error { return worldReadableKey(t, f) }},
		{"server's first frame is not Ready", protocol.ErrNoKeyConfirmation, func() error { return fakeServer(t, f, channel.TypePing) }},
	}
	seen := map[error]bool{}
	for _, c := range cases {
		seen[c.want] = true
		t.Run(c.name, func(t *testing.T) {
			if err := c.run(); !errors.Is(err, c.want) {
				t.Fatalf("got %v, want %v", err, c.want)
			}
		})
	}
	if len(cases) < 25 || len(seen) < 20 {
		t.Fatalf("%d cases with %d distinct errors; the table must stay adversarial", len(cases), len(seen))
	}
}

func sigMsg(typ byte, sig [64]byte) []byte {
	m := handshake.SigMessage{Type: typ, Sig: sig}
	return m.Marshal()
}

func withShare(msg, share []byte) []byte {
	c := bytes.Clone(msg)
	copy(c[4+32:], share)
	return c
}

func withHdr(msg []byte, version, typ byte, suite uint16) []byte {
	c := bytes.Clone(msg)
	c[0], c[1] = version, typ
	binary.BigEndian.PutUint16(c[2:], suite)
	return c
}

// readStream feeds raw bytes to a server-side channel Reader.
func readStream(f *fixture, raw []byte) error {
	r := channel.NewReader(bytes.NewReader(raw), channel.NewOpener(&f.keys.C2S, &f.keys.S2C, channel.ClientToServer))
	_, err := r.Read()
	return err
}

// reusedCounter: a sender that restarts without its reservation reuses a
// counter; the receiver, restarted from its stored state, refuses it.
func reusedCounter(t *testing.T, f *fixture) error {
	store := &clientstate.MemStore{}
	rx := must(clientstate.Load(store, clientstate.Options{}))
	mustOK(t, rx.InstallKey(f.group, 2, &f.groupKey))
	env, h := f.envelope(t, 7)
	if err := f.openEnvelope(env); err != nil {
		return err
	}
	mustOK(t, rx.Accept(h))
	rx = must(clientstate.Load(store, clientstate.Options{})) // restart
	again, h2 := f.envelope(t, 7)                             // new nonce, same counter
	if err := f.openEnvelope(again); err != nil {
		return err
	}
	return rx.Accept(h2)
}

func worldReadableKey(t *testing.T, f *fixture) error {
	path := filepath.Join(t.TempDir(), "client.key")
	mustOK(t, keys.WriteFile(path, keys.EncodeClientIdentity(f.alice), false))
	mustOK(t, os.Chmod(path, 0o644))
	_, err := keys.ReadFile(path)
	return err
}

// fakeServer answers the handshake correctly but sends a frame of type
// first instead of Ready.
func fakeServer(t *testing.T, f *fixture, first channel.Type) error {
	ln := must(net.Listen("tcp", "127.0.0.1:0"))
	defer ln.Close()
	go func() {
		nc, err := ln.Accept()
		if err != nil {
			return
		}
		defer nc.Close()
		s := handshake.NewServerHandshake(f.server, nil)
		var m1 [handshake.KeyMessageSize]byte
		io.ReadFull(nc, m1[:])
		s.ReadM1(m1[:])
		m2, _ := s.WriteM2()
		m3, _ := s.WriteM3()
		nc.Write(append(m2, m3...))
		var m4 [handshake.SigMessageSize]byte
		io.ReadFull(nc, m4[:])
		if s.ReadM4(m4[:]) != nil {
			return
		}
		conn := channel.New(nc, must(s.Keys()), channel.ServerSide)
		conn.WriteFrame(first, []byte("01234567"))
		io.Copy(io.Discard, nc)
	}()
	nc := must(net.Dial("tcp", ln.Addr().String()))
	_, err := handshake.Client(nc, handshake.ClientConfig{Identity: f.client, ServerKey: f.server.Public(), Timeout: 5 * time.Second})
	return err
}
