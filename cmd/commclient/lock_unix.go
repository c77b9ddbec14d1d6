//go:build unix

package main

import (
	"errors"
	"fmt"
	"os"
	"syscall"
)

// lockState takes an exclusive lock on STATE.lock, so that two running
// commclients never share one state file: each would overwrite the
// other's counters, and the relay would refuse a reused counter. The lock
// file stays in place; the lock dies with the process.
func lockState(state string) (unlock func(), err error) {
	path := state + ".lock"
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, fmt.Errorf("state lock: %w", err)
	}
	err = syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
	if errors.Is(err, syscall.EWOULDBLOCK) {
		f.Close()
		return nil, fmt.Errorf("the state file %s is in use by another running commclient; "+
			"to send while listening, give this one its own --state (e.g. PREFIX.send.state)", state)
	}
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("state lock %s: %w", path, err)
	}
	return func() { f.Close() }, nil
}
