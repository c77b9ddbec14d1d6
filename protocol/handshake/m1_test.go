package handshake_test

import (
	"errors"
	"io"
	"net"
	"testing"
	"time"

	"github.com/commsec/communicator/protocol"
	"github.com/commsec/communicator/protocol/handshake"
)

// noRand fails the test if the server draws randomness: it does so first
// for its ephemeral key, so an untouched noRand means no cryptography ran.
type noRand struct{ t *testing.T }

func (r noRand) Read([]byte) (int, error) {
	r.t.Error("the server drew randomness (started its cryptography)")
	return 0, errors.New("noRand")
}

// validM1 is a client's well-formed M1.
func validM1(t *testing.T) []byte {
	m1, err := handshake.NewClientHandshake(mustKey(t), mustKey(t).Public(), nil).WriteM1()
	if err != nil {
		t.Fatal(err)
	}
	return m1
}

// readAnswer reads what the server sent before closing: nothing, or one
// error message. The deadline guards the test only: the whole handshake's
// deadline is an hour, so within a minute only the M1 deadline can end
// it.
func readAnswer(t *testing.T, cn net.Conn) (*protocol.PeerError, int) {
	t.Helper()
	cn.SetReadDeadline(time.Now().Add(time.Minute))
	got, err := io.ReadAll(cn)
	if err != nil {
		t.Fatalf("reading the server's answer: %v", err)
	}
	if len(got) == 0 {
		return nil, 0
	}
	_, err = handshake.Parse(got, handshake.TypeM2)
	var pe *protocol.PeerError
	if !errors.As(err, &pe) {
		t.Fatalf("server sent %x (%v), want an error message or nothing", got, err)
	}
	return pe, len(got)
}

// TestM1Deadline: a peer that sends nothing, or part of M1, and then
// waits is refused at the M1 deadline, long before the whole handshake's:
// m1_timeout, told code 5, and no cryptography.
func TestM1Deadline(t *testing.T) {
	for _, c := range []struct {
		name string
		sent []byte
	}{
		{"silent", nil},
		{"part of the header", validM1(t)[:2]},
		{"header and part of the body", validM1(t)[:40]},
	} {
		t.Run(c.name, func(t *testing.T) {
			cn, sn := tcpPair(t)
			res := runServer(sn, handshake.ServerConfig{Identity: mustKey(t), Timeout: time.Hour,
				M1Timeout: 50 * time.Millisecond, Rand: noRand{t}})
			if _, err := cn.Write(c.sent); err != nil {
				t.Fatal(err)
			}
			pe, _ := readAnswer(t, cn)
			if pe == nil || pe.Code != protocol.CodeTimeout {
				t.Fatalf("client was told %v, want code 5 (timeout)", pe)
			}
			r := <-res
			if !errors.Is(r.err, protocol.ErrM1Timeout) || protocol.Reason(r.err) != "m1_timeout" {
				t.Fatalf("server got %v (%s), want m1_timeout", r.err, protocol.Reason(r.err))
			}
		})
	}
}

// TestM1Ended: a peer that closes inside M1 is a truncated_message, one
// that closes before it closed_in_handshake; neither is answered (the
// stream has ended) nor costs any cryptography.
func TestM1Ended(t *testing.T) {
	for _, c := range []struct {
		sent []byte
		want *protocol.Error
		eof  error
	}{
		{nil, protocol.ErrClosedInHandshake, io.EOF},
		{validM1(t)[:1], protocol.ErrTruncatedMessage, io.ErrUnexpectedEOF},
		{validM1(t)[:handshake.HeaderSize], protocol.ErrTruncatedMessage, io.ErrUnexpectedEOF},
		{validM1(t)[:handshake.KeyMessageSize-1], protocol.ErrTruncatedMessage, io.ErrUnexpectedEOF},
	} {
		t.Run(c.want.Name, func(t *testing.T) {
			cn, sn := tcpPair(t)
			res := runServer(sn, handshake.ServerConfig{Identity: mustKey(t), Timeout: time.Hour, M1Timeout: time.Hour,
				Rand: noRand{t}})
			if _, err := cn.Write(c.sent); err != nil {
				t.Fatal(err)
			}
			cn.(*net.TCPConn).CloseWrite()
			if pe, n := readAnswer(t, cn); n != 0 {
				t.Errorf("server answered a peer that had ended its stream: %v", pe)
			}
			r := <-res
			if !errors.Is(r.err, c.want) || !errors.Is(r.err, c.eof) || protocol.Reason(r.err) != c.want.Name {
				t.Fatalf("sent %d bytes: server got %v (%s), want %s wrapping %v", len(c.sent), r.err,
					protocol.Reason(r.err), c.want.Name, c.eof)
			}
		})
	}
}

