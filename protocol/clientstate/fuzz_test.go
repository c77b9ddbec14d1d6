package clientstate

// An internal test: the stored form has no public encoder besides saving,
// and decode/encode are the decoder and encoder to fuzz.

import (
	"bytes"
	"crypto/sha256"
	"testing"

	"github.com/commsec/communicator/protocol"
	"github.com/commsec/communicator/protocol/envelope"
)

// seedStates returns stored forms made through the public API: empty, one
// group, and several groups with keys, counters and seen senders.
func seedStates(tb testing.TB) [][]byte {
	store := &MemStore{}
	s, err := Load(store, Options{Reserve: 3, MaxEpochs: 3})
	if err != nil {
		tb.Fatal(err)
	}
	var out [][]byte
	snap := func() {
		data, _ := store.Load()
		out = append(out, data)
	}
	must := func(err error) {
		if err != nil {
			tb.Fatal(err)
		}
	}
	g1, g2 := protocol.GroupID{1}, protocol.GroupID{0xff, 15: 2}
	must(s.InstallKey(g1, 1, &[32]byte{1}))
	snap()
	for e := protocol.Epoch(2); e <= 5; e++ {
		must(s.InstallKey(g1, e, &[32]byte{byte(e)}))
	}
	must(s.InstallKey(g2, 200, &[32]byte{0x20}))
	for range 4 {
		_, err := s.NextCounter(g2)
		must(err)
	}
	must(s.Accept(envelope.Header{Group: g1, Epoch: 5, Sender: protocol.ClientID{7}, Counter: 1}))
	must(s.Accept(envelope.Header{Group: g1, Epoch: 5, Sender: protocol.ClientID{9}, Counter: 300}))
	must(s.Accept(envelope.Header{Group: g2, Epoch: 200, Sender: protocol.ClientID{7}, Counter: 1 << 31}))
	snap()
	return append(out, encode(map[protocol.GroupID]*group{}))
}

// variants returns b and damaged copies: truncated, extended, bit-flipped.
func variants(b []byte) [][]byte {
	out := [][]byte{b, nil}
	if len(b) > 0 {
		out = append(out, b[:len(b)-1], b[:len(b)/2])
	}
	out = append(out, append(bytes.Clone(b), 0))
	for _, i := range []int{0, 4, 5, 6, 22, len(b) / 2, len(b) - 5, len(b) - 1} {
		if i >= 0 && i < len(b) {
			c := bytes.Clone(b)
			c[i] ^= 0x01
			out = append(out, c)
		}
	}
	return out
}

// fixCheck replaces the last checkSize bytes of data with the checksum of
// the rest, so the fuzzer can reach the parser behind it.
func fixCheck(data []byte) []byte {
	if len(data) < checkSize {
		return data
	}
	out := bytes.Clone(data)
	n := len(out) - checkSize
	sum := sha256.Sum256(out[:n])
	copy(out[n:], sum[:checkSize])
	return out
}

func addSeeds(f *testing.F) {
	for _, st := range seedStates(f) {
		for _, v := range variants(st) {
			f.Add(v, false)
			f.Add(v, true)
		}
	}
}

// FuzzDecode checks that decode accepts only canonical stored forms
// (encode gives the input back), returns nothing on failure, and that what
// it accepts keeps the State's invariants.
func FuzzDecode(f *testing.F) {
	addSeeds(f)
	f.Fuzz(func(t *testing.T, data []byte, fix bool) {
		if fix {
			data = fixCheck(data)
		}
		groups, err := decode(data)
		if err != nil {
			if groups != nil {
				t.Fatalf("decode(%x) failed (%v) but returned state", data, err)
			}
			return
		}
		if len(data) == 0 {
			if len(groups) != 0 {
				t.Fatalf("decode of nothing gave %d groups", len(groups))
			}
			return
		}
		if got := encode(groups); !bytes.Equal(got, data) {
			t.Fatalf("decode(%x) is not canonical: encode gives %x", data, got)
		}
		for id, gr := range groups {
			for i := 1; i < len(gr.keys); i++ {
				if gr.keys[i].epoch <= gr.keys[i-1].epoch {
					t.Fatalf("group %v: keys do not ascend: %v", id, gr.keys)
				}
			}
			if gr.next != gr.reserved {
				t.Fatalf("group %v: next %d, reserved %d", id, gr.next, gr.reserved)
			}
		}
	})
}

// FuzzLoad loads a MemStore holding arbitrary bytes. It must not panic; a
// loaded state has the input's size and saving it stores the input again.
func FuzzLoad(f *testing.F) {
	addSeeds(f)
	f.Fuzz(func(t *testing.T, data []byte, fix bool) {
		if fix {
			data = fixCheck(data)
		}
		store := &MemStore{}
		if err := store.Save(data); err != nil {
			t.Fatal(err)
		}
		s, err := Load(store, Options{})
		if err != nil {
			if s != nil {
				t.Fatalf("Load of %x failed (%v) but returned a State", data, err)
			}
			return
		}
		if len(data) == 0 {
			return // nothing stored is empty state
		}
		if s.Size() != len(data) {
			t.Fatalf("Load of %d bytes gave a state of size %d", len(data), s.Size())
		}
		if err := s.save(); err != nil {
			t.Fatal(err)
		}
		if saved, _ := store.Load(); !bytes.Equal(saved, data) {
			t.Fatalf("Load of %x then save stored %x", data, saved)
		}
	})
}
