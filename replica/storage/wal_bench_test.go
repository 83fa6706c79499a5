package storage

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"memstore/replica/storage/vfs"
)

// BenchmarkWALAppend measures group commit on the real disk: batches of 1,
// 16 and 256 records of 64 bytes, each batch one append + one fsync. In the
// same run it measures the raw limit, the same bytes appended to a plain
// file with fdatasync, and reports WAL / raw.
func BenchmarkWALAppend(b *testing.B) {
	for _, batch := range []int{1, 16, 256} {
		b.Run(fmt.Sprintf("batch=%d", batch), func(b *testing.B) {
			dir := b.TempDir()
			cfg := DefaultWALConfig(testLogger())
			w, err := OpenWAL(vfs.OS, filepath.Join(dir, "wal"), cfg)
			if err != nil {
				b.Fatal(err)
			}
			defer w.Close()
			data := make([]byte, 64)
			recs := make([]Record, batch)
			seq := uint64(0)
			b.ResetTimer()
			start := time.Now()
			for i := 0; i < b.N; i++ {
				for j := range recs {
					seq++
					recs[j] = Record{Epoch: 1, Seq: seq, Data: data}
				}
				if err := w.Append(recs); err != nil {
					b.Fatal(err)
				}
			}
			walRate := float64(b.N*batch) / time.Since(start).Seconds()
			b.StopTimer()
			rawRate := rawAppendRate(b, filepath.Join(dir, "raw"), b.N, batch*len(appendRecord(nil, recs[0], false)))
			b.ReportMetric(walRate, "records/s")
			b.ReportMetric(rawRate, "raw-records/s")
			b.ReportMetric(walRate/rawRate, "wal/raw")
		})
	}
}

// rawAppendRate appends n chunks of size bytes to a plain file, each followed
// by fdatasync, and returns records per second at batch records per chunk.
func rawAppendRate(b *testing.B, path string, n, size int) float64 {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	buf := make([]byte, size)
	start := time.Now()
	for i := 0; i < n; i++ {
		if _, err := f.Write(buf); err != nil {
			b.Fatal(err)
		}
		if err := unix.Fdatasync(int(f.Fd())); err != nil {
			b.Fatal(err)
		}
	}
	perChunk := size / (recordHeader + payloadMin + 64)
	return float64(n*perChunk) / time.Since(start).Seconds()
}

// BenchmarkWALRecovery opens and replays a WAL of 1,000,000 records.
func BenchmarkWALRecovery(b *testing.B) {
	const total = 1_000_000
	dir := filepath.Join(b.TempDir(), "wal")
	cfg := DefaultWALConfig(testLogger())
	cfg.Sync = SyncNone
	w, err := OpenWAL(vfs.OS, dir, cfg)
	if err != nil {
		b.Fatal(err)
	}
	data := make([]byte, 64)
	recs := make([]Record, 1000)
	for seq := uint64(1); seq <= total; {
		for j := range recs {
			recs[j] = Record{Epoch: 1, Seq: seq, Data: data}
			seq++
		}
		if err := w.Append(recs); err != nil {
			b.Fatal(err)
		}
	}
	w.Close()
	b.ResetTimer()
	start := time.Now()
	for i := 0; i < b.N; i++ {
		w, err := OpenWAL(vfs.OS, dir, DefaultWALConfig(testLogger()))
		if err != nil {
			b.Fatal(err)
		}
		n := 0
		if err := w.Replay(0, func(Record) error { n++; return nil }); err != nil || n != total {
			b.Fatalf("replayed %d: %v", n, err)
		}
		w.Close()
	}
	b.ReportMetric(float64(b.N*total)/time.Since(start).Seconds(), "records/s")
}
