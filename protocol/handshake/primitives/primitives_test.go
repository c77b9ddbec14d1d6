package primitives_test

import (
	"errors"
	"testing"

	"github.com/commsec/communicator/protocol/handshake/primitives"
)

// TestSidesReproduceTheRecording: each side's primitives end on the
// recorded Ready tag; a recording with a flipped signature or Ready bit
// is refused with ErrMismatch.
func TestSidesReproduceTheRecording(t *testing.T) {
	f, err := primitives.Record()
	if err != nil {
		t.Fatal(err)
	}
	for _, server := range []bool{false, true} {
		if err := primitives.NewSide(f, server).Run(); err != nil {
			t.Errorf("server %v: %v", server, err)
		}
	}
	for name, flip := range map[string]func(*primitives.Flow){
		"M3 signature": func(f *primitives.Flow) { f.M3[len(f.M3)-1] ^= 1 },
		"M4 signature": func(f *primitives.Flow) { f.M4[len(f.M4)-1] ^= 1 },
		"Ready tag":    func(f *primitives.Flow) { f.Ready[len(f.Ready)-1] ^= 1 },
	} {
		f, _ := primitives.Record()
		flip(f)
		client, server := primitives.NewSide(f, false).Run(), primitives.NewSide(f, true).Run()
		if !errors.Is(client, primitives.ErrMismatch) && !errors.Is(server, primitives.ErrMismatch) {
			t.Errorf("%s flipped: client %v, server %v; want ErrMismatch from one", name, client, server)
		}
	}
}
