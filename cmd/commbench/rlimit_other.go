//go:build !unix

package main

import "errors"

func raiseFileLimit() (uint64, error) {
	return 0, errors.New("the idle-connections figure needs a Unix system (RLIMIT_NOFILE)")
}
