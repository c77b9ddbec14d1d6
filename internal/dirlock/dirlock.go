// Package dirlock takes an exclusive lock on a file for the life of a
// process, so that two processes never share what the file guards (a data
// directory, a client's state). The lock holds the holder's PID, which a
// refused second process names; it dies with the process, and Unlock
// removes the file.
package dirlock

import (
	"errors"
	"fmt"
)

// ErrLocked means another process holds the lock.
var ErrLocked = errors.New("dirlock: locked by another process")

// HeldError is the refusal of a lock another process holds.
type HeldError struct {
	Path string
	PID  int // 0 if unknown
}

func (e *HeldError) Error() string {
	if e.PID > 0 {
		return fmt.Sprintf("%s is held by process %d", e.Path, e.PID)
	}
	return e.Path + " is held by another process"
}

// Is makes a HeldError ErrLocked.
func (e *HeldError) Is(target error) bool { return target == ErrLocked }

// Lock is a held lock.
type Lock struct {
	path   string
	unlock func()
}

// Unlock removes the lock file and releases the lock.
func (l *Lock) Unlock() {
	if l != nil && l.unlock != nil {
		l.unlock()
		l.unlock = nil
	}
}
