//go:build unix

package main

import (
	"fmt"
	"syscall"
)

// wantFiles is the limit on open files the idle figure asks for: 100,000
// connections and everything else, in the gateway's process.
const wantFiles = 128 << 10

// raiseFileLimit raises this process's limit on open files to wantFiles
// and returns the limit now in force. Raising the hard limit needs
// privilege (root or CAP_SYS_RESOURCE, and at most fs.nr_open); without
// it the soft limit goes up to the hard limit, and no further.
func raiseFileLimit() (uint64, error) {
	var l syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &l); err != nil {
		return 0, fmt.Errorf("reading the limit on open files: %w", err)
	}
	if l.Cur >= wantFiles {
		return l.Cur, nil
	}
	if l.Max < wantFiles {
		raised := syscall.Rlimit{Cur: wantFiles, Max: wantFiles}
		if syscall.Setrlimit(syscall.RLIMIT_NOFILE, &raised) == nil {
			return wantFiles, nil
		}
	}
	if l.Cur < l.Max {
		l.Cur = l.Max
		if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &l); err != nil {
			return 0, fmt.Errorf("raising the limit on open files to %d: %w", l.Max, err)
		}
	}
	return l.Cur, nil
}
