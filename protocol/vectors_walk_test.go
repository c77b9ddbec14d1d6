package protocol_test

import (
	"bytes"
	"crypto/ecdh"
	"strconv"
	"testing"

	"github.com/commsec/communicator/protocol"
	"github.com/commsec/communicator/protocol/bundle"
	"github.com/commsec/communicator/protocol/channel"
	"github.com/commsec/communicator/protocol/envelope"
	"github.com/commsec/communicator/protocol/handshake"
	"github.com/commsec/communicator/protocol/keys"
	"github.com/commsec/communicator/protocol/replay"
)

func walkHandshake(t *testing.T, r *vectorReader) error {
	switch r.v.Get("side") {
	case "client":
		return walkClientSide(r)
	case "server":
		return walkServerSide(r)
	}
	walkFullHandshake(t, r)
	return nil
}

func signingKey(r *vectorReader, name string) *keys.SigningKey {
	seed := r.b32(name)
	return keys.NewSigningKey(&seed)
}

func walkClientSide(r *vectorReader) error {
	c := handshake.NewClientHandshake(signingKey(r, "client_seed"), r.b32("server_public"), bytes.NewReader(r.bytes("client_ephemeral")))
	m1, err := c.WriteM1()
	if err != nil {
		return err
	}
	r.equal("m1", m1)
	if err := c.ReadM2(r.bytes("m2")); err != nil {
		return err
	}
	if err := c.ReadM3(r.bytes("m3")); err != nil {
		return err
	}
	_, err = c.WriteM4()
	return err
}

func walkServerSide(r *vectorReader) error {
	s := handshake.NewServerHandshake(signingKey(r, "server_seed"), bytes.NewReader(r.bytes("server_ephemeral")))
	if err := s.ReadM1(r.bytes("m1")); err != nil {
		return err
	}
	if _, err := s.WriteM2(); err != nil {
		return err
	}
	if _, err := s.WriteM3(); err != nil {
		return err
	}
	return s.ReadM4(r.bytes("m4"))
}

// walkFullHandshake runs both state machines from the file's keys and
// checks every message, intermediate value, key and first frame.
func walkFullHandshake(t *testing.T, r *vectorReader) {
	ck, sk := signingKey(r, "client_seed"), signingKey(r, "server_seed")
	cp, sp := ck.Public(), sk.Public()
	r.equal("client_public", cp[:])
	r.equal("server_public", sp[:])
	c := handshake.NewClientHandshake(ck, sp, bytes.NewReader(r.bytes("client_ephemeral")))
	s := handshake.NewServerHandshake(sk, bytes.NewReader(r.bytes("server_ephemeral")))
	m1 := must(c.WriteM1())
	r.equal("m1", m1)
	mustOK(t, s.ReadM1(m1))
	m2, m3 := must(s.WriteM2()), must(s.WriteM3())
	r.equal("m2", m2)
	r.equal("m3", m3)
	mustOK(t, c.ReadM2(m2))
	mustOK(t, c.ReadM3(m3))
	m4 := must(c.WriteM4())
	r.equal("m4", m4)
	mustOK(t, s.ReadM4(m4))

	eph := r.bytes("client_ephemeral")
	priv, _ := ecdh.X25519().NewPrivateKey(eph)
	pub, _ := ecdh.X25519().NewPublicKey(m2[36:68])
	shared := must(priv.ECDH(pub))
	r.equal("shared_secret", shared)
	r.equal("th2", hashAll(m1, m2))
	r.equal("th3", hashAll(m1, m2, m3))
	th4 := hashAll(m1, m2, m3, m4)
	r.equal("th4", th4)
	c2s, s2c := independentKeys(t, shared, th4)
	r.equal("key_c2s", c2s)
	r.equal("key_s2c", s2c)

	kc, ks := must(c.Keys()), must(s.Keys())
	r.equal("key_c2s", kc.C2S[:])
	r.equal("key_s2c", ks.S2C[:])
	ready := must(channel.NewOpener(&kc.S2C, &kc.C2S, channel.ServerToClient).Open(r.bytes("frame_s2c_0")))
	if ready.Type != channel.TypeReady || ready.Counter != 0 {
		t.Fatalf("frame_s2c_0 is %v at %d, want ready at 0", ready.Type, ready.Counter)
	}
	must(channel.NewOpener(&ks.C2S, &ks.S2C, channel.ClientToServer).Open(r.bytes("frame_c2s_0")))
}

