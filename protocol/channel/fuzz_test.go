package channel_test

// Fuzz targets for the frame decoders. The frame rules (which direction may
// send which type, fixed body sizes) are written out again from the spec in
// the package comment, so a change to either side shows.

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"io"
	"testing"

	"github.com/commsec/communicator/protocol"
	"github.com/commsec/communicator/protocol/channel"
)

// Fixed direction keys.
var (
	keyC2S = [32]byte{0xc2, 0x5}
	keyS2C = [32]byte{0x5c, 0x2}
)

// sideKeys returns the keys of the side that opens frames: the key the
// peer seals with, and its own sending key.
func sideKeys(server bool) (peer, own *[32]byte, dir channel.Direction) {
	if server {
		return &keyC2S, &keyS2C, channel.ClientToServer
	}
	return &keyS2C, &keyC2S, channel.ServerToClient
}

func newOpener(server bool) *channel.Opener {
	peer, own, dir := sideKeys(server)
	return channel.NewOpener(peer, own, dir)
}

// rule is what the spec allows for a frame type: the direction that may
// send it (0 for both) and its body size (-1 for any, -8 for at least 8;
// Groups: a whole number of group ids, checked in allowed).
type rule struct {
	dir  channel.Direction
	size int
}

var rules = map[channel.Type]rule{
	channel.TypeReady:      {channel.ServerToClient, 0},
	channel.TypeError:      {0, 2},
	channel.TypePing:       {0, 8},
	channel.TypePong:       {0, 8},
	channel.TypeClose:      {0, 0},
	channel.TypeKeyBundle:  {channel.ServerToClient, -1},
	channel.TypeSend:       {channel.ClientToServer, -1},
	channel.TypeSendAck:    {channel.ServerToClient, 26},
	channel.TypeDeliver:    {channel.ServerToClient, -8},
	channel.TypeDeliverAck: {channel.ClientToServer, 8},
	channel.TypeGroups:     {channel.ServerToClient, -1},
}

// allowed reports whether the spec lets frame f arrive in direction dir.
func allowed(f channel.Frame, dir channel.Direction) bool {
	r, ok := rules[f.Type]
	switch {
	case !ok, r.dir != 0 && r.dir != dir:
		return false
	case f.Type == channel.TypeReady && f.Counter != 0:
		return false
	case f.Type == channel.TypeGroups:
		return len(f.Body)%protocol.GroupIDSize == 0
	case r.size >= 0:
		return len(f.Body) == r.size
	case r.size < -1:
		return len(f.Body) >= -r.size
	}
	return true
}

// seedFrames returns the frames a side's peer may send, as one stream.
func seedFrames(tb testing.TB, server bool) [][]byte {
	peer, _, dir := sideKeys(server)
	s := channel.NewSealer(peer)
	var frames [][]byte
	seal := func(t channel.Type, body []byte) {
		fr, err := s.Seal(nil, t, body)
		if err != nil {
			tb.Fatal(err)
		}
		frames = append(frames, fr)
	}
	if dir == channel.ServerToClient {
		seal(channel.TypeReady, nil)
		seal(channel.TypeKeyBundle, bytes.Repeat([]byte{0xb}, 229))
		seal(channel.TypeSendAck, channel.AppendSendAck(nil, channel.SendAck{Counter: 7, Status: channel.StatusRefused}))
		seal(channel.TypeDeliver, channel.AppendDeliver(nil, 3, []byte("envelope")))
		seal(channel.TypeGroups, bytes.Repeat([]byte{0x9}, 2*protocol.GroupIDSize))
	} else {
		seal(channel.TypeSend, []byte("envelope"))
		seal(channel.TypeDeliverAck, make([]byte, 8))
	}
	seal(channel.TypePing, []byte("12345678"))
	seal(channel.TypePong, []byte("12345678"))
	seal(channel.TypeError, []byte{0, 1})
	seal(channel.TypeClose, nil)
	return frames
}

// variants returns b and damaged copies: truncated, extended, bit-flipped.
func variants(b []byte) [][]byte {
	out := [][]byte{b}
	if len(b) > 0 {
		out = append(out, b[:len(b)-1], b[:len(b)/2])
	}
	out = append(out, append(bytes.Clone(b), 0))
	for _, i := range []int{0, 3, 4, 5, 12, len(b) / 2, len(b) - 1} {
		if i >= 0 && i < len(b) {
			c := bytes.Clone(b)
			c[i] ^= 0x80
			out = append(out, c)
		}
	}
	return out
}

// Mode bits of the fuzz targets.
const (
	modeServer = 1 << iota // open as the server (frames sent client to server)
	modeRemac              // recompute the tag(s) with the peer's key first
	modeOwnMAC             // with modeRemac: use this side's own key (a reflection)
)

