package tree

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"memstore/replica/storage/vfs"
)

var epoch0 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

func tsOf(seq uint64) string {
	return epoch0.Add(time.Duration(seq) * time.Second).Format(time.RFC3339Nano)
}

func openTree(t testing.TB, fsys vfs.FS, dir string, cfg Config) *Tree {
	t.Helper()
	tr, err := Open(fsys, dir, cfg)
	if err != nil {
		t.Fatal(err)
	}
	return tr
}

func apply(t testing.TB, tr *Tree, seq uint64, puts ...Put) {
	t.Helper()
	if _, err := tr.Apply(1, seq, tsOf(seq), "u", puts); err != nil {
		t.Fatal(err)
	}
}

func put(p string, v any) Put {
	b, _ := json.Marshal(v)
	return Put{Path: p, Value: b}
}

// listing returns every name under dir, for "nothing created" checks.
func listing(t *testing.T, dir string) []string {
	var out []string
	filepath.Walk(dir, func(p string, info os.FileInfo, err error) error {
		out = append(out, p)
		return nil
	})
	return out
}

// TestBadPathsAreRefusedAndCreateNothing: bad paths, and values that are not
// JSON on one line, are refused before anything is written.
func TestBadPathsAreRefusedAndCreateNothing(t *testing.T) {
	dir := t.TempDir()
	outside := t.TempDir()
	tr := openTree(t, vfs.OS, dir, DefaultConfig())
	if err := os.Symlink(outside, filepath.Join(dir, "tree", "evil")); err != nil {
		t.Fatal(err)
	}
	before := listing(t, dir)
	bad := []string{"../x", "a//b", "/a", "a/", ".", "..", "a/./b", "a/../b", "a\x00b", "", "a b", "a.b", "ü",
		strings.Repeat("a", 300), strings.Repeat("a/", 16) + "a", strings.Repeat("x", 65)}
	for _, p := range bad {
		if err := ValidatePath(p); !errors.Is(err, ErrBadPath) {
			t.Errorf("ValidatePath(%q) = %v", p, err)
		}
		if _, err := tr.Apply(1, 1, tsOf(1), "u", []Put{put("ok/path", 1), put(p, 2)}); !errors.Is(err, ErrBadPath) {
			t.Errorf("Apply(%q) = %v", p, err)
		}
	}
	for _, v := range []string{`{"a":`, "[1,\n2]", ``, `1 2`} { // lines of the versions file are JSON, one per line
		if _, err := tr.Apply(1, 1, tsOf(1), "u", []Put{{Path: "ok/path", Value: json.RawMessage(v)}}); err == nil {
			t.Errorf("Apply of value %q: no error", v)
		}
	}
	if _, err := tr.Apply(1, 1, tsOf(1), "u", []Put{put("evil/x", 1)}); !errors.Is(err, ErrUnsafe) {
		t.Errorf("apply through a planted symlink: %v", err)
	}
	if after := listing(t, dir); !reflect.DeepEqual(before, after) {
		t.Errorf("bad input created files:\nbefore %v\nafter  %v", before, after)
	}
	if ents, _ := os.ReadDir(outside); len(ents) != 0 {
		t.Errorf("wrote outside the tree: %v", ents)
	}
	for _, p := range []string{"a", "A-b_9/c", strings.Repeat("a/", 15) + "a", strings.Repeat("x", 64)} {
		if err := ValidatePath(p); err != nil {
			t.Errorf("ValidatePath(%q) = %v", p, err)
		}
	}
}

func TestApplyReadBack(t *testing.T) {
	m := vfs.NewMem()
	cfg := DefaultConfig()
	cfg.RecentVersions = 3
	cfg.MaxPage = 4
	tr := openTree(t, m, "/d", cfg)
	for seq := uint64(1); seq <= 10; seq++ {
		apply(t, tr, seq, put("plant1/line3/temp", seq), put(fmt.Sprintf("plant1/line%d/hum", seq%2), seq*10))
	}
	apply(t, tr, 5, put("plant1/line3/temp", 999)) // replay of an old seq: ignored
	v, err := tr.Get("plant1/line3/temp")
	if err != nil || string(v.Value) != "10" || v.Seq != 10 || v.User != "u" {
		t.Fatalf("get: %+v %v", v, err)
	}
	if _, err := tr.Get("plant1/none"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("get missing: %v", err)
	}
	// The old versions are read from the pending lines before the
	// checkpoint writes them, from the file after.
	if _, err := m.Lstat("/d/tree/plant1/line3/temp/versions.jsonl"); err == nil {
		t.Fatal("versions file written before the checkpoint")
	}
	readBack(t, tr)
	if _, err := tr.Checkpoint(); err != nil {
		t.Fatal(err)
	}
	readBack(t, tr)
	// The file is human readable: one JSON line per version.
	f, _ := vfs.Open(m, "/d/tree/plant1/line3/temp/versions.jsonl")
	data, _ := io.ReadAll(f)
	if lines := strings.Split(strings.TrimSpace(string(data)), "\n"); len(lines) != 10 ||
		lines[0] != `{"seq":1,"ts":"2026-01-01T00:00:01Z","user":"u","value":1}` {
		t.Fatalf("file:\n%s", data)
	}
}

// readBack checks the history, ls and subtree of TestApplyReadBack.
func readBack(t *testing.T, tr *Tree) {
	t.Helper()
	// Pages: 4 at a time, the old ones read from the file.
	var seqs []uint64
	after := uint64(0)
	for {
		vs, more, err := tr.History("plant1/line3/temp", HistoryQuery{AfterSeq: after})
		if err != nil {
			t.Fatal(err)
		}
		for _, v := range vs {
			seqs = append(seqs, v.Seq)
			if string(v.Value) != fmt.Sprint(v.Seq) {
				t.Fatalf("version %d holds %s", v.Seq, v.Value)
			}
		}
		if !more {
			break
		}
		after = vs[len(vs)-1].Seq
	}
	if len(seqs) != 10 || seqs[0] != 1 || seqs[9] != 10 {
		t.Fatalf("paged history: %v", seqs)
	}
	vs, _, _ := tr.History("plant1/line3/temp", HistoryQuery{Since: epoch0.Add(3 * time.Second), Until: epoch0.Add(5 * time.Second)})
	if len(vs) != 3 || vs[0].Seq != 3 || vs[2].Seq != 5 {
		t.Fatalf("time range: %+v", vs)
	}
	kids, err := tr.Ls("plant1")
	if err != nil || !reflect.DeepEqual(kids, []string{"line0", "line1", "line3"}) {
		t.Fatalf("ls: %v %v", kids, err)
	}
	if root, _ := tr.Ls(""); !reflect.DeepEqual(root, []string{"plant1"}) {
		t.Fatalf("ls root: %v", root)
	}
	sub, more, err := tr.Subtree("plant1", time.Time{}, "", 0)
	if err != nil || more || len(sub) != 3 || sub[0].Path != "plant1/line0/hum" || sub[2].Path != "plant1/line3/temp" {
		t.Fatalf("subtree: %+v %v %v", sub, more, err)
	}
	if sub, more, _ := tr.Subtree("", time.Time{}, "", 2); len(sub) != 2 || !more {
		t.Fatalf("limited subtree: %d %v", len(sub), more)
	}
	for _, p := range []string{"plant2", "plant1/line2", "plant1/line3/temp/x"} {
		if _, err := tr.Ls(p); !errors.Is(err, ErrNotFound) {
			t.Fatalf("ls %s: %v, want not found", p, err)
		}
		if sub, _, err := tr.Subtree(p, time.Time{}, "", 0); !errors.Is(err, ErrNotFound) {
			t.Fatalf("subtree %s: %v %v, want not found", p, sub, err)
		}
	}
	if sub, _, err := tr.Subtree("plant1/line3/temp", time.Time{}, "", 0); err != nil || len(sub) != 1 {
		t.Fatalf("subtree of a path: %+v %v", sub, err)
	}
	if sub, _, err := tr.Subtree("plant1", epoch0, "", 0); err != nil || len(sub) != 0 {
		t.Fatalf("subtree of a folder before its first version: %+v %v, want empty", sub, err)
	}
}

