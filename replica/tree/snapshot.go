package tree

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"

	"golang.org/x/sync/errgroup"
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

// ChunkPath is some of one path's versions, oldest first, as the lines of
// its versions file (each ending in a newline): a snapshot ships the files'
// bytes, not decoded versions. A long history may span several chunks.
type ChunkPath struct {
	Path  string `json:"path"`
	Lines []byte `json:"-"`
	N     int    `json:"n"` // len(Lines), in the encoded header
	refs  []ref  // the lines' index, offsets within Lines: set by UnmarshalChunk
}

// MarshalChunk encodes a chunk for the wire: a 4-byte big-endian length,
// a JSON header (the chunk without the lines' bytes), then every path's
// lines one after the other.
func MarshalChunk(c Chunk) []byte {
	size := 0
	c.Paths = slices.Clone(c.Paths)
	for i := range c.Paths {
		c.Paths[i].N = len(c.Paths[i].Lines)
		size += c.Paths[i].N
	}
	head, err := json.Marshal(c)
	if err != nil {
		panic(fmt.Sprintf("tree: marshal chunk: %v", err)) // plain data always marshals
	}
	b := make([]byte, 4, 4+len(head)+size)
	binary.BigEndian.PutUint32(b, uint32(len(head)))
	b = append(b, head...)
	for _, cp := range c.Paths {
		b = append(b, cp.Lines...)
	}
	return b
}

// UnmarshalChunk decodes and checks a chunk from the wire: valid paths in
// increasing order, every line a version, seqs increasing and at or below
// the snapshot's.
func UnmarshalChunk(b []byte) (Chunk, error) {
	if len(b) > 2*MaxChunkBytes || len(b) < 4 || int(binary.BigEndian.Uint32(b)) > len(b)-4 {
		return Chunk{}, fmt.Errorf("%w: chunk of %d bytes", ErrCorrupt, len(b))
	}
	hlen := int(binary.BigEndian.Uint32(b))
	var c Chunk
	if err := json.Unmarshal(b[4:4+hlen], &c); err != nil {
		return Chunk{}, fmt.Errorf("%w: chunk: %v", ErrCorrupt, err)
	}
	if c.Index < 0 {
		return Chunk{}, fmt.Errorf("%w: chunk index %d", ErrCorrupt, c.Index)
	}
	body := b[4+hlen:]
	for i := range c.Paths {
		cp := &c.Paths[i]
		if err := ValidatePath(cp.Path); err != nil {
			return Chunk{}, err
		}
		if cp.N <= 0 || cp.N > len(body) {
			return Chunk{}, fmt.Errorf("%w: chunk %d: %d bytes of %s", ErrCorrupt, c.Index, cp.N, cp.Path)
		}
		if i > 0 && cp.Path <= c.Paths[i-1].Path { // Next sends them sorted, each once
			return Chunk{}, fmt.Errorf("%w: chunk %d: %s after %s", ErrCorrupt, c.Index, cp.Path, c.Paths[i-1].Path)
		}
		cp.Lines, body = body[:cp.N:cp.N], body[cp.N:]
		if err := cp.index(c.Seq); err != nil {
			return Chunk{}, fmt.Errorf("%w: chunk %d: %s: %v", ErrCorrupt, c.Index, cp.Path, err)
		}
	}
	if len(body) != 0 {
		return Chunk{}, fmt.Errorf("%w: chunk %d: %d bytes past its paths", ErrCorrupt, c.Index, len(body))
	}
	return c, nil
}

// index parses every line: whole versions with increasing seqs, none
// above the snapshot's.
func (cp *ChunkPath) index(max uint64) error {
	cp.refs = make([]ref, 0, bytes.Count(cp.Lines, []byte{'\n'}))
	for off := 0; off < len(cp.Lines); {
		end := bytes.IndexByte(cp.Lines[off:], '\n')
		if end < 0 {
			return errors.New("a line without its newline")
		}
		line := cp.Lines[off : off+end]
		r, err := parseLine(line)
		if err != nil {
			return fmt.Errorf("line at %d: %v", off, err)
		}
		if r.seq > max || (len(cp.refs) > 0 && r.seq <= cp.refs[len(cp.refs)-1].seq) {
			return fmt.Errorf("version %d out of order", r.seq)
		}
		r.loc = locate(int64(off), int64(end))
		cp.refs = append(cp.refs, r)
		off += end + 1
	}
	return nil
}

// line is the version r of the chunk, without its newline.
func (cp *ChunkPath) line(r ref) []byte { return cp.Lines[r.off() : r.off()+r.n()] }

