package jsprobe

// State is what a probe knows of JetStream through its connection.
type State uint8

// The states. Every probe's outcome moves the state (tracker.step):
//
//	any           --answered-->     Reachable
//	any but Moved --failed-->       Failing
//	Moved         --failed-->       Moved
//	any but Moved --disconnected--> Unknown
//
// and every Failures-th failure in a row asks the probe to look for a
// node through which JetStream answers; if it finds one, the connection
// moves there (tracker.moved):
//
//	Failing, Moved --moved--> Moved
//
// If it finds none (JetStream answers nowhere: the cluster is electing a
// leader, or down), the connection stays where it is: moving would not
// help, and the services would hop from node to node.
const (
	// Unknown: no probe answered yet, or the connection is down (the
	// client library is reconnecting on its own).
	Unknown State = iota
	// Reachable: the last probe was answered by a stream leader in touch
	// with a quorum of its replicas.
	Reachable
	// Failing: the last probes failed, and the connection has not moved
	// since the last answer.
	Failing
	// Moved: probes failed, and the connection moved to a node through
	// which JetStream answered; none answered through it yet.
	Moved
)

func (s State) String() string {
	switch s {
	case Unknown:
		return "unknown"
	case Reachable:
		return "reachable"
	case Failing:
		return "failing"
	case Moved:
		return "moved"
	}
	return "invalid"
}

// outcome is the result of one probe.
type outcome uint8

const (
	answered     outcome = iota // a stream leader in touch with a quorum answered
	failed                      // no answer, an error, or a leader out of touch
	disconnected                // the connection was down: nothing was asked
)

// tracker is the probe's state machine, without I/O. The zero value is
// not ready: use newTracker.
type tracker struct {
	state  State
	failed int // failed probes in a row since the last answer, move or disconnection
	every  int // look for another node at every so many failures in a row
}

func newTracker(failures int) *tracker { return &tracker{every: failures} }

// step applies one outcome. It reports whether the probe must now look
// for another node; the caller then reports whether it moved (moved).
func (t *tracker) step(o outcome) (look bool) {
	switch o {
	case answered:
		t.state, t.failed = Reachable, 0
	case disconnected:
		t.failed = 0
		if t.state != Moved {
			t.state = Unknown
		}
	case failed:
		t.failed++
		if t.state != Moved {
			t.state = Failing
		}
		return t.failed%t.every == 0
	}
	return false
}

// moved records that the connection moved to another node.
func (t *tracker) moved() { t.state, t.failed = Moved, 0 }
