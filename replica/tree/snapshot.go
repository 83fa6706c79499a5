package tree

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"slices"

	"memstore/replica/storage/vfs"
)

// MaxChunkBytes bounds an encoded snapshot chunk, well under the NATS
// payload limit (1 MiB by default).
const MaxChunkBytes = 512 << 10

// Chunk is one piece of a snapshot stream: the versions of some paths, all
// at or below the snapshot's applied point.
type Chunk struct {
	Epoch uint64      `json:"epoch"`
	Seq   uint64      `json:"seq"`
	TS    int64       `json:"ts"`
	Index int         `json:"index"`
	Last  bool        `json:"last"`
	Paths []ChunkPath `json:"paths"`
	// Sources is the deduplication table, in the first chunk only.
	Sources map[string]Source `json:"sources,omitempty"`
}

// ChunkPath is one path's versions in a chunk (a long history may span
// several chunks).
type ChunkPath struct {
	Path     string    `json:"path"`
	Versions []Version `json:"versions"`
}

// MarshalChunk encodes a chunk for the wire.
func MarshalChunk(c Chunk) []byte {
	b, err := json.Marshal(c)
	if err != nil {
		panic(fmt.Sprintf("tree: marshal chunk: %v", err)) // plain data always marshals
	}
	return b
}

// UnmarshalChunk decodes and checks a chunk from the wire: valid paths,
// versions with increasing seqs at or below the snapshot's.
func UnmarshalChunk(b []byte) (Chunk, error) {
	if len(b) > 2*MaxChunkBytes {
		return Chunk{}, fmt.Errorf("%w: chunk of %d bytes", ErrCorrupt, len(b))
	}
	var c Chunk
	if err := json.Unmarshal(b, &c); err != nil {
		return Chunk{}, fmt.Errorf("%w: chunk: %v", ErrCorrupt, err)
	}
	if c.Index < 0 {
		return Chunk{}, fmt.Errorf("%w: chunk index %d", ErrCorrupt, c.Index)
	}
	for _, cp := range c.Paths {
		if err := ValidatePath(cp.Path); err != nil {
			return Chunk{}, err
		}
		prev := uint64(0)
		for _, v := range cp.Versions {
			if v.Seq <= prev || v.Seq > c.Seq || !json.Valid(v.Value) {
				return Chunk{}, fmt.Errorf("%w: chunk %d: bad version %d of %s", ErrCorrupt, c.Index, v.Seq, cp.Path)
			}
			if _, err := parseLine(mustLine(v)); err != nil {
				return Chunk{}, fmt.Errorf("%w: chunk %d: version %d of %s: %v", ErrCorrupt, c.Index, v.Seq, cp.Path, err)
			}
			prev = v.Seq
		}
	}
	return c, nil
}

func mustLine(v Version) []byte {
	b, _ := json.Marshal(v)
	return b
}

// Snapshot is a consistent stream of the tree at one applied point. Files
// are append-only and the snapshot copied each path's index when it
// started, so applies going on meanwhile do not change it; compaction
// waits until it is closed.
type Snapshot struct {
	t       *Tree
	at      Point
	ts      int64
	sources map[string]Source
	paths   []string
	refs    map[string][]ref
	next    int // index of the next path
	skip    int // versions of paths[next] already sent
	index   int
	done    bool
}

// Snapshot starts a snapshot of the tree at its applied point. Close it.
func (t *Tree) Snapshot() *Snapshot {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.snapshots++
	s := &Snapshot{t: t, at: t.applied, ts: t.lastTS, sources: maps.Clone(t.sources), refs: make(map[string][]ref, len(t.paths))}
	for p, ps := range t.paths {
		s.paths = append(s.paths, p)
		s.refs[p] = slices.Clone(ps.refs)
	}
	slices.Sort(s.paths)
	return s
}

// At is the applied point the snapshot holds.
func (s *Snapshot) At() Point { return s.at }

// Next returns the next chunk; after the one marked Last it returns io.EOF.
func (s *Snapshot) Next() (Chunk, error) {
	if s.done {
		return Chunk{}, io.EOF
	}
	c := Chunk{Epoch: s.at.Epoch, Seq: s.at.Seq, TS: s.ts, Index: s.index}
	if s.index == 0 {
		c.Sources = s.sources
	}
	size := 128
	for s.next < len(s.paths) && size < MaxChunkBytes {
		p := s.paths[s.next]
		refs := s.refs[p][s.skip:]
		f, err := vfs.Open(s.t.fs, filepath.Join(s.t.diskPath(p), versionsFile))
		if err != nil {
			return Chunk{}, fmt.Errorf("tree: snapshot %s: %w", p, err)
		}
		cp := ChunkPath{Path: p}
		for _, r := range refs {
			if size+int(r.n())+16 > MaxChunkBytes && (len(c.Paths) > 0 || len(cp.Versions) > 0) {
				break
			}
			line := make([]byte, r.n())
			if _, err := f.ReadAt(line, r.off()); err != nil && !errors.Is(err, io.EOF) {
				f.Close()
				return Chunk{}, fmt.Errorf("tree: snapshot %s: %w", p, err)
			}
			v, err := decodeVersion(line)
			if err != nil {
				f.Close()
				return Chunk{}, err
			}
			cp.Versions = append(cp.Versions, v)
			size += int(r.n()) + 16
		}
		f.Close()
		c.Paths = append(c.Paths, cp)
		size += len(p) + 32
		s.skip += len(cp.Versions)
		if s.skip == len(s.refs[p]) {
			s.next, s.skip = s.next+1, 0
		}
	}
	c.Last = s.next == len(s.paths)
	s.done = c.Last
	s.index++
	return c, nil
}

