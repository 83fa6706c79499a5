package tree

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	lru "github.com/hashicorp/golang-lru/v2"
	"golang.org/x/sync/errgroup"

	"memstore/internal/versionjson"
	"memstore/replica/protocol"
	"memstore/replica/storage/vfs"
)

// Names under the data dir and in the tree. Every name the tree keeps holds
// a dot, so it can never be a path segment.
const (
	treeDir      = "tree"
	newTreeDir   = "tree.new"
	oldTreeDir   = "tree.old"
	versionsFile = "versions.jsonl"
	markerFile   = "applied.json"
	tmpSuffix    = ".tmp"
)

// Version is one stored version of a path: one line of its versions file.
type Version struct {
	Seq     uint64          `json:"seq"`
	TS      string          `json:"ts"`
	EventTS string          `json:"event_ts,omitempty"`
	User    string          `json:"user"`
	Value   json.RawMessage `json:"value"`
}

// Put is one write of a log entry.
type Put struct {
	Path    string
	Value   json.RawMessage
	EventTS string // the writer's own time of the value, RFC 3339, if it gave one
}

// PathVersion is the latest version of one path.
type PathVersion struct {
	Path string
	Version
}

// Point is a log position: the applied entry's epoch and seq.
type Point = protocol.Point

// ref locates one version in its path's file: a fixed 24 bytes of RAM per
// version, whatever its size.
type ref struct {
	seq uint64
	ts  int64  // unix nanoseconds
	loc uint64 // file offset << 24 | line length (lines < 16 MiB, files < 1 TiB)
}

const lenBits = 24

func (r ref) off() int64 { return int64(r.loc >> lenBits) }
func (r ref) n() int64   { return int64(r.loc & (1<<lenBits - 1)) }
func locate(off, n int64) uint64 {
	return uint64(off)<<lenBits | uint64(n)
}

// pathState is one path's index.
type pathState struct {
	refs   []ref    // every version, oldest first
	recent [][]byte // the encoded lines of the last len(recent) versions
	size   int64    // size of the versions file, pend included
	// pend holds the lines applied since the path's file was last
	// written (see writeLine). Its bytes never change once appended: a
	// flush drops the slice instead of reusing it, so a copy of the slice
	// taken under the lock stays readable after it is released.
	pend []byte
}

// Tree is a node's state machine: every path's versions on disk under
// tree/, indexed in memory.
type Tree struct {
	fs      vfs.FS
	dataDir string
	dir     string
	cfg     Config

	mu         sync.RWMutex // guards everything below; reads share it, Apply and the rest hold it alone
	paths      map[string]*pathState
	children   map[string]map[string]struct{} // folder ("" is the root) → child segment names
	sortedMu   sync.Mutex                     // guards sorted: readers holding mu.RLock fill it
	sorted     map[string][]string            // folder → its children sorted, until one is added
	applied    Point
	marked     Point               // the applied point of the marker last read or taken for a checkpoint
	lastTS     int64               // ts of the latest applied entry
	dirtyFiles map[string]struct{} // paths applied to since the last checkpoint: pending lines, unsynced writes
	dirtyDirs  map[string]struct{} // folders (on disk) with new entries since then
	snapshots  int                 // snapshot readers running: compaction waits for them
	installs   int                 // snapshots installed: a snapshot reader started before one reads no more
	sources    map[string]Source   // client source → its last write, for deduplication
	// appends keeps the versions files of recently written paths open for
	// appending: opening and closing a file per put was the largest cost
	// of applying (the profile of issue 7). An evicted file is closed.
	appends *lru.Cache[string, vfs.File]
}

// openAppends bounds the versions files kept open for appending.
const openAppends = 512

// Source is the last write a client source made: a write keyed (source,
// sequence) at or below SrcSeq is a duplicate of one already stored.
type Source struct {
	SrcSeq uint64 `json:"src_seq"`
	Seq    uint64 `json:"seq"`
	TS     string `json:"ts"`
}

// marker is applied.json: the checkpointed applied point, the latest
// applied ts and the deduplication table.
type marker struct {
	Point
	TS      int64             `json:"ts"`
	Sources map[string]Source `json:"sources,omitempty"`
}

// Open opens the tree under dataDir (read_from_file): it finishes or undoes
// an interrupted snapshot install, then reads every versions file back,
// cutting a torn last line.
func Open(fsys vfs.FS, dataDir string, cfg Config) (*Tree, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	appends, _ := lru.NewWithEvict(openAppends, func(_ string, f vfs.File) { f.Close() }) // a positive size never fails
	t := &Tree{fs: fsys, dataDir: dataDir, dir: filepath.Join(dataDir, treeDir), cfg: cfg, appends: appends}
	if err := fsys.MkdirAll(dataDir, 0o700); err != nil {
		return nil, fmt.Errorf("tree: create %s: %w", dataDir, err)
	}
	if err := t.resolveInstall(); err != nil {
		return nil, err
	}
	if err := fsys.MkdirAll(t.dir, 0o700); err != nil {
		return nil, fmt.Errorf("tree: create %s: %w", t.dir, err)
	}
	if err := fsys.SyncDir(dataDir); err != nil {
		return nil, fmt.Errorf("tree: sync %s: %w", dataDir, err)
	}
	if err := t.load(); err != nil {
		return nil, err
	}
	// A process that was killed may have left files written but not
	// fsynced; they are made durable now, before a checkpoint's marker can
	// vouch for them (found by the torture test: a crash, then a power
	// loss, lost versions the marker claimed). One syncfs, not a fsync of
	// every file of the tree at the first checkpoint.
	if err := fsys.SyncAll(t.dir); err != nil {
		return nil, fmt.Errorf("tree: sync %s: %w", t.dir, err)
	}
	return t, nil
}

