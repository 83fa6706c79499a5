package storage

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"

	"github.com/sirupsen/logrus"

	"memstore/replica/protocol"
	"memstore/replica/storage/vfs"
)

// SyncPolicy says when the WAL fsyncs.
type SyncPolicy int

const (
	// SyncAlways fsyncs every Append before it returns: the promise
	// memstore makes. The default.
	SyncAlways SyncPolicy = iota
	// SyncNone never fsyncs. Only for benchmarks: a crash loses
	// acknowledged writes.
	SyncNone
)

// WALConfig configures a WAL.
type WALConfig struct {
	// SegmentBytes is the size past which a new segment file starts.
	// Default 64 MiB.
	SegmentBytes int64
	// Sync is the fsync policy. Default SyncAlways.
	Sync SyncPolicy
	// Logger receives warnings (a cut torn tail, SyncNone). Required.
	Logger logrus.FieldLogger
}

// DefaultWALConfig returns the defaults.
func DefaultWALConfig(log logrus.FieldLogger) WALConfig {
	return WALConfig{SegmentBytes: 64 << 20, Sync: SyncAlways, Logger: log}
}

func (c WALConfig) validate() error {
	if c.SegmentBytes < segHeader+recordHeader+payloadMin || c.Logger == nil || c.Sync < SyncAlways || c.Sync > SyncNone {
		return fmt.Errorf("%w: %+v", errConfig, c)
	}
	return nil
}

// Pos names a record: its epoch and seq (the protocol's Point).
type Pos = protocol.Point

// segment is one file of the log: the records after prev.
type segment struct {
	name    string
	prev    Pos
	offsets []int64 // offsets[i] is where record prev.Seq+1+i starts
	// appendable says appends may go on in it: it is written in place
	// (segMagic), and its last record ends an Append, or it has none.
	appendable bool
}

func (s *segment) lastSeq() uint64 { return s.prev.Seq + uint64(len(s.offsets)) }

const (
	segSuffix = ".seg"
	resetTmp  = "reset.tmp"
)

func segName(first uint64) string { return fmt.Sprintf("%020d%s", first, segSuffix) }

// WAL is the write-ahead log: segment files of
// length-prefixed, CRC-32C checked records. One goroutine writes it.
type WAL struct {
	fs  vfs.FS
	dir string
	cfg WALConfig

	mu   sync.Mutex // guards everything below
	segs []*segment
	f    vfs.File // the last segment, open for writing in place
	size int64    // where its records end
	// filled is its length: past size it holds zeros, written ahead of
	// the records so that their fsync changes no file size.
	filled int64
	last   Pos
	buf    []byte
	err    error // sticky: a failed write leaves the log unusable
}

// OpenWAL opens (or creates) the WAL in dir and recovers it: a torn or
// corrupt tail of the last segment is cut; corruption anywhere else is an
// ErrCorrupt naming the file and offset.
func OpenWAL(fsys vfs.FS, dir string, cfg WALConfig) (*WAL, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	if cfg.Sync == SyncNone {
		cfg.Logger.Warn("WAL FSYNC IS OFF (sync=none): a crash or power loss WILL lose acknowledged writes; use only for benchmarks")
	}
	if err := fsys.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("storage: create %s: %w", dir, err)
	}
	if err := fsys.SyncDir(filepath.Dir(dir)); err != nil {
		return nil, fmt.Errorf("storage: sync %s: %w", filepath.Dir(dir), err)
	}
	w := &WAL{fs: fsys, dir: dir, cfg: cfg}
	if err := w.finishReset(); err != nil {
		return nil, err
	}
	names, err := w.segmentNames()
	if err != nil {
		return nil, err
	}
	if len(names) == 0 {
		if err := w.createSegment(segName(1), Pos{}, false); err != nil {
			return nil, err
		}
		return w, nil
	}
	for i, name := range names {
		if err := w.recover(name, i == len(names)-1); err != nil {
			return nil, err
		}
	}
	if err := w.openLast(); err != nil {
		return nil, err
	}
	if seg := w.segs[len(w.segs)-1]; !seg.appendable {
		// Appends go on in a new segment written in place: so an older
		// segment is never written in place, and the records of an Append
		// a crash cut short stay at the end of their segment, where bad
		// bytes are corruption, not a torn tail, once it is not the last.
		if err := w.startSegment(seg); err != nil {
			return nil, err
		}
	}
	return w, nil
}

