// Package replay is the sliding anti-replay window of a sender's message
// counters in a group (PROTOCOL.md §8.1, §8.2), in the spirit of RFC 6479
// and WireGuard's replay filter: relays decide with it which counters they
// store, clients which messages they hand over.
//
// A window remembers the highest counter accepted (Top) and which of the
// Size counters up to Top were accepted. A counter above Top is fresh (at
// most protocol.MaxCounterJump above it) and moves the window up; one
// inside the window is fresh once, a duplicate after; one below the
// window is old. Counters may thus arrive out of order, as a pipelining
// sender's retries do, while none is ever accepted twice.
//
// The zero Window has accepted nothing.
package replay

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"strconv"
	"strings"

	"github.com/commsec/communicator/protocol"
)

// Size is how many counters the window covers: Top and the Size-1 below
// it. It is twice the reference SDK's limit of 128 sends in flight per
// group (clientsdk.Config.MaxInflight): the counter of a message retried
// while its sender's later ones are accepted stays within 128 of the
// newest, and the rest of the window is margin for sends a caller
// abandoned while their first copy was still on its way.
const Size = 256

// Verdict is a window's answer for a counter.
type Verdict uint8

// The verdicts.
const (
	Fresh     Verdict = iota // never accepted: accept it
	Duplicate                // accepted before
	Old                      // below the window: it cannot be told from a replay
	Jump                     // more than protocol.MaxCounterJump above Top
	Exhausted                // 0 or 2^64-1: never a valid counter
)

func (v Verdict) String() string {
	return [...]string{"fresh", "duplicate", "old", "jump", "exhausted"}[v]
}

// Window is one (group, sender)'s window.
type Window struct {
	Top uint64 // the highest counter accepted; 0: none yet
	// Seen holds a bit per counter Top-i, i < Size: bit i of word i/64
	// (bit 0 is Top itself, set once Top > 0).
	Seen [Size / 64]uint64
}

// Check is the verdict for counter c, without changing the window.
func (w *Window) Check(c uint64) Verdict {
	switch {
	case c == 0 || c == protocol.ExhaustedCounter:
		return Exhausted
	case c > w.Top:
		if c-w.Top > protocol.MaxCounterJump {
			return Jump
		}
		return Fresh
	case w.Top-c >= Size:
		return Old
	case w.bit(w.Top - c):
		return Duplicate
	}
	return Fresh
}

// Accept records c, which Check found Fresh.
func (w *Window) Accept(c uint64) {
	if c > w.Top {
		w.shift(c - w.Top)
		w.Top = c
	}
	d := w.Top - c
	w.Seen[d/64] |= 1 << (d % 64)
}

func (w *Window) bit(d uint64) bool { return w.Seen[d/64]&(1<<(d%64)) != 0 }

// shift moves the bits n places up: counter Top-i becomes Top+n-(i+n).
func (w *Window) shift(n uint64) {
	if n >= Size {
		w.Seen = [Size / 64]uint64{}
		return
	}
	words, r := n/64, n%64
	for i := len(w.Seen) - 1; i >= 0; i-- {
		var v uint64
		if j := i - int(words); j >= 0 {
			v = w.Seen[j] << r
			if r > 0 && j > 0 {
				v |= w.Seen[j-1] >> (64 - r)
			}
		}
		w.Seen[i] = v
	}
}

// ErrMalformed is a window's stored form that does not parse, or is not
// canonical.
var ErrMalformed = errors.New("replay: malformed window")

// The stored forms of a window:
//
//	binary (a client's state):  top uvarint | low uvarint | k (1) | holes
//	text (a relay's record):    <top decimal>.<bits hex, 64 lowercase digits>
//
// In the binary form, low is the distance from top down to the lowest
// counter accepted in the window (0: top alone); every counter below it is
// not accepted. The holes are the counters between top and low's counter
// that were not accepted: when there are at most MaxHoles, k is their
// number and they follow as uvarints, each the distance from the previous
// (the first from top), ascending; otherwise k is 0xff and the window's
// 256 bits follow as 32 bytes, little-endian. A window whose every counter
// came in order, or that has just begun, takes top's uvarint and 2 bytes.
// Each window has exactly one stored form of each kind.

// MaxHoles is the most holes the binary form lists one by one.
const MaxHoles = 16

const bitmapMode = 0xff

