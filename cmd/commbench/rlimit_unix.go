//go:build unix

package main

import (
	"fmt"
	"syscall"
)

// raiseFileLimit raises this process's soft limit on open files to the
// hard limit (an unprivileged process can go no further) and returns it.
func raiseFileLimit() (uint64, error) {
	var l syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &l); err != nil {
		return 0, fmt.Errorf("reading the limit on open files: %w", err)
	}
	if l.Cur < l.Max {
		l.Cur = l.Max
		if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &l); err != nil {
			return 0, fmt.Errorf("raising the limit on open files to %d: %w", l.Max, err)
		}
	}
	return l.Max, nil
}