// startSegment makes a new segment, written in place, the last one, after
// seg, the last one now. An empty seg is replaced instead (a new segment
// would have its name): written under a temporary name, then renamed over
// it, so a crash leaves one or the other.
func (w *WAL) startSegment(seg *segment) error {
	if len(seg.offsets) > 0 {
		return w.createSegment(segName(w.last.Seq+1), w.last, false)
	}
	if err := w.createSegment(resetTmp, seg.prev, true); err != nil {
		return err
	}
	if err := w.fs.Rename(filepath.Join(w.dir, resetTmp), filepath.Join(w.dir, seg.name)); err != nil {
		return fmt.Errorf("storage: replace %s: %w", seg.name, err)
	}
	if err := w.fs.SyncDir(w.dir); err != nil {
		return err
	}
	seg.appendable = true
	w.f.Close()
	return w.openLast()
}

// finishReset completes or discards a Reset a crash interrupted.
func (w *WAL) finishReset() error {
	tmp := filepath.Join(w.dir, resetTmp)
	if _, err := w.fs.Lstat(tmp); errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	names, err := w.segmentNames()
	if err != nil {
		return err
	}
	if len(names) > 0 { // the old log is still whole: the reset never happened
		return w.syncRemove(tmp)
	}
	b, err := w.readFile(resetTmp)
	if err != nil {
		return err
	}
	_, prevSeq, _, err := decodeSegHeader(b)
	if err != nil {
		return w.syncRemove(tmp) // the new segment was never complete
	}
	if err := w.fs.Rename(tmp, filepath.Join(w.dir, segName(prevSeq+1))); err != nil {
		return fmt.Errorf("storage: finish reset: %w", err)
	}
	return w.fs.SyncDir(w.dir)
}

func (w *WAL) syncRemove(name string) error {
	if err := w.fs.Remove(name); err != nil {
		return fmt.Errorf("storage: remove %s: %w", name, err)
	}
	return w.fs.SyncDir(w.dir)
}

func (w *WAL) segmentNames() ([]string, error) {
	ents, err := w.fs.ReadDir(w.dir)
	if err != nil {
		return nil, fmt.Errorf("storage: list %s: %w", w.dir, err)
	}
	var names []string
	for _, e := range ents {
		if strings.HasSuffix(e.Name(), segSuffix) {
			names = append(names, e.Name())
		}
	}
	sort.Strings(names)
	return names, nil
}

func (w *WAL) readFile(name string) ([]byte, error) {
	f, err := vfs.Open(w.fs, filepath.Join(w.dir, name))
	if err != nil {
		return nil, fmt.Errorf("storage: open %s: %w", name, err)
	}
	defer f.Close()
	b, err := io.ReadAll(f)
	if err != nil {
		return nil, fmt.Errorf("storage: read %s: %w", name, err)
	}
	return b, nil
}

// recover scans one segment, checking every record and the chain of seqs.
func (w *WAL) recover(name string, isLast bool) error {
	path := filepath.Join(w.dir, name)
	b, err := w.readFile(name)
	if err != nil {
		return err
	}
	prevEpoch, prevSeq, inPlace, err := decodeSegHeader(b)
	if err != nil {
		if isLast && len(w.segs) > 0 && len(b) <= segHeader {
			w.cfg.Logger.WithField("file", path).Warn("wal: removing a segment whose header was torn")
			return w.syncRemove(path)
		}
		return fmt.Errorf("%w: %s offset 0: %v", ErrCorrupt, path, err)
	}
	seg := &segment{name: name, prev: Pos{Epoch: prevEpoch, Seq: prevSeq}, appendable: inPlace}
	if len(w.segs) > 0 && seg.prev != w.last {
		return fmt.Errorf("%w: %s starts after %+v, but the previous segment ends at %+v", ErrCorrupt, path, seg.prev, w.last)
	}
	w.last = seg.prev
	off := segHeader
	for off < len(b) {
		r, n, err := decodeRecord(b[off:])
		if err == nil && r.Seq != w.last.Seq+1 {
			err = fmt.Errorf("seq %d after %d", r.Seq, w.last.Seq)
		}
		if err != nil && len(bytes.TrimLeft(b[off:], "\x00")) == 0 {
			break // the zeros written ahead: the records end here
		}
		if err != nil {
			if !isLast || !tornTail(b, off, inPlace) {
				return fmt.Errorf("%w: %s offset %d: %v", ErrCorrupt, path, off, err)
			}
			w.cfg.Logger.WithFields(logrus.Fields{"file": path, "offset": off, "bytes": len(b) - off}).
				Warn("wal: cutting a torn tail")
			if err := w.cutTail(path, int64(off)); err != nil {
				return err
			}
			break
		}
		seg.offsets = append(seg.offsets, int64(off))
		seg.appendable = inPlace && lastOfAppend(b[off:])
		w.last = Pos{Epoch: r.Epoch, Seq: r.Seq}
		off += n
	}
	w.segs = append(w.segs, seg)
	w.size = int64(off)
	return nil
}

