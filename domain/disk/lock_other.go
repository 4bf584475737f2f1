//go:build !unix

package disk

import "os"

// tryLock is a no-op where flock is not available: appends to one upload
// are then serialised within a process only.
func tryLock(*os.File) (bool, error) { return true, nil }
