//go:build unix

package vfs

import (
	"errors"
	"io/fs"
	"os"

	"golang.org/x/sys/unix"
)

// Lock implements FS with flock(2).
func (osFS) Lock(name string) (File, error) {
	f, err := openFile(name, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, err
	}
	rc, err := f.SyscallConn()
	if err != nil {
		f.Close()
		return nil, err
	}
	var ferr error
	if err := rc.Control(func(fd uintptr) { ferr = unix.Flock(int(fd), unix.LOCK_EX|unix.LOCK_NB) }); err != nil {
		ferr = err
	}
	switch {
	case errors.Is(ferr, unix.ENOTSUP), errors.Is(ferr, unix.ENOSYS), errors.Is(ferr, unix.ENOLCK):
		// A filesystem without locks (some FUSE or network mounts): the
		// file is open, nothing is locked, as where there is no flock.
	case ferr != nil:
		f.Close()
		if errors.Is(ferr, unix.EWOULDBLOCK) {
			ferr = ErrLocked
		}
		return nil, &fs.PathError{Op: "lock", Path: name, Err: ferr}
	}
	return osFile{f}, nil
}
