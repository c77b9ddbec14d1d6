package gateway

import (
	"maps"
	"testing"
)

// FuzzCursorRecord feeds the decoders of what another gateway wrote (a
// client's record in COMM_CURSORS, a cursor snapshot's chunk) arbitrary
// bytes: they never panic, and a record they accept means the same after
// it is written again (its canonical form: "0,0" is written "0").
func FuzzCursorRecord(f *testing.F) {
	for _, s := range []string{"", "0", "5,9", "5,9;b12", "3;b1;e00112233445566778899aabbccddeeff.4",
		"snapshot gw 0 2\n0011223344556677889900112233445566778899001122334455667788990011 5,9;b2\n", "x;y", "1;e.;b"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		if sv, ok := parseRecord(string(data)); ok {
			again, ok := parseRecord(sv.record())
			if !ok || !sameCursor(again.cursor, sv.cursor) || again.bundle != sv.bundle ||
				!maps.Equal(again.epochs, sv.epochs) && (len(again.epochs) > 0 || len(sv.epochs) > 0) {
				t.Fatalf("%q read as %+v, written as %q, read back as %+v (%v)", data, sv, sv.record(), again, ok)
			}
		}
		if body, _, _, ok := parseChunkHead(data, 0); ok {
			parseChunk(body, nil)
		}
	})
}

// sameCursor compares two cursor vectors shard by shard, a missing shard
// being 0.
func sameCursor(a, b cursorVec) bool {
	for i := range max(len(a), len(b)) {
		if a.at(i) != b.at(i) {
			return false
		}
	}
	return true
}
