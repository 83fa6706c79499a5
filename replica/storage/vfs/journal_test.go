package vfs

import (
	"os"
	"path/filepath"
	"testing"
)

// TestPowerLoss: after a journaled run, PowerLoss keeps exactly what was
// fsynced: file data up to the last fsync (bytes written in place after it
// back to zeros), entries up to the last folder fsync, an atomic replace
// whole.
func TestPowerLoss(t *testing.T) {
	root := t.TempDir()
	dir := filepath.Join(root, "data")
	journal := filepath.Join(root, "journal")
	fsys, err := Journaled(OS, journal)
	if err != nil {
		t.Fatal(err)
	}
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(fsys.MkdirAll(filepath.Join(dir, "wal"), 0o700))
	must(fsys.SyncDir(dir))
	f, err := fsys.OpenFile(filepath.Join(dir, "wal", "a"), os.O_CREATE|os.O_WRONLY, 0o600)
	must(err)
	_, _ = f.Write([]byte("hello"))
	must(f.Sync())
	_, _ = f.Write([]byte(" world")) // never synced
	must(f.Close())
	s, err := fsys.OpenFile(filepath.Join(dir, "wal", "c"), os.O_CREATE|os.O_WRONLY, 0o600)
	must(err)
	_, _ = s.WriteAt([]byte("one\x00\x00\x00\x00"), 0) // a record and zeros written ahead
	must(s.Sync())
	_, _ = s.WriteAt([]byte("tw"), 3) // in place, never synced
	must(s.Close())
	must(fsys.SyncDir(filepath.Join(dir, "wal")))
	g, err := fsys.OpenFile(filepath.Join(dir, "wal", "b"), os.O_CREATE|os.O_WRONLY, 0o600) // entry never synced
	must(err)
	_, _ = g.Write([]byte("lost"))
	must(g.Sync())
	must(g.Close())
	must(fsys.MkdirAll(filepath.Join(dir, "wal", "sub"), 0o700)) // folder never synced into wal
	must(WriteFileAtomic(fsys, dir, "state", []byte("v1")))
	must(WriteFileAtomic(fsys, dir, "state", []byte("v2")))
	h, err := fsys.OpenFile(filepath.Join(dir, "unsynced"), os.O_CREATE|os.O_WRONLY, 0o600)
	must(err)
	_, _ = h.Write([]byte("never"))
	must(h.Close())
	must(fsys.SyncDir(dir)) // the entry is durable, its data is not
	must(fsys.MkdirAll(filepath.Join(dir, "tree", "p", "q"), 0o700))
	k, err := fsys.OpenFile(filepath.Join(dir, "tree", "p", "q", "v"), os.O_CREATE|os.O_WRONLY, 0o600)
	must(err)
	_, _ = k.Write([]byte("all"))
	must(fsys.SyncDir(dir))
	must(fsys.SyncAll(filepath.Join(dir, "tree"))) // everything under tree, as fsyncs of each would
	_, _ = k.Write([]byte(" and more"))            // after it: lost
	must(k.Close())

	rep, err := PowerLoss(dir, journal)
	must(err)
	read := func(name string) string {
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			return "<" + err.Error() + ">"
		}
		return string(b)
	}
	if got := read("wal/a"); got != "hello" {
		t.Errorf("wal/a = %q, want the synced %q", got, "hello")
	}
	if _, err := os.Stat(filepath.Join(dir, "wal", "b")); !os.IsNotExist(err) {
		t.Errorf("wal/b, created after the folder's last fsync, survived: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "wal", "sub")); !os.IsNotExist(err) {
		t.Errorf("wal/sub survived: %v", err)
	}
	if got := read("wal/c"); got != "one\x00\x00\x00\x00" {
		t.Errorf("wal/c = %q, want the synced record and zeros", got)
	}
	if got := read("state"); got != "v2" {
		t.Errorf("state = %q, want v2", got)
	}
	if got := read("tree/p/q/v"); got != "all" {
		t.Errorf("tree/p/q/v = %q, want %q as of SyncAll", got, "all")
	}
	if got := read("unsynced"); got != "" {
		t.Errorf("unsynced = %q, want empty", got)
	}
	if rep.FilesCut != 4 || rep.EntriesRemoved != 2 {
		t.Errorf("report %+v", rep)
	}
}
