//go:build unix

package dirlock

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"
)

// Acquire takes the lock of path without waiting, writing this process's
// PID into the file. A lock another process holds is a *HeldError.
func Acquire(path string) (*Lock, error) {
	for range 8 {
		f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o600)
		if err != nil {
			return nil, fmt.Errorf("dirlock: %w", err)
		}
		err = syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if errors.Is(err, syscall.EWOULDBLOCK) {
			pid := readPID(f)
			f.Close()
			return nil, &HeldError{Path: path, PID: pid}
		}
		if err != nil {
			f.Close()
			return nil, fmt.Errorf("dirlock: %s: %w", path, err)
		}
		if !samePath(f, path) {
			f.Close() // its holder removed it meanwhile: lock the new one
			continue
		}
		if err := writePID(f); err != nil {
			f.Close()
			return nil, err
		}
		return &Lock{path: path, unlock: func() {
			os.Remove(path) // while still held: no one locks a file about to vanish
			f.Close()
		}}, nil
	}
	return nil, fmt.Errorf("dirlock: %s keeps changing", path)
}

// samePath reports whether f is still the file at path.
func samePath(f *os.File, path string) bool {
	a, err := f.Stat()
	if err != nil {
		return false
	}
	b, err := os.Stat(path)
	return err == nil && os.SameFile(a, b)
}

func writePID(f *os.File) error {
	if err := f.Truncate(0); err != nil {
		return fmt.Errorf("dirlock: %w", err)
	}
	if _, err := f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0); err != nil {
		return fmt.Errorf("dirlock: %w", err)
	}
	return nil
}

func readPID(f *os.File) int {
	buf := make([]byte, 32)
	n, _ := f.ReadAt(buf, 0)
	pid, _ := strconv.Atoi(strings.TrimSpace(string(buf[:n])))
	return pid
}
