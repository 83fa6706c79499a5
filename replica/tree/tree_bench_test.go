package tree

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"testing"
	"time"

	"memstore/replica/storage/vfs"
)

// BenchmarkApply measures applying single-put entries to existing paths of
// the on-disk tree (creating a path's folders is measured apart: it costs
// what mkdir costs on the disk).
func BenchmarkApply(b *testing.B) {
	tr := openTree(b, vfs.OS, b.TempDir(), DefaultConfig())
	value := json.RawMessage(`{"temp":21.5,"unit":"C","ok":true,"pad":"0123456789"}`)
	for i := 0; i < 1000; i++ {
		_, _ = tr.Apply(1, uint64(i+1), tsOf(uint64(i+1)), "sensor", []Put{{Path: fmt.Sprintf("site/dev%d/temp", i), Value: value}})
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		seq := uint64(i + 1001)
		if _, err := tr.Apply(1, seq, tsOf(seq), "sensor", []Put{{Path: fmt.Sprintf("site/dev%d/temp", i%1000), Value: value}}); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "versions/s")
}

// BenchmarkOpen measures rebuilding the index of 100,000 versions over
// 10,000 paths at start.
func BenchmarkOpen(b *testing.B) {
	dir := b.TempDir()
	tr := openTree(b, vfs.OS, dir, DefaultConfig())
	for seq := uint64(1); seq <= 100_000; seq++ {
		_, _ = tr.Apply(1, seq, tsOf(seq), "u", []Put{{Path: fmt.Sprintf("s%d/d%d/t", seq%100, (seq/100)%100), Value: json.RawMessage(`21.5`)}})
	}
	tr.Checkpoint()
	b.ResetTimer()
	start := time.Now()
	for i := 0; i < b.N; i++ {
		openTree(b, vfs.OS, dir, DefaultConfig())
	}
	b.ReportMetric(float64(b.N*100_000)/time.Since(start).Seconds(), "versions/s")
}

// BenchmarkMemoryPerVersion loads versions into a MemFS-backed tree and
// reports the RAM the index holds per version: recent ones (within the
// window) against their encoded size, and old ones (beyond it).
func BenchmarkMemoryPerVersion(b *testing.B) {
	value := json.RawMessage(`{"temp":21.5,"unit":"C","ok":true,"pad":"0123456789"}`)
	line, _ := json.Marshal(Version{Seq: 123456, TS: tsOf(123456), User: "sensor", Value: value})
	measure := func(paths, perPath int) float64 {
		tr := openTree(b, vfs.NewMem(), "/d", DefaultConfig())
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		seq := uint64(0)
		for v := 0; v < perPath; v++ {
			for p := 0; p < paths; p++ {
				seq++
				_, _ = tr.Apply(1, seq, tsOf(seq), "sensor", []Put{{Path: fmt.Sprintf("site/dev%d/temp", p), Value: value}})
			}
		}
		runtime.GC()
		runtime.ReadMemStats(&after)
		runtime.KeepAlive(tr)
		// The MemFS holds the file bytes too; count only the index.
		return (float64(after.HeapAlloc-before.HeapAlloc) - float64(seq)*float64(len(line)+1)) / float64(seq)
	}
	for i := 0; i < b.N; i++ {
		recent := measure(1000, 64)  // all within the window
		old := measure(100, 64+1000) // most beyond it
		b.ReportMetric(recent, "B/recent-version")
		b.ReportMetric(recent/float64(len(line)), "recent/encoded")
		b.ReportMetric((old*float64(64+1000)-recent*64)/1000, "B/old-version")
	}
}

// BenchmarkAggregate1M measures, over 1,000,000 numeric versions of one
// path, the aggregate in the store (whole range, and in 1-minute buckets)
// against a plain history read of the same versions paged through to the
// end, all in process (no network: the ratio a client sees is larger).
func BenchmarkAggregate1M(b *testing.B) {
	const total = 1_000_000
	dir := b.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, treeDir, "plant", "temp"), 0o700); err != nil {
		b.Fatal(err)
	}
	f, err := os.Create(filepath.Join(dir, treeDir, "plant", "temp", versionsFile))
	if err != nil {
		b.Fatal(err)
	}
	w := bufio.NewWriter(f)
	for seq := uint64(1); seq <= total; seq++ {
		line, _ := json.Marshal(Version{Seq: seq, TS: epoch0.Add(time.Duration(seq) * 100 * time.Millisecond).Format(time.RFC3339Nano),
			User: "sensor", Value: json.RawMessage(strconv.FormatFloat(20+float64(seq%1000)/100, 'f', -1, 64))})
		w.Write(append(line, '\n'))
	}
	if err := w.Flush(); err != nil {
		b.Fatal(err)
	}
	f.Close()
	tr := openTree(b, vfs.OS, dir, DefaultConfig())
	var hist, agg, buckets time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		t0 := time.Now()
		n, after := 0, uint64(0)
		for {
			vs, more, err := tr.History("plant/temp", HistoryQuery{AfterSeq: after})
			if err != nil {
				b.Fatal(err)
			}
			n += len(vs)
			if !more {
				break
			}
			after = vs[len(vs)-1].Seq
		}
		t1 := time.Now()
		a, err := tr.Aggregate("plant/temp", AggQuery{})
		t2 := time.Now()
		ab, err2 := tr.Aggregate("plant/temp", AggQuery{Every: time.Minute})
		t3 := time.Now()
		if err != nil || err2 != nil || n != total || a.Count != total || a.Numeric != total || len(ab.Buckets) != total/600+1 {
			b.Fatalf("history %d, agg %+v %v, %d buckets %v", n, a.Stats, err, len(ab.Buckets), err2)
		}
		hist, agg, buckets = hist+t1.Sub(t0), agg+t2.Sub(t1), buckets+t3.Sub(t2)
	}
	per := func(d time.Duration) float64 { return d.Seconds() * 1000 / float64(b.N) }
	b.ReportMetric(per(hist), "history-ms")
	b.ReportMetric(per(agg), "agg-ms")
	b.ReportMetric(per(buckets), "agg-1m-ms")
	b.ReportMetric(hist.Seconds()/agg.Seconds(), "history/agg")
	b.ReportMetric(total/(agg.Seconds()/float64(b.N)), "agg-versions/s")
}

