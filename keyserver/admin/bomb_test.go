package admin

import (
	"errors"
	"runtime"
	"testing"
	"time"
)

// TestRequestBombRefused: an unauthenticated request whose msgpack claims
// a 2 GiB array is refused as unauthorized without the allocation.
func TestRequestBombRefused(t *testing.T) {
	data := []byte{0x81, 0xa2, 'o', 'p', 0xdd, 0x7f, 0xff, 0xff, 0xff}
	wire := append(data, make([]byte, 64)...)
	v := NewVerifier(nil, time.Minute)
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	_, err := v.Verify(Subject(OpList), wire, time.Now())
	runtime.ReadMemStats(&after)
	if !errors.Is(err, ErrUnauthorized) {
		t.Fatalf("got %v, want unauthorized", err)
	}
	if grew := after.TotalAlloc - before.TotalAlloc; grew > 1<<20 {
		t.Fatalf("refusing the request allocated %d bytes", grew)
	}
}
