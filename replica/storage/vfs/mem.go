package vfs

import (
	"bytes"
	"errors"
	"io"
	"io/fs"
	"maps"
	"math/rand"
	"os"
	"path"
	"slices"
	"strings"
	"sync"
	"time"
)

// MemFS is an in-memory FS that remembers what is durable, so a test can
// simulate a power loss with CrashClone. It follows the contract of FS:
// file data is durable after File.Sync, folder entries after SyncDir.
// Symlinks are not supported.
type MemFS struct {
	mu   sync.Mutex // guards every inode
	root *inode
	// beforeMutate, if set, runs before every change (write, sync,
	// truncate, create, rename, remove, folder sync), without the lock
	// held but one call at a time: tests take a CrashClone there to crash
	// at every step.
	beforeMutate func()
	hookMu       sync.Mutex
	locked       map[string]bool // lock files held (Lock), guarded by mu
}

// BeforeMutate installs a hook run before every change to the filesystem,
// so a test can crash it at every step of an operation.
func (m *MemFS) BeforeMutate(fn func()) { m.beforeMutate = fn }

func (m *MemFS) mutate() {
	if m.beforeMutate != nil {
		m.hookMu.Lock()
		defer m.hookMu.Unlock()
		m.beforeMutate()
	}
}

// inode is a file or a folder. Guarded by MemFS.mu.
type inode struct {
	dir      bool
	mode     os.FileMode
	data     []byte            // file: current content
	synced   []byte            // file: content as of the last Sync
	children map[string]*inode // folder: current entries
	durable  map[string]*inode // folder: entries as of the last SyncDir
}

func newDir() *inode {
	return &inode{dir: true, mode: os.ModeDir | 0o700, children: map[string]*inode{}, durable: map[string]*inode{}}
}

// NewMem returns an empty MemFS.
func NewMem() *MemFS { return &MemFS{root: newDir()} }

func split(name string) []string {
	name = path.Clean("/" + strings.ReplaceAll(name, string(os.PathSeparator), "/"))
	if name == "/" {
		return nil
	}
	return strings.Split(name[1:], "/")
}

// lookup walks to name. Lock should be held.
func (m *MemFS) lookup(name string) (*inode, error) {
	n := m.root
	for _, part := range split(name) {
		if !n.dir {
			return nil, fs.ErrNotExist
		}
		c, ok := n.children[part]
		if !ok {
			return nil, fs.ErrNotExist
		}
		n = c
	}
	return n, nil
}

// parent returns the folder holding name and name's base. Lock should be held.
func (m *MemFS) parent(name string) (*inode, string, error) {
	parts := split(name)
	if len(parts) == 0 {
		return nil, "", fs.ErrInvalid
	}
	dir, err := m.lookup(strings.Join(parts[:len(parts)-1], "/"))
	if err != nil {
		return nil, "", err
	}
	if !dir.dir {
		return nil, "", fs.ErrNotExist
	}
	return dir, parts[len(parts)-1], nil
}

func pathErr(op, name string, err error) error { return &fs.PathError{Op: op, Path: name, Err: err} }