// Close ends the snapshot.
func (s *Snapshot) Close() {
	s.t.mu.Lock()
	s.t.snapshots--
	s.t.mu.Unlock()
}

// Installer receives a snapshot stream into a staging folder (tree.new)
// while the node goes on; Tree.Install swaps it in.
type Installer struct {
	sources map[string]Source
	t       *Tree
	dir     string
	next    int
	at      Point
	ts      int64
	last    bool
	written map[string]struct{}
}

// NewInstaller starts receiving a snapshot, discarding any older staging.
func (t *Tree) NewInstaller() (*Installer, error) {
	dir := filepath.Join(t.dataDir, newTreeDir)
	if err := t.fs.RemoveAll(dir); err != nil {
		return nil, fmt.Errorf("tree: clear %s: %w", dir, err)
	}
	if err := t.fs.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("tree: create %s: %w", dir, err)
	}
	return &Installer{t: t, dir: dir, written: map[string]struct{}{}}, nil
}

// Add writes one chunk; chunks must come in order, from one snapshot.
func (in *Installer) Add(c Chunk) error {
	if c.Index != in.next || in.last || (in.next > 0 && (c.Seq != in.at.Seq || c.Epoch != in.at.Epoch)) {
		return fmt.Errorf("%w: chunk %d of snapshot %d, want chunk %d of %d", ErrCorrupt, c.Index, c.Seq, in.next, in.at.Seq)
	}
	in.next++
	in.at, in.ts, in.last = Point{Epoch: c.Epoch, Seq: c.Seq}, c.TS, c.Last
	if c.Index == 0 {
		in.sources = c.Sources
	}
	for _, cp := range c.Paths {
		dir := filepath.Join(in.dir, filepath.FromSlash(cp.Path))
		if err := in.t.fs.MkdirAll(dir, 0o700); err != nil {
			return fmt.Errorf("tree: install %s: %w", cp.Path, err)
		}
		f, err := in.t.fs.OpenFile(filepath.Join(dir, versionsFile), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
		if err != nil {
			return fmt.Errorf("tree: install %s: %w", cp.Path, err)
		}
		var buf []byte
		for _, v := range cp.Versions {
			buf = append(append(buf, mustLine(v)...), '\n')
		}
		_, err = f.Write(buf)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return fmt.Errorf("tree: install %s: %w", cp.Path, err)
		}
		in.written[cp.Path] = struct{}{}
	}
	return nil
}

// Install makes a fully received snapshot the tree, atomically: the staging
// folder is made durable and marked complete, then swapped in by renames
// that Open finishes or undoes after a crash.
func (t *Tree) Install(in *Installer) error {
	if !in.last {
		return fmt.Errorf("tree: install of snapshot %d before its last chunk", in.at.Seq)
	}
	dirs := map[string]struct{}{in.dir: {}}
	for p := range in.written {
		name := filepath.Join(in.dir, filepath.FromSlash(p), versionsFile)
		f, err := t.fs.OpenFile(name, os.O_WRONLY, 0)
		if err != nil {
			return fmt.Errorf("tree: install: %w", err)
		}
		err = f.Sync()
		f.Close()
		if err != nil {
			return fmt.Errorf("tree: install: fsync %s: %w", name, err)
		}
		for d := filepath.Dir(name); len(d) >= len(in.dir); d = filepath.Dir(d) {
			dirs[d] = struct{}{}
		}
	}
	for d := range dirs {
		if err := t.fs.SyncDir(d); err != nil {
			return fmt.Errorf("tree: install: fsync %s: %w", d, err)
		}
	}
	if err := writeMarker(t.fs, in.dir, marker{Point: in.at, TS: in.ts, Sources: in.sources}); err != nil {
		return err
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	old := filepath.Join(t.dataDir, oldTreeDir)
	if err := t.fs.Rename(t.dir, old); err != nil {
		return fmt.Errorf("tree: install: %w", err)
	}
	if err := t.fs.Rename(in.dir, t.dir); err != nil {
		return fmt.Errorf("tree: install: %w", err)
	}
	if err := t.fs.SyncDir(t.dataDir); err != nil {
		return fmt.Errorf("tree: install: %w", err)
	}
	if err := t.fs.RemoveAll(old); err != nil {
		return fmt.Errorf("tree: install: remove old tree: %w", err)
	}
	return t.load()
}
