package gateway

import (
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"slices"
	"testing"

	"github.com/commsec/communicator/protocol"
)

func src(n byte) netip.Addr { return netip.AddrFrom4([4]byte{10, 0, 0, n}) }

// table drives an admission of names: each admitted handshake is called
// by its source's letter and its number, "a0", "a1", "b0"...
type table struct {
	t       *testing.T
	a       *admission[string]
	tickets map[string]ticket
	count   map[byte]int
}

func newTable(t *testing.T, global, perSource int) *table {
	return &table{t: t, a: newAdmission[string](global, perSource), tickets: map[string]ticket{}, count: map[byte]int{}}
}

// admit admits a connection from source letter s and returns its name,
// or the refusal, and the victim if any.
func (tb *table) admit(s byte) (name string, refused *protocol.Error, victim string) {
	name = fmt.Sprintf("%c%d", s, tb.count[s])
	tb.count[s]++
	d := tb.a.admit(src(s), name)
	if d.evicted {
		victim = d.victim
	}
	if d.refused != nil {
		return "", d.refused, victim
	}
	tb.tickets[name] = d.ticket
	return name, nil, victim
}

// want admits from s and checks the outcome: the victim evicted ("" for
// none) or the refusal.
func (tb *table) want(s byte, victim string, refused *protocol.Error) string {
	tb.t.Helper()
	name, r, v := tb.admit(s)
	if v != victim || r != refused {
		tb.t.Fatalf("connection from %c: evicted %q, refused %v; want evicted %q, refused %v", s, v, r, victim, refused)
	}
	return name
}

func (tb *table) gotM1(names ...string) {
	tb.t.Helper()
	for _, n := range names {
		if !tb.a.gotM1(tb.tickets[n]) {
			tb.t.Fatalf("gotM1(%s): evicted", n)
		}
	}
}

// TestAdmissionRoom: while the table has room, anyone is admitted, even
// past the per-source cap; once it is full the cap holds.
func TestAdmissionRoom(t *testing.T) {
	tb := newTable(t, 4, 2)
	for range 4 {
		tb.want('a', "", nil)
	}
	tb.want('a', "", protocol.ErrBusySource)
	tb.want('b', "a0", nil)
	tb.want('b', "a1", nil)
	tb.want('b', "", protocol.ErrBusySource) // b holds its share, 2
	if n := tb.a.inFlight(); n != 4 {
		t.Fatalf("%d in flight, want 4", n)
	}
}

// TestAdmissionBusy: a full table of sources holding as many as the
// newcomer's would with it evicts nobody: busy, not a trade of places.
func TestAdmissionBusy(t *testing.T) {
	tb := newTable(t, 3, 16)
	tb.want('a', "", nil)
	tb.want('a', "", nil)
	tb.want('b', "", nil)
	tb.want('b', "", protocol.ErrBusy) // a holds 2, b would hold 2
	tb.want('c', "a0", nil)            // a holds 2, c would hold 1
	tb.want('d', "", protocol.ErrBusy) // everyone holds 1
	tb.want('a', "", protocol.ErrBusy)
}

// TestAdmissionEvictionOrder: the victim is the most-holding source's
// handshake longest waiting for M1, else its handshake longest past M1;
// among sources holding as many, one waiting for M1 goes first, then the
// one in its stage the longest.
func TestAdmissionEvictionOrder(t *testing.T) {
	tb := newTable(t, 6, 16)
	for range 4 {
		tb.want('a', "", nil)
	}
	tb.want('b', "", nil)
	tb.want('b', "", nil)
	tb.gotM1("a2", "a0", "a2") // past M1 in that order (a2 once): a2 has waited longer for M4
	tb.want('c', "a1", nil)
	tb.want('c', "a3", nil) // a still holds 3, c would hold 2
	// a, b and c hold 2 each; b's and c's oldest wait for M1, b0 longest.
	tb.want('d', "b0", nil)
	tb.want('e', "c0", nil) // a and c hold 2; c0 waits for M1, a2 is past it
	tb.want('f', "a2", nil) // a holds 2, both past M1; a2 got there first
	tb.want('g', "", protocol.ErrBusy)
	for name, ok := range map[string]bool{"a0": true, "a1": false, "a2": false, "a3": false, "b0": false, "b1": true,
		"c0": false, "c1": true, "d0": true, "e0": true, "f0": true} {
		if got := tb.a.done(tb.tickets[name]); got != ok {
			t.Errorf("done(%s) = %v, want %v", name, got, ok)
		}
	}
	if n := tb.a.inFlight(); n != 0 || len(tb.a.sources) != 0 {
		t.Fatalf("after every handshake ended: %d in flight, %d sources", n, len(tb.a.sources))
	}
}

// TestAdmissionStaleTicket: an evicted handshake's ticket stays stale
// when its slot is reused, and the new holder's is not.
func TestAdmissionStaleTicket(t *testing.T) {
	tb := newTable(t, 2, 16)
	tb.want('a', "", nil)
	tb.want('a', "", nil)
	tb.want('b', "a0", nil) // b0 takes a0's slot
	if tb.a.gotM1(tb.tickets["a0"]) || tb.a.done(tb.tickets["a0"]) {
		t.Fatal("the evicted a0 moved or ended")
	}
	if tb.tickets["a0"].slot != tb.tickets["b0"].slot {
		t.Fatal("b0 did not reuse a0's slot; the test checks nothing")
	}
	tb.gotM1("b0")
	if !tb.a.done(tb.tickets["b0"]) || tb.a.done(tb.tickets["b0"]) {
		t.Fatal("b0 did not end exactly once")
	}
}

