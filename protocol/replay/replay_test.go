package replay

import (
	"bytes"
	"encoding/binary"
	"strings"
	"testing"

	"github.com/commsec/communicator/protocol"
)

// TestWindow walks numbered cases, the way WireGuard's replay tests do:
// each counter in order, with the verdict it must get; a fresh one is then
// accepted.
func TestWindow(t *testing.T) {
	const m = protocol.MaxCounterJump
	cases := []struct {
		counter uint64
		want    Verdict
	}{
		{0, Exhausted},                         // 1: counters start at 1
		{1, Fresh},                             // 2
		{1, Duplicate},                         // 3
		{3, Fresh},                             // 4: a gap
		{2, Fresh},                             // 5: the gap filled, out of order
		{2, Duplicate},                         // 6
		{3 + Size - 1, Fresh},                  // 7: 130: the window moves; 3 is at its bottom edge
		{3, Duplicate},                         // 8: still inside, seen
		{4, Fresh},                             // 9: inside, never seen
		{2, Old},                               // 10: just below the window
		{3 + Size, Fresh},                      // 11: 131: 3 leaves the window
		{3, Old},                               // 12
		{4, Duplicate},                         // 13: at the bottom edge now
		{131 + Size, Fresh},                    // 14: a jump of exactly Size empties the window
		{131, Old},                             // 15
		{131 + Size - 1, Fresh},                // 16: top-1, never seen
		{131 + Size + m, Fresh},                // 17: a jump of exactly MaxCounterJump
		{131 + Size + 2*m + 1, Jump},           // 18: one more is too far
		{protocol.ExhaustedCounter, Exhausted}, // 19
		{131 + Size + m - 1, Fresh},            // 20: just below the top
		{131 + Size + m - Size, Old},           // 21: Size below the top
		{131 + Size + m - Size + 1, Fresh},     // 22: the bottom edge
	}
	var w Window
	for i, c := range cases {
		got := w.Check(c.counter)
		if got != c.want {
			t.Fatalf("case %d: counter %d: %v, want %v (window %v)", i+1, c.counter, got, c.want, w)
		}
		if got == Fresh {
			w.Accept(c.counter)
		}
		roundTrip(t, w)
	}
}

// TestWindowFillsInAnyOrder: the Size counters of a window accepted in
// any order are each accepted once.
func TestWindowFillsInAnyOrder(t *testing.T) {
	var w Window
	order := make([]uint64, 0, Size)
	for c := uint64(Size); c >= 2; c -= 2 { // the even counters, top first
		order = append(order, c)
	}
	for c := uint64(1); c < Size; c += 2 { // then the odd ones, from the bottom
		order = append(order, c)
	}
	for _, c := range order {
		if v := w.Check(c); v != Fresh {
			t.Fatalf("counter %d: %v", c, v)
		}
		w.Accept(c)
		roundTrip(t, w)
	}
	for c := uint64(1); c <= Size; c++ {
		if v := w.Check(c); v != Duplicate {
			t.Fatalf("counter %d again: %v", c, v)
		}
	}
	if b := w.AppendBinary(nil); len(b) != len(binary.AppendUvarint(nil, Size))+len(binary.AppendUvarint(nil, Size-1))+1 {
		t.Errorf("a full window's binary form is %d bytes: %x", len(b), b)
	}
	for c := uint64(Size + 1); c < 2*Size; c += 3 { // many holes: the bitmap form
		w.Accept(c)
		roundTrip(t, w)
	}
}

// roundTrip checks that both stored forms give back w, and only w.
func roundTrip(t *testing.T, w Window) {
	t.Helper()
	b := w.AppendBinary(nil)
	got, n, err := ParseBinary(append(b, 0xee))
	if err != nil || n != len(b) || got != w {
		t.Fatalf("binary %x of %v: %v %d %v", b, w, got, n, err)
	}
	got, err = ParseText(w.String())
	if err != nil || got != w {
		t.Fatalf("text %q: %v %v", w.String(), got, err)
	}
}

// TestNonCanonicalRefused: stored forms that do not come from a window
// are refused.
func TestNonCanonicalRefused(t *testing.T) {
	var w Window
	for _, c := range []uint64{10, 7, 3} {
		w.Accept(c)
	}
	good := w.AppendBinary(nil) // 10 | low 7 | 2 holes: 1, 2 (counters 9, 8)... and 4, 5, 6
	var hexy Window
	for _, c := range []uint64{10, 9, 8, 7} {
		hexy.Accept(c)
	}
	var many Window
	for c := uint64(1); c < 100; c += 2 {
		many.Accept(c)
	}
	bitmap := many.AppendBinary(nil)
	fewAsBitmap := append(binary.AppendUvarint(binary.AppendUvarint(nil, 10), 7), 0xff)
	for _, v := range w.Seen {
		fewAsBitmap = binary.LittleEndian.AppendUint64(fewAsBitmap, v)
	}
	for name, b := range map[string][]byte{
		"empty":                 nil,
		"long uvarint":          append([]byte{0x8a, 0x00}, good[1:]...),
		"no hole count":         good[:2],
		"low below counter 1":   {3, 5, 0},
		"empty window, a low":   {0, 1, 0},
		"hole at low":           {10, 7, 1, 7},
		"holes not ascending":   {10, 7, 2, 2, 0},
		"too many holes listed": {10, 7, 17},
		"a few holes as bitmap": fewAsBitmap,
		"truncated bitmap":      bitmap[:len(bitmap)-1],
	} {
		if _, _, err := ParseBinary(b); err == nil {
			t.Errorf("%s: %x parsed", name, b)
		}
	}
	text := w.String()
	for name, s := range map[string]string{
		"upper-case hex":   bytesUpper(hexy.String()),
		"leading zero":     "010" + text[2:],
		"no bit 0":         "10." + strings.Repeat("0", Size/4),
		"short hex":        text[:len(text)-2],
		"bit below 1":      "2.07" + strings.Repeat("0", Size/4-2),
		"empty with a bit": "0.01" + strings.Repeat("0", Size/4-2),
	} {
		if _, err := ParseText(s); err == nil {
			t.Errorf("%s: %q parsed", name, s)
		}
	}
}

func bytesUpper(s string) string { return string(bytes.ToUpper([]byte(s))) }

// FuzzParseBinary: whatever parses encodes back to the same bytes.
func FuzzParseBinary(f *testing.F) {
	var w Window
	for _, c := range []uint64{1, 5, 3, 200, 150, 199} {
		w.Accept(c)
		f.Add(w.AppendBinary(nil))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		w, n, err := ParseBinary(b)
		if err != nil {
			return
		}
		if again := w.AppendBinary(nil); !bytes.Equal(again, b[:n]) {
			t.Fatalf("%x parsed as %v, which encodes as %x", b[:n], w, again)
		}
	})
}

// FuzzParseText: whatever parses prints back to the same text.
func FuzzParseText(f *testing.F) {
	var w Window
	for _, c := range []uint64{1, 5, 3, 200, 150} {
		w.Accept(c)
		f.Add(w.String())
	}
	f.Fuzz(func(t *testing.T, s string) {
		w, err := ParseText(s)
		if err != nil {
			return
		}
		if w.String() != s {
			t.Fatalf("%q parsed as %v, which prints %q", s, w, w.String())
		}
	})
}