// TestM1Reset: a peer that resets the connection before M1 ends its
// stream as one that closes it does: closed_in_handshake, no answer.
func TestM1Reset(t *testing.T) {
	cn, sn := tcpPair(t)
	res := runServer(sn, handshake.ServerConfig{Identity: mustKey(t), Timeout: time.Hour, M1Timeout: time.Hour,
		Rand: noRand{t}})
	cn.(*net.TCPConn).SetLinger(0)
	cn.Close()
	r := <-res
	if !errors.Is(r.err, protocol.ErrClosedInHandshake) || !errors.Is(r.err, io.EOF) ||
		protocol.Reason(r.err) != "closed_in_handshake" {
		t.Fatalf("server got %v (%s), want closed_in_handshake wrapping io.EOF", r.err, protocol.Reason(r.err))
	}
}

// TestGotM1: the hook runs once M1 is whole and well-formed, before any
// cryptography; its error ends the handshake without an answer. A
// malformed M1 never reaches it.
func TestGotM1(t *testing.T) {
	stop := errors.New("taken back")
	t.Run("refused", func(t *testing.T) {
		cn, sn := tcpPair(t)
		calls := 0
		res := runServer(sn, handshake.ServerConfig{Identity: mustKey(t), Rand: noRand{t},
			GotM1: func() error { calls++; return stop }})
		if _, err := cn.Write(validM1(t)); err != nil {
			t.Fatal(err)
		}
		if pe, n := readAnswer(t, cn); n != 0 {
			t.Errorf("server answered (%v) after its hook refused", pe)
		}
		if r := <-res; !errors.Is(r.err, stop) || calls != 1 {
			t.Fatalf("server got %v after %d calls, want the hook's error after 1", r.err, calls)
		}
	})
	t.Run("malformed", func(t *testing.T) {
		cn, sn := tcpPair(t)
		m1 := validM1(t)
		m1[1] = handshake.TypeM2
		res := runServer(sn, handshake.ServerConfig{Identity: mustKey(t), Rand: noRand{t},
			GotM1: func() error { t.Error("GotM1 called for a malformed M1"); return nil }})
		if _, err := cn.Write(m1); err != nil {
			t.Fatal(err)
		}
		if pe, _ := readAnswer(t, cn); pe == nil || pe.Code != protocol.CodeProtocol {
			t.Errorf("client was told %v, want code 1", pe)
		}
		if r := <-res; !errors.Is(r.err, protocol.ErrUnexpectedMessage) {
			t.Fatalf("server got %v, want unexpected_message", r.err)
		}
	})
	t.Run("accepted", func(t *testing.T) {
		clientKey, serverKey := mustKey(t), mustKey(t)
		cn, sn := tcpPair(t)
		calls := 0
		res := runServer(sn, handshake.ServerConfig{Identity: serverKey, GotM1: func() error { calls++; return nil }})
		cc, err := handshake.Client(cn, handshake.ClientConfig{Identity: clientKey, ServerKey: serverKey.Public()})
		if err != nil {
			t.Fatal(err)
		}
		cc.Close()
		if r := <-res; r.err != nil || calls != 1 {
			t.Fatalf("server got %v after %d calls of GotM1, want success after 1", r.err, calls)
		}
	})
}
