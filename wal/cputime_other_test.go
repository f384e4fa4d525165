//go:build !unix

package wal

import "time"

var processStart = time.Now()

// cpuTime stands in for the process's CPU time where getrusage does not
// exist: the wall-clock time since the test binary started, so the
// benchmarks' per-CPU-second figures are wall-clock figures there.
func cpuTime() time.Duration { return time.Since(processStart) }
