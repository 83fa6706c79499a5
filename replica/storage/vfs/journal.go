package vfs

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
)

// Journaled wraps base so that every fsync, folder fsync, rename, removal
// and write in place (File.WriteAt) is recorded, one JSON line each, in the
// file journal. It exists for fault-injection tests: after the process is
// killed, PowerLoss uses the journal to cut the data dir back to what a
// power failure would have left.
func Journaled(base FS, journal string) (FS, error) {
	j, err := os.OpenFile(journal, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return nil, fmt.Errorf("vfs: open sync journal: %w", err)
	}
	return &journaled{FS: base, j: j}, nil
}

type journalRecord struct {
	Op    string   `json:"op"` // sync, dir, rename, remove, write (in place)
	Path  string   `json:"path"`
	To    string   `json:"to,omitempty"`
	Off   int64    `json:"off,omitempty"`  // write
	Size  int64    `json:"size,omitempty"` // sync: the file's; write: the bytes'
	Names []string `json:"names,omitempty"`
}

type journaled struct {
	FS
	mu sync.Mutex
	j  *os.File
}

func (fsys *journaled) record(r journalRecord) error {
	line, _ := json.Marshal(r)
	fsys.mu.Lock()
	defer fsys.mu.Unlock()
	_, err := fsys.j.Write(append(line, '\n'))
	return err
}

func abs(name string) string {
	a, err := filepath.Abs(name)
	if err != nil {
		return filepath.Clean(name)
	}
	return a
}

func (fsys *journaled) OpenFile(name string, flag int, perm os.FileMode) (File, error) {
	f, err := fsys.FS.OpenFile(name, flag, perm)
	if err != nil {
		return nil, err
	}
	return &journaledFile{File: f, name: abs(name), fs: fsys}, nil
}

func (fsys *journaled) SyncDir(name string) error {
	if err := fsys.FS.SyncDir(name); err != nil {
		return err
	}
	_, err := fsys.recordDir(name)
	return err
}

// recordDir records the entries of folder name as durable and returns them.
func (fsys *journaled) recordDir(name string) ([]os.DirEntry, error) {
	entries, err := fsys.FS.ReadDir(name)
	if err != nil {
		return nil, err
	}
	names := make([]string, len(entries))
	for i, e := range entries {
		names[i] = e.Name()
	}
	return entries, fsys.record(journalRecord{Op: "dir", Path: abs(name), Names: names})
}

// SyncAll records a sync of every file and folder under name, as SyncDir
// and File.Sync would.
func (fsys *journaled) SyncAll(name string) error {
	if err := fsys.FS.SyncAll(name); err != nil {
		return err
	}
	return fsys.recordAll(name)
}

func (fsys *journaled) recordAll(name string) error {
	entries, err := fsys.recordDir(name)
	for _, e := range entries {
		if err != nil {
			break
		}
		p := filepath.Join(name, e.Name())
		if e.IsDir() {
			err = fsys.recordAll(p)
		} else if st, serr := fsys.FS.Lstat(p); serr != nil {
			err = serr
		} else {
			err = fsys.record(journalRecord{Op: "sync", Path: abs(p), Size: st.Size()})
		}
	}
	return err
}

func (fsys *journaled) Rename(oldname, newname string) error {
	if err := fsys.FS.Rename(oldname, newname); err != nil {
		return err
	}
	return fsys.record(journalRecord{Op: "rename", Path: abs(oldname), To: abs(newname)})
}

func (fsys *journaled) Remove(name string) error {
	if err := fsys.FS.Remove(name); err != nil {
		return err
	}
	return fsys.record(journalRecord{Op: "remove", Path: abs(name)})
}

func (fsys *journaled) RemoveAll(name string) error {
	if err := fsys.FS.RemoveAll(name); err != nil {
		return err
	}
	return fsys.record(journalRecord{Op: "remove", Path: abs(name)})
}

type journaledFile struct {
	File
	name string
	fs   *journaled
}

func (f *journaledFile) Sync() error {
	if err := f.File.Sync(); err != nil {
		return err
	}
	st, err := f.File.Stat()
	if err != nil {
		return err
	}
	return f.fs.record(journalRecord{Op: "sync", Path: f.name, Size: st.Size()})
}

func (f *journaledFile) WriteAt(p []byte, off int64) (int, error) {
	n, err := f.File.WriteAt(p, off)
	if n > 0 {
		if jerr := f.fs.record(journalRecord{Op: "write", Path: f.name, Off: off, Size: int64(n)}); err == nil {
			err = jerr
		}
	}
	return n, err
}

// PowerLossReport says what PowerLoss cut.
type PowerLossReport struct {
	FilesCut, BytesCut, EntriesRemoved int64
}