func (t *Tree) exists(name string) bool {
	_, err := t.fs.Lstat(name)
	return err == nil
}

// resolveInstall makes a crash during Install leave the old tree or the
// complete new one, never a mix: the new tree counts once its marker is
// written, which Install does last.
func (t *Tree) resolveInstall() error {
	cur, nw, old := t.dir, filepath.Join(t.dataDir, newTreeDir), filepath.Join(t.dataDir, oldTreeDir)
	complete := t.exists(filepath.Join(nw, markerFile))
	var err error
	switch {
	case t.exists(old) && !t.exists(cur) && complete:
		err = t.fs.Rename(nw, cur)
	case t.exists(old) && !t.exists(cur):
		err = t.fs.Rename(old, cur)
	}
	if err != nil {
		return fmt.Errorf("tree: finish an interrupted install: %w", err)
	}
	for _, leftover := range []string{old, nw} {
		if t.exists(leftover) {
			if err := t.fs.RemoveAll(leftover); err != nil {
				return fmt.Errorf("tree: remove %s: %w", leftover, err)
			}
		}
	}
	return t.fs.SyncDir(t.dataDir)
}

// Close writes the pending lines and closes the files the tree keeps open.
// What the last checkpoint did not cover is replayed from the log, so a
// line Close fails to write is not lost, and its error is not reported.
func (t *Tree) Close() {
	t.mu.Lock()
	defer t.mu.Unlock()
	_ = t.flushAll()
	t.appends.Purge()
}

// load rebuilds the index from the files.
func (t *Tree) load() error {
	t.appends.Purge()
	t.paths = map[string]*pathState{}
	t.children = map[string]map[string]struct{}{"": {}}
	t.dirtyFiles, t.dirtyDirs = map[string]struct{}{}, map[string]struct{}{}
	t.applied, t.lastTS, t.sources = Point{}, 0, map[string]Source{}
	if err := t.readMarker(); err != nil {
		return err
	}
	t.marked = t.applied
	return t.walk("")
}

func (t *Tree) readMarker() error {
	f, err := vfs.Open(t.fs, filepath.Join(t.dir, markerFile))
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("tree: open marker: %w", err)
	}
	defer f.Close()
	data, err := io.ReadAll(f)
	if err != nil {
		return fmt.Errorf("tree: read marker: %w", err)
	}
	var m marker
	if err := json.Unmarshal(data, &m); err != nil {
		return fmt.Errorf("%w: %s: %v", ErrCorrupt, filepath.Join(t.dir, markerFile), err)
	}
	t.applied, t.lastTS = m.Point, m.TS
	if m.Sources != nil {
		t.sources = m.Sources
	}
	return nil
}

// walk loads every path under folder.
func (t *Tree) walk(folder string) error {
	ents, err := t.fs.ReadDir(t.diskPath(folder))
	if err != nil {
		return fmt.Errorf("tree: list %s: %w", t.diskPath(folder), err)
	}
	for _, e := range ents {
		name := e.Name()
		switch {
		case name == versionsFile && folder != "":
			if err := t.loadPath(folder); err != nil {
				return err
			}
		case strings.HasSuffix(name, tmpSuffix): // an interrupted compaction: the old file stands
			if err := t.fs.Remove(filepath.Join(t.diskPath(folder), name)); err != nil {
				return fmt.Errorf("tree: remove %s: %w", name, err)
			}
		case e.Type()&fs.ModeSymlink != 0:
			return fmt.Errorf("%w: %s is a symlink", ErrUnsafe, filepath.Join(t.diskPath(folder), name))
		case e.IsDir() && ValidatePath(join(folder, name)) == nil:
			t.addChild(folder, name)
			if err := t.walk(join(folder, name)); err != nil {
				return err
			}
		}
	}
	return nil
}

func join(folder, name string) string {
	if folder == "" {
		return name
	}
	return folder + "/" + name
}

func (t *Tree) diskPath(p string) string {
	if p == "" {
		return t.dir
	}
	return filepath.Join(t.dir, filepath.FromSlash(p))
}

func (t *Tree) addChild(folder, name string) {
	set := t.children[folder]
	if set == nil {
		set = map[string]struct{}{}
		t.children[folder] = set
	}
	if _, ok := set[name]; !ok {
		set[name] = struct{}{}
		t.sortedMu.Lock()
		delete(t.sorted, folder)
		t.sortedMu.Unlock()
	}
}