// remac rewrites the tag of every complete frame in stream with key, so
// the fuzzer can reach the checks behind the MAC.
func remac(stream []byte, key *[32]byte) []byte {
	out := bytes.Clone(stream)
	for b := out; len(b) >= channel.LengthSize; {
		n := channel.LengthSize + int(binary.BigEndian.Uint32(b))
		if n < channel.Overhead || n > len(b) {
			break
		}
		m := hmac.New(sha256.New, key[:])
		m.Write(b[:n-protocol.MACSize])
		copy(b[n-protocol.MACSize:n], m.Sum(nil))
		b = b[n:]
	}
	return out
}

// lengthOK reports whether frame's length field is within the limits and
// matches its size.
func lengthOK(frame []byte) bool {
	if len(frame) < channel.LengthSize {
		return false
	}
	n := binary.BigEndian.Uint32(frame)
	return n >= channel.MinLength && n <= channel.MaxLength && uint64(len(frame)) == channel.LengthSize+uint64(n)
}

// FuzzOpen opens arbitrary bytes as the first frame of a fresh Opener. It
// must not panic; a failure returns no frame and wipes the Opener; a frame
// MAC'd under the side's own key is reported as reflected; an accepted
// frame obeys the spec's rules and is exactly what a Sealer makes of its
// type and body at its counter, and the same frame again is a replay.
func FuzzOpen(f *testing.F) {
	for _, server := range []bool{false, true} {
		mode := byte(0)
		if server {
			mode = modeServer
		}
		for _, fr := range seedFrames(f, server) {
			for _, v := range variants(fr) {
				f.Add(v, mode)
				f.Add(v, mode|modeRemac)
			}
			f.Add(fr, mode|modeRemac|modeOwnMAC)
		}
	}
	f.Fuzz(func(t *testing.T, frame []byte, mode byte) {
		server := mode&modeServer != 0
		peer, own, dir := sideKeys(server)
		if mode&modeRemac != 0 {
			key := peer
			if mode&modeOwnMAC != 0 {
				key = own
			}
			frame = remac(frame, key)
		}
		o := newOpener(server)
		fr, err := o.Open(frame)
		if err != nil {
			checkOpenFailure(t, o, frame, fr, err, mode)
			return
		}
		if fr.Counter != 0 || !allowed(fr, dir) || len(frame) != channel.Overhead+len(fr.Body) {
			t.Fatalf("Open(%x) as %v accepted a %v frame, counter %d, body %d bytes", frame, dir, fr.Type, fr.Counter, len(fr.Body))
		}
		again, err := channel.NewSealer(peer).Seal(nil, fr.Type, fr.Body)
		if err != nil || !bytes.Equal(again, frame) {
			t.Fatalf("Open(%x) accepted a frame the Sealer makes as %x, %v", frame, again, err)
		}
		if _, err := o.Open(frame); !errors.Is(err, protocol.ErrReplayedFrame) {
			t.Fatalf("the same frame again: %v, want ErrReplayedFrame", err)
		}
	})
}

func checkOpenFailure(t *testing.T, o *channel.Opener, frame []byte, fr channel.Frame, err error, mode byte) {
	t.Helper()
	if fr.Type != 0 || fr.Counter != 0 || fr.Body != nil {
		t.Fatalf("Open(%x) failed (%v) but returned %+v", frame, err, fr)
	}
	if mode&modeOwnMAC != 0 && mode&modeRemac != 0 && lengthOK(frame) && !errors.Is(err, protocol.ErrReflectedFrame) {
		t.Fatalf("Open(%x) of a frame MAC'd by this side = %v, want ErrReflectedFrame", frame, err)
	}
	if _, err := o.Open(frame); !errors.Is(err, protocol.ErrChannelClosed) {
		t.Fatalf("Open after a failure = %v, want ErrChannelClosed", err)
	}
}

// capReader fails the test if the Reader ever hands it a buffer larger
// than the largest frame: the length must be checked before allocating.
type capReader struct {
	t *testing.T
	r io.Reader
}

func (c capReader) Read(p []byte) (int, error) {
	if cap(p) > channel.LengthSize+channel.MaxLength {
		c.t.Fatalf("Reader allocated a %d-byte buffer", cap(p))
	}
	return c.r.Read(p)
}