// Snapshot is a consistent stream of the tree at one applied point. Files
// are append-only and the snapshot copied each path's index when it
// started, so applies going on meanwhile do not change it; compaction
// waits until it is closed. Once its tree installs another snapshot, Next
// fails with ErrReplaced.
type Snapshot struct {
	t       *Tree
	at      Point
	ts      int64
	sources map[string]Source
	paths   []string
	refs    map[string][]ref
	lines   map[string]*lines // each path's versions when the snapshot started
	tree    int               // the tree's installs then: its files are those of this tree
	next    int               // index of the next path
	skip    int               // versions of paths[next] already sent
	index   int
	done    bool
}

// Snapshot starts a snapshot of the tree at its applied point. Close it.
func (t *Tree) Snapshot() *Snapshot {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.snapshots++
	s := &Snapshot{t: t, at: t.applied, ts: t.lastTS, sources: maps.Clone(t.sources), tree: t.installs,
		refs: make(map[string][]ref, len(t.paths)), lines: make(map[string]*lines, len(t.paths))}
	for p, ps := range t.paths {
		s.paths = append(s.paths, p)
		s.refs[p] = slices.Clone(ps.refs)
		s.lines[p] = t.lines(p, ps)
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
	size := 128
	if s.index == 0 {
		c.Sources = s.sources
		for src := range s.sources {
			size += len(src) + 96 // its name and three numbers, JSON-encoded
		}
	}
	for s.next < len(s.paths) && size < MaxChunkBytes {
		p := s.paths[s.next]
		refs := s.refs[p][s.skip:]
		k := 0 // versions of p that fit, at least one if the chunk is empty
		for k < len(refs) && (size+int(refs[k].n())+1 <= MaxChunkBytes || (len(c.Paths) == 0 && k == 0)) {
			size += int(refs[k].n()) + 1
			k++
		}
		if k == 0 {
			break
		}
		first, last := refs[0], refs[k-1]
		lines := make([]byte, last.off()+last.n()+1-first.off()) // the lines lie one after the other
		if err := s.readAt(p, lines, first.off()); err != nil {
			return Chunk{}, err
		}
		c.Paths = append(c.Paths, ChunkPath{Path: p, Lines: lines})
		size += len(p) + 32
		s.skip += k
		if s.skip == len(s.refs[p]) {
			s.next, s.skip = s.next+1, 0
		}
	}
	c.Last = s.next == len(s.paths)
	s.done = c.Last
	s.index++
	return c, nil
}

// readAt reads versions of path p. It opens p's file while the tree is
// surely the one the snapshot started on: an Install puts another tree's
// files under the same names, while a file opened before still reads the
// old one.
func (s *Snapshot) readAt(p string, b []byte, off int64) error {
	l := s.lines[p]
	defer l.Close()
	s.t.mu.RLock()
	replaced := s.t.installs != s.tree
	var err error
	if !replaced && off < l.disk {
		err = l.open()
	}
	s.t.mu.RUnlock()
	if replaced {
		return fmt.Errorf("tree: snapshot %s: %w", p, ErrReplaced)
	}
	if err == nil {
		_, err = l.ReadAt(b, off)
	}
	if err != nil {
		return fmt.Errorf("tree: snapshot %s: %w", p, err)
	}
	return nil
}

// Close ends the snapshot.
func (s *Snapshot) Close() {
	s.t.mu.Lock()
	s.t.snapshots--
	s.t.mu.Unlock()
}

// Installer receives a snapshot stream into a staging folder (tree.new)
// while the node goes on, and indexes it as it writes; Tree.Install swaps
// both in.
type Installer struct {
	t    *Tree
	idx  *Tree // the staged tree: its folder, index, applied point, ts and dedup table
	next int
	last bool
	made sync.Map // folders (paths, "" the root) made in the staging folder, by the writes
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
	idx := &Tree{cfg: t.cfg, dir: dir, paths: map[string]*pathState{}, children: map[string]map[string]struct{}{"": {}}}
	return &Installer{t: t, idx: idx}, nil
}

// Add writes one chunk, as it came from UnmarshalChunk; chunks must come
// in order, from one snapshot.
func (in *Installer) Add(c Chunk) error {
	if c.Index != in.next || in.last || (in.next > 0 && (c.Seq != in.idx.applied.Seq || c.Epoch != in.idx.applied.Epoch)) {
		return fmt.Errorf("%w: chunk %d of snapshot %d, want chunk %d of %d", ErrCorrupt, c.Index, c.Seq, in.next, in.idx.applied.Seq)
	}
	in.next++
	in.idx.applied, in.idx.lastTS, in.last = Point{Epoch: c.Epoch, Seq: c.Seq}, c.TS, c.Last
	if c.Index == 0 {
		in.idx.sources = c.Sources
	}
	for _, cp := range c.Paths { // check all before writing any: a refused chunk leaves no write running
		if ps := in.idx.paths[cp.Path]; ps != nil && cp.refs[0].seq <= ps.refs[len(ps.refs)-1].seq {
			return fmt.Errorf("%w: chunk %d: version %d of %s out of order", ErrCorrupt, c.Index, cp.refs[0].seq, cp.Path)
		}
	}
	// Folders and files are made several at a time: on this kind of disk
	// a mkdir or create costs tens of microseconds in the kernel, most of
	// a snapshot's install.
	var g errgroup.Group
	g.SetLimit(syncWorkers)
	for _, cp := range c.Paths {
		ps := in.idx.paths[cp.Path]
		if ps == nil {
			ps = &pathState{}
			in.idx.paths[cp.Path] = ps
			folder := ""
			for _, seg := range strings.Split(cp.Path, "/") {
				in.idx.addChild(folder, seg)
				folder = join(folder, seg)
			}
		}
		in.index(ps, cp)
		ps.size += int64(len(cp.Lines))
		g.Go(func() error { return in.write(cp) })
	}
	return g.Wait()
}

// index adds a chunk's versions of one path to the staged index. Only
// the last RecentVersions lines are kept: a joining node receives every
// version of every path, and a copy of each line would double its
// allocations (issue 7's W5).
func (in *Installer) index(ps *pathState, cp ChunkPath) {
	ps.refs = slices.Grow(ps.refs, len(cp.refs))
	keep := max(len(cp.refs)-in.t.cfg.RecentVersions, 0)
	for i, r := range cp.refs {
		line := cp.line(r) // before r.loc moves from the chunk to the file
		r.loc = locate(ps.size+r.off(), r.n())
		if i < keep {
			ps.refs = append(ps.refs, r)
		} else {
			in.idx.push(ps, r, bytes.Clone(line)) // not the chunk: it would stay in memory whole
		}
	}
}

// write appends a chunk's lines of one path to its staged file.
func (in *Installer) write(cp ChunkPath) error {
	if err := in.mkdirs(cp.Path); err != nil {
		return fmt.Errorf("tree: install %s: %w", cp.Path, err)
	}
	f, err := in.t.fs.OpenFile(filepath.Join(in.idx.diskPath(cp.Path), versionsFile), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("tree: install %s: %w", cp.Path, err)
	}
	_, err = f.Write(cp.Lines)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("tree: install %s: %w", cp.Path, err)
	}
	return nil
}

