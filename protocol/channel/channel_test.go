package channel_test

import (
	"bytes"
	"errors"
	"net"
	"runtime"
	"testing"

	"github.com/commsec/communicator/protocol"
	"github.com/commsec/communicator/protocol/channel"
)

func pair(t *testing.T) (client, server *channel.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	acc := make(chan net.Conn, 1)
	go func() { c, _ := ln.Accept(); acc <- c }()
	cn, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	sn := <-acc
	k1 := channel.Keys{C2S: [32]byte{1}, S2C: [32]byte{2}}
	k2 := k1
	client, server = channel.New(cn, &k1, channel.ClientSide), channel.New(sn, &k2, channel.ServerSide)
	if k1 != (channel.Keys{}) {
		t.Fatal("New did not wipe the keys it was given")
	}
	t.Cleanup(func() { client.Close(); server.Close() })
	return client, server
}

func TestFramesBothWays(t *testing.T) {
	c, s := pair(t)
	big := bytes.Repeat([]byte{7}, protocol.MaxFrameBody)
	go func() {
		for i := 0; i < 3; i++ {
			c.WriteFrame(channel.TypeSend, big[:i*1000])
		}
		c.WriteFrame(channel.TypeSend, big)
	}()
	for i := 0; i < 4; i++ {
		f, err := s.ReadFrame()
		if err != nil {
			t.Fatalf("frame %d: %v", i, err)
		}
		want := i * 1000
		if i == 3 {
			want = len(big)
		}
		if f.Type != channel.TypeSend || f.Counter != uint64(i) || len(f.Body) != want {
			t.Fatalf("frame %d: %v counter %d body %d", i, f.Type, f.Counter, len(f.Body))
		}
	}
	if err := s.WriteFrame(channel.TypeReady, nil); err != nil {
		t.Fatal(err)
	}
	if f, err := c.ReadFrame(); err != nil || f.Type != channel.TypeReady {
		t.Fatalf("client read %v %v", f.Type, err)
	}
}

func TestBodyTooLarge(t *testing.T) {
	c, _ := pair(t)
	if err := c.WriteFrame(channel.TypeSend, make([]byte, protocol.MaxFrameBody+1)); !errors.Is(err, protocol.ErrBodyTooLarge) {
		t.Fatalf("got %v", err)
	}
}

func TestClosedChannelRefuses(t *testing.T) {
	c, _ := pair(t)
	c.Close()
	if err := c.WriteFrame(channel.TypePing, make([]byte, 8)); !errors.Is(err, protocol.ErrChannelClosed) {
		t.Fatalf("write after close: got %v, want ErrChannelClosed", err)
	}
	if _, err := c.ReadFrame(); err == nil {
		t.Fatal("read after close succeeded")
	}
}

// TestOversizedLengthDoesNotAllocate: the length is checked before any
// buffer is sized for it, so refusing a 2 GiB length costs only the
// reader's own small setup.
func TestOversizedLengthDoesNotAllocate(t *testing.T) {
	key := [32]byte{}
	raw := []byte{0x7f, 0xff, 0xff, 0xff}
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	for i := 0; i < 100; i++ {
		r := channel.NewReader(bytes.NewReader(raw), channel.NewOpener(&key, &key, channel.ClientToServer))
		if _, err := r.Read(); !errors.Is(err, protocol.ErrFrameTooLarge) {
			t.Fatalf("got %v", err)
		}
	}
	runtime.ReadMemStats(&after)
	if per := (after.TotalAlloc - before.TotalAlloc) / 100; per > 4096 {
		t.Fatalf("%d bytes allocated per refused oversized frame", per)
	}
}

// TestCursorBeforeBody: a frame whose cursor is given apart from its body
// reads as the Deliver body AppendDeliver makes, and is refused above
// MaxFrameBody counting the cursor.
func TestCursorBeforeBody(t *testing.T) {
	client, server := pair(t)
	env := []byte("an envelope shared by every member")
	if err := server.WriteFrames([]channel.Outgoing{
		{Type: channel.TypeDeliver, Body: env, Cursor: 7, HasCursor: true},
		{Type: channel.TypeDeliver, Body: env, Cursor: 8, HasCursor: true},
	}); err != nil {
		t.Fatal(err)
	}
	for _, want := range []uint64{7, 8} {
		f, err := client.ReadFrame()
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(f.Body, channel.AppendDeliver(nil, want, env)) {
			t.Fatalf("body %x, want cursor %d then the envelope", f.Body, want)
		}
	}
	big := make([]byte, protocol.MaxFrameBody-channel.CursorSize+1)
	if err := server.WriteFrames([]channel.Outgoing{{Type: channel.TypeDeliver, Body: big, Cursor: 1, HasCursor: true}}); !errors.Is(err, protocol.ErrBodyTooLarge) {
		t.Fatalf("a body one byte too large with its cursor: %v", err)
	}
}