// model is what the tree should hold: path → versions.
type model map[string][]Version

func (m model) apply(seq uint64, puts []Put) {
	for _, p := range puts {
		vs := m[p.Path]
		if len(vs) > 0 && vs[len(vs)-1].Seq >= seq {
			continue
		}
		m[p.Path] = append(vs, Version{Seq: seq, TS: tsOf(seq), User: "u", Value: p.Value})
	}
}

// sameAs checks every path's full history, latest version and listing.
func sameAs(t *testing.T, tr *Tree, m model) {
	t.Helper()
	for p, want := range m {
		var got []Version
		after := uint64(0)
		for {
			vs, more, err := tr.History(p, HistoryQuery{AfterSeq: after})
			if err != nil {
				t.Fatalf("history %s: %v", p, err)
			}
			got = append(got, vs...)
			if !more {
				break
			}
			after = vs[len(vs)-1].Seq
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("history of %s:\n got %v\nwant %v", p, got, want)
		}
		if v, err := tr.Get(p); err != nil || !reflect.DeepEqual(v, want[len(want)-1]) {
			t.Fatalf("get %s: %+v %v", p, v, err)
		}
	}
	all, _, err := tr.Subtree("", time.Time{}, "", 1<<30)
	if err != nil || len(all) != min(len(m), tr.cfg.MaxPage) {
		t.Fatalf("subtree: %d paths, want %d (%v)", len(all), len(m), err)
	}
}

func randomEntry(rng *rand.Rand, seq uint64, npaths int) []Put {
	puts := make([]Put, 1+rng.Intn(3))
	for i := range puts {
		p := fmt.Sprintf("s%d/p%d", rng.Intn(4), rng.Intn(npaths))
		puts[i] = put(p, map[string]any{"v": rng.Intn(1000), "seq": seq})
	}
	return puts
}

// TestCrashReplay is the storage contract with the WAL: apply entries,
// checkpoint now and then, crash (unsynced data lost, last lines torn),
// reopen, replay the entries after the checkpoint: the tree equals the one
// before the crash, for every crash point.
func TestCrashReplay(t *testing.T) {
	seed := time.Now().UnixNano()
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewSource(seed))
	cfg := DefaultConfig()
	cfg.RecentVersions = 2
	for round := 0; round < 40; round++ {
		m := vfs.NewMem()
		tr := openTree(t, m, "/d", cfg)
		want := model{}
		var entries [][]Put
		n := 20 + rng.Intn(60)
		for seq := uint64(1); seq <= uint64(n); seq++ {
			puts := randomEntry(rng, seq, 6)
			entries = append(entries, puts)
			apply(t, tr, seq, puts...)
			want.apply(seq, puts)
			if rng.Intn(10) == 0 {
				if _, err := tr.Checkpoint(); err != nil {
					t.Fatal(err)
				}
			}
		}
		crashed := m.CrashClone(rng, rng.Intn(2) == 0)
		tr2 := openTree(t, crashed, "/d", cfg)
		from := tr2.AppliedPoint().Seq
		for seq := from + 1; seq <= uint64(n); seq++ {
			apply(t, tr2, seq, entries[seq-1]...)
		}
		sameAs(t, tr2, want)
	}
}

func TestRestartRecoversIdenticalIndex(t *testing.T) {
	if testing.Short() {
		t.Skip("100,000 versions")
	}
	dir := t.TempDir()
	tr := openTree(t, vfs.OS, dir, DefaultConfig())
	want := model{}
	rng := rand.New(rand.NewSource(5))
	for seq := uint64(1); seq <= 100_000; seq++ {
		puts := []Put{put(fmt.Sprintf("site%d/dev%d/temp", seq%100, (seq/100)%100), rng.Intn(100000))}
		apply(t, tr, seq, puts...)
		want.apply(seq, puts)
	}
	if len(want) != 10_000 {
		t.Fatalf("%d paths", len(want))
	}
	if _, err := tr.Checkpoint(); err != nil {
		t.Fatal(err)
	}
	tr2 := openTree(t, vfs.OS, dir, DefaultConfig())
	if tr2.AppliedPoint().Seq != 100_000 {
		t.Fatalf("applied %+v", tr2.AppliedPoint())
	}
	sameAs(t, tr2, want)
	for i := 0; i < 100; i++ {
		folder := fmt.Sprintf("site%d", i)
		a, _ := tr.Ls(folder)
		b, _ := tr2.Ls(folder)
		if !reflect.DeepEqual(a, b) || len(a) != 100 {
			t.Fatalf("ls %s: %d vs %d children", folder, len(a), len(b))
		}
	}
}

// TestSnapshotWhileApplying streams a snapshot while applies go on, and
// installs it into another tree: it equals the state at the snapshot's
// point, before and after a reopen.
func TestSnapshotWhileApplying(t *testing.T) {
	rng := rand.New(rand.NewSource(6))
	m := vfs.NewMem()
	tr := openTree(t, m, "/src", DefaultConfig())
	want := model{}
	seq := uint64(0)
	for ; seq < 300; seq++ {
		puts := randomEntry(rng, seq+1, 50)
		apply(t, tr, seq+1, puts...)
		want.apply(seq+1, puts)
	}
	atS := model{}
	for p, vs := range want {
		atS[p] = append([]Version(nil), vs...)
	}
	snap := tr.Snapshot()
	dst := openTree(t, m, "/dst", DefaultConfig())
	apply(t, dst, 1, put("stale/data", 1))
	in, err := dst.NewInstaller()
	if err != nil {
		t.Fatal(err)
	}
	chunks := 0
	for {
		c, err := snap.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		wire := MarshalChunk(c)
		if len(wire) > MaxChunkBytes+1024 {
			t.Fatalf("chunk of %d bytes", len(wire))
		}
		c, err = UnmarshalChunk(wire)
		if err != nil {
			t.Fatal(err)
		}
		if err := in.Add(c); err != nil {
			t.Fatal(err)
		}
		chunks++
		for k := 0; k < 5; k++ { // applies go on during the stream
			seq++
			apply(t, tr, seq, randomEntry(rng, seq, 50)...)
		}
	}
	snap.Close()
	if err := dst.Install(in); err != nil {
		t.Fatal(err)
	}
	if dst.AppliedPoint().Seq != 300 {
		t.Fatalf("installed at %+v", dst.AppliedPoint())
	}
	sameAs(t, dst, atS)
	if _, err := dst.Get("stale/data"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("old tree data survived the install: %v", err)
	}
	reopened := openTree(t, m, "/dst", DefaultConfig())
	sameAs(t, reopened, atS)
	for name, tr := range map[string]*Tree{"applied": tr, "installed": dst, "loaded": reopened} {
		ownsRecentLines(t, name, tr)
	}
	t.Logf("%d chunks", chunks)
}

