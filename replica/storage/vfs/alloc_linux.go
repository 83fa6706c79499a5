package vfs

import (
	"errors"

	"golang.org/x/sys/unix"
)

// Allocate implements File with fallocate(2), FALLOC_FL_KEEP_SIZE. A
// filesystem without it leaves the blocks to the writes.
func (f osFile) Allocate(size int64) error {
	rc, err := f.SyscallConn()
	if err != nil {
		return err
	}
	var ferr error
	if err := rc.Control(func(fd uintptr) {
		ferr = unix.Fallocate(int(fd), unix.FALLOC_FL_KEEP_SIZE, 0, size)
	}); err != nil {
		return err
	}
	if errors.Is(ferr, unix.EOPNOTSUPP) || errors.Is(ferr, unix.ENOSYS) {
		return nil
	}
	return ferr
}
