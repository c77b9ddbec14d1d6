package channel

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"

	"github.com/commsec/communicator/protocol"
)

// Reader reads and opens frames from a stream. One goroutine reads; Wipe
// may be called from any goroutine.
type Reader struct {
	r      io.Reader
	lb     [LengthSize]byte // a field, so that reading it does not allocate
	buf    []byte
	mu     sync.Mutex // guards opener: the blocking read runs without it
	opener *Opener
}

// NewReader reads frames from r and opens them with o.
func NewReader(r io.Reader, o *Opener) *Reader {
	return &Reader{r: r, opener: o, buf: make([]byte, 0, 512)}
}

// Read returns the next frame. Its Body is valid until the next Read. A
// clean end of stream between frames is io.EOF. After any other error the
// Reader is wiped and the connection must be dropped.
func (r *Reader) Read() (Frame, error) {
	frame, err := r.read()
	r.mu.Lock()
	defer r.mu.Unlock()
	if err == nil {
		return r.opener.Open(frame) // wipes the opener on failure
	}
	if !errors.Is(err, io.EOF) {
		r.opener.Wipe()
	}
	return Frame{}, err
}

// read reads one whole frame, checking its length before allocating.
func (r *Reader) read() ([]byte, error) {
	if _, err := io.ReadFull(r.r, r.lb[:]); err != nil {
		return nil, readError(err, true)
	}
	length := binary.BigEndian.Uint32(r.lb[:])
	if err := CheckLength(length); err != nil {
		return nil, err
	}
	n := LengthSize + int(length)
	if cap(r.buf) < n {
		r.buf = make([]byte, n)
	}
	frame := r.buf[:n]
	copy(frame, r.lb[:])
	if _, err := io.ReadFull(r.r, frame[LengthSize:]); err != nil {
		return nil, readError(err, false)
	}
	return frame, nil
}

func readError(err error, atBoundary bool) error {
	switch {
	case errors.Is(err, io.EOF) && atBoundary:
		return io.EOF
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return protocol.ErrTruncatedFrame
	}
	return fmt.Errorf("channel: read: %w", err)
}

// Wipe drops the Reader's key material; a Read in progress then fails.
func (r *Reader) Wipe() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.opener.Wipe()
}

// Writer seals and writes frames to a stream. It is safe for concurrent use.
type Writer struct {
	mu     sync.Mutex
	w      io.Writer
	sealer *Sealer
	buf    []byte
}

// NewWriter writes frames sealed by s to w.
func NewWriter(w io.Writer, s *Sealer) *Writer {
	return &Writer{w: w, sealer: s, buf: make([]byte, 0, 512)}
}

// Write seals one frame and writes it with a single Write call.
func (w *Writer) Write(t Type, body []byte) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	frame, err := w.sealer.Seal(w.buf[:0], t, body)
	if err != nil {
		return err
	}
	w.buf = frame
	if _, err := w.w.Write(frame); err != nil {
		w.sealer.Wipe()
		return fmt.Errorf("channel: write: %w", err)
	}
	return nil
}

// Wipe drops the Writer's key material.
func (w *Writer) Wipe() {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.sealer.Wipe()
}

// Side is which end of the channel this is.
type Side byte

// The two sides.
const (
	ClientSide Side = 1
	ServerSide Side = 2
)

// Conn is an established channel over a net.Conn: one Reader (for one
// goroutine) and one Writer (safe for several).
type Conn struct {
	nc        net.Conn
	r         *Reader
	w         *Writer
	closeOnce sync.Once
}

// New builds the channel for side over nc. It takes keys over and wipes
// them: afterwards the keys live only in the HMAC states.
func New(nc net.Conn, keys *Keys, side Side) *Conn {
	defer keys.Wipe()
	send, recv, dir := &keys.C2S, &keys.S2C, ServerToClient
	if side == ServerSide {
		send, recv, dir = &keys.S2C, &keys.C2S, ClientToServer
	}
	return &Conn{
		nc: nc,
		r:  NewReader(nc, NewOpener(recv, send, dir)),
		w:  NewWriter(nc, NewSealer(send)),
	}
}

// ReadFrame returns the next frame; see Reader.Read.
func (c *Conn) ReadFrame() (Frame, error) { return c.r.Read() }

// WriteFrame seals and writes one frame; see Writer.Write.
func (c *Conn) WriteFrame(t Type, body []byte) error { return c.w.Write(t, body) }

// NetConn returns the underlying connection, for deadlines and addresses.
func (c *Conn) NetConn() net.Conn { return c.nc }

// Fail tells the peer the generic code of err in an Error frame (best
// effort) and closes the channel.
func (c *Conn) Fail(err error) error {
	var body [ErrorBodySize]byte
	binary.BigEndian.PutUint16(body[:], uint16(protocol.CodeOf(err)))
	_ = c.w.Write(TypeError, body[:])
	return c.Close()
}

// Close wipes the channel's keys and closes the connection. It is safe to
// call more than once and from any goroutine.
func (c *Conn) Close() error {
	var err error
	c.closeOnce.Do(func() {
		err = c.nc.Close()
		c.w.Wipe()
		c.r.Wipe()
	})
	return err
}
