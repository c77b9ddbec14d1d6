package gateway

import (
	"net"
	"net/netip"
	"sync"

	"github.com/commsec/communicator/protocol"
)

// admission is the table of handshakes in flight and the policy that
// decides which connection may start one (docs/PROTOCOL.md, 4.9). It does
// no I/O: the caller tells the connections it turns away, closes them and
// counts them. With G = global and P = perSource:
//
//  1. While fewer than G handshakes are in flight, a connection is
//     admitted whatever its source holds: an idle gateway turns no one
//     away, not even a burst from one address (a NAT, a test fleet).
//  2. When all G are taken, a connection whose source holds P or more is
//     refused: busy_source.
//  3. Otherwise it evicts a handshake of the source holding the most, if
//     that source holds at least two more than the newcomer's (so that
//     the two do not trade places): that source's handshake longest
//     waiting for M1, or if none waits for M1, its handshake longest past
//     M1 (waiting for M4). Among sources holding as many, the one whose
//     candidate waits for M1, then the one whose candidate has waited
//     longest.
//  4. Otherwise it is refused: busy.
//
// So one source, or a few, cannot keep a newcomer from another source
// out: as long as some source holds two or more, a source holding none
// gets in at once. A handshake leaves the table when it ends (done) or is
// evicted; a ticket says which, so that the loser of that race learns it.
//
// Its memory is bounded by G: the slots are allocated once, and a source
// that leaves the table is kept for the next new one.
type admission[T any] struct {
	mu        sync.Mutex
	perSource int
	slots     []slot[T]
	free      []int32 // indices of unused slots
	sources   map[netip.Addr]*source
	spare     []*source // sources no longer in the table, for reuse
	clock     uint64    // orders the slots' entries into their stage
}

// A ticket names one admitted handshake. It goes stale when the
// handshake leaves the table.
type ticket struct {
	slot int32
	gen  uint64
}

// stage is where a handshake in the table is.
type stage uint8

const (
	waitingM1 stage = iota // accepted; M1 not yet whole: no work done for it
	pastM1                 // M1 read; the server has answered or is computing
)

type slot[T any] struct {
	gen        uint64 // bumped when the slot is freed
	src        *source
	stage      stage
	since      uint64 // clock when it entered its stage
	prev, next int32  // neighbours in src.lists[stage]; -1 at the ends
	val        T
}

// source is an address's handshakes in flight: how many, and a list per
// stage, oldest first.
type source struct {
	addr  netip.Addr
	n     int
	lists [2]struct{ head, tail int32 }
}

// A decision is admit's answer.
type decision[T any] struct {
	ticket  ticket          // the admitted handshake, if refused is nil
	refused *protocol.Error // protocol.ErrBusy or ErrBusySource; nil: admitted
	evicted bool            // admitting it evicted victim
	victim  T
	// victimStage is where the victim was: a server answers one waiting
	// for M1 with the error message, and just closes one past M1.
	victimStage stage
}

func newAdmission[T any](global, perSource int) *admission[T] {
	a := &admission[T]{perSource: perSource, slots: make([]slot[T], global), free: make([]int32, global),
		sources: make(map[netip.Addr]*source, global)}
	for i := range a.free {
		a.free[i] = int32(global - 1 - i)
	}
	return a
}

// admit decides on a new connection from addr and, if it is admitted,
// records it with val (what an eviction hands back).
func (a *admission[T]) admit(addr netip.Addr, val T) decision[T] {
	a.mu.Lock()
	defer a.mu.Unlock()
	var d decision[T]
	if len(a.free) == 0 {
		held := 0
		if s := a.sources[addr]; s != nil {
			held = s.n
		}
		if held >= a.perSource {
			d.refused = protocol.ErrBusySource
			return d
		}
		v := a.victim(held)
		if v < 0 {
			d.refused = protocol.ErrBusy
			return d
		}
		d.evicted, d.victim, d.victimStage = true, a.slots[v].val, a.slots[v].stage
		a.remove(v)
	}
	d.ticket = a.add(addr, val)
	return d
}

// victim returns the slot to evict for a newcomer whose source holds
// held, or -1 (rule 3).
func (a *admission[T]) victim(held int) int32 {
	best, bestN := int32(-1), 0
	for _, s := range a.sources {
		if s.n < held+2 {
			continue
		}
		c := s.oldest()
		if best < 0 || s.n > bestN || s.n == bestN && a.before(c, best) {
			best, bestN = c, s.n
		}
	}
	return best
}

