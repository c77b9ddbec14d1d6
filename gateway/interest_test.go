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
		what      string
	}{
		{false, 0, "a", 10, 7, false, "a subject first seen on a cold feed: nothing to compare"},
		{false, 0, "a", 11, 10, false, "the next of the subject"},
		{false, 0, "a", 14, 12, true, "12 was never seen on a"},
		{true, 20, "b", 22, 18, false, "first of b, its previous before the baseline"},
		{true, 20, "c", 25, 21, true, "first of c, its previous after the baseline: lost"},
		{true, 20, "b", 30, 22, false, "b goes on"},
		{true, 20, "b", 29, 22, false, "a duplicate"},
	} {
		f.known, f.baseline = c.known, c.baseline
		if gap := f.observe(c.subject, c.seq, c.prev); gap != c.gap {
			t.Errorf("%d. %s: gap %v", i+1, c.what, gap)
		}
	}
	if f.last != 30 {
		t.Errorf("last %d, want 30", f.last)
	}
}
