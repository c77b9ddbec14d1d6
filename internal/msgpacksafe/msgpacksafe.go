// Package msgpacksafe decodes msgpack from untrusted bytes without letting
// a few bytes claim gigabytes: msgpack/v5 allocates whatever length the
// input announces (and its own allocation limit is disabled by a bug), so
// a 72-byte input could make it allocate 4 GiB. Check walks the value
// first and refuses any length that claims more than the input holds.
package msgpacksafe

import (
	"encoding/binary"
	"errors"

	"github.com/vmihailenco/msgpack/v5"
)

// Unmarshal checks data with Check, then decodes it into v.
func Unmarshal(data []byte, v any) error {
	if err := Check(data); err != nil {
		return err
	}
	return msgpack.Unmarshal(data, v)
}

// maxDepth bounds the nesting Check accepts; an Event nests three
// deep.
const maxDepth = 16

var errSize = errors.New("msgpack length beyond the record or nesting too deep")

// Check walks the msgpack value at the start of data and refuses it
// if a length claims more bytes, or more elements, than are left, or it
// nests deeper than maxDepth. Decoding a value that passes allocates at
// most a small multiple of its size.
func Check(data []byte) error {
	if _, ok := skip(data, 0); !ok {
		return errSize
	}
	return nil
}

// skip returns what follows the value at the start of b.
func skip(b []byte, depth int) ([]byte, bool) {
	p := &parser{b: b}
	c, ok := p.code()
	if !ok || depth > maxDepth {
		return nil, false
	}
	var n, elems int // bytes to skip, then values to skip
	switch {
	case c <= 0x7f || c >= 0xe0 || c == 0xc0 || c == 0xc2 || c == 0xc3:
	case c >= 0x80 && c <= 0x8f:
		elems = 2 * int(c&0x0f)
	case c >= 0x90 && c <= 0x9f:
		elems = int(c & 0x0f)
	case c >= 0xa0 && c <= 0xbf:
		n = int(c & 0x1f)
	case c >= 0xc4 && c <= 0xc6: // bin 8, 16, 32
		n, ok = p.length(1 << (c - 0xc4))
	case c >= 0xc7 && c <= 0xc9: // ext 8, 16, 32: length, type, data
		n, ok = p.length(1 << (c - 0xc7))
		n++
	case c == 0xca || c == 0xcb: // float 32, 64
		n = 4 << (c - 0xca)
	case c >= 0xcc && c <= 0xcf: // uint 8..64
		n = 1 << (c - 0xcc)
	case c >= 0xd0 && c <= 0xd3: // int 8..64
		n = 1 << (c - 0xd0)
	case c >= 0xd4 && c <= 0xd8: // fixext 1..16
		n = 1 + 1<<(c-0xd4)
	case c >= 0xd9 && c <= 0xdb: // str 8, 16, 32
		n, ok = p.length(1 << (c - 0xd9))
	case c == 0xdc || c == 0xdd: // array 16, 32
		elems, ok = p.length(2 << (c - 0xdc))
	case c == 0xde || c == 0xdf: // map 16, 32
		elems, ok = p.length(2 << (c - 0xde))
		elems *= 2
	default: // 0xc1, never used
		return nil, false
	}
	if !ok || n > len(p.b) || elems > len(p.b) {
		return nil, false
	}
	rest := p.b[n:]
	for range elems {
		if rest, ok = skip(rest, depth+1); !ok {
			return nil, false
		}
	}
	return rest, true
}

// parser reads msgpack headers; its methods report false past the end.
type parser struct{ b []byte }

func (p *parser) code() (byte, bool) {
	if len(p.b) == 0 {
		return 0, false
	}
	c := p.b[0]
	p.b = p.b[1:]
	return c, true
}

// length reads a big-endian length of size bytes.
func (p *parser) length(size int) (int, bool) {
	if size > len(p.b) {
		return 0, false
	}
	b := p.b[:size]
	p.b = p.b[size:]
	switch size {
	case 1:
		return int(b[0]), true
	case 2:
		return int(binary.BigEndian.Uint16(b)), true
	}
	return int(binary.BigEndian.Uint32(b)), true
}
