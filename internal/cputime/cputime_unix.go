//go:build unix

// Package cputime reads the CPU time the process has used, for the
// benchmarks that report CPU per event beside wall time (on a shared
// machine, or where goroutines wait for one another, the steadier figure).
package cputime

import (
	"syscall"
	"time"
)

// Process returns the CPU time this process has used, user and system; 0
// where it cannot be read.
func Process() time.Duration {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
