package clientstate

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"slices"

	"github.com/commsec/communicator/protocol"
	"github.com/commsec/communicator/protocol/replay"
)

// The stored form, compact because a client's flash is small:
//
//	magic "CMST" | version 3 | groups uvarint | group... | check 4
//	group:  id(16) | floor uvarint | reserved uvarint |
//	        newest uvarint | since uvarint |
//	        keys(1) | (epoch uvarint | key(32))... |
//	        seen uvarint | (tag(8) | epoch uvarint | window)...
//	window: replay.Window's binary form (top counter, and which of the
//	        128 below it were accepted; 3 bytes when all were)
//
// Groups are sorted by id, keys by epoch, seen entries by tag, and every
// uvarint is minimal, so each state has exactly one encoding. check is
// SHA-256 of everything before it, truncated to 4 bytes: it catches a
// corrupt file, not a forged one (the file is as trusted as the device).
const (
	stateMagic   = "CMST"
	stateVersion = 3 // 2: replay windows instead of last counters; 3: epochs retired by rule
	checkSize    = 4
)

func encode(groups map[protocol.GroupID]*group) []byte {
	b := append([]byte(stateMagic), stateVersion)
	ids := make([]protocol.GroupID, 0, len(groups))
	for id := range groups {
		ids = append(ids, id)
	}
	slices.SortFunc(ids, func(a, b protocol.GroupID) int { return bytes.Compare(a[:], b[:]) })
	b = binary.AppendUvarint(b, uint64(len(ids)))
	for _, id := range ids {
		b = groups[id].append(b, id)
	}
	sum := sha256.Sum256(b)
	return append(b, sum[:checkSize]...)
}

func (gr *group) append(b []byte, id protocol.GroupID) []byte {
	b = append(b, id[:]...)
	b = binary.AppendUvarint(b, uint64(gr.floor))
	b = binary.AppendUvarint(b, gr.reserved)
	b = binary.AppendUvarint(b, uint64(gr.newest))
	b = binary.AppendUvarint(b, uint64(gr.since))
	b = append(b, byte(len(gr.keys)))
	for _, k := range gr.keys {
		b = binary.AppendUvarint(b, uint64(k.epoch))
		b = append(b, k.key[:]...)
	}
	tags := make([]senderTag, 0, len(gr.seen))
	for t := range gr.seen {
		tags = append(tags, t)
	}
	slices.SortFunc(tags, func(a, b senderTag) int { return bytes.Compare(a[:], b[:]) })
	b = binary.AppendUvarint(b, uint64(len(tags)))
	for _, t := range tags {
		b = append(b, t[:]...)
		snd := gr.seen[t]
		b = binary.AppendUvarint(b, uint64(snd.epoch))
		b = snd.window.AppendBinary(b)
	}
	return b
}

// decode parses the stored form; nil or empty data is empty state. It
// accepts only the canonical encoding: whatever it parses must encode back
// to the same bytes.
func decode(data []byte) (map[protocol.GroupID]*group, error) {
	groups := map[protocol.GroupID]*group{}
	if len(data) == 0 {
		return groups, nil
	}
	if err := checkFrame(data); err != nil {
		return nil, err
	}
	r := reader{b: data[len(stateMagic)+1 : len(data)-checkSize]}
	n := r.uvarint()
	for i := uint64(0); i < n && r.err == nil; i++ {
		var id protocol.GroupID
		r.bytes(id[:])
		groups[id] = r.group()
	}
	if r.err != nil || len(r.b) != 0 || len(groups) != int(n) {
		return nil, protocol.ErrStateCorrupt
	}
	if !bytes.Equal(encode(groups), data) {
		return nil, protocol.ErrStateCorrupt // not canonical
	}
	return groups, nil
}

func checkFrame(data []byte) error {
	if len(data) < len(stateMagic)+1+checkSize || string(data[:len(stateMagic)]) != stateMagic {
		return protocol.ErrStateCorrupt
	}
	if data[len(stateMagic)] != stateVersion {
		return protocol.ErrStateCorrupt
	}
	n := len(data) - checkSize
	sum := sha256.Sum256(data[:n])
	if !bytes.Equal(sum[:checkSize], data[n:]) {
		return protocol.ErrStateCorrupt
	}
	return nil
}

func (r *reader) group() *group {
	gr := newGroup()
	gr.floor = protocol.Epoch(r.uint32())
	gr.reserved = r.uvarint()
	if gr.reserved == 0 {
		r.err = protocol.ErrStateCorrupt // counters start at 1
	}
	gr.next = gr.reserved
	gr.newest = protocol.Epoch(r.uint32())
	since := r.uvarint()
	if since > protocol.RetireAfter || (since == 0) != (gr.newest == 0) {
		r.err = protocol.ErrStateCorrupt
	}
	gr.since = uint32(since)
	nkeys := int(r.byte())
	for i := 0; i < nkeys && r.err == nil; i++ {
		var k epochKey
		k.epoch = protocol.Epoch(r.uint32())
		r.bytes(k.key[:])
		if i > 0 && k.epoch <= gr.keys[i-1].epoch {
			r.err = protocol.ErrStateCorrupt // keys must ascend
		}
		gr.keys = append(gr.keys, k)
	}
	nseen := r.uvarint()
	for i := uint64(0); i < nseen && r.err == nil; i++ {
		var t senderTag
		r.bytes(t[:])
		snd := sender{epoch: protocol.Epoch(r.uint32())}
		snd.window = r.window()
		if snd.epoch == 0 || snd.epoch > gr.newest {
			r.err = protocol.ErrStateCorrupt // every accepted message counted in newest
		}
		gr.seen[t] = snd
	}
	return gr
}

// reader consumes bytes, remembering the first error.
type reader struct {
	b   []byte
	err error
}

func (r *reader) bytes(dst []byte) {
	if r.err != nil || len(r.b) < len(dst) {
		r.err = protocol.ErrStateCorrupt
		return
	}
	r.b = r.b[copy(dst, r.b):]
}

func (r *reader) byte() byte {
	var b [1]byte
	r.bytes(b[:])
	return b[0]
}

func (r *reader) uvarint() uint64 {
	if r.err != nil {
		return 0
	}
	v, n := binary.Uvarint(r.b)
	if n <= 0 {
		r.err = protocol.ErrStateCorrupt
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *reader) window() replay.Window {
	if r.err != nil {
		return replay.Window{}
	}
	w, n, err := replay.ParseBinary(r.b)
	if err != nil || w.Top == 0 {
		r.err = protocol.ErrStateCorrupt // a seen sender has accepted a counter
		return replay.Window{}
	}
	r.b = r.b[n:]
	return w
}

func (r *reader) uint32() uint32 {
	v := r.uvarint()
	if v > 1<<32-1 {
		r.err = protocol.ErrStateCorrupt
	}
	return uint32(v)
}
