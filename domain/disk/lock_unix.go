//go:build unix

package disk

import (
	"errors"
	"os"
	"syscall"
)

// tryLock takes an exclusive advisory lock on f (flock), so that two
// processes sharing the directory do not append to one upload at once. It
// reports false if another process holds it. The lock goes with f's Close.
func tryLock(f *os.File) (bool, error) {
	err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
	if errors.Is(err, syscall.EWOULDBLOCK) {
		return false, nil
	}
	return err == nil, err
}
