package handshake_test

import (
	"errors"
	"fmt"
	"testing"

	"github.com/commsec/communicator/protocol"
	"github.com/commsec/communicator/protocol/handshake"
)

// messages holds the honest messages of one handshake, so that any step of
// either side can be replayed against a fresh state machine.
type messages struct{ m1, m2, m3, m4 []byte }

func honestFlow(t *testing.T) (messages, func() *handshake.ClientHandshake, func() *handshake.ServerHandshake) {
	ck, sk := mustKey(t), mustKey(t)
	cEph, sEph := make([]byte, 32), make([]byte, 32)
	cEph[0], sEph[0] = 1, 2
	newC := func() *handshake.ClientHandshake {
		return handshake.NewClientHandshake(ck, sk.Public(), fixed(cEph))
	}
	newS := func() *handshake.ServerHandshake { return handshake.NewServerHandshake(sk, fixed(sEph)) }
	c, s := newC(), newS()
	var f messages
	var err error
	steps := []func() error{
		func() error { f.m1, err = c.WriteM1(); return err },
		func() error { return s.ReadM1(f.m1) },
		func() error { f.m2, err = s.WriteM2(); return err },
		func() error { f.m3, err = s.WriteM3(); return err },
		func() error { return c.ReadM2(f.m2) },
		func() error { return c.ReadM3(f.m3) },
		func() error { f.m4, err = c.WriteM4(); return err },
		func() error { return s.ReadM4(f.m4) },
	}
	for i, step := range steps {
		if err := step(); err != nil {
			t.Fatalf("honest step %d: %v", i, err)
		}
	}
	return f, newC, newS
}

type fixedReader []byte

func fixed(b []byte) *fixedReader { r := fixedReader(b); return &r }

func (r *fixedReader) Read(p []byte) (int, error) { return copy(p, *r), nil }

type step struct {
	name string
	run  func() error
}

func clientSteps(c *handshake.ClientHandshake, f messages) []step {
	return []step{
		{"WriteM1", func() error { _, err := c.WriteM1(); return err }},
		{"ReadM2", func() error { return c.ReadM2(f.m2) }},
		{"ReadM3", func() error { return c.ReadM3(f.m3) }},
		{"WriteM4", func() error { _, err := c.WriteM4(); return err }},
		{"Keys", func() error { _, err := c.Keys(); return err }},
	}
}

func serverSteps(s *handshake.ServerHandshake, f messages) []step {
	return []step{
		{"ReadM1", func() error { return s.ReadM1(f.m1) }},
		{"WriteM2", func() error { _, err := s.WriteM2(); return err }},
		{"WriteM3", func() error { _, err := s.WriteM3(); return err }},
		{"ReadM4", func() error { return s.ReadM4(f.m4) }},
		{"Keys", func() error { _, err := s.Keys(); return err }},
	}
}

// TestOutOfOrderRefused runs, for every prefix of the honest messages, every
// step that is not the next one: each must be refused with ErrOutOfOrder,
// and the state machine must then refuse even the right next step.
func TestOutOfOrderRefused(t *testing.T) {
	f, newC, newS := honestFlow(t)
	sides := map[string]func() []step{
		"client": func() []step { return clientSteps(newC(), f) },
		"server": func() []step { return serverSteps(newS(), f) },
	}
	for side, fresh := range sides {
		n := len(fresh())
		for done := 0; done <= n; done++ {
			for wrong := 0; wrong < n; wrong++ {
				if wrong == done {
					continue
				}
				t.Run(fmt.Sprintf("%s/after%d/%s", side, done, fresh()[wrong].name), func(t *testing.T) {
					steps := fresh()
					for i := 0; i < done; i++ {
						if err := steps[i].run(); err != nil {
							t.Fatalf("honest %s: %v", steps[i].name, err)
						}
					}
					if err := steps[wrong].run(); !errors.Is(err, protocol.ErrOutOfOrder) {
						t.Fatalf("%s out of order: got %v, want ErrOutOfOrder", steps[wrong].name, err)
					}
					if done < n {
						if err := steps[done].run(); !errors.Is(err, protocol.ErrOutOfOrder) {
							t.Fatalf("after a refused step, %s: got %v, want ErrOutOfOrder", steps[done].name, err)
						}
					}
				})
			}
		}
	}
}

// TestFailureIsFinal: after a step fails on bad input, the honest next
// input is refused too.
func TestFailureIsFinal(t *testing.T) {
	f, newC, _ := honestFlow(t)
	c := newC()
	if _, err := c.WriteM1(); err != nil {
		t.Fatal(err)
	}
	bad := append([]byte(nil), f.m2...)
	bad[10] ^= 1 // another server identity
	if err := c.ReadM2(bad); !errors.Is(err, protocol.ErrWrongServerKey) {
		t.Fatalf("got %v, want ErrWrongServerKey", err)
	}
	if err := c.ReadM2(f.m2); !errors.Is(err, protocol.ErrOutOfOrder) {
		t.Fatalf("retry after failure: got %v, want ErrOutOfOrder", err)
	}
}
