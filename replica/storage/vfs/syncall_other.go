//go:build !linux

package vfs

import (
	"io/fs"
	"os"
	"path/filepath"
)

// SyncAllIsOneCall says SyncAll costs one system call: not here, where it
// walks the whole folder.
const SyncAllIsOneCall = false

// SyncAll implements FS where there is no syncfs(2): a fsync of every file
// and folder under name.
func (o osFS) SyncAll(name string) error {
	return filepath.WalkDir(name, func(p string, d fs.DirEntry, err error) error {
		switch {
		case err != nil:
			return err
		case d.IsDir():
			return o.SyncDir(p)
		}
		f, err := os.OpenFile(p, os.O_WRONLY, 0)
		if err != nil {
			return err
		}
		defer f.Close()
		return f.Sync()
	})
}