// sortedChildren returns a folder's children sorted, sorting them once
// until a child is added (a folder may hold 100,000 paths, and a tree read
// pages through them). The slice is never changed: callers only read it.
// mu must be held.
func (t *Tree) sortedChildren(folder string) []string {
	t.sortedMu.Lock()
	defer t.sortedMu.Unlock()
	if names, ok := t.sorted[folder]; ok {
		return names
	}
	names := make([]string, 0, len(t.children[folder]))
	for name := range t.children[folder] {
		names = append(names, name)
	}
	slices.Sort(names)
	if t.sorted == nil {
		t.sorted = map[string][]string{}
	}
	t.sorted[folder] = names
	return names
}

// loadPath reads one versions file; a torn or garbage last line is cut, a
// bad line before the last is ErrCorrupt.
func (t *Tree) loadPath(p string) error {
	name := filepath.Join(t.diskPath(p), versionsFile)
	f, err := vfs.Open(t.fs, name)
	if err != nil {
		return fmt.Errorf("tree: open %s: %w", name, err)
	}
	data, err := io.ReadAll(f)
	f.Close()
	if err != nil {
		return fmt.Errorf("tree: read %s: %w", name, err)
	}
	ps := &pathState{}
	off := int64(0)
	for line := 1; off < int64(len(data)); line++ {
		end := bytes.IndexByte(data[off:], '\n')
		var r ref
		var err error
		if end < 0 {
			err = errors.New("no newline")
		} else {
			r, err = parseLine(data[off : off+int64(end)])
		}
		if err == nil && len(ps.refs) > 0 && r.seq <= ps.refs[len(ps.refs)-1].seq {
			err = fmt.Errorf("seq %d after %d", r.seq, ps.refs[len(ps.refs)-1].seq)
		}
		if err != nil {
			if end >= 0 && off+int64(end)+1 < int64(len(data)) {
				return fmt.Errorf("%w: %s line %d: %v", ErrCorrupt, name, line, err)
			}
			if err := t.cut(name, off); err != nil {
				return err
			}
			break
		}
		r.loc = locate(off, int64(end))
		t.push(ps, r, bytes.Clone(data[off:off+int64(end)])) // not the file's buffer: it would stay in memory whole
		off += int64(end) + 1
	}
	ps.size = off
	if len(ps.refs) > 0 {
		t.paths[p] = ps
	}
	return nil
}

// cut truncates a versions file to its last whole line.
func (t *Tree) cut(name string, size int64) error {
	if err := vfs.TruncateSync(t.fs, name, size); err != nil {
		return fmt.Errorf("tree: cut torn line of %s: %w", name, err)
	}
	return nil
}

// parseLine reads a version's seq and ts and checks the line is a whole
// version. A line as Apply writes it (json.Marshal of Version: seq, ts,
// event_ts, user, value, in that order) is read directly, at a fraction
// of encoding/json's cost (the receiver of a snapshot and Open parse
// every line); any other spelling of a version, say one edited by hand,
// goes through encoding/json.
func parseLine(line []byte) (ref, error) {
	if r, ok := parseCanonical(line); ok {
		return r, nil
	}
	var v Version
	if err := json.Unmarshal(line, &v); err != nil {
		return ref{}, err
	}
	ts, err := time.Parse(time.RFC3339Nano, v.TS)
	if err != nil {
		return ref{}, fmt.Errorf("bad ts: %w", err)
	}
	if v.Seq == 0 || len(v.Value) == 0 {
		return ref{}, errors.New("missing seq or value")
	}
	return ref{seq: v.Seq, ts: ts.UnixNano()}, nil
}

// parseCanonical reads a line in json.Marshal's spelling of Version
// (versionjson.Scan, which the client's reading of get and history
// replies shares: they splice these lines) and its time.
func parseCanonical(line []byte) (ref, bool) {
	v, ok := versionjson.Scan(line)
	if !ok {
		return ref{}, false
	}
	ts, err := time.Parse(time.RFC3339Nano, string(v.TS[1:len(v.TS)-1])) // an escape fails: encoding/json reads it
	if err != nil {
		return ref{}, false
	}
	return ref{seq: v.Seq, ts: ts.UnixNano()}, true
}

// push records a version in a path's index, keeping RecentVersions lines
// in memory. It keeps line itself: the caller must not change it.
func (t *Tree) push(ps *pathState, r ref, line []byte) {
	ps.refs = append(ps.refs, r)
	ps.recent = append(ps.recent, line)
	if k := len(ps.recent) - t.cfg.RecentVersions; k > 0 {
		ps.recent[0] = nil
		ps.recent = ps.recent[k:]
	}
}

// AppliedPoint is the last entry applied.
func (t *Tree) AppliedPoint() Point {
	t.mu.RLock()
	defer t.mu.RUnlock()
	return t.applied
}

