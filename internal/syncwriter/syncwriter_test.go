package syncwriter

import (
	"bytes"
	"strings"
	"sync"
	"testing"
)

// TestWritesDoNotInterleave writes whole lines from several goroutines
// into a bytes.Buffer (not safe for concurrent use): under -race an
// unserialized Write is reported, and every line must come out whole.
func TestWritesDoNotInterleave(t *testing.T) {
	var buf bytes.Buffer
	w := New(&buf)
	line := strings.Repeat("x", 100) + "\n"
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range 200 {
				if _, err := w.Write([]byte(line)); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	n := 0
	for l := range strings.Lines(buf.String()) {
		if l != line {
			t.Fatalf("line %d is %q: writes interleaved", n, l)
		}
		n++
	}
	if n != 8*200 {
		t.Errorf("%d lines, want %d", n, 8*200)
	}
}
