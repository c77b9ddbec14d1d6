package main

import (
	"errors"
	"fmt"

	"github.com/commsec/communicator/internal/dirlock"
)

// lockState takes an exclusive lock on STATE.lock, so that two running
// commclients never share one state file: each would overwrite the
// other's counters, and the relay would refuse a reused counter. The lock
// dies with the process; unlock removes the file.
func lockState(state string) (unlock func(), err error) {
	l, err := dirlock.Acquire(state + ".lock")
	if errors.Is(err, dirlock.ErrLocked) {
		return nil, fmt.Errorf("the state file %s is in use by another running commclient (%v); "+
			"to send while listening, give this one its own --state (e.g. PREFIX.send.state)", state, err)
	}
	if err != nil {
		return nil, fmt.Errorf("state lock: %w", err)
	}
	return l.Unlock, nil
}