// OpenFile implements FS.
func (m *MemFS) OpenFile(name string, flag int, perm os.FileMode) (File, error) {
	if flag&(os.O_CREATE|os.O_TRUNC) != 0 {
		m.mutate()
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	dir, base, err := m.parent(name)
	if err != nil {
		return nil, pathErr("open", name, err)
	}
	n, ok := dir.children[base]
	switch {
	case ok && flag&os.O_CREATE != 0 && flag&os.O_EXCL != 0:
		return nil, pathErr("open", name, fs.ErrExist)
	case !ok && flag&os.O_CREATE == 0:
		return nil, pathErr("open", name, fs.ErrNotExist)
	case !ok:
		n = &inode{mode: perm}
		dir.children[base] = n
	case n.dir && flag&(os.O_WRONLY|os.O_RDWR) != 0:
		return nil, pathErr("open", name, errors.New("is a directory"))
	}
	if flag&os.O_TRUNC != 0 {
		n.data = nil
	}
	f := &memFile{fs: m, n: n, name: base, flag: flag}
	return f, nil
}

// Remove implements FS.
func (m *MemFS) Remove(name string) error {
	m.mutate()
	m.mu.Lock()
	defer m.mu.Unlock()
	dir, base, err := m.parent(name)
	if err != nil {
		return pathErr("remove", name, err)
	}
	n, ok := dir.children[base]
	if !ok {
		return pathErr("remove", name, fs.ErrNotExist)
	}
	if n.dir && len(n.children) > 0 {
		return pathErr("remove", name, errors.New("directory not empty"))
	}
	delete(dir.children, base)
	return nil
}

// RemoveAll implements FS.
func (m *MemFS) RemoveAll(name string) error {
	m.mutate()
	m.mu.Lock()
	defer m.mu.Unlock()
	dir, base, err := m.parent(name)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return pathErr("removeall", name, err)
	}
	delete(dir.children, base)
	return nil
}

// Rename implements FS.
func (m *MemFS) Rename(oldname, newname string) error {
	m.mutate()
	m.mu.Lock()
	defer m.mu.Unlock()
	od, ob, err := m.parent(oldname)
	if err != nil {
		return pathErr("rename", oldname, err)
	}
	n, ok := od.children[ob]
	if !ok {
		return pathErr("rename", oldname, fs.ErrNotExist)
	}
	nd, nb, err := m.parent(newname)
	if err != nil {
		return pathErr("rename", newname, err)
	}
	if t, ok := nd.children[nb]; ok && t.dir && len(t.children) > 0 {
		return pathErr("rename", newname, errors.New("directory not empty"))
	}
	delete(od.children, ob)
	nd.children[nb] = n
	return nil
}

// MkdirAll implements FS.
func (m *MemFS) MkdirAll(name string, perm os.FileMode) error {
	m.mutate()
	m.mu.Lock()
	defer m.mu.Unlock()
	n := m.root
	for _, part := range split(name) {
		c, ok := n.children[part]
		if !ok {
			c = newDir()
			c.mode = os.ModeDir | perm
			n.children[part] = c
		} else if !c.dir {
			return pathErr("mkdir", name, errors.New("not a directory"))
		}
		n = c
	}
	return nil
}

// Mkdir implements FS.
func (m *MemFS) Mkdir(name string, perm os.FileMode) error {
	m.mutate()
	m.mu.Lock()
	defer m.mu.Unlock()
	dir, base, err := m.parent(name)
	if err != nil {
		return pathErr("mkdir", name, err)
	}
	if _, ok := dir.children[base]; ok {
		return pathErr("mkdir", name, fs.ErrExist)
	}
	c := newDir()
	c.mode = os.ModeDir | perm
	dir.children[base] = c
	return nil
}

// ReadDir implements FS.
func (m *MemFS) ReadDir(name string) ([]os.DirEntry, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	n, err := m.lookup(name)
	if err != nil {
		return nil, pathErr("readdir", name, err)
	}
	if !n.dir {
		return nil, pathErr("readdir", name, errors.New("not a directory"))
	}
	names := slices.Sorted(maps.Keys(n.children))
	out := make([]os.DirEntry, len(names))
	for i, nm := range names {
		out[i] = fs.FileInfoToDirEntry(n.children[nm].info(nm))
	}
	return out, nil
}

// Lstat implements FS.
func (m *MemFS) Lstat(name string) (os.FileInfo, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	n, err := m.lookup(name)
	if err != nil {
		return nil, pathErr("lstat", name, err)
	}
	parts := split(name)
	base := "/"
	if len(parts) > 0 {
		base = parts[len(parts)-1]
	}
	return n.info(base), nil
}

// SyncDir implements FS.
func (m *MemFS) SyncDir(name string) error {
	m.mutate()
	m.mu.Lock()
	defer m.mu.Unlock()
	n, err := m.lookup(name)
	if err != nil {
		return pathErr("syncdir", name, err)
	}
	n.durable = maps.Clone(n.children)
	return nil
}