// BenchmarkSubtreePages pages through one folder of 20,000 paths, 1,000 a
// page: a page costs the same wherever the cursor is.
func BenchmarkSubtreePages(b *testing.B) {
	tr := openTree(b, vfs.NewMem(), "/d", DefaultConfig())
	for i := 0; i < 20_000; i++ {
		seq := uint64(i + 1)
		if _, err := tr.Apply(1, seq, tsOf(seq), "u", []Put{{Path: fmt.Sprintf("f/p%05d", i), Value: json.RawMessage(`1`)}}); err != nil {
			b.Fatal(err)
		}
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		after, n := "", 0
		for {
			page, more, err := tr.Subtree("f", time.Time{}, after, 1000)
			if err != nil {
				b.Fatal(err)
			}
			n += len(page)
			if !more {
				break
			}
			after = page[len(page)-1].Path
		}
		if n != 20_000 {
			b.Fatalf("%d paths paged", n)
		}
	}
}

// BenchmarkParseLine measures reading a version's line as Apply writes it
// (a snapshot's receiver and Open read every line).
func BenchmarkParseLine(b *testing.B) {
	line, _ := json.Marshal(Version{Seq: 123456, TS: "2026-12-06T14:25:41.123456789Z", User: "sensor",
		Value: json.RawMessage(`{"temp":21.5,"unit":"C","ok":true,"pad":"0123456789"}`)})
	b.SetBytes(int64(len(line)))
	for b.Loop() {
		if _, ok := parseCanonical(line); !ok {
			b.Fatal("not read directly")
		}
	}
}

// BenchmarkHistoryPage reads pages of 1,000 versions of a path holding
// 10,000, on the disk, from the older ones (beyond the recent versions
// kept in memory).
func BenchmarkHistoryPage(b *testing.B) {
	tr := openTree(b, vfs.OS, b.TempDir(), DefaultConfig())
	value := json.RawMessage(`{"temp":21.5,"unit":"C","ok":true,"pad":"0123456789"}`)
	for seq := uint64(1); seq <= 10_000; seq++ {
		if _, err := tr.Apply(1, seq, tsOf(seq), "sensor", []Put{{Path: "site/dev/temp", Value: value}}); err != nil {
			b.Fatal(err)
		}
	}
	tr.Checkpoint()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		page, _, err := tr.HistoryJSON("site/dev/temp", HistoryQuery{AfterSeq: uint64(i%9) * 1000, Limit: 1000})
		if err != nil || len(page) != 1000 {
			b.Fatalf("%d versions, %v", len(page), err)
		}
	}
	b.ReportMetric(float64(b.N*1000)/b.Elapsed().Seconds(), "versions/s")
}

// BenchmarkInstall measures receiving a snapshot of 2,000 paths of 100
// versions each (W5's shape, a fifth of its paths) into a fresh tree on
// disk: decoding the chunks, indexing them and writing the staged files,
// up to Install (whose one syncfs is left out).
func BenchmarkInstall(b *testing.B) {
	src := openTree(b, vfs.OS, b.TempDir(), DefaultConfig())
	value := json.RawMessage(`{"temp":21.5,"unit":"C"}`)
	for seq := uint64(1); seq <= 100; seq++ {
		puts := make([]Put, 2000)
		for i := range puts {
			puts[i] = Put{Path: fmt.Sprintf("site%d/dev%d/temp", i/100, i%100), Value: value}
		}
		apply(b, src, seq, puts...)
	}
	if _, err := src.Checkpoint(); err != nil {
		b.Fatal(err)
	}
	snap := src.Snapshot()
	var wire [][]byte
	size := 0
	for {
		c, err := snap.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			b.Fatal(err)
		}
		wire = append(wire, MarshalChunk(c))
		for _, cp := range c.Paths {
			size += len(cp.Lines)
		}
	}
	snap.Close()
	dir := b.TempDir()
	b.SetBytes(int64(size))
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		dst := openTree(b, vfs.OS, filepath.Join(dir, strconv.Itoa(i)), DefaultConfig())
		in, err := dst.NewInstaller()
		if err != nil {
			b.Fatal(err)
		}
		for _, w := range wire {
			c, err := UnmarshalChunk(w)
			if err != nil {
				b.Fatal(err)
			}
			if err := in.Add(c); err != nil {
				b.Fatal(err)
			}
		}
	}
}
