// Package vfs is the filesystem seam of memstore's storage: the WAL, the state
// file and the folder tree reach the disk only through FS, so tests can swap in
// an in-memory twin that simulates crashes (unsynced data lost, torn writes).
//
// The contract follows POSIX: data written to a File is durable only after
// File.Sync; a created, renamed or removed name is durable only after SyncDir
// on its parent folder.
package vfs

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
)

// File is an open file. Reads and writes follow os.File.
type File interface {
	io.Reader
	io.ReaderAt
	io.Writer
	// WriterAt writes in place; not on a file opened with O_APPEND.
	io.WriterAt
	io.Closer
	// Sync makes the file's written data durable (fdatasync or fsync).
	Sync() error
	// Truncate changes the file's size; like a write, it is durable after Sync.
	Truncate(size int64) error
	Stat() (os.FileInfo, error)
}

// FS is the set of filesystem operations storage needs. Names are slash or
// OS separated paths as accepted by package os.
type FS interface {
	// OpenFile opens name with the flags and permissions of os.OpenFile.
	OpenFile(name string, flag int, perm os.FileMode) (File, error)
	// Remove removes a file or an empty folder.
	Remove(name string) error
	// RemoveAll removes a folder and everything under it.
	RemoveAll(name string) error
	// Rename atomically replaces newname by oldname.
	Rename(oldname, newname string) error
	// MkdirAll creates a folder and its missing parents.
	MkdirAll(name string, perm os.FileMode) error
	// Mkdir creates a folder in an existing one; if name exists, the
	// error satisfies errors.Is(err, fs.ErrExist).
	Mkdir(name string, perm os.FileMode) error
	// ReadDir lists a folder, sorted by name.
	ReadDir(name string) ([]os.DirEntry, error)
	// Lstat describes name without following a symlink.
	Lstat(name string) (os.FileInfo, error)
	// SyncDir makes the entries of a folder (creates, renames, removes) durable.
	SyncDir(name string) error
	// SyncAll makes everything under the folder name durable: what Sync of
	// every file and SyncDir of every folder there would do. From Linux 5.8
	// on it is one syncfs(2) of the filesystem holding name, far cheaper
	// than a fsync per file when there are thousands; before 5.8, whose
	// syncfs does not report write-back errors, and elsewhere, it is that
	// fsync per file.
	SyncAll(name string) error
	// Lock opens the file name (creating it) and locks it for this
	// process, or fails with ErrLocked while another holds it (flock(2) on
	// Unix; per MemFS in memory; not at all elsewhere, nor on a filesystem
	// without locks). Closing the file, or the process's end, releases it.
	Lock(name string) (File, error)
}

// ErrLocked means another process holds a lock file (FS.Lock).
var ErrLocked = errors.New("vfs: locked by another process")

// LockDir creates the folder dir if need be and takes its LOCK file for
// this process (FS.Lock): one process per data folder. While another
// holds it, the error says the folder is in use and wraps ErrLocked.
func LockDir(fs FS, dir string) (File, error) {
	if err := fs.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("create %s: %w", dir, err)
	}
	f, err := fs.Lock(filepath.Join(dir, "LOCK"))
	if errors.Is(err, ErrLocked) {
		return nil, fmt.Errorf("data folder %s is in use by another process: %w", dir, ErrLocked)
	}
	if err != nil {
		return nil, fmt.Errorf("lock %s: %w", dir, err)
	}
	return f, nil
}

// Open opens name read-only.
func Open(fs FS, name string) (File, error) {
	return fs.OpenFile(name, os.O_RDONLY, 0)
}

// WriteFileAtomic replaces dir/name with data so that a crash leaves the
// old content or the new, whole: it writes dir/name.tmp, fsyncs it, renames
// it over the old file and fsyncs the folder.
func WriteFileAtomic(fs FS, dir, name string, data []byte) error {
	tmp := filepath.Join(dir, name+".tmp")
	f, err := fs.OpenFile(tmp, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	_, err = f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = fs.Rename(tmp, filepath.Join(dir, name))
	}
	if err == nil {
		err = fs.SyncDir(dir)
	}
	return err
}

// TruncateSync cuts the file name to size and fsyncs it.
func TruncateSync(fs FS, name string, size int64) error {
	f, err := fs.OpenFile(name, os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	err = f.Truncate(size)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}