// ownsRecentLines checks that the lines a tree keeps in memory are each
// their own allocation: a line inside a chunk's or a file's buffer (whose
// capacity runs on to the buffer's end) would keep the whole buffer in
// memory.
func ownsRecentLines(t *testing.T, name string, tr *Tree) {
	t.Helper()
	tr.mu.RLock()
	defer tr.mu.RUnlock()
	for p, ps := range tr.paths {
		for _, line := range ps.recent {
			if cap(line) > len(line)+len(line)/2+16 { // beyond an allocation's rounding
				t.Fatalf("%s tree: a recent line of %s (%d bytes) sits in a buffer of %d", name, p, len(line), cap(line))
			}
		}
	}
}

// TestInstallIsAtomicAtEveryCrashPoint crashes the install at every step:
// reopening gives the old tree or the new one, whole.
func TestInstallIsAtomicAtEveryCrashPoint(t *testing.T) {
	m := vfs.NewMem()
	src := openTree(t, m, "/src", DefaultConfig())
	for seq := uint64(1); seq <= 20; seq++ {
		apply(t, src, seq, put(fmt.Sprintf("n/p%d", seq%7), seq))
	}
	dst := openTree(t, m, "/dst", DefaultConfig())
	apply(t, dst, 1, put("old/x", 1))
	if _, err := dst.Checkpoint(); err != nil {
		t.Fatal(err)
	}
	in := receive(t, src, dst)
	var images []*vfs.MemFS
	m.BeforeMutate(func() { images = append(images, m.CrashClone(rand.New(rand.NewSource(1)), false)) })
	if err := dst.Install(in); err != nil {
		t.Fatal(err)
	}
	m.BeforeMutate(nil)
	if v, err := dst.Get("n/p1"); err != nil || v.Seq != 15 { // the index swapped in with the files
		t.Fatalf("n/p1 after the install: %+v %v", v, err)
	}
	images = append(images, m.CrashClone(rand.New(rand.NewSource(1)), false))
	sawNew := false
	for i, img := range images {
		tr := openTree(t, img, "/dst", DefaultConfig())
		_, oldErr := tr.Get("old/x")
		_, newErr := tr.Get("n/p1")
		switch {
		case oldErr == nil && errors.Is(newErr, ErrNotFound) && tr.AppliedPoint().Seq == 1:
		case newErr == nil && errors.Is(oldErr, ErrNotFound) && tr.AppliedPoint().Seq == 20:
			sawNew = true
		default:
			t.Fatalf("image %d: old %v new %v applied %+v: a mix", i, oldErr, newErr, tr.AppliedPoint())
		}
	}
	if !sawNew {
		t.Fatal("no crash image holds the new tree")
	}
}

func TestRetention(t *testing.T) {
	m := vfs.NewMem()
	cfg := DefaultConfig()
	cfg.RecentVersions = 2
	cfg.Retention = []Rule{{Prefix: "keep5", MaxVersions: 5}, {Prefix: "young", MaxAge: 10 * time.Second}}
	tr := openTree(t, m, "/d", cfg)
	for seq := uint64(1); seq <= 30; seq++ {
		apply(t, tr, seq, put("keep5/a", seq), put("young/b", seq), put("all/c", seq))
	}
	snap := tr.Snapshot()
	if err := tr.Compact(); err != nil {
		t.Fatal(err)
	}
	if vs, _, _ := tr.History("keep5/a", HistoryQuery{}); len(vs) != 30 {
		t.Fatalf("compacted under a running snapshot: %d versions", len(vs))
	}
	snap.Close()
	if err := tr.Compact(); err != nil {
		t.Fatal(err)
	}
	check := func(tr *Tree) {
		t.Helper()
		if vs, _, _ := tr.History("keep5/a", HistoryQuery{}); len(vs) != 5 || vs[0].Seq != 26 {
			t.Fatalf("keep5: %+v", vs)
		}
		if vs, _, _ := tr.History("young/b", HistoryQuery{}); len(vs) != 11 || vs[0].Seq != 20 {
			t.Fatalf("young: %d versions from %d", len(vs), vs[0].Seq)
		}
		if vs, _, _ := tr.History("all/c", HistoryQuery{}); len(vs) != 30 {
			t.Fatalf("unlimited path lost versions: %d", len(vs))
		}
	}
	check(tr)
	apply(t, tr, 31, put("keep5/a", 31))
	if v, _ := tr.Get("keep5/a"); v.Seq != 31 {
		t.Fatalf("append after compaction: %+v", v)
	}
	tr.Checkpoint()
	tr2 := openTree(t, m, "/d", cfg)
	if vs, _, _ := tr2.History("keep5/a", HistoryQuery{}); len(vs) != 6 || vs[5].Seq != 31 {
		t.Fatalf("after reopen: %+v", vs)
	}
}

func FuzzValidatePath(f *testing.F) {
	for _, s := range []string{"a/b", "../x", "a//b", "/a", "a/", ".", "a\x00b", strings.Repeat("a/", 17)} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, p string) {
		if ValidatePath(p) != nil {
			return
		}
		clean := filepath.Clean(filepath.Join("/tree", p))
		if !strings.HasPrefix(clean, "/tree/") || strings.Contains(p, ".") || strings.Contains(p, "\x00") {
			t.Fatalf("accepted %q, which escapes or aliases: %s", p, clean)
		}
	})
}

// TestChunkPathsInOrder: a chunk naming a path twice, or paths out of
// order, is refused: two writes of one path would race.
func TestChunkPathsInOrder(t *testing.T) {
	l1, _ := json.Marshal(Version{Seq: 1, TS: tsOf(1), User: "u", Value: json.RawMessage(`1`)})
	l2, _ := json.Marshal(Version{Seq: 2, TS: tsOf(2), User: "u", Value: json.RawMessage(`2`)})
	for _, paths := range [][]ChunkPath{
		{{Path: "a", Lines: append(l1, '\n')}, {Path: "a", Lines: append(l2, '\n')}},
		{{Path: "b", Lines: append(l1, '\n')}, {Path: "a", Lines: append(l2, '\n')}},
	} {
		if _, err := UnmarshalChunk(MarshalChunk(Chunk{Epoch: 1, Seq: 2, Paths: paths})); !errors.Is(err, ErrCorrupt) {
			t.Errorf("%s then %s: %v", paths[0].Path, paths[1].Path, err)
		}
	}
}

