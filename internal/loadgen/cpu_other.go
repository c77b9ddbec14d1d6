//go:build !unix

package loadgen

import "time"

// ProcessCPU is not measured here: it returns -1.
func ProcessCPU() time.Duration { return -1 }
