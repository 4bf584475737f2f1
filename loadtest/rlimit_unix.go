//go:build unix

package loadtest

import "syscall"

// RaiseFileLimit raises this process's soft limit on open files to its
// hard limit: every connection is a file.
func RaiseFileLimit() {
	var l syscall.Rlimit
	if syscall.Getrlimit(syscall.RLIMIT_NOFILE, &l) != nil || l.Cur >= l.Max {
		return
	}
	l.Cur = l.Max
	syscall.Setrlimit(syscall.RLIMIT_NOFILE, &l)
}

// fileLimit returns the soft limit on open files.
func fileLimit() int {
	var l syscall.Rlimit
	if syscall.Getrlimit(syscall.RLIMIT_NOFILE, &l) != nil {
		return 1 << 20
	}
	return int(min(l.Cur, 1<<30))
}
