package gateway

import "testing"

// TestFeedGaps: a live message whose subject's previous sequence is not
// the last one seen on that subject shows a lost message; on a subject
// not seen yet, one newer than what the group had stored when the
// subscription took effect does (only once that is known).
func TestFeedGaps(t *testing.T) {
	f := &feed{subjects: map[string]uint64{}}
	for i, c := range []struct {
		known     bool
		baseline  uint64
		subject   string
		seq, prev uint64
		gap       bool
		from      uint64 // on a gap: the first sequence that may be lost
		what      string
	}{
		{false, 0, "a", 10, 7, false, 0, "a subject first seen on a cold feed: nothing to compare"},
		{false, 0, "a", 11, 10, false, 0, "the next of the subject"},
		{false, 0, "a", 14, 12, true, 12, "12 was never seen on a: lost from 12 (after 11) on"},
		{true, 20, "b", 22, 18, false, 0, "first of b, its previous before the baseline"},
		{true, 20, "c", 25, 21, true, 21, "first of c, its previous after the baseline: lost from 21 on"},
		{true, 20, "b", 30, 22, false, 0, "b goes on"},
		{true, 20, "b", 29, 22, false, 0, "a duplicate"},
	} {
		f.known, f.baseline = c.known, c.baseline
		gap, from := f.observe(c.subject, c.seq, c.prev)
		if gap != c.gap || (gap && from != c.from) {
			t.Errorf("%d. %s: gap %v from %d", i+1, c.what, gap, from)
		}
	}
	if f.last != 30 {
		t.Errorf("last %d, want 30", f.last)
	}
}