// tornTail reports whether the bad bytes at off can be what a crash leaves
// at the end of a log. In a segment written in place, the last Append's
// bytes, written over zeros, of which the disk kept some sectors and not
// others (only the last Append can be unsynced): so the valid records
// after them, if any, are all of one Append, and none but the last may end
// an Append. In an older appended segment, no valid record follows them.
// Anything else is corruption.
func tornTail(b []byte, off int, inPlace bool) bool {
	ended := false // the last valid record seen ended its Append
	for next := off + 1; next+recordHeader+payloadMin <= len(b); {
		if binary.LittleEndian.Uint32(b[next:]) == 0 { // zeros: no record starts here
			next++
			continue
		}
		_, n, err := decodeRecord(b[next:])
		if err != nil {
			next++
			continue
		}
		if ended || !inPlace {
			return false
		}
		ended = lastOfAppend(b[next:])
		next += n
	}
	return true
}

func (w *WAL) cutTail(path string, size int64) error {
	if err := vfs.TruncateSync(w.fs, path, size); err != nil {
		return fmt.Errorf("storage: cut the torn tail of %s: %w", path, err)
	}
	return nil
}

// openLast opens the last segment for writing; w.size must say where
// its records end.
func (w *WAL) openLast() error {
	seg := w.segs[len(w.segs)-1]
	f, err := w.fs.OpenFile(filepath.Join(w.dir, seg.name), os.O_WRONLY, 0)
	if err != nil {
		return fmt.Errorf("storage: open %s: %w", seg.name, err)
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return fmt.Errorf("storage: stat %s: %w", seg.name, err)
	}
	// A killed process may have left records written but not fsynced:
	// they are in the log now, so make them durable before anyone relies
	// on them (a restarted node reports its log end in elections).
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("storage: fsync %s: %w", seg.name, err)
	}
	if err := w.fs.SyncDir(w.dir); err != nil {
		f.Close()
		return fmt.Errorf("storage: fsync %s: %w", w.dir, err)
	}
	w.f, w.filled = f, st.Size()
	return nil
}