// mkdirs makes the folders of path p in the staging folder, each once,
// from the top: no stat of what the install made before (MkdirAll stats
// a folder before making it, and its parent: a third of an install's
// system calls for 10,000 paths). Writes run side by side, so another may
// be making the same folder: one that exists is made.
func (in *Installer) mkdirs(p string) error {
	for i := 0; i <= len(p); i++ {
		if i < len(p) && p[i] != '/' {
			continue
		}
		folder := p[:i]
		if _, ok := in.made.Load(folder); ok {
			continue
		}
		if err := in.t.fs.Mkdir(in.idx.diskPath(folder), 0o700); err != nil && !errors.Is(err, fs.ErrExist) {
			return err
		}
		in.made.Store(folder, struct{}{})
	}
	return nil
}

// Install makes a fully received snapshot the tree, atomically: the staging
// folder is made durable (one SyncAll) and marked complete, then swapped in by renames
// that Open finishes or undoes after a crash.
func (t *Tree) Install(in *Installer) error {
	if !in.last {
		return fmt.Errorf("tree: install of snapshot %d before its last chunk", in.idx.applied.Seq)
	}
	if err := t.fs.SyncAll(in.idx.dir); err != nil { // thousands of new files and folders: one syncfs
		return fmt.Errorf("tree: install: %w", err)
	}
	if err := writeMarker(t.fs, in.idx.dir, marker{Point: in.idx.applied, TS: in.idx.lastTS, Sources: in.idx.sources}); err != nil {
		return err
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	old := filepath.Join(t.dataDir, oldTreeDir)
	if err := t.fs.Rename(t.dir, old); err != nil {
		return fmt.Errorf("tree: install: %w", err)
	}
	if err := t.fs.Rename(in.idx.dir, t.dir); err != nil {
		return fmt.Errorf("tree: install: %w", err)
	}
	// The index follows the files at once: the old one's pending lines,
	// older than the snapshot, must never be written into its files (as
	// Close would, after a failure below).
	t.appends.Purge() // its files are in the old tree
	t.paths, t.children = in.idx.paths, in.idx.children
	t.sortedMu.Lock()
	t.sorted = nil
	t.sortedMu.Unlock()
	clear(t.dirtyFiles)
	clear(t.dirtyDirs)
	t.applied, t.lastTS, t.sources = in.idx.applied, in.idx.lastTS, in.idx.sources
	t.installs++
	t.marked = t.applied // Install wrote its marker
	if t.sources == nil {
		t.sources = map[string]Source{}
	}
	if err := t.fs.SyncDir(t.dataDir); err != nil {
		return fmt.Errorf("tree: install: %w", err)
	}
	if err := t.fs.RemoveAll(old); err != nil {
		return fmt.Errorf("tree: install: remove old tree: %w", err)
	}
	return nil
}