// AppliedTS is the commit time of the latest applied entry.
func (t *Tree) AppliedTS() time.Time {
	t.mu.RLock()
	defer t.mu.RUnlock()
	return time.Unix(0, t.lastTS).UTC()
}

// Written is what Apply wrote for one put: the versions-file line (the
// version as JSON, without the newline) and the seq of the path's version
// before it (0: none). Line is nil for a put left alone (replayed).
type Written struct {
	Line []byte
	Prev uint64
}

// Apply applies one committed log entry (write_to_file): each put becomes a
// line in its path's versions file. It is idempotent by seq: a path that
// already holds seq (or later) is left alone, which makes replay after a
// crash safe. Every path is checked before anything is written. It returns
// what it wrote for each put, so the leader can publish the events without
// encoding the versions again.
func (t *Tree) Apply(epoch, seq uint64, ts, user string, puts []Put) ([]Written, error) {
	if len(puts) == 0 { // a no-op entry: only the applied point moves
		t.mu.Lock()
		defer t.mu.Unlock()
		if seq > t.applied.Seq {
			t.applied.Epoch, t.applied.Seq = epoch, seq
		}
		return nil, nil
	}
	at, err := time.Parse(time.RFC3339Nano, ts)
	if err != nil {
		return nil, fmt.Errorf("tree: entry %d: bad ts %q: %w", seq, ts, err)
	}
	quotedUser, _ := json.Marshal(user)
	lines := make([][]byte, len(puts))
	for i, p := range puts {
		if err := ValidatePath(p.Path); err != nil {
			return nil, err
		}
		if p.EventTS != "" {
			if _, err := time.Parse(time.RFC3339Nano, p.EventTS); err != nil {
				return nil, fmt.Errorf("tree: entry %d: bad event ts %q of %s", seq, p.EventTS, p.Path)
			}
		}
		if !json.Valid(p.Value) || bytes.IndexByte(p.Value, '\n') >= 0 {
			return nil, fmt.Errorf("tree: entry %d: value of %s is not JSON on one line", seq, p.Path)
		}
		lines[i] = appendLine(nil, seq, ts, p.EventTS, quotedUser, p.Value)
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	var fresh []string
	for _, p := range puts {
		if t.paths[p.Path] == nil {
			fresh = append(fresh, p.Path)
		}
	}
	if err := t.makeFolders(fresh); err != nil {
		return nil, err
	}
	out := make([]Written, len(puts))
	for i, p := range puts {
		ps := t.paths[p.Path]
		if ps != nil && ps.refs[len(ps.refs)-1].seq >= seq {
			continue
		}
		if ps != nil {
			out[i].Prev = ps.refs[len(ps.refs)-1].seq
		}
		if err := t.writeLine(p.Path, ps, ref{seq: seq, ts: at.UnixNano()}, lines[i]); err != nil {
			return nil, err
		}
		out[i].Line = lines[i]
	}
	if seq > t.applied.Seq {
		t.applied, t.lastTS = Point{Epoch: epoch, Seq: seq}, at.UnixNano()
	}
	return out, nil
}

// appendLine appends the line of a version as json.Marshal spells Version
// (which parseCanonical reads back fast), without its reflection: encoding
// lines was a twentieth of a node's CPU at 64 writers (issue 7). ts and
// eventTS have passed time.Parse, so they need no escaping; quotedUser is
// the user as a JSON string, and value is JSON as json.Marshal spells it
// (compact, HTML-escaped: the leader stores it so); Apply checks only that
// it is JSON on one line, which keeps the file readable.
func appendLine(b []byte, seq uint64, ts, eventTS string, quotedUser, value []byte) []byte {
	if b == nil { // exactly the line's size: the tree keeps it (push)
		n := len(`{"seq":,"ts":"","user":,"value":}`) + 1 + len(ts) + len(quotedUser) + len(value)
		for v := seq; v >= 10; v /= 10 {
			n++
		}
		if eventTS != "" {
			n += len(`,"event_ts":""`) + len(eventTS)
		}
		b = make([]byte, 0, n)
	}
	b = strconv.AppendUint(append(b, `{"seq":`...), seq, 10)
	b = append(append(append(b, `,"ts":"`...), ts...), '"')
	if eventTS != "" {
		b = append(append(append(b, `,"event_ts":"`...), eventTS...), '"')
	}
	b = append(append(b, `,"user":`...), quotedUser...)
	b = append(append(b, `,"value":`...), value...)
	return append(b, '}')
}

// writeLine appends one version to a path's versions: to its pending
// lines, which reach the file at the next checkpoint, or at once when
// flushAbove bytes have gathered. A write syscall per put was a fifth of a
// node's CPU at 64 writers (the profile of issue 7); this way a path busy
// with many puts a second costs one. The WAL stays the source of truth:
// after a crash, what the last checkpoint did not cover is replayed from
// it, written or not. Lock should be held.
func (t *Tree) writeLine(p string, ps *pathState, r ref, line []byte) error {
	if len(line) >= 1<<lenBits {
		return fmt.Errorf("tree: version %d of %s is %d bytes, over the 16 MiB line limit", r.seq, p, len(line))
	}
	if ps == nil { // Apply made its folders
		ps = &pathState{}
		t.paths[p] = ps
		t.dirtyDirs[t.diskPath(p)] = struct{}{}
	}
	if need := len(line) + 1; cap(ps.pend)-len(ps.pend) < need {
		// Doubled: append grows a slice this size by a quarter, which
		// allocated five times the bytes a path's lines took (the
		// allocation profile of issue 7). A new array: the old one's
		// bytes stay as readers saw them.
		grown := make([]byte, len(ps.pend), max(2*cap(ps.pend), len(ps.pend)+need, 256))
		copy(grown, ps.pend)
		ps.pend = grown
	}
	ps.pend = append(append(ps.pend, line...), '\n')
	r.loc = locate(ps.size, int64(len(line)))
	ps.size += int64(len(line)) + 1
	t.push(ps, r, line)
	t.dirtyFiles[p] = struct{}{}
	if len(ps.pend) >= flushAbove {
		return t.flush(p, ps)
	}
	return nil
}

// flushAbove is how many pending bytes a path holds before they are
// written ahead of the checkpoint.
const flushAbove = 64 << 10

// flush writes a path's pending lines to its file. Lock should be held.
func (t *Tree) flush(p string, ps *pathState) error {
	if len(ps.pend) == 0 {
		return nil
	}
	f, cached := t.appends.Get(p)
	f, err := t.write(p, ps, f)
	switch {
	case err != nil && cached:
		t.appends.Remove(p) // closes it
	case err == nil && !cached:
		t.appends.Add(p, f)
	}
	return err
}

// write writes a path's pending lines to its file f, opened first if nil,
// and returns the file, or nil if the write failed (the file is closed
// then, unless it was given). It touches only the path's state, so
// writes of different paths may run side by side. Lock should be held.
func (t *Tree) write(p string, ps *pathState, f vfs.File) (vfs.File, error) {
	name := filepath.Join(t.diskPath(p), versionsFile)
	opened := f == nil
	if opened {
		var err error
		if f, err = t.fs.OpenFile(name, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600); err != nil {
			return nil, fmt.Errorf("tree: open %s: %w", name, err)
		}
	}
	n, err := f.Write(ps.pend)
	if err != nil {
		// What did reach the file stays there: only the rest is pending,
		// or a later flush (Close's) would write it twice, a bad line
		// before the last that Open refuses.
		ps.pend = ps.pend[n:]
		if opened {
			f.Close()
		}
		return nil, fmt.Errorf("tree: write %s: %w", name, err)
	}
	ps.pend = nil
	return f, nil
}

// flushAll writes the pending lines of every path: those whose file is
// open at once, the others several at a time, since opening (above all
// creating) a file costs tens of microseconds in the kernel: after 1,000
// new paths, 29 ms of the node's loop one at a time, 19 ms this way.
// Lock should be held.
func (t *Tree) flushAll() error {
	var closed []string // paths with lines to write and no open file
	for p := range t.dirtyFiles {
		ps := t.paths[p]
		switch {
		case ps == nil || len(ps.pend) == 0:
		case t.appends.Contains(p):
			if err := t.flush(p, ps); err != nil {
				return err
			}
		default:
			closed = append(closed, p)
		}
	}
	files := make([]vfs.File, len(closed))
	var g errgroup.Group
	g.SetLimit(syncWorkers)
	for i, p := range closed {
		ps := t.paths[p]
		g.Go(func() error {
			var err error
			files[i], err = t.write(p, ps, nil)
			return err
		})
	}
	err := g.Wait()
	for i, p := range closed { // after the writes: an eviction closes a file
		if files[i] != nil {
			t.appends.Add(p, files[i])
		}
	}
	return err
}

// lines reads a path's versions as applied: its file up to disk, then its
// pending lines. Taken under the lock, it may be read after the lock is
// released (pend's bytes never change), but the file must be opened under
// the lock (open), since Compact and Install replace files.
type lines struct {
	fs   vfs.FS
	name string
	disk int64 // bytes of the versions in the file
	pend []byte
	f    vfs.File // nil until open
}

// lines of a path. Lock (or RLock) should be held.
func (t *Tree) lines(p string, ps *pathState) *lines {
	return &lines{fs: t.fs, name: filepath.Join(t.diskPath(p), versionsFile), disk: ps.size - int64(len(ps.pend)), pend: ps.pend}
}

// open opens the file, if not yet open.
func (l *lines) open() error {
	if l.f != nil {
		return nil
	}
	f, err := vfs.Open(l.fs, l.name)
	if err != nil {
		return fmt.Errorf("tree: open %s: %w", l.name, err)
	}
	l.f = f
	return nil
}

// ReadAt reads len(b) bytes at off: from the file below disk, from the
// pending lines above.
func (l *lines) ReadAt(b []byte, off int64) (int, error) {
	n := 0
	if off < l.disk {
		if err := l.open(); err != nil {
			return 0, err
		}
		k := int(min(int64(len(b)), l.disk-off))
		m, err := l.f.ReadAt(b[:k], off)
		if n = m; m < k {
			if err == nil {
				err = io.ErrUnexpectedEOF
			}
			return n, fmt.Errorf("tree: read %s: %w", l.name, err)
		}
	}
	if n < len(b) {
		at := off + int64(n) - l.disk
		if at >= int64(len(l.pend)) {
			return n, io.EOF
		}
		n += copy(b[n:], l.pend[at:])
		if n < len(b) {
			return n, io.EOF
		}
	}
	return n, nil
}

// Close closes the file, if open.
func (l *lines) Close() {
	if l.f != nil {
		l.f.Close()
		l.f = nil
	}
}

// line reads the version r of a path from l.
func (l *lines) line(r ref) ([]byte, error) {
	b := make([]byte, r.n())
	if _, err := l.ReadAt(b, r.off()); err != nil {
		return nil, err
	}
	return b, nil
}

// makeFolders creates the folders of new paths, parents first, the
// folders of one depth several at a time: a mkdir costs tens of
// microseconds in the kernel, more on a disk busy with other writes.
// Applying 1,000 new paths (issue 7's W5 load) took 75 ms of the node's
// loop with one mkdir at a time, 35 ms this way, on the 2-core VM. A
// component that exists but is a symlink or not a folder is refused.
// Lock should be held.
func (t *Tree) makeFolders(paths []string) error {
	segs := make([][]string, len(paths))
	deepest := 0
	for i, p := range paths {
		segs[i] = strings.Split(p, "/")
		deepest = max(deepest, len(segs[i]))
	}
	for depth := 1; depth <= deepest; depth++ {
		type folder struct{ parent, seg string }
		var level []folder // this depth's folders not known yet
		seen := map[folder]bool{}
		for _, ss := range segs {
			if len(ss) < depth {
				continue
			}
			f := folder{strings.Join(ss[:depth-1], "/"), ss[depth-1]}
			if _, known := t.children[f.parent][f.seg]; !known && !seen[f] {
				seen[f] = true
				level = append(level, f)
			}
		}
		made, there := make([]bool, len(level)), make([]bool, len(level))
		var g errgroup.Group
		g.SetLimit(syncWorkers)
		for i, f := range level {
			g.Go(func() error {
				var err error
				made[i], err = t.makeFolder(join(f.parent, f.seg))
				there[i] = err == nil
				return err
			})
		}
		err := g.Wait()
		for i, f := range level { // also on error: what was made is known, its parent synced at the checkpoint
			if made[i] {
				t.dirtyDirs[t.diskPath(f.parent)] = struct{}{}
			}
			if there[i] {
				t.addChild(f.parent, f.seg)
			}
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// makeFolder makes one folder whose parent exists, and reports whether it
// made it; one already there must be a plain folder.
func (t *Tree) makeFolder(folder string) (bool, error) {
	disk := t.diskPath(folder)
	err := t.fs.Mkdir(disk, 0o700)
	if err == nil {
		return true, nil
	}
	if !errors.Is(err, fs.ErrExist) {
		return false, fmt.Errorf("tree: create %s: %w", disk, err)
	}
	st, err := t.fs.Lstat(disk)
	switch {
	case err != nil:
		return false, fmt.Errorf("tree: stat %s: %w", disk, err)
	case !st.IsDir() || st.Mode()&fs.ModeSymlink != 0:
		return false, fmt.Errorf("%w: %s is not a plain folder", ErrUnsafe, disk)
	}
	return false, nil
}

// Checkpoint makes everything applied so far durable: it writes the
// pending lines, fsyncs every written file and new folder, then records the
// applied point atomically. After a crash, Open reports this point and the
// log is replayed after it. It is StartCheckpoint and Finish in one.
func (t *Tree) Checkpoint() (Point, error) {
	c, err := t.StartCheckpoint()
	if err != nil {
		return Point{}, err
	}
	if c == nil {
		return t.AppliedPoint(), nil
	}
	return c.Finish()
}

// Checkpointing is a checkpoint whose fsyncs are still to come (Finish).
type Checkpointing struct {
	t     *Tree
	paths []string // whose versions files were written since the last checkpoint
	dirs  []string // folders with new entries since then
	mark  marker
}

// StartCheckpoint writes the pending lines and takes the checkpoint's
// point, holding the lock only for that: the fsyncs, which took 12-50 ms a
// second at 64 writers on the node's loop (issue 7), come in Finish, while
// applies go on. Until Finish returns, the caller must not Install, Compact
// or start another checkpoint. It returns nil if nothing was applied since
// the last one: an idle node writes and fsyncs nothing.
func (t *Tree) StartCheckpoint() (*Checkpointing, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.applied == t.marked && len(t.dirtyFiles)+len(t.dirtyDirs) == 0 {
		return nil, nil
	}
	if err := t.flushAll(); err != nil {
		return nil, fmt.Errorf("tree: checkpoint: %w", err)
	}
	c := &Checkpointing{t: t, paths: slices.Collect(maps.Keys(t.dirtyFiles)), dirs: slices.Collect(maps.Keys(t.dirtyDirs)),
		mark: marker{Point: t.applied, TS: t.lastTS, Sources: maps.Clone(t.sources)}}
	clear(t.dirtyFiles)
	clear(t.dirtyDirs)
	t.marked = t.applied
	return c, nil
}

// Finish makes the checkpoint durable and records its point, which it
// returns. If it fails, what it was to make durable is dirty again, so
// the next checkpoint tries it all again.
func (c *Checkpointing) Finish() (Point, error) {
	if err := c.sync(); err != nil {
		t := c.t
		t.mu.Lock()
		defer t.mu.Unlock()
		for _, p := range c.paths {
			t.dirtyFiles[p] = struct{}{}
		}
		for _, d := range c.dirs {
			t.dirtyDirs[d] = struct{}{}
		}
		t.marked = Point{}
		return Point{}, err
	}
	return c.mark.Point, nil
}

// sync fsyncs the checkpoint's files and folders, then writes its marker.
// The tree's folder changes only in Install, which waits for Finish.
func (c *Checkpointing) sync() error {
	t := c.t
	if vfs.SyncAllIsOneCall && len(c.paths)+len(c.dirs) > syncAllAbove {
		if err := t.fs.SyncAll(t.dir); err != nil {
			return fmt.Errorf("tree: checkpoint: %w", err)
		}
	} else {
		var g errgroup.Group
		g.SetLimit(syncWorkers)
		for _, p := range c.paths {
			g.Go(func() error { return syncFile(t.fs, filepath.Join(t.diskPath(p), versionsFile)) })
		}
		for _, d := range c.dirs {
			g.Go(func() error { return syncDir(t.fs, d) })
		}
		if err := g.Wait(); err != nil {
			return err
		}
	}
	return writeMarker(t.fs, t.dir, c.mark)
}

// syncWorkers is how many fsyncs a checkpoint keeps in flight: the disk
// commits concurrent ones together (1,000 small files took 220 ms one by
// one and 40 ms sixteen at a time on the 2-core VM), and the node loop
// waits for the checkpoint.
const syncWorkers = 16

// syncAllAbove: a checkpoint with more dirty files and folders than this
// makes them durable with one SyncAll (syncfs) instead: after 1,000 new
// paths (about 2,000 entries) it took 17-21 ms against 150-173 ms for the
// fsyncs 16 at a time on the 2-core VM.
const syncAllAbove = 256

func syncDir(fsys vfs.FS, d string) error {
	if err := fsys.SyncDir(d); err != nil {
		return fmt.Errorf("tree: fsync %s: %w", d, err)
	}
	return nil
}

// syncFile makes a versions file durable.
func syncFile(fsys vfs.FS, name string) error {
	f, err := fsys.OpenFile(name, os.O_WRONLY, 0)
	if err != nil {
		return fmt.Errorf("tree: open %s: %w", name, err)
	}
	defer f.Close()
	if err := f.Sync(); err != nil {
		return fmt.Errorf("tree: fsync %s: %w", name, err)
	}
	return nil
}

// writeMarker replaces dir's applied marker atomically.
func writeMarker(fsys vfs.FS, dir string, m marker) error {
	data, _ := json.Marshal(m)
	if err := vfs.WriteFileAtomic(fsys, dir, markerFile, data); err != nil {
		return fmt.Errorf("tree: write marker: %w", err)
	}
	return nil
}

// Dedup records the write keyed (src, srcSeq) carried by entry (epoch,
// seq), to be applied next, or reports that the source already wrote it (or
// a later one): then it returns that source's last write and true, and the
// entry counts as applied without changing anything. It is part of the
// replicated state: every replica decides alike, and the table is
// checkpointed and carried by snapshots.
func (t *Tree) Dedup(epoch, seq uint64, ts, src string, srcSeq uint64) (Source, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if last, ok := t.sources[src]; ok && srcSeq <= last.SrcSeq && last.Seq != seq {
		if seq > t.applied.Seq {
			t.applied = Point{Epoch: epoch, Seq: seq}
		}
		return last, true
	}
	t.sources[src] = Source{SrcSeq: srcSeq, Seq: seq, TS: ts}
	return Source{}, false
}

// LatestSeq returns the seq of a path's latest version, 0 if it has none.
func (t *Tree) LatestSeq(p string) uint64 {
	t.mu.RLock()
	defer t.mu.RUnlock()
	if ps := t.paths[p]; ps != nil {
		return ps.refs[len(ps.refs)-1].seq
	}
	return 0
}

// Get returns a path's latest version.
func (t *Tree) Get(p string) (Version, error) {
	line, _, err := t.GetJSON(p)
	if err != nil {
		return Version{}, err
	}
	return decodeVersion(line)
}

// GetJSON is Get as the stored line (see HistoryJSON), with the seq
// applied when it was read: a reader beside Apply (a stale get on its
// subscription's goroutine) gets the two from one moment.
func (t *Tree) GetJSON(p string) (json.RawMessage, uint64, error) {
	if err := ValidatePath(p); err != nil {
		return nil, 0, err
	}
	t.mu.RLock()
	defer t.mu.RUnlock()
	ps := t.paths[p]
	if ps == nil {
		return nil, 0, fmt.Errorf("%w: %s", ErrNotFound, p)
	}
	return ps.recent[len(ps.recent)-1], t.applied.Seq, nil
}

// version reads a path's k-th version, from memory if recent. Lock should
// be held.
func (t *Tree) version(p string, ps *pathState, k int) (Version, error) {
	if first := len(ps.refs) - len(ps.recent); k >= first {
		return decodeVersion(ps.recent[k-first])
	}
	l := t.lines(p, ps)
	defer l.Close()
	line, err := l.line(ps.refs[k])
	if err != nil {
		return Version{}, err
	}
	return decodeVersion(line)
}

func decodeVersion(line []byte) (Version, error) {
	var v Version
	if err := json.Unmarshal(line, &v); err != nil {
		return Version{}, fmt.Errorf("%w: %v", ErrCorrupt, err)
	}
	return v, nil
}

// Ls lists the children of a folder ("" is the root), sorted.
func (t *Tree) Ls(folder string) ([]string, error) {
	if err := ValidateFolder(folder); err != nil {
		return nil, err
	}
	t.mu.RLock()
	defer t.mu.RUnlock()
	if !t.holds(folder) {
		return nil, fmt.Errorf("%w: %s", ErrNotFound, folder)
	}
	if len(t.children[folder]) == 0 {
		return []string{}, nil
	}
	return slices.Clone(t.sortedChildren(folder)), nil
}

// holds reports whether folder is the root, a path or a folder above one.
// The caller holds mu.
func (t *Tree) holds(folder string) bool {
	_, isFolder := t.children[folder]
	_, isPath := t.paths[folder]
	return isFolder || isPath
}

// Subtree returns the latest version of every path under folder (folder
// itself included), in path order (a folder, then what is under it, names
// sorted), at most limit (capped by MaxPage), and whether more follow;
// a non-empty after pages on: only the paths after it. With a non-zero at
// it is an as-of read: each path's latest version committed at or before
// at, paths with none by then left out. A folder the tree does not hold
// (neither a path nor above one) is ErrNotFound, as in Ls.
func (t *Tree) Subtree(folder string, at time.Time, after string, limit int) ([]PathVersion, bool, error) {
	if err := ValidateFolder(folder); err != nil {
		return nil, false, err
	}
	if after != "" {
		if err := ValidatePath(after); err != nil {
			return nil, false, err
		}
	}
	if limit <= 0 || limit > t.cfg.MaxPage {
		limit = t.cfg.MaxPage
	}
	t.mu.RLock()
	defer t.mu.RUnlock()
	if !t.holds(folder) {
		return nil, false, fmt.Errorf("%w: %s", ErrNotFound, folder)
	}
	var out []PathVersion
	more := false
	past := after == "" // the walk has passed the cursor
	var visit func(p string) error
	visit = func(p string) error {
		// toward: p is the cursor or a folder above it, so not after it;
		// some of what is under it may be.
		toward := !past && (p == "" || p == after || strings.HasPrefix(after, p+"/"))
		switch {
		case toward:
			past = p == after
		case !past && !walksAfter(p, after):
			return nil // before the cursor, and so is all under it
		default:
			past = true
		}
		if ps := t.paths[p]; ps != nil && p != "" && !toward {
			k := len(ps.refs) - 1
			if !at.IsZero() {
				_, k = timeRange(ps.refs, time.Time{}, at)
				k--
			}
			if k >= 0 {
				if len(out) == limit {
					more = true
					return errStop
				}
				v, err := t.version(p, ps, k)
				if err != nil {
					return err
				}
				out = append(out, PathVersion{Path: p, Version: v})
			}
		}
		names := t.sortedChildren(p)
		if toward && !past { // skip the names before the cursor's next segment
			next := strings.TrimPrefix(strings.TrimPrefix(after, p), "/")
			seg, _, _ := strings.Cut(next, "/")
			names = names[sort.SearchStrings(names, seg):]
		}
		for _, name := range names {
			if err := visit(join(p, name)); err != nil {
				return err
			}
		}
		return nil
	}
	if err := visit(folder); err != nil && !errors.Is(err, errStop) {
		return nil, false, err
	}
	return out, more, nil
}

// walksAfter reports whether Subtree's walk (a folder, then what is under
// it, names sorted) reaches path p after path c: the first segment that
// differs decides, and a folder comes before what is under it.
func walksAfter(p, c string) bool {
	ps, cs := strings.Split(p, "/"), strings.Split(c, "/")
	for i := 0; i < len(ps) && i < len(cs); i++ {
		if ps[i] != cs[i] {
			return ps[i] > cs[i]
		}
	}
	return len(ps) > len(cs)
}

var errStop = errors.New("stop")
