//go:build unix

package vfs

import (
	"os"
	"syscall"
)

// openFile opens name as os.OpenFile does, but hands the descriptor to
// os.NewFile, which leaves a blocking file out of Go's network poller: for
// a regular file, os.OpenFile's attempt to add it costs five system calls
// more (four fcntl and a failing epoll_ctl), a third of the calls of a
// snapshot install writing thousands of files (issue 7's W5).
func openFile(name string, flag int, perm os.FileMode) (*os.File, error) {
	for {
		fd, err := syscall.Open(name, flag|syscall.O_CLOEXEC, uint32(perm.Perm()))
		if err == nil {
			return os.NewFile(uintptr(fd), name), nil
		}
		if err != syscall.EINTR {
			return nil, &os.PathError{Op: "open", Path: name, Err: err}
		}
	}
}
