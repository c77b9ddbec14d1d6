package vectors

import (
	"github.com/commsec/communicator/protocol"
	"github.com/commsec/communicator/protocol/handshake"
)

// Low-order and non-canonical X25519 values used by the bad cases.
var (
	zeroPoint    = make([]byte, 32)                                                            // u = 0
	order8Point  = mustHex("e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b800") // a point of order 8
	uEqualsP     = mustHex("edffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f") // u = 2^255-19
	highBitPoint = mustHex("0900000000000000000000000000000000000000000000000000000000000080") // u = 9 with bit 255 set
)

func (g *gen) handshakes() {
	c, s, other := g.party(), g.party(), g.party()
	t := g.honest(c, s)
	g.handshakeOK(c, s, t)
	g.clientSideBad(c, s, other, t)
	g.serverSideBad(c, s, other, t)
}

func (g *gen) handshakeOK(c, s party, t transcript) {
	v := g.emit("handshake-ok", "A complete handshake: static and ephemeral keys, M1..M4, the X25519 result, the transcript hashes, both channel keys and the first frame each way.", "handshake", "ok")
	cp, sp := c.key.Public(), s.key.Public()
	v.add("client_seed", c.seed[:])
	v.add("client_public", cp[:])
	v.add("client_ephemeral", c.eph[:])
	v.add("server_seed", s.seed[:])
	v.add("server_public", sp[:])
	v.add("server_ephemeral", s.eph[:])
	v.add("m1", t.m1)
	v.add("m2", t.m2)
	v.add("m3", t.m3)
	v.add("m4", t.m4)
	v.add("shared_secret", x25519(c.eph, t.m2[36:68]))
	v.add("th2", hashOf(t.m1, t.m2))
	v.add("th3", hashOf(t.m1, t.m2, t.m3))
	v.add("th4", hashOf(t.m1, t.m2, t.m3, t.m4))
	v.add("key_c2s", t.kc[0][:])
	v.add("key_s2c", t.kc[1][:])
	if t.kc != t.ks {
		g.check(errMismatch)
	}
	v.add("frame_s2c_0", g.sealed(t.ks[1], frameSpec{typ: 0x10})) // Ready
	v.add("frame_c2s_0", g.sealed(t.kc[0], frameSpec{typ: 0x12, body: []byte("ping0001")}))
}

// clientBad emits a case the client must refuse. The client runs with its
// own keys and expects serverPublic; it reads m2 and m3 from the file.
func (g *gen) clientBad(name, comment, expect string, c party, serverPublic [32]byte, t transcript, m2, m3 []byte) {
	v := g.emit("handshake-client-"+name, comment, "handshake", expect)
	v.add("side", "client")
	v.add("client_seed", c.seed[:])
	v.add("client_ephemeral", c.eph[:])
	v.add("server_public", serverPublic[:])
	v.add("m1", t.m1)
	v.add("m2", m2)
	v.add("m3", m3)
}