func FuzzUnmarshalChunk(f *testing.F) {
	line, _ := json.Marshal(Version{Seq: 2, TS: tsOf(2), User: "u", Value: json.RawMessage(`1`)})
	f.Add(MarshalChunk(Chunk{Epoch: 1, Seq: 5, Paths: []ChunkPath{{Path: "a/b", Lines: append(line, '\n')}}}))
	f.Add(MarshalChunk(Chunk{Epoch: 1, Seq: 5, Paths: []ChunkPath{{Path: "../x", Lines: append(line, '\n')}}}))
	f.Add(MarshalChunk(Chunk{Epoch: 1, Seq: 1, Paths: []ChunkPath{{Path: "a", Lines: append(line, '\n')}}}))
	f.Add([]byte{0, 0, 0, 2, '{', '}'})
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := UnmarshalChunk(b)
		if err != nil {
			return
		}
		for i, cp := range c.Paths {
			if ValidatePath(cp.Path) != nil {
				t.Fatalf("accepted bad path %q", cp.Path)
			}
			if i > 0 && cp.Path <= c.Paths[i-1].Path {
				t.Fatalf("accepted %s after %s", cp.Path, c.Paths[i-1].Path)
			}
			if len(cp.refs) == 0 {
				t.Fatalf("%s: no versions in %d bytes", cp.Path, len(cp.Lines))
			}
			end := int64(0) // the lines lie one after the other, each with its newline
			for i, r := range cp.refs {
				if r.off() != end || cp.Lines[r.off()+r.n()] != '\n' {
					t.Fatalf("%s: version %d at %d+%d, want at %d before a newline", cp.Path, r.seq, r.off(), r.n(), end)
				}
				end = r.off() + r.n() + 1
				if r.seq > c.Seq || (i > 0 && r.seq <= cp.refs[i-1].seq) {
					t.Fatalf("%s: version %d accepted out of order or above %d", cp.Path, r.seq, c.Seq)
				}
				if _, err := decodeVersion(cp.line(r)); err != nil {
					t.Fatalf("%s: accepted a line that does not decode: %v", cp.Path, err)
				}
			}
			if end != int64(len(cp.Lines)) {
				t.Fatalf("%s: versions cover %d of %d bytes", cp.Path, end, len(cp.Lines))
			}
		}
	})
}

// TestDedupSurvivesCheckpointAndSnapshot: a (source, sequence) already
// written is a duplicate, also after a reopen and on a node that installed
// a snapshot.
func TestDedupSurvivesCheckpointAndSnapshot(t *testing.T) {
	m := vfs.NewMem()
	tr := openTree(t, m, "/a", DefaultConfig())
	if _, dup := tr.Dedup(1, 1, tsOf(1), "s1", 100); dup {
		t.Fatal("first write is a duplicate")
	}
	apply(t, tr, 1, put("x/y", 1))
	if _, dup := tr.Dedup(1, 1, tsOf(1), "s1", 100); dup {
		t.Fatal("the recording entry itself counts as a duplicate")
	}
	orig, dup := tr.Dedup(1, 2, tsOf(2), "s1", 100)
	if !dup || orig.Seq != 1 {
		t.Fatalf("resent write: %+v %v", orig, dup)
	}
	if _, dup := tr.Dedup(1, 3, tsOf(3), "s1", 101); dup {
		t.Fatal("a later write of the source is a duplicate")
	}
	apply(t, tr, 3, put("x/y", 3))
	tr.Checkpoint()
	tr2 := openTree(t, m, "/a", DefaultConfig())
	if o, dup := tr2.Dedup(1, 4, tsOf(4), "s1", 101); !dup || o.Seq != 3 {
		t.Fatalf("after reopen: %+v %v", o, dup)
	}
	dst := openTree(t, m, "/b", DefaultConfig())
	if err := dst.Install(receive(t, tr2, dst)); err != nil {
		t.Fatal(err)
	}
	if o, dup := dst.Dedup(1, 5, tsOf(5), "s1", 50); !dup || o.Seq != 3 {
		t.Fatalf("after snapshot install: %+v %v", o, dup)
	}
}

// TestCrashThenPowerLoss: versions a stopped process wrote but never
// fsynced survive the process (the page cache keeps them), so a restarted
// tree finds them; its next checkpoint must make them durable before its
// marker vouches for them, or a later power loss loses them for good
// (regression: found by the torture test, a leader killed right after
// applying a new path, then power loss of the same node).
func TestCrashThenPowerLoss(t *testing.T) {
	m := vfs.NewMem()
	tr := openTree(t, m, "/d", DefaultConfig())
	apply(t, tr, 1, put("a/b", 1)) // applied and written (Close), never checkpointed
	tr.Close()
	tr = openTree(t, m, "/d", DefaultConfig())
	apply(t, tr, 2, put("c", 2))
	if p, err := tr.Checkpoint(); err != nil || p.Seq != 2 {
		t.Fatalf("checkpoint: %+v %v", p, err)
	}
	after := openTree(t, m.CrashClone(rand.New(rand.NewSource(1)), false), "/d", DefaultConfig())
	if got := after.AppliedPoint().Seq; got != 2 {
		t.Fatalf("applied %d after the power loss, want 2", got)
	}
	if v, err := after.Get("a/b"); err != nil || string(v.Value) != "1" {
		t.Fatalf("a/b after crash, checkpoint and power loss: %+v %v", v, err)
	}
}

// TestManyPathsCheckpointSurvivesPowerLoss: a checkpoint of more new paths
// than syncAllAbove makes them durable with one SyncAll (on Linux); a
// power loss right after it loses none of them.
func TestManyPathsCheckpointSurvivesPowerLoss(t *testing.T) {
	m := vfs.NewMem()
	tr := openTree(t, m, "/d", DefaultConfig())
	puts := make([]Put, syncAllAbove)
	for i := range puts {
		puts[i] = put(fmt.Sprintf("f%d/dev%d", i%7, i), i)
	}
	apply(t, tr, 1, puts...)
	if p, err := tr.Checkpoint(); err != nil || p.Seq != 1 {
		t.Fatalf("checkpoint: %+v %v", p, err)
	}
	after := openTree(t, m.CrashClone(rand.New(rand.NewSource(1)), false), "/d", DefaultConfig())
	if got := after.AppliedPoint().Seq; got != 1 {
		t.Fatalf("applied %d after the power loss, want 1", got)
	}
	for i, p := range puts {
		if v, err := after.Get(p.Path); err != nil || string(v.Value) != fmt.Sprint(i) {
			t.Fatalf("%s after checkpoint and power loss: %+v %v", p.Path, v, err)
		}
	}
}

