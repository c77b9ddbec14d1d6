// Package syncwriter serializes the writes to one io.Writer that several
// goroutines share, such as a command's standard error, written both by
// its main flow and by an SDK's or a child's log callback.
package syncwriter

import (
	"io"
	"sync"
)

// Writer passes each Write to the underlying writer, one at a time.
type Writer struct {
	mu sync.Mutex
	w  io.Writer
}

// New returns a Writer over w.
func New(w io.Writer) *Writer { return &Writer{w: w} }

func (l *Writer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}