// SyncAll implements FS.
func (m *MemFS) SyncAll(name string) error {
	m.mutate()
	m.mu.Lock()
	defer m.mu.Unlock()
	n, err := m.lookup(name)
	if err != nil {
		return pathErr("syncall", name, err)
	}
	var sync func(n *inode)
	sync = func(n *inode) {
		if !n.dir {
			n.synced = bytes.Clone(n.data)
			return
		}
		n.durable = maps.Clone(n.children)
		for _, c := range n.children {
			sync(c)
		}
	}
	sync(n)
	return nil
}

// CrashClone returns the filesystem a power loss would leave: folder
// entries as of their last SyncDir (the root's entries always survive), file contents as of their last Sync.
// With torn, part of each file's unsynced bytes (those that differ from
// the synced content: an append, or a write in place) survives too, as a
// disk may leave it: half the time a random prefix, its last byte
// sometimes garbled; else each 512-byte sector on its own, so a hole may
// come before bytes that reached the disk.
func (m *MemFS) CrashClone(rng *rand.Rand, torn bool) *MemFS {
	const sector = 512
	m.mu.Lock()
	defer m.mu.Unlock()
	seen := map[*inode]*inode{}
	var clone func(n *inode) *inode
	clone = func(n *inode) *inode {
		if c, ok := seen[n]; ok {
			return c
		}
		c := &inode{dir: n.dir, mode: n.mode}
		seen[n] = c
		if n.dir {
			c.children = map[string]*inode{}
			for name, ch := range n.durable {
				c.children[name] = clone(ch)
			}
			c.durable = maps.Clone(c.children)
			return c
		}
		c.data = bytes.Clone(n.synced)
		if d, e := changed(n.data, n.synced); torn && d < e && rng.Intn(2) == 0 {
			// Each 512-byte sector of the unsynced span reached the disk
			// or not, on its own: a hole may come before bytes that did.
			if e > len(c.data) {
				c.data = append(c.data, make([]byte, e-len(c.data))...)
			}
			for at := d; at < e; {
				end := min((at/sector+1)*sector, e)
				if rng.Intn(2) == 0 {
					copy(c.data[at:end], n.data[at:end])
				}
				at = end
			}
		} else if torn && d < e {
			k := rng.Intn(e - d + 1)
			if end := d + k; end > len(c.data) {
				c.data = append(c.data, make([]byte, end-len(c.data))...)
			}
			copy(c.data[d:], n.data[d:d+k])
			if k > 0 && rng.Intn(3) == 0 {
				c.data[d+k-1] ^= byte(1 + rng.Intn(255))
			}
		}
		c.synced = bytes.Clone(c.data)
		return c
	}
	// The root's own entries count as durable: it stands for the disk the
	// data dir was made on before the process started.
	root := newDir()
	for name, ch := range m.root.children {
		root.children[name] = clone(ch)
	}
	root.durable = maps.Clone(root.children)
	return &MemFS{root: root}
}

// changed is the span [from, to) of data that differs from synced: the
// unsynced bytes, appended or written in place.
func changed(data, synced []byte) (from, to int) {
	for from < len(data) && from < len(synced) && data[from] == synced[from] {
		from++
	}
	to = len(data)
	for to > from && to <= len(synced) && data[to-1] == synced[to-1] {
		to--
	}
	return from, to
}

func (n *inode) info(name string) os.FileInfo {
	return memInfo{name: name, size: int64(len(n.data)), mode: n.mode, dir: n.dir}
}

type memInfo struct {
	name string
	size int64
	mode os.FileMode
	dir  bool
}

func (i memInfo) Name() string       { return i.name }
func (i memInfo) Size() int64        { return i.size }
func (i memInfo) Mode() os.FileMode  { return i.mode }
func (i memInfo) ModTime() time.Time { return time.Time{} }
func (i memInfo) IsDir() bool        { return i.dir }
func (i memInfo) Sys() any           { return nil }