// TestNewFoldersOfOneBatchSurvivePowerLoss: one entry making folders at
// several depths at once, a path that is also the folder of others among
// them, under a folder made before; a checkpoint (few enough paths to
// fsync each folder) and a power loss lose none of them.
func TestNewFoldersOfOneBatchSurvivePowerLoss(t *testing.T) {
	m := vfs.NewMem()
	tr := openTree(t, m, "/d", DefaultConfig())
	apply(t, tr, 1, put("old/x", 0))
	if _, err := tr.Checkpoint(); err != nil {
		t.Fatal(err)
	}
	puts := []Put{put("a/b/c", 1), put("a", 2), put("a/b/d", 3), put("old/y/z", 4), put("e/f", 5), put("a/g", 6)}
	apply(t, tr, 2, puts...)
	if p, err := tr.Checkpoint(); err != nil || p.Seq != 2 {
		t.Fatalf("checkpoint: %+v %v", p, err)
	}
	after := openTree(t, m.CrashClone(rand.New(rand.NewSource(1)), false), "/d", DefaultConfig())
	for _, p := range puts {
		if v, err := after.Get(p.Path); err != nil || !bytes.Equal(v.Value, p.Value) {
			t.Errorf("%s after checkpoint and power loss: %+v %v", p.Path, v, err)
		}
	}
	if kids, err := after.Ls("a"); err != nil || !slices.Equal(kids, []string{"b", "g"}) {
		t.Errorf("ls a after the power loss: %v %v", kids, err)
	}
}

// TestParseLineReadsWhatApplyWrites: Apply's appendLine spells a Version
// as json.Marshal does; the direct reading of such a line agrees with
// encoding/json, escapes and nested "value" keys included, and other
// spellings still parse.
func TestParseLineReadsWhatApplyWrites(t *testing.T) {
	for _, v := range []Version{
		{Seq: 1, TS: tsOf(1), User: "u", Value: json.RawMessage(`1`)},
		{Seq: 18446744073709551615, TS: tsOf(2), User: "u", Value: json.RawMessage(`null`)},
		{Seq: 42, TS: tsOf(3), EventTS: tsOf(1), User: `we"ird\user`, Value: json.RawMessage(`{"value":{"seq":9},"x":"\"}"}`)},
		{Seq: 7, TS: "2026-11-24T22:07:11.123456789+01:00", User: "", Value: json.RawMessage(`"a,\"value\":2"`)},
		{Seq: 8, TS: tsOf(4), User: "<bob> & é\u2028", Value: json.RawMessage(`["\u003c","é"]`)},
	} {
		line, _ := json.Marshal(v)
		quotedUser, _ := json.Marshal(v.User)
		if spelt := appendLine(nil, v.Seq, v.TS, v.EventTS, quotedUser, v.Value); string(spelt) != string(line) {
			t.Errorf("appendLine %s, json.Marshal %s", spelt, line)
		} else if cap(spelt) != len(spelt) { // the tree keeps the line: no spare bytes
			t.Errorf("appendLine of %d bytes allocated %d", len(spelt), cap(spelt))
		}
		want, _ := time.Parse(time.RFC3339Nano, v.TS)
		r, err := parseLine(line)
		if err != nil || r.seq != v.Seq || r.ts != want.UnixNano() {
			t.Errorf("%s: got %+v %v", line, r, err)
		}
		_, direct := parseCanonical(line)
		if direct != (v.Seq < 1e19) { // 20 digits go through encoding/json
			t.Errorf("%s: read directly %v", line, direct)
		}
	}
	for _, line := range []string{
		`{"ts":"2026-11-24T00:00:00Z","seq":5,"user":"u","value":1}`,
		`{"seq":5, "ts":"2026-11-24T00:00:00Z","user":"u","value":1}`,
	} {
		if r, err := parseLine([]byte(line)); err != nil || r.seq != 5 {
			t.Errorf("%s: %+v %v", line, r, err)
		}
	}
	for _, line := range []string{
		`{"seq":5,"ts":"2026-11-24T00:00:00Z","user":"u","value":1,"seq":6}`, // encoding/json reads seq 6
		`{"seq":0,"ts":"2026-11-24T00:00:00Z","user":"u","value":1}`,
		`{"seq":5,"ts":"yesterday","user":"u","value":1}`,
		`{"seq":5,"ts":"2026-11-24T00:00:00Z","user":"u"}`,
		`{"seq":5,"ts":"2026-11-24T00:00:00Z","user":"u","value":1`,
		`{"seq":05,"ts":"2026-11-24T00:00:00Z","user":"u","value":1}`,
		`{"seq":5,"ts":"2026-11-24T00:00:00Z","user":"a\qb","value":1}`,
		`{"seq":5,"ts":"2026-11-24T00:00:00Z","user":"a\u00zz","value":1}`,
		"{\"seq\":5,\"ts\":\"2026-11-24T00:00:00Z\",\"user\":\"a\tb\",\"value\":1}",
		"{\"seq\":5,\"ts\":\"2026-11-24T00:00:00Z\",\"event_ts\":\"\n\",\"user\":\"u\",\"value\":1}",
		`{"seq":5,"ts":"2026-11-24T00:00:00Z","user":"u\","value":1}`,
	} {
		if r, ok := parseCanonical([]byte(line)); ok {
			t.Errorf("%s: read directly as %+v", line, r)
		}
	}
}

