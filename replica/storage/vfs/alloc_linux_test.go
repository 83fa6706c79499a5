package vfs

import (
	"errors"
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
)

// skipWithoutFallocate skips a test on a filesystem (of dir) that cannot
// reserve blocks, where Allocate does nothing by design.
func skipWithoutFallocate(t *testing.T, dir string) {
	t.Helper()
	f, err := os.CreateTemp(dir, "probe")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := unix.Fallocate(int(f.Fd()), unix.FALLOC_FL_KEEP_SIZE, 0, 4096); errors.Is(err, unix.EOPNOTSUPP) {
		t.Skipf("the filesystem of %s has no fallocate(2)", dir)
	}
}

// allocatedBytes is how much disk a file holds (st_blocks).
func allocatedBytes(t *testing.T, path string) int64 {
	t.Helper()
	var st syscall.Stat_t
	if err := syscall.Stat(path, &st); err != nil {
		t.Fatal(err)
	}
	return st.Blocks * 512
}

func TestAllocateReservesWithoutGrowing(t *testing.T) {
	dir := t.TempDir()
	skipWithoutFallocate(t, dir)
	path := filepath.Join(dir, "f")
	f, err := OS.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.Write([]byte("0123456789")); err != nil {
		t.Fatal(err)
	}
	if err := f.Allocate(1 << 20); err != nil {
		t.Fatal(err)
	}
	st, err := f.Stat()
	if err != nil {
		t.Fatal(err)
	}
	if st.Size() != 10 {
		t.Fatalf("size %d after Allocate, want 10: an append would land past zeros", st.Size())
	}
	if got := allocatedBytes(t, path); got < 1<<20 {
		t.Fatalf("%d bytes allocated, want at least 1 MiB", got)
	}
}
