package vectors

import (
	"fmt"

	"github.com/commsec/communicator/protocol"
	"github.com/commsec/communicator/protocol/replay"
)

// windowStep is one counter offered to a window and the verdict it must
// get; a fresh counter is then accepted.
type windowStep struct {
	counter uint64
	verdict replay.Verdict
	why     string
}

// windows are the replay window's cases (PROTOCOL.md §8.2), enumerated
// the way WireGuard's replay tests are: a fresh window, counters in order,
// each with its verdict, and the window's stored forms at the end.
func (g *gen) windows() {
	const size, m = replay.Size, protocol.MaxCounterJump
	g.windowCase("window-edges", "The window's edges, step by step, from an empty window.", []windowStep{
		{0, replay.Exhausted, "counters start at 1"},
		{1, replay.Fresh, "the first counter"},
		{1, replay.Duplicate, "the same again"},
		{3, replay.Fresh, "a gap"},
		{2, replay.Fresh, "the gap filled, out of order"},
		{2, replay.Duplicate, ""},
		{3 + size - 1, replay.Fresh, "the window moves up: 3 is its lowest counter"},
		{3, replay.Duplicate, "the lowest counter, accepted before"},
		{4, replay.Fresh, "inside the window, never accepted"},
		{2, replay.Old, "one below the window"},
		{3 + size, replay.Fresh, "3 leaves the window"},
		{3, replay.Old, ""},
		{4, replay.Duplicate, "4 is the lowest now"},
		{3 + 2*size, replay.Fresh, "a move of exactly Size empties the window"},
		{3 + size, replay.Old, "the previous top, now one below the window"},
		{3 + 2*size - 1, replay.Fresh, "just below the top, never accepted"},
		{3 + 2*size + m, replay.Fresh, "a move of exactly MaxCounterJump"},
		{3 + 2*size + 2*m + 1, replay.Jump, "one more than MaxCounterJump above the top"},
		{protocol.ExhaustedCounter, replay.Exhausted, "2^64-1 is never a counter"},
		{3 + 2*size + m - 1, replay.Fresh, ""},
		{3 + size + m, replay.Old, "Size below the top"},
		{3 + size + m + 1, replay.Fresh, "the lowest counter of the window"},
	})
	var pipelined []windowStep
	for c := uint64(8); c >= 1; c-- {
		pipelined = append(pipelined, windowStep{c * 2, replay.Fresh, ""})
	}
	for c := uint64(1); c <= 15; c += 2 {
		pipelined = append(pipelined, windowStep{c, replay.Fresh, ""})
	}
	pipelined = append(pipelined, windowStep{16, replay.Duplicate, "every counter from 1 to 16 is accepted now"}, windowStep{9, replay.Duplicate, ""})
	g.windowCase("window-any-order", "A pipelining sender's counters 1 to 16 arrive in any order (the even ones from the top down, then the odd ones from the bottom up): each is accepted once. The stored form lists no holes.", pipelined)
	var holes []windowStep
	for c := uint64(1); c <= 60; c += 3 {
		holes = append(holes, windowStep{c, replay.Fresh, ""})
	}
	g.windowCase("window-bitmap", "Every third counter from 1 to 58: more than 16 holes, so the binary form is the 256-bit map.", holes)
	g.windowCase("window-few-holes", "Counters 10, 7, 3 and 2 accepted: low is 8 (counter 2), and the binary form lists the 5 holes 1, 2, 4, 5, 6 below the top (counters 9, 8, 6, 5, 4), each as its distance from the one before: 1, 1, 2, 1, 1.", []windowStep{
		{10, replay.Fresh, ""}, {7, replay.Fresh, ""}, {3, replay.Fresh, ""},
		{2, replay.Fresh, "below the lowest accepted, inside the window"},
	})
	g.windowCase("window-empty", "A window that has accepted nothing: every counter but 0 and 2^64-1 is fresh, up to MaxCounterJump.", []windowStep{
		{0, replay.Exhausted, ""},
		{m + 1, replay.Jump, "more than MaxCounterJump above 0"},
		{protocol.ExhaustedCounter, replay.Exhausted, ""},
	})
}

func (g *gen) windowCase(file, comment string, steps []windowStep) {
	v := g.emit(file, comment, "window", "ok")
	var w replay.Window
	for i, s := range steps {
		if got := w.Check(s.counter); got != s.verdict {
			g.check(fmt.Errorf("%s: step %d: counter %d is %v, the case says %v", file, i+1, s.counter, got, s.verdict))
		}
		if s.verdict == replay.Fresh {
			w.Accept(s.counter)
		}
		if s.why != "" {
			v.Comment = append(v.Comment, fmt.Sprintf("step %d: %d %v: %s", i+1, s.counter, s.verdict, s.why))
		}
		v.add("counter", s.counter)
		v.add("verdict", s.verdict.String())
	}
	v.add("top", w.Top)
	v.add("binary", w.AppendBinary(nil))
	v.add("text", w.String())
}