// createSegment starts a new last segment holding the records after prev,
// durably, under name (or a temporary name first when tmp is set).
func (w *WAL) createSegment(name string, prev Pos, tmp bool) error {
	path := filepath.Join(w.dir, name)
	f, err := w.fs.OpenFile(path, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		return fmt.Errorf("storage: create %s: %w", path, err)
	}
	if _, err := f.Write(encodeSegHeader(prev.Epoch, prev.Seq)); err != nil {
		f.Close()
		return fmt.Errorf("storage: write %s: %w", path, err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("storage: sync %s: %w", path, err)
	}
	if err := w.fs.SyncDir(w.dir); err != nil {
		f.Close()
		return fmt.Errorf("storage: sync %s: %w", w.dir, err)
	}
	if tmp {
		return f.Close()
	}
	if w.f != nil {
		w.f.Close()
	}
	w.segs = append(w.segs, &segment{name: name, prev: prev, appendable: true})
	w.f, w.size, w.filled, w.last = f, segHeader, segHeader, prev
	return nil
}

// fillAhead is how far past an append's records the WAL writes zeros (up
// to SegmentBytes) when they reach the end of the file: one append in
// 4 MiB of log grows the file, and its fsync commits the new size and
// blocks; every other append writes over zeros, and its fsync flushes
// data alone. (On ext4 under three concurrent writers, an fsync after
// such an append took 450-600 µs, against 580-680 µs after appending
// into blocks reserved with fallocate(2), which still grows the size.)
const fillAhead = 4 << 20

var zeros [fillAhead]byte

// Append writes records that directly follow the log's end: one write (two
// when it writes zeros ahead) and,
// with SyncAlways, one fsync for the whole batch (group commit).
func (w *WAL) Append(recs []Record) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.err != nil {
		return w.err
	}
	if len(recs) == 0 {
		return nil
	}
	w.buf = w.buf[:0]
	next := w.last.Seq + 1
	for i, r := range recs {
		if r.Seq != next {
			return fmt.Errorf("%w: seq %d, want %d", ErrBadSeq, r.Seq, next)
		}
		if len(r.Data) > MaxRecordData {
			return fmt.Errorf("storage: record %d of %d bytes is over %d", r.Seq, len(r.Data), MaxRecordData)
		}
		next++
		w.buf = appendRecord(w.buf, r, i == len(recs)-1)
	}
	if w.size > segHeader && w.size+int64(len(w.buf)) > w.cfg.SegmentBytes {
		if err := w.createSegment(segName(w.last.Seq+1), w.last, false); err != nil {
			return w.fail(err)
		}
	}
	seg := w.segs[len(w.segs)-1]
	off := w.size
	for _, r := range recs {
		seg.offsets = append(seg.offsets, off)
		off += int64(recordHeader + payloadMin + len(r.Data))
	}
	if off > w.filled {
		filled := min(off+fillAhead, max(off, w.cfg.SegmentBytes))
		if _, err := w.f.WriteAt(zeros[:filled-off], off); err != nil {
			return w.fail(fmt.Errorf("storage: write %s: %w", seg.name, err))
		}
		w.filled = filled
	}
	if _, err := w.f.WriteAt(w.buf, w.size); err != nil {
		return w.fail(fmt.Errorf("storage: write %s: %w", seg.name, err))
	}
	if w.cfg.Sync == SyncAlways {
		if err := w.f.Sync(); err != nil {
			return w.fail(fmt.Errorf("storage: fsync %s: %w", seg.name, err))
		}
	}
	w.size = off
	last := recs[len(recs)-1]
	w.last = Pos{Epoch: last.Epoch, Seq: last.Seq}
	return nil
}

// fail makes err sticky: after a failed write or fsync the file's state is
// unknown, so the WAL refuses further use until reopened (recovery).
func (w *WAL) fail(err error) error {
	w.err = err
	return err
}

// Last is the last record's position (the segment start if empty).
func (w *WAL) Last() Pos {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.last
}

// First is the position the log starts after: its first record follows it.
func (w *WAL) First() Pos {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.segs[0].prev
}

// TruncateAfter drops every record above seq, durably.
func (w *WAL) TruncateAfter(seq uint64) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.err != nil {
		return w.err
	}
	if seq >= w.last.Seq {
		return nil
	}
	if seq < w.segs[0].prev.Seq {
		return fmt.Errorf("storage: truncate after %d, below the log's start %d", seq, w.segs[0].prev.Seq)
	}
	k := len(w.segs) - 1
	for w.segs[k].prev.Seq > seq {
		k--
	}
	// Later segments go first: a crash then leaves a prefix of the log.
	for i := len(w.segs) - 1; i > k; i-- {
		if err := w.fs.Remove(filepath.Join(w.dir, w.segs[i].name)); err != nil {
			return w.fail(fmt.Errorf("storage: remove %s: %w", w.segs[i].name, err))
		}
	}
	if err := w.fs.SyncDir(w.dir); err != nil {
		return w.fail(err)
	}
	seg := w.segs[k]
	w.segs = w.segs[:k+1]
	w.f.Close()
	if err := w.openLast(); err != nil {
		return w.fail(err)
	}
	keep := seq - seg.prev.Seq
	size := int64(segHeader)
	if keep < uint64(len(seg.offsets)) {
		size = seg.offsets[keep]
	}
	epoch, ended := seg.prev.Epoch, true
	if keep > 0 {
		r, last, err := w.readRecord(seg, keep-1)
		if err != nil {
			return w.fail(err)
		}
		epoch, ended = r.Epoch, last
	}
	if err := w.f.Truncate(size); err != nil {
		return w.fail(fmt.Errorf("storage: truncate %s: %w", seg.name, err))
	}
	if err := w.f.Sync(); err != nil {
		return w.fail(fmt.Errorf("storage: fsync %s: %w", seg.name, err))
	}
	seg.offsets = seg.offsets[:keep]
	w.size, w.filled, w.last = size, size, Pos{Epoch: epoch, Seq: seq}
	if seg.appendable = seg.appendable && ended; !seg.appendable {
		// Cut inside an Append: its records left do not end one, so
		// appends go on in a new segment, as at open.
		if err := w.startSegment(seg); err != nil {
			return w.fail(err)
		}
	}
	return nil
}