func FuzzParseLine(f *testing.F) {
	for _, s := range []string{
		`{"seq":5,"ts":"2026-11-24T00:00:00Z","user":"u","value":1}`,
		`{"seq":5,"ts":"2026-11-24T00:00:00Z","event_ts":"2026-11-24T00:00:00Z","user":"a\"b","value":{"value":1}}`,
		`{"seq":5,"ts":"2026-11-24T00:00:00Z","user":"u","value":1,"seq":6}`,
		`{"seq":5,"ts":"2026-11-24T00:00:00Z","event_ts":"2026-11-24T00:00:00Z","user":"a\u00e9\\","value":"x"}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, line []byte) {
		r, ok := parseCanonical(line)
		if !ok {
			return
		}
		var v Version
		if err := json.Unmarshal(line, &v); err != nil {
			t.Fatalf("read directly but encoding/json refuses it: %v", err)
		}
		ts, err := time.Parse(time.RFC3339Nano, v.TS)
		if err != nil || v.Seq != r.seq || ts.UnixNano() != r.ts || len(v.Value) == 0 {
			t.Fatalf("read directly as %+v, encoding/json reads %+v (%v)", r, v, err)
		}
	})
}

// TestSubtreePagesOn: paging with after walks every path once, in the
// walk's order (a folder, then what is under it), whatever the page size,
// also where a name sorts between a folder and its children ("a-x" after
// "a/…"), and from a cursor that no longer names a path.
func TestSubtreePagesOn(t *testing.T) {
	tr := openTree(t, vfs.NewMem(), "/d", DefaultConfig())
	paths := []string{"a", "a/b", "a/b/c", "a/c", "a-x", "a-x/y", "b", "b/a", "c"}
	for i, p := range paths {
		if _, err := tr.Apply(1, uint64(i+1), "2026-11-25T00:00:00Z", "u", []Put{{Path: p, Value: json.RawMessage(`1`)}}); err != nil {
			t.Fatal(err)
		}
	}
	all, _, err := tr.Subtree("", time.Time{}, "", 0)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"a", "a/b", "a/b/c", "a/c", "a-x", "a-x/y", "b", "b/a", "c"}
	var got []string
	for _, pv := range all {
		got = append(got, pv.Path)
	}
	if !slices.Equal(got, want) {
		t.Fatalf("walk %v, want %v", got, want)
	}
	for size := 1; size <= 4; size++ {
		var paged []string
		after := ""
		for {
			page, more, err := tr.Subtree("", time.Time{}, after, size)
			if err != nil {
				t.Fatal(err)
			}
			for _, pv := range page {
				paged = append(paged, pv.Path)
			}
			if !more {
				break
			}
			after = page[len(page)-1].Path
		}
		if !slices.Equal(paged, want) {
			t.Fatalf("pages of %d: %v, want %v", size, paged, want)
		}
	}
	if page, _, _ := tr.Subtree("a", time.Time{}, "a/b/zz", 0); len(page) != 1 || page[0].Path != "a/c" {
		t.Fatalf("after a cursor that names no path: %+v", page)
	}
	pathsOf := func(pvs []PathVersion) string {
		var ps []string
		for _, pv := range pvs {
			ps = append(ps, pv.Path)
		}
		return strings.Join(ps, " ")
	}
	for _, c := range []struct{ folder, after, want string }{
		{"a", "a", "a/b a/b/c a/c"},   // the cursor is the folder itself
		{"a", "0", "a a/b a/b/c a/c"}, // before the folder
		{"a", "b", ""},                // after the folder
		{"a-x", "a/zz", "a-x a-x/y"},  // a cursor in a folder that sorts before
		{"", "b", "b/a c"},            // from the root
		{"", "a/b/c", "a/c a-x a-x/y b b/a c"},
	} {
		page, more, err := tr.Subtree(c.folder, time.Time{}, c.after, 0)
		if err != nil || more || pathsOf(page) != c.want {
			t.Errorf("folder %q after %q: %q more=%v %v, want %q", c.folder, c.after, pathsOf(page), more, err, c.want)
		}
	}
	// As of a time, a page leaves out the paths with nothing by then: a/bb
	// is written a second after every other path.
	if _, err := tr.Apply(1, 100, "2026-11-25T00:00:01Z", "u", []Put{{Path: "a/bb", Value: json.RawMessage(`1`)}}); err != nil {
		t.Fatal(err)
	}
	at, _ := time.Parse(time.RFC3339, "2026-11-25T00:00:00Z")
	if page, _, err := tr.Subtree("a", at, "a/b", 1); err != nil || pathsOf(page) != "a/b/c" {
		t.Errorf("as of before a/bb, after a/b, one path: %q %v", pathsOf(page), err)
	}
	if page, _, err := tr.Subtree("a", at, "a/b/c", 0); err != nil || pathsOf(page) != "a/c" {
		t.Errorf("as of before a/bb, after a/b/c: %q %v", pathsOf(page), err)
	}
	if _, _, err := tr.Subtree("", time.Time{}, "../x", 0); !errors.Is(err, ErrBadPath) {
		t.Fatalf("bad cursor: %v", err)
	}
}

// TestApplyReportsWhatItWrote: Apply returns each put's line and the seq
// before it, and nothing for a put it leaves alone (a replay).
func TestApplyReportsWhatItWrote(t *testing.T) {
	tr := openTree(t, vfs.NewMem(), "/d", DefaultConfig())
	w1, err := tr.Apply(1, 1, tsOf(1), "u", []Put{{Path: "a/b", Value: json.RawMessage(`1`)}})
	if err != nil || len(w1) != 1 || w1[0].Prev != 0 || string(w1[0].Line) != `{"seq":1,"ts":"`+tsOf(1)+`","user":"u","value":1}` {
		t.Fatalf("first version: %+v %v", w1, err)
	}
	w2, err := tr.Apply(1, 5, tsOf(5), "u", []Put{{Path: "a/b", Value: json.RawMessage(`2`)}, {Path: "a/c", Value: json.RawMessage(`3`)}})
	if err != nil || len(w2) != 2 || w2[0].Prev != 1 || w2[1].Prev != 0 || w2[1].Line == nil {
		t.Fatalf("second entry: %+v %v", w2, err)
	}
	if w3, err := tr.Apply(1, 5, tsOf(5), "u", []Put{{Path: "a/b", Value: json.RawMessage(`2`)}}); err != nil || w3[0].Line != nil {
		t.Fatalf("replayed entry wrote %+v %v", w3, err)
	}
}

// TestPendingLines: applied lines wait in memory until a checkpoint, or
// until flushAbove bytes gather; reads see them either way, also a read
// whose range runs from the file into them.
func TestPendingLines(t *testing.T) {
	m := vfs.NewMem()
	cfg := DefaultConfig()
	cfg.RecentVersions = 2
	tr := openTree(t, m, "/d", cfg)
	size := func() int64 {
		st, err := m.Lstat("/d/tree/p/versions.jsonl")
		if err != nil {
			return -1
		}
		return st.Size()
	}
	for seq := uint64(1); seq <= 5; seq++ {
		apply(t, tr, seq, put("p", seq))
	}
	if s := size(); s != -1 {
		t.Fatalf("versions file of %d bytes before the checkpoint", s)
	}
	if _, err := tr.Checkpoint(); err != nil {
		t.Fatal(err)
	}
	written := size()
	for seq := uint64(6); seq <= 10; seq++ {
		apply(t, tr, seq, put("p", seq))
	}
	if s := size(); s != written {
		t.Fatalf("versions file grew from %d to %d bytes before the checkpoint", written, s)
	}
	// 1-5 in the file, 6-8 pending, 9-10 recent too.
	a, err := tr.Aggregate("p", AggQuery{})
	if err != nil || a.Count != 10 || a.Sum != 55 || a.First.Seq != 1 || a.Last.Seq != 10 {
		t.Fatalf("aggregate over file and pending lines: %+v %v", a.Stats, err)
	}
	vs, _, err := tr.History("p", HistoryQuery{})
	if err != nil || len(vs) != 10 {
		t.Fatalf("history: %d versions, %v", len(vs), err)
	}
	for i, v := range vs {
		if string(v.Value) != fmt.Sprint(i+1) {
			t.Fatalf("version %d holds %s", v.Seq, v.Value)
		}
	}
	// A snapshot taken now reads 6-10 from the lines it began with, though
	// the checkpoint writes them and 11 follows.
	snap := tr.Snapshot()
	if _, err := tr.Checkpoint(); err != nil {
		t.Fatal(err)
	}
	apply(t, tr, 11, put("p", 11))
	c, err := snap.Next()
	snap.Close()
	f, _ := vfs.Open(m, "/d/tree/p/versions.jsonl")
	file, _ := io.ReadAll(f)
	f.Close()
	if err != nil || len(c.Paths) != 1 || !bytes.Equal(c.Paths[0].Lines, file) || bytes.Count(file, []byte("\n")) != 10 {
		t.Fatalf("snapshot %+v, file %q, %v", c.Paths, file, err)
	}
	written = size()
	// A path with flushAbove bytes pending is written at once.
	big := strings.Repeat("x", 1000)
	seq := uint64(12)
	for ; size() == written && seq < 1000; seq++ {
		apply(t, tr, seq, put("p", big))
	}
	if n := seq - 12; n < flushAbove/1100 || n > flushAbove/1000+1 {
		t.Fatalf("written after %d puts of 1 KB", n)
	}
}

// TestCheckpointWhileApplying: applies go on between StartCheckpoint and
// Finish; the checkpoint vouches only for what was applied when it
// started, and the next one makes the rest durable.
func TestCheckpointWhileApplying(t *testing.T) {
	m := vfs.NewMem()
	tr := openTree(t, m, "/d", DefaultConfig())
	apply(t, tr, 1, put("a/b", 1))
	c, err := tr.StartCheckpoint()
	if err != nil {
		t.Fatal(err)
	}
	apply(t, tr, 2, put("a/b", 2), put("c", 2))
	if p, err := c.Finish(); err != nil || p.Seq != 1 {
		t.Fatalf("checkpoint: %+v %v", p, err)
	}
	after := openTree(t, m.CrashClone(rand.New(rand.NewSource(1)), false), "/d", DefaultConfig())
	if v, err := after.Get("a/b"); after.AppliedPoint().Seq != 1 || err != nil || v.Seq != 1 {
		t.Fatalf("after a power loss: applied %d, a/b %+v %v", after.AppliedPoint().Seq, v, err)
	}
	if p, err := tr.Checkpoint(); err != nil || p.Seq != 2 {
		t.Fatalf("second checkpoint: %+v %v", p, err)
	}
	after = openTree(t, m.CrashClone(rand.New(rand.NewSource(1)), false), "/d", DefaultConfig())
	for _, p := range []string{"a/b", "c"} {
		if v, err := after.Get(p); err != nil || v.Seq != 2 {
			t.Fatalf("%s after the second checkpoint and a power loss: %+v %v", p, v, err)
		}
	}
}

// faultFS fails, once armed, the next write to a versions file half-way
// (as write(2) does when the disk fills) or the fsync of one folder.
type faultFS struct {
	*vfs.MemFS
	tearWrite bool
	failSync  string
}

type faultFile struct {
	vfs.File
	fs *faultFS
}

func (f *faultFS) OpenFile(name string, flag int, perm os.FileMode) (vfs.File, error) {
	fl, err := f.MemFS.OpenFile(name, flag, perm)
	if err != nil || filepath.Base(name) != versionsFile {
		return fl, err
	}
	return faultFile{fl, f}, nil
}

func (f *faultFS) SyncDir(name string) error {
	if name == f.failSync {
		return syscall.EIO
	}
	return f.MemFS.SyncDir(name)
}

func (f faultFile) Write(p []byte) (int, error) {
	if !f.fs.tearWrite {
		return f.File.Write(p)
	}
	f.fs.tearWrite = false
	n, _ := f.File.Write(p[:len(p)/2])
	return n, syscall.ENOSPC
}

// TestTornFlushThenClose: a write of pending lines that stops half-way
// fails the checkpoint; Close (which the node calls as it stops) writes
// only the rest, so the file opens whole (regression: it wrote them all
// again, a bad line before the last, and the node could not restart).
func TestTornFlushThenClose(t *testing.T) {
	fsys := &faultFS{MemFS: vfs.NewMem()}
	tr := openTree(t, fsys, "/d", DefaultConfig())
	for seq := uint64(1); seq <= 6; seq++ {
		apply(t, tr, seq, put("p", seq))
	}
	fsys.tearWrite = true
	if _, err := tr.Checkpoint(); !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("checkpoint on a full disk: %v", err)
	}
	tr.Close()
	after := openTree(t, fsys, "/d", DefaultConfig())
	if vs, _, err := after.History("p", HistoryQuery{}); err != nil || len(vs) != 6 {
		t.Fatalf("after the torn flush and Close: %d versions, %v", len(vs), err)
	}
}

// TestFailedInstallThenClose: an install that fails after swapping the
// folders leaves the index of the installed tree, so Close writes none
// of the old tree's pending lines into its files (regression: it
// appended them, older seqs after newer, and the tree did not open).
func TestFailedInstallThenClose(t *testing.T) {
	src := openTree(t, vfs.NewMem(), "/s", DefaultConfig())
	for seq := uint64(1); seq <= 10; seq++ {
		apply(t, src, seq, put("p", seq))
	}
	fsys := &faultFS{MemFS: vfs.NewMem()}
	dst := openTree(t, fsys, "/d", DefaultConfig())
	for seq := uint64(1); seq <= 3; seq++ {
		apply(t, dst, seq, put("p", seq)) // pending
	}
	in := receive(t, src, dst)
	fsys.failSync = "/d"
	if err := dst.Install(in); !errors.Is(err, syscall.EIO) {
		t.Fatalf("install with a failing fsync: %v", err)
	}
	fsys.failSync = ""
	dst.Close()
	after := openTree(t, fsys, "/d", DefaultConfig())
	if vs, _, err := after.History("p", HistoryQuery{}); err != nil || len(vs) != 10 {
		t.Fatalf("after the failed install and Close: %d versions, %v", len(vs), err)
	}
}

// renameCounter counts renames: each marker written is one.
type renameCounter struct {
	*vfs.MemFS
	n int
}

func (r *renameCounter) Rename(from, to string) error {
	r.n++
	return r.MemFS.Rename(from, to)
}

// TestIdleCheckpointWritesNothing: a checkpoint with nothing applied since
// the last one (or since the tree was opened) writes no marker, yet
// reports the applied point; the next apply makes the next one write.
func TestIdleCheckpointWritesNothing(t *testing.T) {
	fsys := &renameCounter{MemFS: vfs.NewMem()}
	tr := openTree(t, fsys, "/d", DefaultConfig())
	apply(t, tr, 1, put("p", 1))
	checkpoint := func(wantSeq uint64, wantWrites int) {
		t.Helper()
		before := fsys.n
		if p, err := tr.Checkpoint(); err != nil || p.Seq != wantSeq || fsys.n-before != wantWrites {
			t.Fatalf("checkpoint: %+v %v, %d markers written, want seq %d and %d", p, err, fsys.n-before, wantSeq, wantWrites)
		}
	}
	checkpoint(1, 1)
	checkpoint(1, 0)
	apply(t, tr, 2, put("p", 2))
	checkpoint(2, 1)
	tr.Close()
	tr = openTree(t, fsys, "/d", DefaultConfig())
	checkpoint(2, 0)
	apply(t, tr, 3) // a no-op entry moves the point too
	checkpoint(3, 1)
}

// TestCheckpointRetriesAfterAFailedFinish: a checkpoint whose fsyncs fail
// leaves its files dirty and its point unvouched, so the next checkpoint
// makes them durable and writes the marker (it must not skip as idle).
func TestCheckpointRetriesAfterAFailedFinish(t *testing.T) {
	fsys := &faultFS{MemFS: vfs.NewMem(), failSync: "/d/tree/a"}
	tr := openTree(t, fsys, "/d", DefaultConfig())
	apply(t, tr, 1, put("a/b", 1))
	if _, err := tr.Checkpoint(); !errors.Is(err, syscall.EIO) {
		t.Fatalf("checkpoint with a failing fsync: %v", err)
	}
	fsys.failSync = ""
	if p, err := tr.Checkpoint(); err != nil || p.Seq != 1 {
		t.Fatalf("the retry: %+v %v", p, err)
	}
	after := openTree(t, fsys.CrashClone(rand.New(rand.NewSource(1)), false), "/d", DefaultConfig())
	if v, err := after.Get("a/b"); after.AppliedPoint().Seq != 1 || err != nil || v.Seq != 1 {
		t.Fatalf("after the retry and a power loss: applied %d, a/b %+v %v", after.AppliedPoint().Seq, v, err)
	}
	// Only the point moved (a no-op entry), and the marker's write fails.
	apply(t, tr, 2)
	fsys.failSync = "/d/tree"
	if _, err := tr.Checkpoint(); !errors.Is(err, syscall.EIO) {
		t.Fatalf("checkpoint with a failing marker: %v", err)
	}
	fsys.failSync = ""
	if p, err := tr.Checkpoint(); err != nil || p.Seq != 2 {
		t.Fatalf("the second retry: %+v %v", p, err)
	}
	after = openTree(t, fsys.CrashClone(rand.New(rand.NewSource(1)), false), "/d", DefaultConfig())
	if got := after.AppliedPoint().Seq; got != 2 {
		t.Fatalf("after the second retry and a power loss: applied %d, want 2", got)
	}
}

// receive streams a snapshot of src, through the wire encoding, into a
// new installer of dst, ready to install.
func receive(t *testing.T, src, dst *Tree) *Installer {
	t.Helper()
	snap := src.Snapshot()
	defer snap.Close()
	in, err := dst.NewInstaller()
	if err != nil {
		t.Fatal(err)
	}
	for {
		c, err := snap.Next()
		if errors.Is(err, io.EOF) {
			return in
		}
		if err != nil {
			t.Fatal(err)
		}
		if c, err = UnmarshalChunk(MarshalChunk(c)); err != nil {
			t.Fatal(err)
		}
		if err := in.Add(c); err != nil {
			t.Fatal(err)
		}
	}
}

// TestSnapshotOfAReplacedTreeFails: a snapshot stream whose tree installs
// another snapshot midway stops with an error; it never sends the new
// tree's bytes as if they were the old one's (a fetcher would install a
// state that never was).
func TestSnapshotOfAReplacedTreeFails(t *testing.T) {
	m := vfs.NewMem()
	src := openTree(t, m, "/src", DefaultConfig())
	for seq := uint64(1); seq <= 600; seq++ {
		apply(t, src, seq, put(fmt.Sprintf("p/%03d", seq), strings.Repeat("x", 2000)))
	}
	if _, err := src.Checkpoint(); err != nil { // the lines are in the files, not pending
		t.Fatal(err)
	}
	other := openTree(t, m, "/other", DefaultConfig())
	for seq := uint64(1); seq <= 600; seq++ {
		apply(t, other, seq, put(fmt.Sprintf("p/%03d", seq), strings.Repeat("y", 3000)))
	}
	if _, err := other.Checkpoint(); err != nil {
		t.Fatal(err)
	}
	snap := src.Snapshot()
	defer snap.Close()
	if c, err := snap.Next(); err != nil || c.Last {
		t.Fatalf("first chunk: last %v, %v", c.Last, err)
	}
	if err := src.Install(receive(t, other, src)); err != nil {
		t.Fatal(err)
	}
	for {
		c, err := snap.Next()
		if errors.Is(err, ErrReplaced) {
			return
		}
		if err != nil {
			t.Fatal(err)
		}
		for _, cp := range c.Paths {
			if bytes.Contains(cp.Lines, []byte("yyy")) {
				t.Fatalf("chunk %d sent %s from the installed tree", c.Index, cp.Path)
			}
		}
		if c.Last {
			t.Fatal("the snapshot ran to its end over a replaced tree")
		}
	}
}

// TestBadPathNamesTheCharacter: the error quotes the character a segment
// may not hold, whole (not its first byte).
func TestBadPathNamesTheCharacter(t *testing.T) {
	if err := ValidatePath("é/ü"); err == nil || !strings.Contains(err.Error(), `holds 'é'`) {
		t.Fatalf("ValidatePath(é/ü) = %v", err)
	}
}

// TestHistoryFromFileAndPending: a page of old versions is read from the
// file and the pending lines at once, and a line the file garbled is
// found (ErrCorrupt), not served.
func TestHistoryFromFileAndPending(t *testing.T) {
	m := vfs.NewMem()
	cfg := DefaultConfig()
	cfg.RecentVersions = 2
	tr := openTree(t, m, "/d", cfg)
	for seq := uint64(1); seq <= 10; seq++ {
		apply(t, tr, seq, put("a/b", seq))
	}
	if _, err := tr.Checkpoint(); err != nil {
		t.Fatal(err)
	}
	for seq := uint64(11); seq <= 20; seq++ { // pending: written at the next checkpoint
		apply(t, tr, seq, put("a/b", seq))
	}
	page, more, err := tr.HistoryJSON("a/b", HistoryQuery{AfterSeq: 5, Limit: 12})
	if err != nil || !more || len(page) != 12 {
		t.Fatalf("%d versions, more %v, %v", len(page), more, err)
	}
	for i, line := range page {
		v, err := decodeVersion(line)
		if want := uint64(6 + i); err != nil || v.Seq != want || string(v.Value) != fmt.Sprint(want) {
			t.Fatalf("version %d: %s %v", i, line, err)
		}
	}
	name := "/d/tree/a/b/versions.jsonl"
	f, err := vfs.Open(m, name)
	if err != nil {
		t.Fatal(err)
	}
	data, _ := io.ReadAll(f)
	f.Close()
	data[bytes.IndexByte(data, '\n')+1] = '#' // the second line's {
	if f, err = m.OpenFile(name, os.O_WRONLY|os.O_TRUNC, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := f.Write(data); err != nil {
		t.Fatal(err)
	}
	f.Close()
	if _, _, err := tr.HistoryJSON("a/b", HistoryQuery{Limit: 3}); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("history over a garbled line: %v", err)
	}
}
