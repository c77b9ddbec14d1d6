package handshake

import (
	"errors"
	"fmt"
	"io"
	"net"
	"syscall"
	"time"

	"github.com/commsec/communicator/protocol"
	"github.com/commsec/communicator/protocol/channel"
	"github.com/commsec/communicator/protocol/keys"
)

// DefaultTimeout bounds a whole handshake, key confirmation included, when
// a config leaves Timeout zero.
const DefaultTimeout = 10 * time.Second

// DefaultM1Timeout bounds a server's wait for a whole M1 when a config
// leaves M1Timeout zero. M1 is the client's first 68 bytes, sent as soon
// as the connection is up: 2 s leave room for it to be lost once and sent
// again on a slow link (TCP retransmits after a round trip and some
// margin, 200 ms at least), and free a slot held by a silent peer five
// times sooner than the whole handshake's deadline would.
const DefaultM1Timeout = 2 * time.Second

// refuseTimeout bounds the write of an error message: it is 6 bytes on a
// connection the server has not written to yet, so it fits the socket
// buffer at once unless the connection is broken.
const refuseTimeout = 100 * time.Millisecond

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
	Timeout  time.Duration    // the whole handshake; DefaultTimeout if zero
	// M1Timeout bounds the wait for a whole M1, from the call of Server
	// (DefaultM1Timeout if zero; never past Timeout). On expiry the client
	// is told CodeTimeout and the handshake fails with ErrM1Timeout.
	M1Timeout time.Duration
	// GotM1, if not nil, is called once a whole, well-formed M1 has
	// arrived, before any cryptography. An error ends the handshake with
	// that error and without an answer: the caller has taken the
	// connection back (a gateway evicting it, for example).
	GotM1 func() error
	// Admit decides whether an authenticated client may use the channel
	// (registered, not revoked). A refusal is told to the client as
	// CodeDenied. Nil admits every client.
	Admit func(protocol.ClientID) error
	Rand  io.Reader // crypto/rand if nil
}

func orDefault(d, def time.Duration) time.Duration {
	if d <= 0 {
		return def
	}
	return d
}

func timeout(d time.Duration) time.Duration { return orDefault(d, DefaultTimeout) }

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
// authenticated client. Until a whole M1 has arrived it does no
// cryptography and holds nothing but one message buffer. On failure it
// tells the client a generic code where the protocol allows one and
// closes nc.
func Server(nc net.Conn, cfg ServerConfig) (*channel.Conn, protocol.ClientID, error) {
	start := time.Now()
	whole := start.Add(timeout(cfg.Timeout))
	m1 := start.Add(min(orDefault(cfg.M1Timeout, DefaultM1Timeout), timeout(cfg.Timeout)))
	conn, peer, err := runServer(nc, cfg, m1, whole)
	if err != nil {
		nc.Close()
		return nil, peer, wrapErr(err)
	}
	nc.SetDeadline(time.Time{})
	return conn, peer, nil
}

func runServer(nc net.Conn, cfg ServerConfig, m1By, whole time.Time) (*channel.Conn, protocol.ClientID, error) {
	var buf [KeyMessageSize]byte
	m1, err := readM1(nc, &buf, m1By)
	if err != nil {
		refuse(nc, err)
		return nil, protocol.ClientID{}, err
	}
	nc.SetDeadline(whole)
	hs := NewServerHandshake(cfg.Identity, cfg.Rand)
	if err := hs.ReadM1(m1); err != nil {
		refuse(nc, err)
		return nil, protocol.ClientID{}, err
	}
	if cfg.GotM1 != nil {
		if err := cfg.GotM1(); err != nil {
			return nil, hs.Peer(), err
		}
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

// readM1 reads M1 into buf by the M1 deadline (ErrM1Timeout after it).
func readM1(nc net.Conn, buf *[KeyMessageSize]byte, by time.Time) ([]byte, error) {
	nc.SetDeadline(by)
	m1, err := readMessage(nc, buf)
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return nil, fmt.Errorf("%w: %w", protocol.ErrM1Timeout, err)
	}
	return m1, err
}

// refuse answers a failed M1 with its generic code (a deadline: code 5);
// a peer that hung up, inside M1 or before it, gets nothing.
func refuse(nc net.Conn, err error) {
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return
	}
	RefuseM1(nc, protocol.CodeOf(err))
}

// RefuseM1 sends the error message a server answers instead of M2 (best
// effort, within 100 ms). Servers also use it to turn a client away when
// busy.
func RefuseM1(nc net.Conn, code protocol.Code) {
	m := ErrorMessage{Suite: protocol.SuiteX25519Ed25519, Code: code}
	nc.SetWriteDeadline(time.Now().Add(refuseTimeout))
	nc.Write(m.Marshal())
}

// readInto reads one whole handshake message and hands it to step.
func readInto(r io.Reader, step func([]byte) error) error {
	var buf [KeyMessageSize]byte
	m, err := readMessage(r, &buf)
	if err != nil {
		return err
	}
	return step(m)
}

// readMessage reads one whole handshake message into buf, checking its
// header before reading the body (section 4.3), and returns it. A stream
// that ends (or is reset) before the message fails with
// ErrClosedInHandshake, one that ends inside it with ErrTruncatedMessage.
func readMessage(r io.Reader, buf *[KeyMessageSize]byte) ([]byte, error) {
	if got, err := io.ReadFull(r, buf[:HeaderSize]); err != nil {
		return nil, ended(err, got > 0)
	}
	_, n, err := ParseHeader(buf[:HeaderSize])
	if err != nil {
		return nil, err
	}
	if _, err := io.ReadFull(r, buf[HeaderSize:HeaderSize+n]); err != nil {
		return nil, ended(err, true)
	}
	return buf[:HeaderSize+n], nil
}

// ended names the end of the stream during a read, keeping io.EOF (none
// of the message had arrived) or io.ErrUnexpectedEOF (part of it had) in
// the chain; inside says whether part of the message had arrived. A reset
// by the peer ends the stream too. Other errors pass unchanged.
func ended(err error, inside bool) error {
	name, end := protocol.ErrClosedInHandshake, io.EOF
	if inside {
		name, end = protocol.ErrTruncatedMessage, io.ErrUnexpectedEOF
	}
	switch {
	case errors.Is(err, syscall.ECONNRESET):
		return fmt.Errorf("%w: %w: %w", name, end, err)
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return fmt.Errorf("%w: %w", name, end)
	}
	return err
}

// wrapErr maps I/O failures to protocol errors: a deadline to
// ErrHandshakeTimeout (unless already named, as ErrM1Timeout is), the end
// of the stream to ErrClosedInHandshake or ErrTruncatedMessage (named by
// readMessage, or here before frame 0), keeping io.EOF or
// io.ErrUnexpectedEOF in the chain.
func wrapErr(err error) error {
	var pe *protocol.Error
	var peer *protocol.PeerError
	if errors.As(err, &pe) || errors.As(err, &peer) {
		return err
	}
	var ne net.Error
	switch {
	case errors.As(err, &ne) && ne.Timeout():
		return fmt.Errorf("%w: %w", protocol.ErrHandshakeTimeout, err)
	case errors.Is(err, io.EOF): // before frame 0
		return fmt.Errorf("%w: %w", protocol.ErrClosedInHandshake, err)
	}
	return fmt.Errorf("handshake: %w", err)
}
