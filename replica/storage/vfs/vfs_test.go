package vfs

import (
	"errors"
	"io"
	iofs "io/fs"
	"math/rand"
	"os"
	"path/filepath"
	"testing"
)

// bothFS makes the real filesystem (a temporary folder) and the in-memory
// twin, for tests that hold both to the same behaviour.
var bothFS = map[string]func(t *testing.T) (FS, string){
	"os":  func(t *testing.T) (FS, string) { return OS, t.TempDir() },
	"mem": func(t *testing.T) (FS, string) { m := NewMem(); return m, "/data" },
}

// TestConformance runs the same behaviours against the real filesystem and
// the in-memory twin.
func TestConformance(t *testing.T) {
	for name, mk := range bothFS {
		t.Run(name, func(t *testing.T) {
			fs, dir := mk(t)
			sub := filepath.Join(dir, "a", "b")
			if err := fs.MkdirAll(sub, 0o700); err != nil {
				t.Fatal(err)
			}
			p := filepath.Join(sub, "f")
			f, err := fs.OpenFile(p, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
			if err != nil {
				t.Fatal(err)
			}
			for _, s := range []string{"hello ", "world"} {
				if _, err := f.Write([]byte(s)); err != nil {
					t.Fatal(err)
				}
			}
			if err := f.Sync(); err != nil {
				t.Fatal(err)
			}
			if err := f.Truncate(5); err != nil {
				t.Fatal(err)
			}
			if _, err := f.WriteAt([]byte("x"), 0); err == nil {
				t.Fatal("WriteAt on a file opened with O_APPEND succeeded")
			}
			f.Close()
			w := filepath.Join(dir, "w")
			f, err = fs.OpenFile(w, os.O_CREATE|os.O_WRONLY, 0o600)
			if err != nil {
				t.Fatal(err)
			}
			for _, at := range []struct {
				s   string
				off int64
			}{{"abcdef", 0}, {"XY", 2}, {"!", 8}} {
				if n, err := f.WriteAt([]byte(at.s), at.off); n != len(at.s) || err != nil {
					t.Fatalf("WriteAt(%q, %d): %d %v", at.s, at.off, n, err)
				}
			}
			f.Close()
			if r, err := Open(fs, w); err != nil {
				t.Fatal(err)
			} else if b, _ := io.ReadAll(r); string(b) != "abXYef\x00\x00!" {
				t.Fatalf("after WriteAt: %q", b)
			}
			if _, err := fs.OpenFile(p, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600); err == nil {
				t.Fatal("O_EXCL on an existing file succeeded")
			}
			r, err := Open(fs, p)
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(r)
			r.Close()
			if string(b) != "hello" {
				t.Fatalf("read %q", b)
			}
			buf := make([]byte, 3)
			r, _ = Open(fs, p)
			if n, err := r.ReadAt(buf, 1); n != 3 || string(buf) != "ell" {
				t.Fatalf("ReadAt: %d %q %v", n, buf, err)
			}
			r.Close()
			q := filepath.Join(sub, "g")
			if err := fs.Rename(p, q); err != nil {
				t.Fatal(err)
			}
			if _, err := fs.Lstat(p); !os.IsNotExist(err) {
				t.Fatalf("old name after rename: %v", err)
			}
			if err := fs.SyncDir(sub); err != nil {
				t.Fatal(err)
			}
			ents, err := fs.ReadDir(sub)
			if err != nil || len(ents) != 1 || ents[0].Name() != "g" {
				t.Fatalf("ReadDir: %v %v", ents, err)
			}
			if err := fs.Remove(sub); err == nil {
				t.Fatal("removed a non-empty folder")
			}
			if err := fs.RemoveAll(filepath.Join(dir, "a")); err != nil {
				t.Fatal(err)
			}
			if _, err := fs.Lstat(sub); !os.IsNotExist(err) {
				t.Fatalf("after RemoveAll: %v", err)
			}
			if _, err := fs.OpenFile(filepath.Join(dir, "none", "f"), os.O_RDONLY, 0); !errors.Is(err, iofs.ErrNotExist) {
				t.Fatalf("opening a missing file: %v", err)
			}
			c := filepath.Join(dir, "c")
			if err := fs.Mkdir(filepath.Join(c, "d"), 0o700); err == nil {
				t.Fatal("Mkdir without its parent succeeded")
			}
			if err := fs.Mkdir(c, 0o700); err != nil {
				t.Fatal(err)
			}
			if err := fs.Mkdir(c, 0o700); !errors.Is(err, iofs.ErrExist) {
				t.Fatalf("Mkdir of an existing folder: %v", err)
			}
			if st, err := fs.Lstat(c); err != nil || !st.IsDir() {
				t.Fatalf("after Mkdir: %v %v", st, err)
			}
		})
	}
}

// TestCrashClone: unsynced data and unsynced folder entries are lost.
func TestCrashClone(t *testing.T) {
	m := NewMem()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(m.MkdirAll("/d", 0o700))
	f, err := m.OpenFile("/d/kept", os.O_CREATE|os.O_WRONLY, 0o600)
	must(err)
	f.Write([]byte("synced"))
	must(f.Sync())
	f.Write([]byte("-unsynced"))
	must(m.SyncDir("/d"))
	g, err := m.OpenFile("/d/lost", os.O_CREATE|os.O_WRONLY, 0o600)
	must(err)
	g.Write([]byte("x"))
	must(g.Sync()) // data synced, but the folder entry is not
	c := m.CrashClone(rand.New(rand.NewSource(1)), false)
	r, err := Open(c, "/d/kept")
	must(err)
	b, _ := io.ReadAll(r)
	if string(b) != "synced" {
		t.Fatalf("after crash: %q", b)
	}
	if _, err := c.Lstat("/d/lost"); !os.IsNotExist(err) {
		t.Fatalf("unsynced entry survived: %v", err)
	}
	// Torn: a prefix of the unsynced tail may survive.
	for seed := int64(0); seed < 20; seed++ {
		c := m.CrashClone(rand.New(rand.NewSource(seed)), true)
		r, _ := Open(c, "/d/kept")
		b, _ := io.ReadAll(r)
		if len(b) < 6 || string(b[:6]) != "synced" || len(b) > len("synced-unsynced") {
			t.Fatalf("seed %d: torn content %q", seed, b)
		}
	}
	// Torn in place: a prefix of the bytes written over synced ones may
	// survive, over the synced content, never past the write.
	h, err := m.OpenFile("/d/inplace", os.O_CREATE|os.O_WRONLY, 0o600)
	must(err)
	_, err = h.WriteAt([]byte("0000000000"), 0)
	must(err)
	must(h.Sync())
	must(m.SyncDir("/d"))
	_, err = h.WriteAt([]byte("abcd"), 3)
	must(err)
	seen := map[string]bool{}
	for seed := int64(0); seed < 60; seed++ {
		c := m.CrashClone(rand.New(rand.NewSource(seed)), true)
		r, _ := Open(c, "/d/inplace")
		b, _ := io.ReadAll(r)
		ok := len(b) == 10 && string(b[:3]) == "000"
		for k := 0; ok && k <= 4; k++ {
			if string(b[3:3+k]) == "abcd"[:k] && string(b[3+k:]) == "0000000"[k:] {
				seen[string(b)] = true
				break
			}
			ok = k < 4
		}
		if !ok {
			for k := 1; k <= 4 && !ok; k++ { // a prefix whose last byte is garbled
				ok = string(b[3:2+k]) == "abcd"[:k-1] && b[2+k] != "abcd"[k-1] && string(b[3+k:]) == "0000000"[k:]
			}
			if !ok {
				t.Fatalf("seed %d: torn in place %q", seed, b)
			}
		}
	}
	if !seen["0000000000"] || !seen["000abcd000"] {
		t.Fatalf("torn in place never lost or kept the whole write: %v", seen)
	}
}

// TestSyncAllSurvivesCrash: after SyncAll of a folder, everything under it
// survives a crash, and nothing written after it does.
func TestSyncAllSurvivesCrash(t *testing.T) {
	m := NewMem()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(m.MkdirAll("/d/x/y", 0o700))
	must(m.SyncDir("/"))
	f, err := m.OpenFile("/d/x/y/f", os.O_CREATE|os.O_WRONLY, 0o600)
	must(err)
	f.Write([]byte("kept"))
	must(m.SyncAll("/d"))
	f.Write([]byte("-lost"))
	g, err := m.OpenFile("/d/x/g", os.O_CREATE|os.O_WRONLY, 0o600)
	must(err)
	g.Write([]byte("lost"))
	c := m.CrashClone(rand.New(rand.NewSource(1)), false)
	r, err := Open(c, "/d/x/y/f")
	must(err)
	b, _ := io.ReadAll(r)
	if string(b) != "kept" {
		t.Fatalf("after SyncAll and a crash: %q", b)
	}
	if _, err := c.Lstat("/d/x/g"); !os.IsNotExist(err) {
		t.Fatalf("a file created after SyncAll survived: %v", err)
	}
}

// TestLock: a lock file has one holder at a time (flock's locks belong to
// an open file, so a second Lock in the same process is refused too), and
// closing it lets the next take it.
func TestLock(t *testing.T) {
	for name, mk := range bothFS {
		t.Run(name, func(t *testing.T) {
			fs, dir := mk(t)
			if err := fs.MkdirAll(dir, 0o700); err != nil {
				t.Fatal(err)
			}
			p := filepath.Join(dir, "LOCK")
			first, err := fs.Lock(p)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := fs.Lock(p); !errors.Is(err, ErrLocked) {
				t.Fatalf("a second lock while the first is held: %v, want ErrLocked", err)
			}
			if err := first.Close(); err != nil {
				t.Fatal(err)
			}
			again, err := fs.Lock(p)
			if err != nil {
				t.Fatalf("lock after the holder closed it: %v", err)
			}
			again.Close()
		})
	}
}
