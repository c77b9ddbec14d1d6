package vectors

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"errors"

	"github.com/commsec/communicator/protocol/channel"
)

var errMismatch = errors.New("vectors: client and server derived different keys")

type frameSpec struct {
	typ     byte
	counter uint64 // frames before this one are sealed and dropped
	body    []byte
}

// sealed returns the frame spec sealed under key.
func (g *gen) sealed(key [32]byte, f frameSpec) []byte {
	s := channel.NewSealer(&key)
	for i := uint64(0); i < f.counter; i++ {
		_, err := s.Seal(nil, channel.TypePing, make([]byte, 8))
		g.check(err)
	}
	out, err := s.Seal(nil, channel.Type(f.typ), f.body)
	g.check(err)
	return out
}

// frameCase emits frames sent in direction dir ("c2s" or "s2c"), opened
// by a receiver with key recv whose own sending key is own.
func (g *gen) frameCase(name, comment, expect, dir string, recv, own [32]byte, frames ...[]byte) *Vector {
	v := g.emit("frame-"+name, comment, "frame", expect)
	v.add("direction", dir)
	v.add("key", recv[:])
	v.add("own_key", own[:])
	for _, f := range frames {
		v.add("frame", f)
	}
	return v
}

func (g *gen) frames() {
	c2s, s2c := g.b32(), g.b32()
	body := g.bytes(40)
	send := g.sealed(c2s, frameSpec{typ: byte(channel.TypeSend), body: body})
	ok := g.frameCase("ok-send", "A Send frame, counter 0, from client to server.", "ok", "c2s", c2s, s2c, send)
	ok.add("type", int(channel.TypeSend))
	ok.add("counter", 0)
	ok.add("body", body)

	ready := g.sealed(s2c, frameSpec{typ: byte(channel.TypeReady)})
	deliver := g.sealed(s2c, frameSpec{typ: byte(channel.TypeDeliver), counter: 1, body: append(binary.BigEndian.AppendUint64(nil, 7), body...)})
	okd := g.frameCase("ok-ready-deliver", "Ready (counter 0) then a Deliver frame (counter 1) from server to client.", "ok", "s2c", s2c, c2s, ready, deliver)
	okd.add("type", int(channel.TypeDeliver))
	okd.add("counter", 1)
	okd.add("body", deliver[channel.HeaderSize:len(deliver)-32])

	n := len(send)
	g.frameCase("flip-type", "Send frame with a bit of the type flipped.", "bad_mac", "c2s", c2s, s2c, flip(send, 4))
	g.frameCase("flip-counter", "Send frame with a bit of the counter flipped.", "bad_mac", "c2s", c2s, s2c, flip(send, 12))
	g.frameCase("flip-body", "Send frame with a bit of the body flipped.", "bad_mac", "c2s", c2s, s2c, flip(send, 20))
	g.frameCase("flip-tag", "Send frame with a bit of the tag flipped.", "bad_mac", "c2s", c2s, s2c, flip(send, n-1))
	g.frameCase("flip-length-low", "Send frame whose length field is one less than the bytes that follow (opened as one complete frame; a stream reader would read one byte short and fail its MAC).", "truncated_frame", "c2s", c2s, s2c, flip(send, 3))
	big := bytes.Clone(send)
	big[0] |= 0x80
	g.frameCase("flip-length-high", "Send frame with the top bit of the length set: over the limit.", "frame_too_large", "c2s", c2s, s2c, big)
	g.frameCase("truncated", "Send frame missing its last byte.", "truncated_frame", "c2s", c2s, s2c, send[:n-1])
	short := append(binary.BigEndian.AppendUint32(nil, 40), make([]byte, 40)...)
	g.frameCase("too-short", "Length 40, one below the minimum of 41.", "frame_too_short", "c2s", c2s, s2c, short)
	g.frameCase("reflected", "The client's own frame (MAC'd under client-to-server) is sent back to it.", "reflected_frame", "s2c", s2c, c2s, send)
	ping0 := g.sealed(c2s, frameSpec{typ: byte(channel.TypePing), body: []byte("00000000")})
	ping1 := g.sealed(c2s, frameSpec{typ: byte(channel.TypePing), counter: 1, body: []byte("11111111")})
	ping2 := g.sealed(c2s, frameSpec{typ: byte(channel.TypePing), counter: 2, body: []byte("22222222")})
	g.frameCase("replayed", "Frames 0 and 1, then frame 0 again.", "replayed_frame", "c2s", c2s, s2c, ping0, ping1, ping0)
	g.frameCase("skipped", "Frame 0, then frame 2: frame 1 is missing.", "skipped_frame", "c2s", c2s, s2c, ping0, ping2)
	g.frameCase("unknown-type", "A correctly MAC'd frame of type 0x7f.", "unknown_frame_type", "c2s", c2s, s2c,
		g.sealed(c2s, frameSpec{typ: 0x7f}))
	g.frameCase("wrong-direction", "A correctly MAC'd Deliver frame sent by the client.", "unexpected_frame", "c2s", c2s, s2c,
		g.sealed(c2s, frameSpec{typ: byte(channel.TypeDeliver), body: make([]byte, 8)}))
	g.frameCase("ready-again", "Ready at counter 0, then Ready again at counter 1.", "unexpected_frame", "s2c", s2c, c2s,
		ready, g.sealed(s2c, frameSpec{typ: byte(channel.TypeReady), counter: 1}))
	g.frameCase("error-body", "An Error frame with a 3-byte body (it must be 2).", "frame_body", "c2s", c2s, s2c,
		g.sealed(c2s, frameSpec{typ: byte(channel.TypeError), body: []byte{0, 1, 2}}))
}

