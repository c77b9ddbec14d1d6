package clientsdk

import (
	"math/rand/v2"
	"testing"
	"time"

	"github.com/commsec/communicator/protocol/keys"
)

// TestReconnectSpread: the first attempt after a lost connection waits a
// uniformly random time in [0, ReconnectSpread), so that the clients of a
// restarted gateway do not all come back within MinBackoff. Over 10,000
// draws from a fixed source, every first wait is in range and each tenth
// of the range holds about a tenth of them. Before the spread, every
// first wait was at most MinBackoff (100 ms): all ten checks fail.
func TestReconnectSpread(t *testing.T) {
	cfg := testBackoffConfig(t, 0)
	if cfg.ReconnectSpread != DefaultReconnectSpread {
		t.Fatalf("default spread %v, want %v", cfg.ReconnectSpread, DefaultReconnectSpread)
	}
	src := rand.New(rand.NewPCG(1, 2))
	const draws, bins = 10_000, 10
	var counts [bins]int
	for range draws {
		w := newBackoff(cfg, src.Int64N).next()
		if w < 0 || w >= cfg.ReconnectSpread {
			t.Fatalf("first wait %v outside [0, %v)", w, cfg.ReconnectSpread)
		}
		counts[int(w*bins/cfg.ReconnectSpread)]++
	}
	for i, n := range counts {
		if n < draws/bins*8/10 || n > draws/bins*12/10 {
			t.Errorf("first waits in tenth %d of the spread: %d of %d, want about %d (%v)", i, n, draws, draws/bins, counts)
		}
	}
}

// TestReconnectBackoffAfterSpread: after the spread, the waits follow the
// exponential backoff, each between half of its step and the step, the
// steps doubling from MinBackoff up to MaxBackoff.
func TestReconnectBackoffAfterSpread(t *testing.T) {
	cfg := testBackoffConfig(t, 0)
	for name, randN := range map[string]func(int64) int64{
		"lowest":  func(int64) int64 { return 0 },
		"highest": func(n int64) int64 { return n - 1 },
	} {
		b := newBackoff(cfg, randN)
		b.next() // the spread
		step := cfg.MinBackoff
		for i := range 12 {
			w := b.next()
			if w < step/2 || w > step {
				t.Errorf("%s: attempt %d waited %v, want within [%v, %v]", name, i+2, w, step/2, step)
			}
			step = min(2*step, cfg.MaxBackoff)
		}
	}
}

// TestReconnectNoSpread: a negative ReconnectSpread turns the spread off;
// the first attempt waits as the backoff's first step.
func TestReconnectNoSpread(t *testing.T) {
	cfg := testBackoffConfig(t, -1)
	w := newBackoff(cfg, func(n int64) int64 { return n - 1 }).next()
	if w > cfg.MinBackoff {
		t.Errorf("first wait %v without the spread, want at most MinBackoff %v", w, cfg.MinBackoff)
	}
}

func testBackoffConfig(t *testing.T, spread time.Duration) Config {
	t.Helper()
	id, err := keys.GenerateClientIdentity(nil)
	if err != nil {
		t.Fatal(err)
	}
	cfg := Config{Addr: "127.0.0.1:1", Identity: id, ServerKey: [32]byte{1}, KeyserverKey: [32]byte{1},
		ReconnectSpread: spread}
	if err := cfg.fill(); err != nil {
		t.Fatal(err)
	}
	return cfg
}
