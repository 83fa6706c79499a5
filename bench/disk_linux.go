package bench

import (
	"os"

	"golang.org/x/sys/unix"
)

// datasync is fdatasync: the least a durable append must pay (the WAL
// calls fsync, which costs the same after an append that grows the file).
func datasync(f *os.File) error { return unix.Fdatasync(int(f.Fd())) }

// inMemory reports whether dir is on a filesystem held in memory (tmpfs,
// ramfs), where fsync costs nothing and durable writes would measure RAM.
func inMemory(dir string) bool {
	var st unix.Statfs_t
	return unix.Statfs(dir, &st) == nil && (st.Type == unix.TMPFS_MAGIC || st.Type == unix.RAMFS_MAGIC)
}