// AppendBinary appends w's binary form.
func (w *Window) AppendBinary(dst []byte) []byte {
	dst = binary.AppendUvarint(dst, w.Top)
	low := w.low()
	dst = binary.AppendUvarint(dst, low)
	var holes []uint64
	for d := uint64(1); d < low; d++ {
		if !w.bit(d) {
			holes = append(holes, d)
		}
	}
	if len(holes) > MaxHoles {
		dst = append(dst, bitmapMode)
		for _, v := range w.Seen {
			dst = binary.LittleEndian.AppendUint64(dst, v)
		}
		return dst
	}
	dst = append(dst, byte(len(holes)))
	prev := uint64(0)
	for _, d := range holes {
		dst = binary.AppendUvarint(dst, d-prev)
		prev = d
	}
	return dst
}

// low is the distance from Top down to the lowest counter accepted.
func (w *Window) low() uint64 {
	for d := uint64(Size - 1); d > 0; d-- {
		if w.bit(d) {
			return d
		}
	}
	return 0
}

// ParseBinary reads a window's binary form from the start of b and
// returns it with the bytes it used. Only the canonical form parses.
func ParseBinary(b []byte) (Window, int, error) {
	top, n1 := uvarint(b)
	if n1 <= 0 {
		return Window{}, 0, ErrMalformed
	}
	low, n2 := uvarint(b[n1:])
	i := n1 + n2
	if n2 <= 0 || len(b) <= i || low >= Size || (top == 0 && low > 0) || (top > 0 && low > top-1) {
		return Window{}, 0, ErrMalformed
	}
	k := b[i]
	i++
	w := Window{Top: top}
	if k == bitmapMode {
		if len(b) < i+Size/8 {
			return Window{}, 0, ErrMalformed
		}
		for j := range w.Seen {
			w.Seen[j] = binary.LittleEndian.Uint64(b[i+8*j:])
		}
		i += Size / 8
	} else {
		if k > MaxHoles || top == 0 && k > 0 {
			return Window{}, 0, ErrMalformed
		}
		if top > 0 {
			for d := uint64(0); d <= low; d++ {
				w.Seen[d/64] |= 1 << (d % 64)
			}
		}
		prev := uint64(0)
		for range k {
			delta, n := uvarint(b[i:])
			if n <= 0 || delta == 0 || prev+delta >= low {
				return Window{}, 0, ErrMalformed // holes ascend, strictly between top and low
			}
			prev += delta
			w.Seen[prev/64] &^= 1 << (prev % 64)
			i += n
		}
	}
	if !w.valid() || !bytes.Equal(w.AppendBinary(nil), b[:i]) {
		return Window{}, 0, ErrMalformed // not canonical (a bitmap with few holes, or bits past low)
	}
	return w, i, nil
}

// uvarint reads a minimal uvarint; n <= 0 if there is none.
func uvarint(b []byte) (uint64, int) {
	v, n := binary.Uvarint(b)
	if n <= 0 || len(binary.AppendUvarint(nil, v)) != n {
		return 0, -1
	}
	return v, n
}

// String is the text form: "<top>.<64 hex digits>", the bits little-endian
// (word 0 first, each word's low byte first).
func (w Window) String() string {
	var raw [Size / 8]byte
	for i, v := range w.Seen {
		binary.LittleEndian.PutUint64(raw[i*8:], v)
	}
	return strconv.FormatUint(w.Top, 10) + "." + hex.EncodeToString(raw[:])
}

// ParseText reads the text form; only the canonical form parses.
func ParseText(s string) (Window, error) {
	top, bitsHex, ok := strings.Cut(s, ".")
	if !ok || len(bitsHex) != Size/4 || strings.ToLower(bitsHex) != bitsHex {
		return Window{}, ErrMalformed
	}
	t, err := strconv.ParseUint(top, 10, 64)
	if err != nil || strconv.FormatUint(t, 10) != top {
		return Window{}, ErrMalformed
	}
	raw, err := hex.DecodeString(bitsHex)
	if err != nil {
		return Window{}, ErrMalformed
	}
	w := Window{Top: t}
	for i := range w.Seen {
		w.Seen[i] = binary.LittleEndian.Uint64(raw[i*8:])
	}
	if !w.valid() {
		return Window{}, ErrMalformed
	}
	return w, nil
}

// valid reports whether w could be the result of accepting counters: bit
// 0 is set exactly when Top > 0, and no bit stands for a counter below 1.
func (w *Window) valid() bool {
	if w.Top == 0 {
		return w.Seen == [Size / 64]uint64{}
	}
	if !w.bit(0) {
		return false
	}
	for d := w.Top; d < Size; d++ { // counters Top-d <= 0
		if w.bit(d) {
			return false
		}
	}
	return true
}
