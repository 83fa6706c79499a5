package storage

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"math/rand"
	"os"
	"testing"

	"github.com/sirupsen/logrus"
	logtest "github.com/sirupsen/logrus/hooks/test"

	"memstore/replica/storage/vfs"
)

func testLogger() logrus.FieldLogger {
	l := logrus.New()
	l.SetOutput(io.Discard)
	return l
}

func smallConfig() WALConfig {
	cfg := DefaultWALConfig(testLogger())
	cfg.SegmentBytes = 400
	return cfg
}

func openWAL(t testing.TB, fsys vfs.FS, cfg WALConfig) *WAL {
	t.Helper()
	w, err := OpenWAL(fsys, "/d/wal", cfg)
	if err != nil {
		t.Fatal(err)
	}
	return w
}

func readAll(t testing.TB, w *WAL) []Record {
	t.Helper()
	var out []Record
	err := w.Replay(0, func(r Record) error {
		r.Data = bytes.Clone(r.Data)
		out = append(out, r)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func makeBatch(rng *rand.Rand, epoch, next uint64, n int) []Record {
	recs := make([]Record, n)
	for i := range recs {
		data := make([]byte, rng.Intn(40))
		rng.Read(data)
		recs[i] = Record{Epoch: epoch, Seq: next + uint64(i), Data: data}
	}
	return recs
}

// isPrefix reports whether got is a prefix of want.
func isPrefix(got, want []Record) error {
	if len(got) > len(want) {
		return fmt.Errorf("recovered %d records, only %d written", len(got), len(want))
	}
	for i := range got {
		if got[i].Seq != want[i].Seq || got[i].Epoch != want[i].Epoch || !bytes.Equal(got[i].Data, want[i].Data) {
			return fmt.Errorf("record %d: got %d/%d %x, want %d/%d %x", i, got[i].Epoch, got[i].Seq, got[i].Data,
				want[i].Epoch, want[i].Seq, want[i].Data)
		}
	}
	return nil
}

func TestWALAppendReopen(t *testing.T) {
	m := vfs.NewMem()
	w := openWAL(t, m, smallConfig())
	rng := rand.New(rand.NewSource(1))
	var all []Record
	for i := 0; i < 30; i++ {
		b := makeBatch(rng, 1, uint64(len(all))+1, 1+rng.Intn(5))
		if err := w.Append(b); err != nil {
			t.Fatal(err)
		}
		all = append(all, b...)
	}
	if err := w.Append([]Record{{Epoch: 1, Seq: 999}}); !errors.Is(err, ErrBadSeq) {
		t.Fatalf("out of sequence append: %v", err)
	}
	if len(w.segs) < 3 {
		t.Fatalf("only %d segments: rolling untested", len(w.segs))
	}
	w.Close()
	w = openWAL(t, m, smallConfig())
	got := readAll(t, w)
	if err := isPrefix(got, all); err != nil || len(got) != len(all) {
		t.Fatalf("reopen: %v (%d of %d)", err, len(got), len(all))
	}
	if w.Last() != (Pos{Epoch: 1, Seq: uint64(len(all))}) {
		t.Fatalf("last %+v", w.Last())
	}
}

// TestWALCrashEveryOffset cuts the unsynced last batch at every byte
// offset, torn or not: recovery returns a prefix of what was written that
// holds every synced record, and cuts the rest.
func TestWALCrashEveryOffset(t *testing.T) {
	m := vfs.NewMem()
	w := openWAL(t, m, smallConfig())
	rng := rand.New(rand.NewSource(2))
	synced := makeBatch(rng, 1, 1, 4)
	if err := w.Append(synced); err != nil {
		t.Fatal(err)
	}
	w.Close()
	cfg := smallConfig()
	cfg.SegmentBytes = 1 << 20
	cfg.Sync = SyncNone
	w = openWAL(t, m, cfg)
	last := makeBatch(rng, 2, 5, 3)
	if err := w.Append(last); err != nil {
		t.Fatal(err)
	}
	all := append(append([]Record(nil), synced...), last...)
	seg := w.segs[len(w.segs)-1]
	full, _ := w.readFile(seg.name)
	startUnsynced := int(seg.offsets[len(seg.offsets)-len(last)])
	for cut := startUnsynced; cut <= min(len(full), int(w.size)+recordHeader); cut++ { // past that, zeros alike
		for _, garble := range []bool{false, true} {
			c := m.CrashClone(rand.New(rand.NewSource(0)), false)
			f, _ := c.OpenFile("/d/wal/"+seg.name, os.O_WRONLY|os.O_TRUNC, 0)
			data := bytes.Clone(full[:cut])
			if garble && cut > startUnsynced {
				data[cut-1] ^= 0x5a
			}
			f.Write(data)
			f.Sync()
			w2, err := OpenWAL(c, "/d/wal", smallConfig())
			if err != nil {
				t.Fatalf("cut %d garble %v: %v", cut, garble, err)
			}
			got := readAll(t, w2)
			if err := isPrefix(got, all); err != nil || len(got) < len(synced) {
				t.Fatalf("cut %d garble %v: %v, %d records (synced %d)", cut, garble, err, len(got), len(synced))
			}
			// The cut tail is gone for good: appending continues after it.
			next := got[len(got)-1].Seq + 1
			if err := w2.Append([]Record{{Epoch: 3, Seq: next, Data: []byte("x")}}); err != nil {
				t.Fatal(err)
			}
			w2.Close()
		}
	}
}

// TestWALCorruptionInTheMiddleIsAnError flips every bit of the first
// segment and of a middle record of the last one: reopening fails with
// ErrCorrupt naming the file and offset, or (only for bits that only touch
// unused framing) succeeds with every record intact.
func TestWALCorruptionInTheMiddleIsAnError(t *testing.T) {
	m := vfs.NewMem()
	w := openWAL(t, m, smallConfig())
	rng := rand.New(rand.NewSource(3))
	var all []Record
	for i := 0; i < 12; i++ {
		b := makeBatch(rng, 1, uint64(len(all))+1, 2)
		w.Append(b)
		all = append(all, b...)
	}
	first, lastSeg := w.segs[0], w.segs[len(w.segs)-1]
	if len(lastSeg.offsets) < 3 {
		t.Fatalf("last segment holds %d records", len(lastSeg.offsets))
	}
	w.Close()
	check := func(name string, from, to int) {
		data, _ := w.readFile(name)
		for off := from; off < to; off++ {
			for bit := 0; bit < 8; bit++ {
				c := m.CrashClone(rand.New(rand.NewSource(0)), false)
				f, _ := c.OpenFile("/d/wal/"+name, os.O_WRONLY|os.O_TRUNC, 0)
				d := bytes.Clone(data)
				d[off] ^= 1 << bit
				f.Write(d)
				f.Sync()
				_, err := OpenWAL(c, "/d/wal", smallConfig())
				if !errors.Is(err, ErrCorrupt) {
					t.Fatalf("%s byte %d bit %d: %v, want ErrCorrupt", name, off, bit, err)
				}
				if want := fmt.Sprintf("%s offset ", name); !bytes.Contains([]byte(err.Error()), []byte(want)) {
					t.Fatalf("error does not name the file and offset: %v", err)
				}
			}
		}
	}
	data, _ := w.readFile(first.name)
	check(first.name, 0, len(data))
	check(lastSeg.name, 0, int(lastSeg.offsets[1])) // header and first record; a later valid record follows
}

// crashAtEveryStep runs op on a MemFS, taking a crash image before every
// change it makes, and returns the images plus the final one.
func crashAtEveryStep(m *vfs.MemFS, op func()) []*vfs.MemFS {
	var images []*vfs.MemFS
	m.BeforeMutate(func() {
		images = append(images, m.CrashClone(rand.New(rand.NewSource(int64(len(images)))), len(images)%2 == 0))
	})
	op()
	m.BeforeMutate(nil)
	return append(images, m.CrashClone(rand.New(rand.NewSource(0)), false))
}

func TestWALTruncateDropResetSurviveCrashes(t *testing.T) {
	setup := func() (*vfs.MemFS, *WAL, []Record) {
		m := vfs.NewMem()
		w := openWAL(t, m, smallConfig())
		rng := rand.New(rand.NewSource(4))
		var all []Record
		for i := 0; i < 20; i++ {
			b := makeBatch(rng, 1, uint64(len(all))+1, 3)
			w.Append(b)
			all = append(all, b...)
		}
		return m, w, all
	}
	t.Run("truncate", func(t *testing.T) {
		m, w, all := setup()
		const at = 17
		images := crashAtEveryStep(m, func() {
			if err := w.TruncateAfter(at); err != nil {
				t.Fatal(err)
			}
		})
		for i, c := range images {
			got := readAll(t, openWAL(t, c, smallConfig()))
			if err := isPrefix(got, all); err != nil || len(got) < at {
				t.Fatalf("image %d: %v (%d records)", i, err, len(got))
			}
		}
		if got := readAll(t, openWAL(t, images[len(images)-1], smallConfig())); len(got) != at {
			t.Fatalf("after truncate: %d records", len(got))
		}
		if err := w.Append([]Record{{Epoch: 2, Seq: at + 1}}); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("drop", func(t *testing.T) {
		m, w, all := setup()
		images := crashAtEveryStep(m, func() {
			if err := w.DropThrough(30); err != nil {
				t.Fatal(err)
			}
		})
		for i, c := range images {
			w2 := openWAL(t, c, smallConfig())
			got := readAll(t, w2)
			if len(got) == 0 || got[len(got)-1].Seq != uint64(len(all)) || got[0].Seq > 31 {
				t.Fatalf("image %d: records %d..%d", i, got[0].Seq, got[len(got)-1].Seq)
			}
		}
		if w.First().Seq == 0 || w.First().Seq > 30 {
			t.Fatalf("first after drop: %+v", w.First())
		}
	})
	t.Run("reset", func(t *testing.T) {
		m, w, all := setup()
		images := crashAtEveryStep(m, func() {
			if err := w.Reset(7, 500); err != nil {
				t.Fatal(err)
			}
		})
		for i, c := range images {
			w2 := openWAL(t, c, smallConfig())
			got := readAll(t, w2)
			old := len(got) == len(all) && isPrefix(got, all) == nil
			fresh := len(got) == 0 && w2.First() == (Pos{Epoch: 7, Seq: 500})
			if !old && !fresh {
				t.Fatalf("image %d: %d records, first %+v: neither the old log nor the reset one", i, len(got), w2.First())
			}
		}
		if err := w.Append([]Record{{Epoch: 8, Seq: 501}}); err != nil {
			t.Fatal(err)
		}
	})
}

func TestStateFileAtomic(t *testing.T) {
	m := vfs.NewMem()
	m.MkdirAll("/d", 0o700)
	if s, err := LoadState(m, "/d"); err != nil || s.Epoch != 0 {
		t.Fatalf("missing state: %+v %v", s, err)
	}
	if err := SaveState(m, "/d", State{Epoch: 3}); err != nil {
		t.Fatal(err)
	}
	images := crashAtEveryStep(m, func() {
		if err := SaveState(m, "/d", State{Epoch: 4}); err != nil {
			t.Fatal(err)
		}
	})
	for i, c := range images {
		s, err := LoadState(c, "/d")
		if err != nil || (s.Epoch != 3 && s.Epoch != 4) {
			t.Fatalf("image %d: %+v %v", i, s, err)
		}
	}
	f, _ := m.OpenFile("/d/state", os.O_WRONLY|os.O_TRUNC, 0)
	f.Write([]byte(`{"epoch":9}` + "\n00000000\n"))
	if _, err := LoadState(m, "/d"); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("damaged state: %v", err)
	}
}

func FuzzDecodeRecord(f *testing.F) {
	f.Add(appendRecord(nil, Record{Epoch: 1, Seq: 2, Data: []byte("hello")}, false))
	f.Add(appendRecord(nil, Record{Epoch: 0, Seq: 0}, true))
	f.Add([]byte{0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		r, n, err := decodeRecord(b)
		if err != nil {
			return
		}
		if again := appendRecord(nil, r, lastOfAppend(b)); !bytes.Equal(again, b[:n]) {
			t.Fatalf("decode/encode mismatch: %x vs %x", again, b[:n])
		}
	})
}

// TestWALCrashThenPowerLoss: records a killed process wrote but never
// fsynced are in the log a restarted WAL opens; opening makes them durable,
// so a later power loss cannot take back a log end the node has reported.
func TestWALCrashThenPowerLoss(t *testing.T) {
	m := vfs.NewMem()
	cfg := smallConfig()
	cfg.Sync = SyncNone // stands for a process killed between write and fsync
	w := openWAL(t, m, cfg)
	recs := makeBatch(rand.New(rand.NewSource(3)), 1, 1, 3)
	if err := w.Append(recs); err != nil {
		t.Fatal(err)
	}
	w.Close()
	w = openWAL(t, m, smallConfig()) // the restart
	if got := len(readAll(t, w)); got != 3 {
		t.Fatalf("restart sees %d records", got)
	}
	w.Close()
	after := openWAL(t, m.CrashClone(rand.New(rand.NewSource(1)), false), smallConfig())
	if got := readAll(t, after); len(got) != 3 {
		t.Fatalf("after the restart and a power loss: %d records, want 3", len(got))
	}
}

// TestWALTornInPlace: an Append written over zeros may reach the disk
// in any sectors and not others. Whatever it left, recovery keeps every
// record before it and a prefix of it; valid records of two Appends after
// bad bytes are still corruption.
func TestWALTornInPlace(t *testing.T) {
	m := vfs.NewMem()
	cfg := smallConfig()
	cfg.SegmentBytes = 1 << 20
	w := openWAL(t, m, cfg)
	rng := rand.New(rand.NewSource(5))
	var all []Record
	for _, n := range []int{3, 3, 40} {
		b := makeBatch(rng, 1, uint64(len(all))+1, n)
		if err := w.Append(b); err != nil {
			t.Fatal(err)
		}
		all = append(all, b...)
	}
	seg := w.segs[0]
	name := "/d/wal/" + seg.name
	full, _ := w.readFile(seg.name)
	from, to := int(seg.offsets[6]), int(w.size) // the last Append's bytes
	if to-from < 3*512 {
		t.Fatalf("the last Append is %d bytes: too few sectors", to-from)
	}
	w.Close()
	image := func(d []byte) *vfs.MemFS {
		c := m.CrashClone(rand.New(rand.NewSource(0)), false)
		f, _ := c.OpenFile(name, os.O_WRONLY|os.O_TRUNC, 0)
		f.Write(d)
		f.Sync()
		return c
	}
	const sector = 512
	for s := from / sector * sector; s < to; s += sector {
		for _, kept := range []bool{false, true} { // the sector alone lost, or alone kept
			d := bytes.Clone(full)
			for i := max(s, from); i < to; i++ {
				if (i >= s && i < s+sector) != kept {
					d[i] = 0
				}
			}
			w2, err := OpenWAL(image(d), "/d/wal", cfg)
			if err != nil {
				t.Fatalf("sector at %d kept %v: %v", s, kept, err)
			}
			got := readAll(t, w2)
			if err := isPrefix(got, all); err != nil || len(got) < 6 {
				t.Fatalf("sector at %d kept %v: %v, %d records", s, kept, err, len(got))
			}
			if err := w2.Append([]Record{{Epoch: 2, Seq: uint64(len(got)) + 1}}); err != nil {
				t.Fatal(err)
			}
			w2.Close()
		}
	}
	d := bytes.Clone(full)
	d[seg.offsets[1]+recordHeader] ^= 1 // a record of the first Append: valid ones of the next two follow
	if _, err := OpenWAL(image(d), "/d/wal", cfg); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("a bad record followed by two Appends' records: %v, want ErrCorrupt", err)
	}
}

// v1Segment is a segment as older versions wrote it: magic MSWAL001,
// records without the end-of-Append flag, no zeros after them.
func v1Segment(recs []Record) []byte {
	b := encodeSegHeader(0, 0)
	copy(b, segMagicV1)
	binary.LittleEndian.PutUint32(b[24:], crc32.Checksum(b[:24], castagnoli))
	for _, r := range recs {
		b = appendRecord(b, r, false)
	}
	return b
}

// magic is the magic on disk of the WAL's i-th segment.
func magic(w *WAL, i int) string {
	b, _ := w.readFile(w.segs[i].name)
	return string(b[:min(8, len(b))])
}

// TestWALNeverWritesInPlaceAfterUnflaggedRecords: appends never go into a
// segment of an older version, nor after the records of an Append a crash
// or TruncateAfter cut short: a new segment starts. So bad bytes followed by valid records
// there stay ErrCorrupt, as they were, and do not read as a torn tail.
func TestWALNeverWritesInPlaceAfterUnflaggedRecords(t *testing.T) {
	rng := rand.New(rand.NewSource(6))
	old := makeBatch(rng, 1, 1, 50)
	write := func(m *vfs.MemFS, name string, b []byte) {
		t.Helper()
		if err := m.MkdirAll("/d/wal", 0o700); err != nil {
			t.Fatal(err)
		}
		f, err := m.OpenFile("/d/wal/"+name, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o600)
		if err != nil {
			t.Fatal(err)
		}
		f.Write(b)
		f.Sync()
	}
	cfg := smallConfig()
	cfg.SegmentBytes = 1 << 20
	t.Run("older segment", func(t *testing.T) {
		m := vfs.NewMem()
		seg := v1Segment(old)
		write(m, segName(1), seg)
		w := openWAL(t, m, cfg)
		if len(w.segs) != 2 || magic(w, 0) != segMagicV1 || magic(w, 1) != segMagic {
			t.Fatalf("segments after opening an older one: %d", len(w.segs))
		}
		if err := w.Append([]Record{{Epoch: 2, Seq: 51, Data: []byte("new")}}); err != nil {
			t.Fatal(err)
		}
		w.Close()
		if got := readAll(t, openWAL(t, m, cfg)); len(got) != 51 || isPrefix(got[:50], old) != nil {
			t.Fatalf("reopened: %d records", len(got))
		}
		bad := vfs.NewMem()
		seg[segHeader+5*(recordHeader+payloadMin)+recordHeader+2] ^= 1 // record 6, when data is empty; else inside an earlier one
		write(bad, segName(1), seg)
		if _, err := OpenWAL(bad, "/d/wal", cfg); !errors.Is(err, ErrCorrupt) {
			t.Fatalf("a bad record in an older segment, valid ones after it: %v, want ErrCorrupt", err)
		}
	})
	t.Run("empty older segment", func(t *testing.T) {
		m := vfs.NewMem()
		write(m, segName(1), v1Segment(nil))
		w := openWAL(t, m, cfg)
		if len(w.segs) != 1 || magic(w, 0) != segMagic {
			t.Fatalf("an empty older segment is not replaced: %d segments", len(w.segs))
		}
		if err := w.Append(old[:3]); err != nil {
			t.Fatal(err)
		}
		w.Close()
		if got := readAll(t, openWAL(t, m, cfg)); len(got) != 3 {
			t.Fatalf("reopened: %d records", len(got))
		}
	})
	t.Run("cut Append", func(t *testing.T) {
		m := vfs.NewMem()
		w := openWAL(t, m, cfg)
		if err := w.Append(old[:10]); err != nil {
			t.Fatal(err)
		}
		w.Close()
		// A crash kept the first 4 records of the Append, not the rest.
		full, _ := w.readFile(w.segs[0].name)
		d := bytes.Clone(full)
		clear(d[w.segs[0].offsets[4]:])
		write(m, w.segs[0].name, d)
		w = openWAL(t, m, cfg)
		if len(w.segs) != 2 || w.Last().Seq != 4 {
			t.Fatalf("after a cut Append: %d segments, last %d", len(w.segs), w.Last().Seq)
		}
		if err := w.Append(old[4:6]); err != nil {
			t.Fatal(err)
		}
		w.Close()
		d[w.segs[0].offsets[1]+recordHeader] ^= 1
		write(m, w.segs[0].name, d)
		if _, err := OpenWAL(m, "/d/wal", cfg); !errors.Is(err, ErrCorrupt) {
			t.Fatalf("a bad record among a cut Append's: %v, want ErrCorrupt", err)
		}
	})
	t.Run("truncated inside an Append", func(t *testing.T) {
		m := vfs.NewMem()
		w := openWAL(t, m, cfg)
		if err := w.Append(old[:10]); err != nil {
			t.Fatal(err)
		}
		if err := w.TruncateAfter(4); err != nil {
			t.Fatal(err)
		}
		if len(w.segs) != 2 || w.Last().Seq != 4 {
			t.Fatalf("after a truncate inside an Append: %d segments, last %d", len(w.segs), w.Last().Seq)
		}
		if err := w.Append(old[4:6]); err != nil {
			t.Fatal(err)
		}
		w.Close()
		if got := readAll(t, openWAL(t, m, cfg)); len(got) != 6 || isPrefix(got, old) != nil {
			t.Fatalf("reopened: %d records", len(got))
		}
	})
}

// TestWALFillsAhead: appends write over zeros the WAL wrote ahead of
// them, so the segment's size changes once per fillAhead of log, never
// past the segment's size; reopened, the zeros are the log's end, not a
// torn tail, and appends go on over them.
func TestWALFillsAhead(t *testing.T) {
	m := vfs.NewMem()
	log, hook := logtest.NewNullLogger()
	cfg := DefaultWALConfig(log)
	cfg.SegmentBytes = 3*fillAhead + fillAhead/2
	cfg.Sync = SyncNone // each fsync of the MemFS copies the file
	w := openWAL(t, m, cfg)
	data := make([]byte, 64<<10)
	for i := range data {
		data[i] = byte(i)
	}
	sizes := map[string][]int64{} // each segment's sizes, as they change
	seq := uint64(0)
	appendOne := func() {
		t.Helper()
		seq++
		if err := w.Append([]Record{{Epoch: 1, Seq: seq, Data: data}}); err != nil {
			t.Fatal(err)
		}
		name := "/d/wal/" + w.segs[len(w.segs)-1].name
		st, err := m.Lstat(name)
		if err != nil {
			t.Fatal(err)
		}
		if l := sizes[name]; len(l) == 0 || l[len(l)-1] != st.Size() {
			sizes[name] = append(l, st.Size())
		}
		if st.Size() < w.size || st.Size() > max(cfg.SegmentBytes, w.size) {
			t.Fatalf("seq %d: %s holds records to %d in %d bytes", seq, name, w.size, st.Size())
		}
	}
	for range 500 {
		appendOne()
	}
	if len(w.segs) < 3 {
		t.Fatalf("%d segments: rolling over untested", len(w.segs))
	}
	for name, l := range sizes {
		if len(l) > 4 {
			t.Errorf("%s: sizes %v, want at most 4", name, l)
		}
	}
	end := w.size
	w.Close()
	hook.Reset()
	w = openWAL(t, m, cfg)
	if w.size != end || w.Last().Seq != seq || len(hook.Entries) > 1 { // the one entry: sync=none
		t.Fatalf("reopened: records end at %d (was %d), last %d (was %d), log %v", w.size, end, w.Last().Seq, seq, hook.AllEntries())
	}
	appendOne()
	if got := readAll(t, w); len(got) != int(seq) || !bytes.Equal(got[seq-1].Data, data) {
		t.Fatalf("after reopening: %d records", len(got))
	}
}

// TestWALSectorTornAppends crashes a run of appends before every change
// they make, the unsynced bytes torn (a prefix, or each 512-byte sector
// kept or lost on its own: a hole before bytes that reached the disk):
// recovery returns a prefix of what was written holding every record of
// the appends that had returned.
func TestWALSectorTornAppends(t *testing.T) {
	cfg := smallConfig()
	cfg.SegmentBytes = 16 << 10
	m := vfs.NewMem()
	w := openWAL(t, m, cfg)
	rng := rand.New(rand.NewSource(7))
	var all []Record
	done := 0 // records of the appends that have returned
	type image struct {
		fs   *vfs.MemFS
		done int
	}
	var images []image
	m.BeforeMutate(func() {
		images = append(images, image{m.CrashClone(rand.New(rand.NewSource(int64(len(images)))), true), done})
	})
	for range 60 {
		b := makeBatch(rng, 1, uint64(len(all))+1, 1+rng.Intn(30))
		if err := w.Append(b); err != nil {
			t.Fatal(err)
		}
		all = append(all, b...)
		done = len(all)
	}
	m.BeforeMutate(nil)
	if len(images) < 120 {
		t.Fatalf("%d crash images: too few changes seen", len(images))
	}
	for i, c := range images {
		got := readAll(t, openWAL(t, c.fs, cfg))
		if err := isPrefix(got, all); err != nil || len(got) < c.done {
			t.Fatalf("image %d: %v: %d records, %d had returned", i, err, len(got), c.done)
		}
	}
}
