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
//
// It reads into its own buffer as much as the stream offers, so one read
// usually brings a whole frame, often several. The buffer starts small
// (idle connections are many) and grows to the largest frame seen; after
// a long run of small frames it shrinks back.
type Reader struct {
	r          io.Reader
	buf        []byte // unread bytes are buf[start:end]
	start, end int
	smallRun   int        // consecutive small frames since the buffer grew
	mu         sync.Mutex // guards opener: the blocking read runs without it
	opener     *Opener
}

// Buffer sizes of a Reader.
const (
	readerBuf   = 512
	shrinkAfter = 64 // small frames in a row before a grown buffer shrinks
	shrinkAbove = 8 * readerBuf
)

// NewReader reads frames from r and opens them with o.
func NewReader(r io.Reader, o *Opener) *Reader {
	return &Reader{r: r, opener: o, buf: make([]byte, readerBuf)}
}

// Read returns the next frame. Its Body is valid until the next Read. A
// clean end of stream between frames is io.EOF. After any other error the
// Reader is wiped and the connection must be dropped.
func (r *Reader) Read() (Frame, error) {
	frame, err := r.read()
	return r.open(frame, err)
}

// open opens a frame read, or wipes the Reader after an error. It is
// apart from Read so that Read's frame, on the stack of every idle
// connection's parked reader, stays small.
func (r *Reader) open(frame []byte, err error) (Frame, error) {
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

// read returns one whole frame, checking its length before it makes room.
func (r *Reader) read() ([]byte, error) {
	if err := r.fill(LengthSize); err != nil {
		return nil, readError(err, r.end == r.start)
	}
	length := binary.BigEndian.Uint32(r.buf[r.start:])
	if err := CheckLength(length); err != nil {
		return nil, err
	}
	n := LengthSize + int(length)
	r.resize(n)
	if err := r.fill(n); err != nil {
		return nil, readError(err, false)
	}
	frame := r.buf[r.start : r.start+n]
	r.start += n
	return frame, nil
}

// fill reads until at least n unread bytes are buffered, taking whatever
// more the stream already has.
func (r *Reader) fill(n int) error {
	for r.end-r.start < n {
		if len(r.buf)-r.start < n { // no room after start: move the unread bytes down
			r.end = copy(r.buf, r.buf[r.start:r.end])
			r.start = 0
		}
		m, err := r.r.Read(r.buf[r.end:])
		r.end += m
		if err != nil && r.end-r.start < n {
			return err
		}
	}
	return nil
}

// resize makes the buffer hold a frame of n bytes, and shrinks it after a
// long run of small frames.
func (r *Reader) resize(n int) {
	switch {
	case n > len(r.buf):
		r.smallRun = 0
		r.realloc(n)
	case n <= readerBuf && len(r.buf) > shrinkAbove:
		if r.smallRun++; r.smallRun >= shrinkAfter && r.end-r.start <= readerBuf {
			r.realloc(readerBuf)
		}
	}
}

func (r *Reader) realloc(size int) {
	buf := make([]byte, size)
	r.end = copy(buf, r.buf[r.start:r.end])
	r.start, r.buf = 0, buf
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
	head   [8]byte
}

// NewWriter writes frames sealed by s to w.
func NewWriter(w io.Writer, s *Sealer) *Writer {
	return &Writer{w: w, sealer: s, buf: make([]byte, 0, 512)}
}

// Write seals one frame and writes it with a single Write call.
func (w *Writer) Write(t Type, body []byte) error {
	return w.WriteAll([]Outgoing{{Type: t, Body: body}})
}

// Outgoing is a frame to send.
type Outgoing struct {
	Type Type
	Body []byte
	// Cursor, if HasCursor, is written as the first 8 bytes of the body,
	// before Body: a Deliver frame whose envelope (Body) many connections
	// share and whose cursor is each connection's own.
	Cursor    uint64
	HasCursor bool
}

// WriteAll seals the frames in order and writes them with a single Write
// call: a busy connection costs one system call for many frames.
func (w *Writer) WriteAll(frames []Outgoing) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	buf := w.buf[:0]
	for _, f := range frames {
		var err error
		var head []byte
		if f.HasCursor {
			head = binary.BigEndian.AppendUint64(w.head[:0], f.Cursor)
		}
		if buf, err = w.sealer.SealParts(buf, f.Type, head, f.Body); err != nil {
			return err
		}
	}
	w.buf = buf
	if len(buf) > 4*readerBuf*16 {
		w.buf = nil // do not keep a burst's buffer on an idle connection
	}
	if _, err := w.w.Write(buf); err != nil {
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

// WriteFrames seals and writes frames with one Write; see Writer.WriteAll.
func (c *Conn) WriteFrames(frames []Outgoing) error { return c.w.WriteAll(frames) }

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
