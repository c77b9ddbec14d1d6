package main

import "testing"

// TestWritesPerFoldsShards: the writes of every accepted shard count as
// one column, the accepted messages'.
func TestWritesPerFoldsShards(t *testing.T) {
	u := usage{writes: map[string]uint64{"KV_COMM_ACCEPTED": 30, "KV_COMM_ACCEPTED_3": 70, "KV_COMM_CURSORS": 50}}
	want := "1.50 (KV_COMM_ACCEPTED[_*] 1.00, KV_COMM_CURSORS 0.50)"
	if got := u.writesPer(100); got != want {
		t.Errorf("writesPer: %q, want %q", got, want)
	}
}