func (g *gen) clientSideBad(c, s, other party, t transcript) {
	sp := s.key.Public()
	impostor := g.honest(c, other)
	g.clientBad("wrong-server-key", "M2 and M3 come from a server with another identity key than the client expects.",
		"wrong_server_key", c, sp, t, impostor.m2, impostor.m3)
	wrongTh := hashOf([]byte("another transcript"))
	forged := sigMessage(handshake.TypeM3, s.key.Sign(signedInput(protocol.LabelServerSig, wrongTh)))
	g.clientBad("server-sig-other-transcript", "M3 is the right server's signature, but over another transcript hash.",
		"bad_server_signature", c, sp, t, t.m2, forged)
	g.clientBad("server-sig-flipped", "M3's signature has one bit flipped.",
		"bad_server_signature", c, sp, t, t.m2, flip(t.m3, 10))
	clientLabel := sigMessage(handshake.TypeM3, s.key.Sign(signedInput(protocol.LabelClientSig, hashOf(t.m1, t.m2))))
	g.clientBad("server-sig-wrong-label", "M3 signs the right transcript hash under the client's label (no domain separation would accept it).",
		"bad_server_signature", c, sp, t, t.m2, clientLabel)
	g.clientBad("zero-share", "M2 carries the all-zero X25519 share: the X25519 result is all zero.",
		"low_order_point", c, sp, t, withEphemeral(t.m2, zeroPoint), t.m3)
	g.clientBad("order8-share", "M2 carries a share of order 8: the X25519 result is all zero.",
		"low_order_point", c, sp, t, withEphemeral(t.m2, order8Point), t.m3)
	g.clientBad("high-bit-share", "M2's share has bit 255 set: not a canonical encoding.",
		"noncanonical_point", c, sp, t, withEphemeral(t.m2, highBitPoint), t.m3)
	g.clientBad("version", "M2 says protocol version 1, the unreleased version.",
		"unsupported_version", c, sp, t, withHeader(t.m2, 1, handshake.TypeM2, 1), t.m3)
	g.clientBad("suite", "M2 says suite 2.",
		"unsupported_suite", c, sp, t, withHeader(t.m2, protocol.Version, handshake.TypeM2, 2), t.m3)
	g.clientBad("m3-first", "The server sends M3 where M2 belongs.",
		"unexpected_message", c, sp, t, t.m3, t.m2)
	g.clientBad("m2-truncated", "M2 is one byte short.",
		"message_length", c, sp, t, t.m2[:len(t.m2)-1], t.m3)
	busy := handshake.ErrorMessage{Suite: protocol.SuiteX25519Ed25519, Code: protocol.CodeBusy}
	g.clientBad("busy", "The server answers M1 with an error message, code 3 (busy).",
		"peer_busy", c, sp, t, busy.Marshal(), nil)
}

// serverBad emits a case the server must refuse: it reads m1 and m4 from
// the file and writes M2 and M3 with its own keys.
func (g *gen) serverBad(name, comment, expect string, s party, m1, m4 []byte) {
	v := g.emit("handshake-server-"+name, comment, "handshake", expect)
	v.add("side", "server")
	v.add("server_seed", s.seed[:])
	v.add("server_ephemeral", s.eph[:])
	v.add("m1", m1)
	v.add("m4", m4)
}

func (g *gen) serverSideBad(c, s, other party, t transcript) {
	th3 := hashOf(t.m1, t.m2, t.m3)
	otherTh := sigMessage(handshake.TypeM4, c.key.Sign(signedInput(protocol.LabelClientSig, hashOf([]byte("another transcript")))))
	g.serverBad("client-sig-other-transcript", "M4 is the client's signature over another transcript hash.",
		"bad_client_signature", s, t.m1, otherTh)
	otherKey := sigMessage(handshake.TypeM4, other.key.Sign(signedInput(protocol.LabelClientSig, th3)))
	g.serverBad("client-sig-other-key", "M4 signs the right transcript, but with another key than the identity in M1.",
		"bad_client_signature", s, t.m1, otherKey)
	serverLabel := sigMessage(handshake.TypeM4, c.key.Sign(signedInput(protocol.LabelServerSig, th3)))
	g.serverBad("client-sig-wrong-label", "M4 signs the right transcript under the server's label.",
		"bad_client_signature", s, t.m1, serverLabel)
	g.serverBad("version", "M1 says protocol version 0.", "unsupported_version", s, withHeader(t.m1, 0, handshake.TypeM1, 1), t.m4)
	g.serverBad("suite", "M1 says suite 3.", "unsupported_suite", s, withHeader(t.m1, protocol.Version, handshake.TypeM1, 3), t.m4)
	g.serverBad("p-share", "M1's share is u = 2^255-19: not canonical.", "noncanonical_point", s, withEphemeral(t.m1, uEqualsP), t.m4)
	g.serverBad("zero-share", "M1's share is all zero: the X25519 result is all zero.", "low_order_point", s, withEphemeral(t.m1, zeroPoint), t.m4)
	g.serverBad("type", "M1 says type 2 (M2).", "unexpected_message", s, withHeader(t.m1, protocol.Version, handshake.TypeM2, 1), t.m4)
	g.serverBad("m1-long", "M1 has one byte too many.", "message_length", s, append(t.m1[:len(t.m1):len(t.m1)], 0), t.m4)
	g.serverBad("m4-truncated", "M4 is one byte short.", "message_length", s, t.m1, t.m4[:len(t.m4)-1])
}
