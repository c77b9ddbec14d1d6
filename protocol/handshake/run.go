package handshake

import (
	"errors"
	"fmt"
	"io"
	"net"
	"time"

	"github.com/commsec/communicator/protocol"
	"github.com/commsec/communicator/protocol/channel"
	"github.com/commsec/communicator/protocol/keys"
)

// DefaultTimeout bounds a whole handshake, key confirmation included, when
// a config leaves Timeout zero.
const DefaultTimeout = 10 * time.Second

// ClientConfig configures Client.
type ClientConfig struct {
	Identity  *keys.SigningKey             // Sk_Cn
	ServerKey [protocol.PublicKeySize]byte // Pk_S, known from registration
	Timeout   time.Duration                // DefaultTimeout if zero
	Rand      io.Reader                    // crypto/rand if nil
}

// ServerConfig configures Server.
type ServerConfig struct {
	Identity *keys.SigningKey // Sk_S
	Timeout  time.Duration    // DefaultTimeout if zero
	// Admit decides whether an authenticated client may use the channel
	// (registered, not revoked). A refusal is told to the client as
	// CodeDenied. Nil admits every client.
	Admit func(protocol.ClientID) error
	Rand  io.Reader // crypto/rand if nil
}

func timeout(d time.Duration) time.Duration {
	if d <= 0 {
		return DefaultTimeout
	}
	return d
}

// Client runs the client side over nc and returns the established channel
// once the server's Ready frame has verified. On failure it closes nc.
func Client(nc net.Conn, cfg ClientConfig) (*channel.Conn, error) {
	nc.SetDeadline(time.Now().Add(timeout(cfg.Timeout)))
	conn, err := runClient(nc, cfg)
	if err != nil {
		nc.Close()
		return nil, wrapErr(err)
	}
	nc.SetDeadline(time.Time{})
	return conn, nil
}

func runClient(nc net.Conn, cfg ClientConfig) (*channel.Conn, error) {
	hs := NewClientHandshake(cfg.Identity, cfg.ServerKey, cfg.Rand)
	m1, err := hs.WriteM1()
	if err != nil {
		return nil, err
	}
	if _, err := nc.Write(m1); err != nil {
		return nil, err
	}
	if err := readInto(nc, hs.ReadM2); err != nil {
		return nil, err
	}
	if err := readInto(nc, hs.ReadM3); err != nil {
		return nil, err
	}
	m4, err := hs.WriteM4()
	if err != nil {
		return nil, err
	}
	if _, err := nc.Write(m4); err != nil {
		return nil, err
	}
	k, err := hs.Keys()
	if err != nil {
		return nil, err
	}
	conn := channel.New(nc, k, channel.ClientSide)
	if err := confirm(conn); err != nil {
		conn.Close()
		return nil, err
	}
	return conn, nil
}

// confirm reads the server's first frame: Ready proves that the server
// derived the same keys.
func confirm(conn *channel.Conn) error {
	f, err := conn.ReadFrame()
	if err != nil {
		return err
	}
	switch f.Type {
	case channel.TypeReady:
		return nil
	case channel.TypeError:
		code, err := channel.ParseError(f.Body)
		if err != nil {
			return err
		}
		return &protocol.PeerError{Code: code}
	}
	return protocol.ErrNoKeyConfirmation
}

// Server runs the server side over nc and returns the channel and the
// authenticated client. On failure it tells the client a generic code where
// the protocol allows one and closes nc.
func Server(nc net.Conn, cfg ServerConfig) (*channel.Conn, protocol.ClientID, error) {
	nc.SetDeadline(time.Now().Add(timeout(cfg.Timeout)))
	conn, peer, err := runServer(nc, cfg)
	if err != nil {
		nc.Close()
		return nil, peer, wrapErr(err)
	}
	nc.SetDeadline(time.Time{})
	return conn, peer, nil
}

func runServer(nc net.Conn, cfg ServerConfig) (*channel.Conn, protocol.ClientID, error) {
	hs := NewServerHandshake(cfg.Identity, cfg.Rand)
	if err := readInto(nc, hs.ReadM1); err != nil {
		refuse(nc, err)
		return nil, protocol.ClientID{}, err
	}
	m2, err := hs.WriteM2()
	if err != nil {
		RefuseM1(nc, protocol.CodeOf(err))
		return nil, hs.Peer(), err
	}
	m3, err := hs.WriteM3()
	if err != nil {
		return nil, hs.Peer(), err
	}
	if _, err := nc.Write(append(m2, m3...)); err != nil {
		return nil, hs.Peer(), err
	}
	if err := readInto(nc, hs.ReadM4); err != nil {
		return nil, hs.Peer(), err
	}
	k, err := hs.Keys()
	if err != nil {
		return nil, hs.Peer(), err
	}
	conn, err := admit(channel.New(nc, k, channel.ServerSide), hs.Peer(), cfg.Admit)
	return conn, hs.Peer(), err
}

func admit(conn *channel.Conn, peer protocol.ClientID, admit func(protocol.ClientID) error) (*channel.Conn, error) {
	if admit != nil {
		if err := admit(peer); err != nil {
			conn.Fail(protocol.ErrDenied)
			return nil, fmt.Errorf("%w: %w", protocol.ErrDenied, err)
		}
	}
	if err := conn.WriteFrame(channel.TypeReady, nil); err != nil {
		conn.Close()
		return nil, err
	}
	return conn, nil
}

// refuse answers a failed M1 with its generic code; a peer that hung up
// gets nothing.
func refuse(nc net.Conn, err error) {
	var ne net.Error
	switch {
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return
	case errors.As(err, &ne) && ne.Timeout():
		RefuseM1(nc, protocol.CodeTimeout)
	default:
		RefuseM1(nc, protocol.CodeOf(err))
	}
}

// RefuseM1 sends the error message a server answers instead of M2 (best
// effort, within one second). Servers also use it to turn a client away
// when busy.
func RefuseM1(nc net.Conn, code protocol.Code) {
	m := ErrorMessage{Suite: protocol.SuiteX25519Ed25519, Code: code}
	nc.SetWriteDeadline(time.Now().Add(time.Second))
	nc.Write(m.Marshal())
}

// readInto reads one whole handshake message, checking its header before
// reading the body, and hands it to step.
func readInto(r io.Reader, step func([]byte) error) error {
	var buf [KeyMessageSize]byte // the largest message of suite 1
	if _, err := io.ReadFull(r, buf[:HeaderSize]); err != nil {
		return err
	}
	_, n, err := ParseHeader(buf[:HeaderSize])
	if err != nil {
		return err
	}
	if _, err := io.ReadFull(r, buf[HeaderSize:HeaderSize+n]); err != nil {
		return err
	}
	return step(buf[:HeaderSize+n])
}

// wrapErr maps I/O failures to protocol errors: a deadline to
// ErrHandshakeTimeout; a peer that hung up keeps io.EOF in the chain.
func wrapErr(err error) error {
	var ne net.Error
	switch {
	case errors.As(err, &ne) && ne.Timeout():
		return fmt.Errorf("%w: %w", protocol.ErrHandshakeTimeout, err)
	case errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, io.EOF):
		return fmt.Errorf("handshake: peer closed the connection: %w", err)
	}
	var pe *protocol.Error
	var peer *protocol.PeerError
	if errors.As(err, &pe) || errors.As(err, &peer) {
		return err
	}
	return fmt.Errorf("handshake: %w", err)
}
