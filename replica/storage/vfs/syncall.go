package vfs

import (
	"io/fs"
	"os"
	"path/filepath"
)

// syncEach makes everything under name durable one fsync at a time: SyncAll
// where no syncfs(2) reports write-back errors.
func (o osFS) syncEach(name string) error {
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
