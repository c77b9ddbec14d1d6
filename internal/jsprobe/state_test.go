package jsprobe

import (
	"slices"
	"testing"
	"time"
)

// TestTracker walks the state machine through numbered cases, each a
// sequence of outcomes (a: answered, f: failed, d: disconnected) and of
// what the probe did when a failure asked it to look for another node
// (m: it moved there; s: it found none and stayed), with the state after
// each. A failure asks to look exactly when the case's next step is m or s.
func TestTracker(t *testing.T) {
	R, F, M, U := Reachable, Failing, Moved, Unknown
	cases := []struct {
		steps string
		want  []State
	}{
		/* 1 */ {"a", []State{R}},
		/* 2 */ {"f", []State{F}},
		/* 3 */ {"aff", []State{R, F, F}},
		/* 4: the third failure looks elsewhere */ {"afffm", []State{R, F, F, F, M}},
		/* 5: an answer after a move */ {"afffma", []State{R, F, F, F, M, R}},
		/* 6: an answer resets the count */ {"affaff", []State{R, F, F, R, F, F}},
		/* 7: a disconnection forgets the failures */ {"affdff", []State{R, F, F, U, F, F}},
		/* 8: a move in progress stays Moved while disconnected */ {"fffmdf", []State{F, F, F, M, M, M}},
		/* 9: nowhere else answers: stay, and look again 3 failures later */ {"fffsfffsfffm", []State{F, F, F, F, F, F, F, F, F, F, F, M}},
		/* 10: failing after a move: look again 3 failures later */ {"fffmfffmffa", []State{F, F, F, M, M, M, M, M, M, M, R}},
	}
	for i, c := range cases {
		tr := newTracker(3)
		var got []State
		for j, s := range c.steps {
			next := j+1 < len(c.steps) && (c.steps[j+1] == 'm' || c.steps[j+1] == 's')
			switch s {
			case 'a':
				tr.step(answered)
			case 'd':
				tr.step(disconnected)
			case 'f':
				if look := tr.step(failed); look != next {
					t.Errorf("case %d %q: step %d asked to look elsewhere: %v", i+1, c.steps, j, look)
				}
			case 'm':
				tr.moved()
			}
			got = append(got, tr.state)
		}
		if !slices.Equal(got, c.want) {
			t.Errorf("case %d %q: states %v, want %v", i+1, c.steps, got, c.want)
		}
	}
}

// TestJudge: the answers of STREAM.INFO the probe counts as JetStream
// reachable, and those it does not.
func TestJudge(t *testing.T) {
	stale := 2 * time.Second
	cases := []struct {
		name, data string
		ok         bool
	}{
		{"one server", `{"config":{"name":"S"},"state":{}}`, true},
		{"stream not created yet", `{"error":{"code":404,"err_code":10059,"description":"stream not found"}}`, true},
		{"cluster unavailable", `{"error":{"code":503,"err_code":10008,"description":"JetStream system temporarily unavailable"}}`, false},
		{"R3, all heard", `{"cluster":{"leader":"a","replicas":[{"name":"b","active":300000000},{"name":"c","active":900000000}]}}`, true},
		{"R3, one lost", `{"cluster":{"leader":"a","replicas":[{"name":"b","active":300000000},{"name":"c","active":9000000000}]}}`, true},
		{"R3, leader cut off", `{"cluster":{"leader":"a","replicas":[{"name":"b","active":2500000000},{"name":"c","active":2500000000}]}}`, false},
		{"R3, replicas offline", `{"cluster":{"leader":"a","replicas":[{"name":"b","offline":true},{"name":"c","offline":true}]}}`, false},
		{"R1 on a cluster", `{"cluster":{"leader":"a"}}`, true},
		{"no leader", `{"cluster":{"replicas":[{"name":"b"},{"name":"c"}]}}`, false},
		{"not JSON", `nope`, false},
	}
	for _, c := range cases {
		err := judge([]byte(c.data), stale)
		if (err == nil) != c.ok {
			t.Errorf("%s: %v, want ok=%v", c.name, err, c.ok)
		}
	}
}
