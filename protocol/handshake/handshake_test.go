package handshake_test

import (
	"errors"
	"io"
	"net"
	"testing"
	"time"

	"github.com/commsec/communicator/protocol"
	"github.com/commsec/communicator/protocol/channel"
	"github.com/commsec/communicator/protocol/handshake"
	"github.com/commsec/communicator/protocol/keys"
)

func mustKey(t testing.TB) *keys.SigningKey {
	t.Helper()
	k, err := keys.GenerateSigningKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// tcpPair returns both ends of a real loopback TCP connection.
func tcpPair(t testing.TB) (client, server net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, _ := ln.Accept()
		accepted <- c
	}()
	client, err = net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	server = <-accepted
	t.Cleanup(func() { client.Close(); server.Close() })
	return client, server
}

type serverResult struct {
	conn *channel.Conn
	peer protocol.ClientID
	err  error
}

func runServer(nc net.Conn, cfg handshake.ServerConfig) <-chan serverResult {
	out := make(chan serverResult, 1)
	go func() {
		conn, peer, err := handshake.Server(nc, cfg)
		out <- serverResult{conn, peer, err}
	}()
	return out
}

func TestHandshakeOverTCP(t *testing.T) {
	clientKey, serverKey := mustKey(t), mustKey(t)
	cn, sn := tcpPair(t)
	res := runServer(sn, handshake.ServerConfig{Identity: serverKey})
	cc, err := handshake.Client(cn, handshake.ClientConfig{Identity: clientKey, ServerKey: serverKey.Public()})
	if err != nil {
		t.Fatalf("client: %v", err)
	}
	defer cc.Close()
	r := <-res
	if r.err != nil {
		t.Fatalf("server: %v", r.err)
	}
	defer r.conn.Close()
	if r.peer != protocol.ClientID(clientKey.Public()) {
		t.Fatalf("server authenticated %s, want the client", r.peer)
	}
	// Frames flow both ways after key confirmation.
	if err := cc.WriteFrame(channel.TypePing, []byte("12345678")); err != nil {
		t.Fatal(err)
	}
	f, err := r.conn.ReadFrame()
	if err != nil || f.Type != channel.TypePing || string(f.Body) != "12345678" {
		t.Fatalf("server read %v %q %v", f.Type, f.Body, err)
	}
	if err := r.conn.WriteFrame(channel.TypePong, f.Body); err != nil {
		t.Fatal(err)
	}
	f, err = cc.ReadFrame()
	if err != nil || f.Type != channel.TypePong || f.Counter != 1 {
		t.Fatalf("client read %v counter %d %v", f.Type, f.Counter, err)
	}
}

func TestHandshakeDenied(t *testing.T) {
	clientKey, serverKey := mustKey(t), mustKey(t)
	cn, sn := tcpPair(t)
	res := runServer(sn, handshake.ServerConfig{Identity: serverKey, Admit: func(protocol.ClientID) error {
		return errors.New("not registered")
	}})
	_, err := handshake.Client(cn, handshake.ClientConfig{Identity: clientKey, ServerKey: serverKey.Public()})
	var pe *protocol.PeerError
	if !errors.As(err, &pe) || pe.Code != protocol.CodeDenied {
		t.Fatalf("client got %v, want peer error denied", err)
	}
	if r := <-res; !errors.Is(r.err, protocol.ErrDenied) {
		t.Fatalf("server got %v, want ErrDenied", r.err)
	}
}

func TestHandshakeWrongServerKey(t *testing.T) {
	clientKey, serverKey, other := mustKey(t), mustKey(t), mustKey(t)
	cn, sn := tcpPair(t)
	res := runServer(sn, handshake.ServerConfig{Identity: serverKey})
	_, err := handshake.Client(cn, handshake.ClientConfig{Identity: clientKey, ServerKey: other.Public()})
	if !errors.Is(err, protocol.ErrWrongServerKey) {
		t.Fatalf("client got %v, want ErrWrongServerKey", err)
	}
	if r := <-res; r.err == nil {
		t.Fatal("server completed a handshake the client aborted")
	}
}

// TestHandshakeTimeout: a client that sends M1, reads M2 and M3 and then
// stalls fails the whole deadline, and is told nothing (section 4.8).
func TestHandshakeTimeout(t *testing.T) {
	clientKey, serverKey := mustKey(t), mustKey(t)
	cn, sn := tcpPair(t)
	c := handshake.NewClientHandshake(clientKey, serverKey.Public(), nil)
	m1, _ := c.WriteM1()
	if _, err := cn.Write(m1); err != nil { // before the server starts its clock
		t.Fatal(err)
	}
	r := <-runServer(sn, handshake.ServerConfig{Identity: serverKey, Timeout: 500 * time.Millisecond})
	if !errors.Is(r.err, protocol.ErrHandshakeTimeout) || protocol.Reason(r.err) != "handshake_timeout" {
		t.Fatalf("server got %v (%s), want ErrHandshakeTimeout", r.err, protocol.Reason(r.err))
	}
	got, err := io.ReadAll(cn)
	if err != nil || len(got) != handshake.KeyMessageSize+handshake.SigMessageSize {
		t.Fatalf("client read %d bytes (%v), want M2 and M3 and then the end of the stream", len(got), err)
	}
}

// TestSilentClientToldTimeout: a client that sends nothing is told code 5
// (timeout) where it would read M2, at the M1 deadline.
func TestSilentClientToldTimeout(t *testing.T) {
	serverKey := mustKey(t)
	cn, sn := tcpPair(t)
	res := runServer(sn, handshake.ServerConfig{Identity: serverKey, M1Timeout: 50 * time.Millisecond})
	<-res
	buf := make([]byte, handshake.ErrMessageSize)
	if _, err := io.ReadFull(cn, buf); err != nil {
		t.Fatal(err)
	}
	_, err := handshake.Parse(buf, handshake.TypeM2)
	var pe *protocol.PeerError
	if !errors.As(err, &pe) || pe.Code != protocol.CodeTimeout {
		t.Fatalf("client read %v, want peer error timeout", err)
	}
}
