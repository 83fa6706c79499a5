//go:build !linux

package bench

import "os"

// datasync is fsync where fdatasync is not available.
func datasync(f *os.File) error { return f.Sync() }

// inMemory reports whether dir is on a filesystem held in memory: not
// known here.
func inMemory(string) bool { return false }