// FuzzReader reads frames from an arbitrary stream. It must not panic or
// allocate past the limits; it returns frames in order, each the exact
// bytes a Sealer makes at its counter; it fails with the error the spec
// gives the first bad frame (framing errors before any cryptography) and
// keeps failing after it.
func FuzzReader(f *testing.F) {
	for _, server := range []bool{false, true} {
		mode := byte(0)
		if server {
			mode = modeServer
		}
		frames := seedFrames(f, server)
		stream := bytes.Join(frames, nil)
		for _, v := range variants(stream) {
			f.Add(v, mode)
			f.Add(v, mode|modeRemac)
		}
		f.Add(bytes.Join(frames[1:], nil), mode)
		f.Add(append(bytes.Clone(frames[0]), frames[0]...), mode)
		f.Add(append(bytes.Clone(frames[0]), 0xff, 0xff, 0xff, 0xff), mode)
		f.Add(append(bytes.Clone(frames[0]), 0, 0, 0, 1), mode)
	}
	f.Fuzz(func(t *testing.T, stream []byte, mode byte) {
		server := mode&modeServer != 0
		peer, own, _ := sideKeys(server)
		if mode&modeRemac != 0 {
			key := peer
			if mode&modeOwnMAC != 0 {
				key = own
			}
			stream = remac(stream, key)
		}
		r := channel.NewReader(capReader{t, bytes.NewReader(stream)}, newOpener(server))
		s := channel.NewSealer(peer)
		off := 0
		var err error
		for i := uint64(0); ; i++ {
			if off > len(stream) {
				t.Fatalf("Reader returned more than the stream holds")
			}
			var fr channel.Frame
			if fr, err = r.Read(); err != nil {
				break
			}
			want, _ := s.Seal(nil, fr.Type, fr.Body)
			if fr.Counter != i || !bytes.Equal(want, stream[off:min(off+len(want), len(stream))]) {
				t.Fatalf("frame %d at offset %d (%v, counter %d) is not what the Sealer makes", i, off, fr.Type, fr.Counter)
			}
			off += len(want)
		}
		checkReadError(t, err, stream[off:], mode)
		if _, err2 := r.Read(); err2 == nil {
			t.Fatalf("Read after %v succeeded", err)
		}
	})
}

// checkReadError checks the error the Reader gave for the stream left
// after its last frame.
func checkReadError(t *testing.T, err error, rest []byte, mode byte) {
	t.Helper()
	if want := framingError(rest); want != nil {
		if !errors.Is(err, want) {
			t.Fatalf("Read of %x = %v, want %v", rest, err, want)
		}
		return
	}
	if mode&modeRemac != 0 && mode&modeOwnMAC != 0 {
		if !errors.Is(err, protocol.ErrReflectedFrame) {
			t.Fatalf("Read of a frame MAC'd by this side = %v, want ErrReflectedFrame", err)
		}
		return
	}
	for _, want := range []error{protocol.ErrBadMAC, protocol.ErrReflectedFrame, protocol.ErrReplayedFrame,
		protocol.ErrSkippedFrame, protocol.ErrCounterExhausted, protocol.ErrUnknownFrameType,
		protocol.ErrUnexpectedFrame, protocol.ErrFrameBody} {
		if errors.Is(err, want) {
			return
		}
	}
	t.Fatalf("Read of a complete frame %x = %v, want a MAC, counter or type error", rest, err)
}

// framingError is the error the spec gives a stream that starts with rest,
// or nil if rest starts with a complete frame of acceptable length.
func framingError(rest []byte) error {
	switch {
	case len(rest) == 0:
		return io.EOF
	case len(rest) < channel.LengthSize:
		return protocol.ErrTruncatedFrame
	}
	n := binary.BigEndian.Uint32(rest)
	switch {
	case n < channel.MinLength:
		return protocol.ErrFrameTooShort
	case n > channel.MaxLength:
		return protocol.ErrFrameTooLarge
	case uint64(len(rest)) < channel.LengthSize+uint64(n):
		return protocol.ErrTruncatedFrame
	}
	return nil
}

// FuzzParseBody checks the frame body parsers: each accepts exactly its
// documented size and its Append function gives the input back.
func FuzzParseBody(f *testing.F) {
	f.Add(channel.AppendSendAck(nil, channel.SendAck{Group: protocol.GroupID{1}, Counter: 9, Status: 1}))
	f.Add(channel.AppendDeliver(nil, 42, []byte("envelope")))
	f.Add([]byte{0, 5})
	f.Add([]byte{})
	f.Add(make([]byte, 7))
	f.Fuzz(func(t *testing.T, b []byte) {
		if a, err := channel.ParseSendAck(b); err == nil {
			if got := channel.AppendSendAck(nil, a); !bytes.Equal(got, b) {
				t.Fatalf("ParseSendAck(%x) then Append gives %x", b, got)
			}
		} else if len(b) == channel.SendAckBodySize || a != (channel.SendAck{}) {
			t.Fatalf("ParseSendAck(%x) = %+v, %v", b, a, err)
		}
		if c, env, err := channel.ParseDeliver(b); err == nil {
			if got := channel.AppendDeliver(nil, c, env); !bytes.Equal(got, b) {
				t.Fatalf("ParseDeliver(%x) then Append gives %x", b, got)
			}
		} else if len(b) >= channel.CursorSize || env != nil {
			t.Fatalf("ParseDeliver(%x) = %d, %x, %v", b, c, env, err)
		}
		if v, err := channel.ParseUint64(b); (err == nil) != (len(b) == 8) ||
			err == nil && !bytes.Equal(binary.BigEndian.AppendUint64(nil, v), b) {
			t.Fatalf("ParseUint64(%x) = %d, %v", b, v, err)
		}
		if c, err := channel.ParseError(b); (err == nil) != (len(b) == channel.ErrorBodySize) ||
			err == nil && !bytes.Equal(binary.BigEndian.AppendUint16(nil, uint16(c)), b) {
			t.Fatalf("ParseError(%x) = %v, %v", b, c, err)
		}
	})
}
