package bench

import (
	"os"
	"syscall"
)

// datasync is fdatasync, as the WAL's sync costs on Linux.
func datasync(f *os.File) error { return syscall.Fdatasync(int(f.Fd())) }