// readRecord reads the i-th record of a segment, and whether it ends its
// Append (always false in an older segment).
func (w *WAL) readRecord(seg *segment, i uint64) (Record, bool, error) {
	f, err := vfs.Open(w.fs, filepath.Join(w.dir, seg.name))
	if err != nil {
		return Record{}, false, err
	}
	defer f.Close()
	end := w.size
	if int(i)+1 < len(seg.offsets) {
		end = seg.offsets[i+1]
	}
	b := make([]byte, end-seg.offsets[i])
	if _, err := f.ReadAt(b, seg.offsets[i]); err != nil && !errors.Is(err, io.EOF) {
		return Record{}, false, err
	}
	r, _, err := decodeRecord(b)
	if err != nil {
		return Record{}, false, fmt.Errorf("%w: %s offset %d: %v", ErrCorrupt, seg.name, seg.offsets[i], err)
	}
	r.Data = bytes.Clone(r.Data)
	return r, lastOfAppend(b), nil
}

// DropThrough deletes the whole segments whose records are all at or below
// seq (a snapshot covers them). The last segment always stays.
func (w *WAL) DropThrough(seq uint64) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.err != nil {
		return w.err
	}
	n := 0
	for n < len(w.segs)-1 && w.segs[n].lastSeq() <= seq {
		if err := w.fs.Remove(filepath.Join(w.dir, w.segs[n].name)); err != nil {
			return w.fail(fmt.Errorf("storage: remove %s: %w", w.segs[n].name, err))
		}
		n++
	}
	if n == 0 {
		return nil
	}
	w.segs = w.segs[n:]
	return w.fs.SyncDir(w.dir)
}

// Reset discards the whole log: it restarts after (epoch, seq), where an
// installed snapshot ends. A crash leaves either the old log or the new
// empty one.
func (w *WAL) Reset(epoch, seq uint64) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.err != nil {
		return w.err
	}
	prev := Pos{Epoch: epoch, Seq: seq}
	if err := w.createSegment(resetTmp, prev, true); err != nil {
		return w.fail(err)
	}
	w.f.Close()
	for _, s := range w.segs {
		if err := w.fs.Remove(filepath.Join(w.dir, s.name)); err != nil {
			return w.fail(fmt.Errorf("storage: remove %s: %w", s.name, err))
		}
	}
	if err := w.fs.SyncDir(w.dir); err != nil {
		return w.fail(err)
	}
	if err := w.fs.Rename(filepath.Join(w.dir, resetTmp), filepath.Join(w.dir, segName(seq+1))); err != nil {
		return w.fail(fmt.Errorf("storage: reset: %w", err))
	}
	if err := w.fs.SyncDir(w.dir); err != nil {
		return w.fail(err)
	}
	w.segs = []*segment{{name: segName(seq + 1), prev: prev, appendable: true}}
	w.last, w.size = prev, segHeader
	if err := w.openLast(); err != nil {
		return w.fail(err)
	}
	return nil
}

// Replay calls fn for every record after seq, in order. Data is only valid
// during the call.
func (w *WAL) Replay(after uint64, fn func(Record) error) error {
	w.mu.Lock()
	segs := append([]*segment(nil), w.segs...)
	w.mu.Unlock()
	for _, s := range segs {
		if s.lastSeq() <= after {
			continue
		}
		b, err := w.readFile(s.name)
		if err != nil {
			return err
		}
		for i, off := range s.offsets {
			if s.prev.Seq+1+uint64(i) <= after {
				continue
			}
			r, _, err := decodeRecord(b[off:])
			if err != nil {
				return fmt.Errorf("%w: %s offset %d: %v", ErrCorrupt, s.name, off, err)
			}
			if err := fn(r); err != nil {
				return err
			}
		}
	}
	return nil
}

// Close closes the WAL.
func (w *WAL) Close() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.err == nil {
		w.err = ErrClosed
	}
	return w.f.Close()
}
