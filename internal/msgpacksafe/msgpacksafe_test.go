package msgpacksafe

import (
	"runtime"
	"testing"

	"github.com/vmihailenco/msgpack/v5"
)

// TestBombRefused: a short input that claims a huge array is refused
// before msgpack allocates for it.
func TestBombRefused(t *testing.T) {
	bomb := []byte{0x81, 0xa1, 'x', 0xdd, 0x7f, 0xff, 0xff, 0xff} // {"x": array of 2^31-1}
	var v map[string][]string
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	if err := Unmarshal(bomb, &v); err == nil {
		t.Fatal("a bomb was accepted")
	}
	runtime.ReadMemStats(&after)
	if grew := after.TotalAlloc - before.TotalAlloc; grew > 1<<20 {
		t.Fatalf("refusing the bomb allocated %d bytes", grew)
	}
}

func TestValidRoundTrip(t *testing.T) {
	in := map[string][]int{"a": {1, 2, 3}, "b": nil}
	data, _ := msgpack.Marshal(in)
	var out map[string][]int
	if err := Unmarshal(data, &out); err != nil || len(out["a"]) != 3 {
		t.Fatalf("%v %v", out, err)
	}
}

func FuzzCheck(f *testing.F) {
	data, _ := msgpack.Marshal(map[string]any{"k": []any{1, "x", []byte{1}}})
	f.Add(data)
	f.Fuzz(func(t *testing.T, b []byte) {
		if Check(b) != nil {
			return
		}
		var v any
		msgpack.Unmarshal(b, &v) // must not panic or explode once Check passed
	})
}