// before reports whether slot i is a better victim than slot j of a
// source holding as many: waiting for M1 rather than past it, then
// longer in its stage.
func (a *admission[T]) before(i, j int32) bool {
	si, sj := &a.slots[i], &a.slots[j]
	if si.stage != sj.stage {
		return si.stage == waitingM1
	}
	return si.since < sj.since
}

// oldest is the source's handshake longest waiting for M1, else its
// handshake longest past M1.
func (s *source) oldest() int32 {
	if h := s.lists[waitingM1].head; h >= 0 {
		return h
	}
	return s.lists[pastM1].head
}

// gotM1 moves a handshake past M1 (once: again, it stays where it is).
// It reports false if the handshake was evicted: its connection is no
// longer the caller's to use.
func (a *admission[T]) gotM1(t ticket) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.slots[t.slot].gen != t.gen {
		return false
	}
	if a.slots[t.slot].stage == waitingM1 {
		a.unlink(t.slot)
		a.link(t.slot, pastM1)
	}
	return true
}

// done takes a handshake out of the table. It reports false if it had
// been evicted already (and so counted and told).
func (a *admission[T]) done(t ticket) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.slots[t.slot].gen != t.gen {
		return false
	}
	a.remove(t.slot)
	return true
}

// inFlight is the number of handshakes in the table.
func (a *admission[T]) inFlight() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return len(a.slots) - len(a.free)
}

func (a *admission[T]) add(addr netip.Addr, val T) ticket {
	i := a.free[len(a.free)-1]
	a.free = a.free[:len(a.free)-1]
	s := a.sources[addr]
	if s == nil {
		s = a.newSource(addr)
		a.sources[addr] = s
	}
	s.n++
	a.slots[i].src, a.slots[i].val = s, val
	a.link(i, waitingM1)
	return ticket{slot: i, gen: a.slots[i].gen}
}

func (a *admission[T]) remove(i int32) {
	sl := &a.slots[i]
	s := sl.src
	a.unlink(i)
	s.n--
	if s.n == 0 {
		delete(a.sources, s.addr)
		a.spare = append(a.spare, s)
	}
	var zero T
	sl.src, sl.val = nil, zero
	sl.gen++
	a.free = append(a.free, i)
}

func (a *admission[T]) newSource(addr netip.Addr) *source {
	var s *source
	if n := len(a.spare); n > 0 {
		s, a.spare = a.spare[n-1], a.spare[:n-1]
	} else {
		s = new(source)
	}
	*s = source{addr: addr}
	for st := range s.lists {
		s.lists[st].head, s.lists[st].tail = -1, -1
	}
	return s
}

// link appends slot i to its source's list for st.
func (a *admission[T]) link(i int32, st stage) {
	sl := &a.slots[i]
	l := &sl.src.lists[st]
	a.clock++
	sl.stage, sl.since, sl.prev, sl.next = st, a.clock, l.tail, -1
	if l.tail >= 0 {
		a.slots[l.tail].next = i
	} else {
		l.head = i
	}
	l.tail = i
}

// unlink takes slot i out of its source's list.
func (a *admission[T]) unlink(i int32) {
	sl := &a.slots[i]
	l := &sl.src.lists[sl.stage]
	if sl.prev >= 0 {
		a.slots[sl.prev].next = sl.next
	} else {
		l.head = sl.next
	}
	if sl.next >= 0 {
		a.slots[sl.next].prev = sl.prev
	} else {
		l.tail = sl.prev
	}
}

// sourceOf is the source a connection counts under: its remote IP
// address, an IPv4 address mapped into IPv6 as IPv4, and an IPv6 address
// by its /64 (one host may hold a whole /64, as wireguard-go's rate
// limiter assumes too).
func sourceOf(addr net.Addr) netip.Addr {
	ta, ok := addr.(*net.TCPAddr)
	if !ok {
		return netip.Addr{}
	}
	ip := ta.AddrPort().Addr().Unmap()
	if ip.Is6() {
		p, _ := ip.Prefix(64)
		return p.Addr()
	}
	return ip
}