// TestAdmissionFloods: the floods, 2,000 half-open connections
// from one source or from 16, with the defaults: the flood holds the
// table, its excess costs a busy_source answer, and a newcomer from
// another source gets in at once, every time.
func TestAdmissionFloods(t *testing.T) {
	for _, sources := range []int{1, 16} {
		t.Run(fmt.Sprintf("%d sources", sources), func(t *testing.T) {
			a := newAdmission[int](256, 16)
			refused := map[*protocol.Error]int{}
			for i := range 2000 {
				d := a.admit(src(byte(1+i%sources)), i)
				if d.evicted {
					t.Fatalf("flood connection %d evicted %d", i, d.victim)
				}
				refused[d.refused]++
			}
			if refused[nil] != 256 || refused[protocol.ErrBusySource] != 2000-256 {
				t.Fatalf("flood: %v; want 256 admitted and the rest busy_source", refused)
			}
			for i := range 8 { // newcomers from one source, while the flood sources hold more
				d := a.admit(src(200), -1)
				if d.refused != nil || !d.evicted || d.victim < 0 {
					t.Fatalf("newcomer %d: %+v, want admitted by evicting a flood connection", i, d)
				}
			}
		})
	}
}

// TestAdmissionModel runs random operations against a plain model of
// the four rules and compares every decision.
func TestAdmissionModel(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	const global, perSource = 8, 3
	a := newAdmission[int](global, perSource)
	type entry struct {
		src    byte
		past   bool
		since  int
		id     int
		ticket ticket
	}
	var live []entry
	clock := 0
	held := func(s byte) int {
		n := 0
		for _, e := range live {
			if e.src == s {
				n++
			}
		}
		return n
	}
	// modelVictim applies rule 3 to the model: the index in live, or -1.
	modelVictim := func(h int) int {
		best := -1
		better := func(i, j int) bool {
			ni, nj := held(live[i].src), held(live[j].src)
			if ni != nj {
				return ni > nj
			}
			if live[i].past != live[j].past {
				return !live[i].past
			}
			return live[i].since < live[j].since
		}
		for i, e := range live {
			if held(e.src) >= h+2 && (best < 0 || better(i, best)) {
				best = i
			}
		}
		return best
	}
	for id := range 20_000 {
		switch op := r.IntN(10); {
		case op < 5:
			s := byte('a' + r.IntN(5))
			d := a.admit(src(s), id)
			var want *protocol.Error
			victim := -1
			if len(live) == global {
				if held(s) >= perSource {
					want = protocol.ErrBusySource
				} else if victim = modelVictim(held(s)); victim < 0 {
					want = protocol.ErrBusy
				}
			}
			if d.refused != want || d.evicted != (victim >= 0) || victim >= 0 && d.victim != live[victim].id {
				t.Fatalf("op %d: admit from %c = %+v; model: refused %v, victim %d", id, s, d, want, victim)
			}
			if victim >= 0 {
				live = slices.Delete(live, victim, victim+1)
			}
			if want == nil {
				clock++
				live = append(live, entry{src: s, since: clock, id: id, ticket: d.ticket})
			}
		case op < 7 && len(live) > 0:
			i := r.IntN(len(live))
			if live[i].past {
				continue
			}
			if !a.gotM1(live[i].ticket) {
				t.Fatalf("op %d: gotM1 of a live handshake failed", id)
			}
			clock++
			live[i].past, live[i].since = true, clock
		case len(live) > 0:
			i := r.IntN(len(live))
			if !a.done(live[i].ticket) {
				t.Fatalf("op %d: done of a live handshake failed", id)
			}
			live = slices.Delete(live, i, i+1)
		}
		if a.inFlight() != len(live) {
			t.Fatalf("op %d: %d in flight, model %d", id, a.inFlight(), len(live))
		}
	}
}

// TestAdmissionAllocs: once warm, admitting and ending a handshake
// allocates nothing, nor does a refusal.
func TestAdmissionAllocs(t *testing.T) {
	a := newAdmission[int](2, 1)
	a.done(a.admit(src(1), 0).ticket)
	if n := testing.AllocsPerRun(100, func() {
		d := a.admit(src(1), 0)
		a.gotM1(d.ticket)
		a.done(d.ticket)
	}); n != 0 {
		t.Errorf("admit, gotM1, done: %v allocations", n)
	}
	a.admit(src(1), 0)
	a.admit(src(1), 0)
	if n := testing.AllocsPerRun(100, func() { a.admit(src(1), 0) }); n != 0 {
		t.Errorf("a refusal: %v allocations", n)
	}
}

// TestSourceOf: the source is the IP address, IPv4 mapped into IPv6 as
// IPv4, and IPv6 by its /64.
func TestSourceOf(t *testing.T) {
	of := func(s string) netip.Addr { return sourceOf(net.TCPAddrFromAddrPort(netip.MustParseAddrPort(s))) }
	for _, c := range []struct{ a, b string }{
		{"127.0.0.1:1", "127.0.0.1:2"},
		{"[::ffff:10.0.0.1]:1", "10.0.0.1:2"},
		{"[2001:db8:1:2:aaaa::1]:1", "[2001:db8:1:2:bbbb::2]:2"},
	} {
		if of(c.a) != of(c.b) {
			t.Errorf("%s and %s are different sources (%v, %v)", c.a, c.b, of(c.a), of(c.b))
		}
	}
	for _, c := range []struct{ a, b string }{
		{"127.0.0.1:1", "127.0.0.2:1"},
		{"[2001:db8:1:2::1]:1", "[2001:db8:1:3::1]:1"},
	} {
		if of(c.a) == of(c.b) {
			t.Errorf("%s and %s are one source (%v)", c.a, c.b, of(c.a))
		}
	}
}
