//go:build !unix

package loadtest

import "time"

func cpuTime() time.Duration { return 0 }

// RaiseFileLimit does nothing where there is no rlimit.
func RaiseFileLimit() {}

func fileLimit() int { return 1 << 20 }