// PowerLoss cuts dir, the data dir of a killed process that ran on a
// Journaled FS, back to what was durable: each file to its size at its last
// fsync (empty if never fsynced), with the bytes it wrote in place after
// that fsync zeroed (the WAL writes in place only over zeros it wrote
// ahead, so zeros are what the disk held there before), and each folder to
// the entries it held at its last folder fsync (all of them gone if it was
// never fsynced; dir itself keeps its entries, it is the caller's).
// Removals that were never made durable are not undone: their data is gone.
func PowerLoss(dir, journal string) (PowerLossReport, error) {
	files, listed, err := readJournal(journal)
	if err != nil {
		return PowerLossReport{}, err
	}
	var rep PowerLossReport
	root := abs(dir)
	var visit func(d string) error
	visit = func(d string) error {
		entries, err := os.ReadDir(d)
		if err != nil {
			return fmt.Errorf("vfs: power loss: %w", err)
		}
		names, ok := listed[d]
		for _, e := range entries {
			p := filepath.Join(d, e.Name())
			if d != root && (!ok || !names[e.Name()]) {
				if err := os.RemoveAll(p); err != nil {
					return fmt.Errorf("vfs: power loss: %w", err)
				}
				rep.EntriesRemoved++
				continue
			}
			if e.IsDir() {
				if err := visit(p); err != nil {
					return err
				}
				continue
			}
			info, err := e.Info()
			if err != nil {
				return fmt.Errorf("vfs: power loss: %w", err)
			}
			fj := files[p] // zero if never synced nor written in place
			keep := min(fj.synced, info.Size())
			cut := info.Size() - keep
			if keep < info.Size() {
				if err := os.Truncate(p, keep); err != nil {
					return fmt.Errorf("vfs: power loss: %w", err)
				}
			}
			zeroed, err := zeroSpans(p, fj.written, keep)
			if err != nil {
				return fmt.Errorf("vfs: power loss: %w", err)
			}
			if cut+zeroed > 0 {
				rep.FilesCut++
				rep.BytesCut += cut + zeroed
			}
		}
		return nil
	}
	return rep, visit(root)
}

// zeroSpans writes zeros over the spans of file p that lie below size,
// and returns how many bytes it zeroed.
func zeroSpans(p string, spans []span, size int64) (zeroed int64, err error) {
	var f *os.File
	for _, s := range spans {
		n := min(s.off+s.size, size) - s.off
		if n <= 0 {
			continue
		}
		if f == nil {
			if f, err = os.OpenFile(p, os.O_WRONLY, 0); err != nil {
				return 0, err
			}
		}
		if _, err := f.WriteAt(make([]byte, n), s.off); err != nil {
			f.Close()
			return zeroed, err
		}
		zeroed += n
	}
	if f != nil {
		err = f.Close()
	}
	return zeroed, err
}

// fileJournal is what a journal says of one file: its size at its last
// fsync, and the spans it wrote in place since.
type fileJournal struct {
	synced  int64
	written []span
}

type span struct{ off, size int64 }

// readJournal replays a journal: what it says of each file, and each
// folder's durable entries, following renames.
func readJournal(journal string) (map[string]fileJournal, map[string]map[string]bool, error) {
	f, err := os.Open(journal)
	if errors.Is(err, fs.ErrNotExist) {
		return map[string]fileJournal{}, map[string]map[string]bool{}, nil
	}
	if err != nil {
		return nil, nil, fmt.Errorf("vfs: read sync journal: %w", err)
	}
	defer f.Close()
	files := map[string]fileJournal{}
	listed := map[string]map[string]bool{}
	under := func(p, root string) (string, bool) {
		if p == root {
			return "", true
		}
		rest, ok := strings.CutPrefix(p, root+string(filepath.Separator))
		return rest, ok
	}
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 64<<20)
	for sc.Scan() {
		var r journalRecord
		if json.Unmarshal(sc.Bytes(), &r) != nil {
			continue // a torn last line: the process was killed mid-write
		}
		switch r.Op {
		case "sync":
			files[r.Path] = fileJournal{synced: r.Size}
		case "write":
			fj := files[r.Path]
			fj.written = append(fj.written, span{r.Off, r.Size})
			files[r.Path] = fj
		case "dir":
			set := make(map[string]bool, len(r.Names))
			for _, n := range r.Names {
				set[n] = true
			}
			listed[r.Path] = set
		case "rename", "remove":
			for p, fj := range files {
				if rest, ok := under(p, r.Path); ok {
					delete(files, p)
					if r.Op == "rename" {
						files[filepath.Join(r.To, rest)] = fj
					}
				}
			}
			for p, set := range listed {
				if rest, ok := under(p, r.Path); ok {
					delete(listed, p)
					if r.Op == "rename" {
						listed[filepath.Join(r.To, rest)] = set
					}
				}
			}
		}
	}
	return files, listed, sc.Err()
}
