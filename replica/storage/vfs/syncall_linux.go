package vfs

import (
	"os"

	"golang.org/x/sys/unix"
)

// SyncAllIsOneCall says SyncAll costs one system call, whatever the number
// of files: a caller with many files to make durable does better with it.
const SyncAllIsOneCall = true

// SyncAll implements FS with syncfs(2), which since Linux 5.8 also reports
// write-back errors of the filesystem.
func (osFS) SyncAll(name string) error {
	d, err := os.Open(name)
	if err != nil {
		return err
	}
	defer d.Close()
	if err := unix.Syncfs(int(d.Fd())); err != nil {
		return &os.PathError{Op: "syncfs", Path: name, Err: err}
	}
	return nil
}