// memFile is an open MemFS file.
type memFile struct {
	fs   *MemFS
	n    *inode
	name string
	flag int
	pos  int64 // guarded by fs.mu
}

func (f *memFile) Read(p []byte) (int, error) {
	f.fs.mu.Lock()
	defer f.fs.mu.Unlock()
	if f.pos >= int64(len(f.n.data)) {
		return 0, io.EOF
	}
	k := copy(p, f.n.data[f.pos:])
	f.pos += int64(k)
	return k, nil
}

func (f *memFile) ReadAt(p []byte, off int64) (int, error) {
	f.fs.mu.Lock()
	defer f.fs.mu.Unlock()
	if off >= int64(len(f.n.data)) {
		return 0, io.EOF
	}
	k := copy(p, f.n.data[off:])
	if k < len(p) {
		return k, io.EOF
	}
	return k, nil
}

func (f *memFile) Write(p []byte) (int, error) {
	f.fs.mutate()
	f.fs.mu.Lock()
	defer f.fs.mu.Unlock()
	if f.flag&os.O_APPEND != 0 {
		f.pos = int64(len(f.n.data))
	}
	if err := f.writeAt(p, f.pos); err != nil {
		return 0, err
	}
	f.pos += int64(len(p))
	return len(p), nil
}

// WriteAt writes in place, as os.File does: not on a file opened with
// O_APPEND.
func (f *memFile) WriteAt(p []byte, off int64) (int, error) {
	f.fs.mutate()
	f.fs.mu.Lock()
	defer f.fs.mu.Unlock()
	if f.flag&os.O_APPEND != 0 {
		return 0, pathErr("writeat", f.name, errors.New("file opened with O_APPEND"))
	}
	if err := f.writeAt(p, off); err != nil {
		return 0, err
	}
	return len(p), nil
}

// writeAt writes p at off, growing the file as needed. Lock should be held.
func (f *memFile) writeAt(p []byte, off int64) error {
	if f.flag&(os.O_WRONLY|os.O_RDWR) == 0 {
		return pathErr("write", f.name, fs.ErrPermission)
	}
	if end := off + int64(len(p)); end > int64(len(f.n.data)) {
		f.n.data = append(f.n.data, make([]byte, end-int64(len(f.n.data)))...)
	}
	copy(f.n.data[off:], p)
	return nil
}

func (f *memFile) Close() error { return nil }

func (f *memFile) Sync() error {
	f.fs.mutate()
	f.fs.mu.Lock()
	defer f.fs.mu.Unlock()
	f.n.synced = bytes.Clone(f.n.data)
	return nil
}

func (f *memFile) Truncate(size int64) error {
	f.fs.mutate()
	f.fs.mu.Lock()
	defer f.fs.mu.Unlock()
	if size < int64(len(f.n.data)) {
		f.n.data = f.n.data[:size:size]
	} else {
		f.n.data = append(f.n.data, make([]byte, size-int64(len(f.n.data)))...)
	}
	return nil
}

// Lock implements FS: one holder per name at a time.
func (m *MemFS) Lock(name string) (File, error) {
	f, err := m.OpenFile(name, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, err
	}
	key := strings.Join(split(name), "/")
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.locked[key] {
		return nil, pathErr("lock", name, ErrLocked)
	}
	if m.locked == nil {
		m.locked = map[string]bool{}
	}
	m.locked[key] = true
	return &memLock{File: f, release: func() {
		m.mu.Lock()
		delete(m.locked, key)
		m.mu.Unlock()
	}}, nil
}

// memLock is a MemFS lock file: closing it releases the lock, once.
type memLock struct {
	File
	release func()
	once    sync.Once
}

func (l *memLock) Close() error {
	l.once.Do(l.release)
	return l.File.Close()
}

func (f *memFile) Stat() (os.FileInfo, error) {
	f.fs.mu.Lock()
	defer f.fs.mu.Unlock()
	return f.n.info(f.name), nil
}