// laterFrames are the cases of the frames added before version 1's
// release: Groups, the SendAck statuses that name the refusal, and
// counter 2^64-1 checked first.
func (g *gen) laterFrames() {
	c2s, s2c := g.b32(), g.b32()
	ready := g.sealed(s2c, frameSpec{typ: byte(channel.TypeReady)})
	groups := append(g.bytes(16), g.bytes(16)...)
	gf := g.sealed(s2c, frameSpec{typ: byte(channel.TypeGroups), counter: 1, body: groups})
	okg := g.frameCase("ok-groups", "Ready, then a Groups frame (counter 1) naming two groups: the client's groups, sent after its bundles.", "ok", "s2c", s2c, c2s, ready, gf)
	okg.add("type", int(channel.TypeGroups))
	okg.add("counter", 1)
	okg.add("body", groups)
	g.frameCase("groups-body", "Ready, then a Groups frame whose body (17 bytes) is not a whole number of group ids.", "frame_body", "s2c", s2c, c2s,
		ready, g.sealed(s2c, frameSpec{typ: byte(channel.TypeGroups), counter: 1, body: g.bytes(17)}))
	ack := channel.AppendSendAck(nil, channel.SendAck{Group: [16]byte(g.bytes(16)), Counter: 5, Status: channel.StatusOldEpoch})
	oka := g.frameCase("ok-sendack-old-epoch", "Ready, then a SendAck (counter 1) refusing counter 5 with status 4 (old_epoch): seal it anew under a newer key.", "ok", "s2c", s2c, c2s,
		ready, g.sealed(s2c, frameSpec{typ: byte(channel.TypeSendAck), counter: 1, body: ack}))
	oka.add("type", int(channel.TypeSendAck))
	oka.add("counter", 1)
	oka.add("body", ack)
	g.frameCase("counter-exhausted", "A correctly MAC'd first frame (a Ping) with counter 2^64-1: refused as counter_exhausted before it is found skipped.", "counter_exhausted", "c2s", c2s, s2c,
		sealAt(c2s, channel.TypePing, 1<<64-1, g.bytes(8)))
}

// sealAt seals one frame at any counter, as no Sealer would.
func sealAt(key [32]byte, t channel.Type, counter uint64, body []byte) []byte {
	f := binary.BigEndian.AppendUint32(nil, uint32(1+8+len(body)+32))
	f = append(f, byte(t))
	f = binary.BigEndian.AppendUint64(f, counter)
	f = append(f, body...)
	m := hmac.New(sha256.New, key[:])
	m.Write(f)
	return m.Sum(f)
}