func walkFrame(t *testing.T, r *vectorReader) error {
	key, own := r.b32("key"), r.b32("own_key")
	dir := channel.ClientToServer
	if r.v.Get("direction") == "s2c" {
		dir = channel.ServerToClient
	}
	o := channel.NewOpener(&key, &own, dir)
	frames, err := r.v.AllBytes("frame")
	if err != nil || len(frames) == 0 {
		t.Fatalf("frames: %v", err)
	}
	var f channel.Frame
	for i, fr := range frames {
		if f, err = o.Open(fr); err != nil {
			if i != len(frames)-1 {
				t.Fatalf("frame %d of %d failed: %v", i, len(frames), err)
			}
			return err
		}
	}
	if r.v.Has("type") {
		if f.Type != channel.Type(r.uint("type")) || f.Counter != r.uint("counter") {
			t.Fatalf("opened type %d counter %d, file says %s %s", f.Type, f.Counter, r.v.Get("type"), r.v.Get("counter"))
		}
		r.equal("body", f.Body)
	}
	return nil
}

func walkEnvelope(t *testing.T, r *vectorReader) error {
	key, env := r.b32("key"), r.bytes("envelope")
	h, payload, err := envelope.Open(nil, env, &key)
	if err != nil {
		return err
	}
	r.equal("payload", payload)
	if r.v.Has("nonce") {
		r.equal("group", h.Group[:])
		r.equal("sender", h.Sender[:])
		if uint64(h.Epoch) != r.uint("epoch") || h.Counter != r.uint("counter") {
			t.Fatalf("opened epoch %d counter %d, file says %s %s", h.Epoch, h.Counter, r.v.Get("epoch"), r.v.Get("counter"))
		}
		r.equal("signed", envelope.SignatureInput(env))
		resealed := must(envelope.Seal(nil, h, &key, payload, signingKey(r, "sender_seed"), bytes.NewReader(r.bytes("nonce"))))
		r.equal("envelope", resealed)
	}
	return nil
}

func walkBundle(t *testing.T, r *vectorReader) error {
	b, err := bundle.Parse(r.bytes("bundle"))
	if err != nil {
		return err
	}
	r.equal("bundle", b.Marshal())
	scalar := r.b32("member_wrap_scalar")
	wrap := must(keys.NewWrapKey(&scalar))
	self := &keys.ClientIdentity{Sig: signingKey(r, "member_seed"), Wrap: wrap}
	ks := r.b32("keyserver_public")
	key, err := b.Open(&ks, self)
	if err != nil {
		return err
	}
	r.equal("group_key", key[:])
	r.equal("group", b.Group[:])
	list := r.bytes("member_list")
	var ids []protocol.ClientID
	for i := 0; i+32 <= len(list); i += 32 {
		ids = append(ids, protocol.ClientID(list[i:i+32]))
	}
	d := bundle.MemberDigest(ids)
	r.equal("members_digest", d[:])
	r.equal("members_digest", b.Members[:])
	return nil
}

func walkKeyfile(t *testing.T, r *vectorReader) error {
	kind, body, err := keys.Decode(r.bytes("file"))
	if err != nil {
		return err
	}
	if uint64(kind) != r.uint("key_kind") {
		t.Fatalf("kind %d, file says %s", kind, r.v.Get("key_kind"))
	}
	r.equal("body", body)
	r.equal("file", keys.Encode(kind, body))
	return nil
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

func mustOK(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// walkWindow offers the counters to an empty replay window in order, each
// with the verdict the file gives it (a fresh one is then accepted), and
// checks the window's top and stored forms at the end.
func walkWindow(t *testing.T, r *vectorReader) error {
	var w replay.Window
	var counter uint64
	steps := 0
	for _, f := range r.v.Fields {
		switch f.Name {
		case "counter":
			c, err := strconv.ParseUint(f.Value, 10, 64)
			if err != nil {
				t.Fatalf("counter %q: %v", f.Value, err)
			}
			counter = c
		case "verdict":
			steps++
			got := w.Check(counter)
			if got.String() != f.Value {
				t.Fatalf("step %d: counter %d is %v, the file says %s", steps, counter, got, f.Value)
			}
			if got == replay.Fresh {
				w.Accept(counter)
			}
		}
	}
	if steps == 0 {
		t.Fatal("no steps")
	}
	if w.Top != r.uint("top") {
		t.Fatalf("top %d, file says %d", w.Top, r.uint("top"))
	}
	r.equal("binary", w.AppendBinary(nil))
	if w.String() != r.v.Get("text") {
		t.Fatalf("text form %s, file says %s", w.String(), r.v.Get("text"))
	}
	parsed, n, err := replay.ParseBinary(r.bytes("binary"))
	if err != nil || n != len(r.bytes("binary")) || parsed != w {
		t.Fatalf("the binary form parses to %v (%d bytes, %v)", parsed, n, err)
	}
	if parsed, err := replay.ParseText(r.v.Get("text")); err != nil || parsed != w {
		t.Fatalf("the text form parses to %v (%v)", parsed, err)
	}
	return nil
}
