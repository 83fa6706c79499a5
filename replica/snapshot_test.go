package replica

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/sirupsen/logrus"

	"memstore/bus"
	"memstore/internal/natstest"
	"memstore/replica/storage/vfs"
	"memstore/replica/tree"
)

// snapSource is a tree of about 5 MB (ten chunks or so) served on
// test.snap by a snapServer over a real NATS server; served counts the
// chunk requests it has answered.
func snapSource(t *testing.T) (*tree.Tree, *nats.Conn, *atomic.Int64) {
	t.Helper()
	_, nc, log := natstest.Start(t)
	src, err := tree.Open(vfs.NewMem(), "/src", tree.DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	value := []byte(`"` + string(bytes.Repeat([]byte{'v'}, 2000)) + `"`)
	seq := uint64(0)
	for v := 0; v < 60; v++ {
		for p := 0; p < 40; p++ {
			seq++
			ts := time.Date(2026, 1, 1, 0, 0, int(seq), 0, time.UTC).Format(time.RFC3339Nano)
			if _, err := src.Apply(1, seq, ts, "u", []tree.Put{{Path: fmt.Sprintf("site%d/dev%d", p%4, p), Value: value}}); err != nil {
				t.Fatal(err)
			}
		}
	}
	srv := newSnapServer(src, log)
	t.Cleanup(srv.close)
	served := &atomic.Int64{}
	if _, err := nc.Subscribe("test.snap", func(m *nats.Msg) {
		srv.serve(m)
		served.Add(1)
	}); err != nil {
		t.Fatal(err)
	}
	return src, nc, served
}

// TestPullSnapshotRoundTrip: a snapshot of several chunks pulled over NATS
// and installed holds every version of every path of the source.
func TestPullSnapshotRoundTrip(t *testing.T) {
	src, nc, _ := snapSource(t)
	dst, err := tree.Open(vfs.NewMem(), "/dst", tree.DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	in, err := dst.NewInstaller()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	at, err := pullSnapshot(ctx, nc, "test.snap", in)
	if err != nil {
		t.Fatal(err)
	}
	if at.Seq != 2400 || at.Seq != src.AppliedPoint().Seq {
		t.Fatalf("pulled up to %+v, source at %+v", at, src.AppliedPoint())
	}
	if err := dst.Install(in); err != nil {
		t.Fatal(err)
	}
	for p := 0; p < 40; p++ {
		path := fmt.Sprintf("site%d/dev%d", p%4, p)
		want, _, err := src.HistoryJSON(path, tree.HistoryQuery{})
		if err != nil {
			t.Fatal(err)
		}
		got, _, err := dst.HistoryJSON(path, tree.HistoryQuery{})
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != 60 || fmt.Sprintf("%s", got) != fmt.Sprintf("%s", want) {
			t.Fatalf("%s: %d versions installed, source has %d, or they differ", path, len(got), len(want))
		}
	}
}

// TestFetchChunksKeepsAWindowInFlight: while the fetcher hands chunk 1 on
// (to a slow writer), the server has already been asked for the chunks
// up to 1+snapWindow, so the leader never waits for the writer.
func TestFetchChunksKeepsAWindowInFlight(t *testing.T) {
	_, nc, served := snapSource(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var chunks int
	err := fetchChunks(ctx, nc, "test.snap", func(c tree.Chunk) error {
		chunks++
		if c.Index != 1 {
			return nil
		}
		for served.Load() < 2+snapWindow {
			select {
			case <-ctx.Done():
				return fmt.Errorf("while chunk 1 is written, %d requests served, want %d", served.Load(), 2+snapWindow)
			case <-time.After(time.Millisecond):
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if chunks <= 2+snapWindow {
		t.Fatalf("%d chunks: too few to show the window", chunks)
	}
}

// TestFetchChunksFails: a subject nobody serves fails at once (no
// responders), not after the chunk timeout; an error reply or a failing
// writer ends the fetch with that error.
func TestFetchChunksFails(t *testing.T) {
	_, nc, _ := snapSource(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	start := time.Now()
	err := fetchChunks(ctx, nc, "test.nobody", func(tree.Chunk) error { return nil })
	if !errors.Is(err, nats.ErrNoResponders) || time.Since(start) > 5*time.Second {
		t.Fatalf("fetch from nobody: %v after %v, want no responders at once", err, time.Since(start))
	}
	if _, err := nc.Subscribe("test.busy", func(m *nats.Msg) {
		_ = m.Respond(bus.ErrorReply(bus.Errorf(bus.CodeUnavailable, "too busy")))
	}); err != nil {
		t.Fatal(err)
	}
	err = fetchChunks(ctx, nc, "test.busy", func(tree.Chunk) error { return nil })
	if err == nil || !strings.Contains(err.Error(), "too busy") {
		t.Fatalf("an error reply: %v", err)
	}
	stop := errors.New("writer failed")
	err = fetchChunks(ctx, nc, "test.snap", func(c tree.Chunk) error {
		if c.Index == 2 {
			return stop
		}
		return nil
	})
	if !errors.Is(err, stop) {
		t.Fatalf("a failing writer: %v", err)
	}
	// The session of that fetch is still open on the server at chunk 3; a
	// new fetch starts a session of its own and gets every chunk.
	var last tree.Chunk
	if err := fetchChunks(ctx, nc, "test.snap", func(c tree.Chunk) error { last = c; return nil }); err != nil || !last.Last {
		t.Fatalf("second fetch: %v, last chunk %d (last %v)", err, last.Index, last.Last)
	}
}

// TestRetentionClosesIdleSnapshotSessions: a session its fetcher gave up
// on holds the tree's retention back only until it has been idle for
// snapIdle; then compact closes it and drops what the rules say.
func TestRetentionClosesIdleSnapshotSessions(t *testing.T) {
	src, _ := twoChunkTree(t)
	versions := func() int {
		t.Helper()
		vs, _, err := src.History("a", tree.HistoryQuery{})
		if err != nil {
			t.Fatal(err)
		}
		return len(vs)
	}
	srv := newSnapServer(src, logrus.New())
	defer srv.close()
	srv.serve(&nats.Msg{Data: []byte(`{"session":"","index":0}`)}) // the first chunk of a session nobody asks on from
	if len(srv.sessions) != 1 {
		t.Fatalf("%d sessions open, want 1", len(srv.sessions))
	}
	if err := srv.compact(time.Now()); err != nil {
		t.Fatal(err)
	}
	if got := versions(); got != 5 {
		t.Fatalf("%d versions while the session may still be used, want all 5", got)
	}
	if err := srv.compact(time.Now().Add(snapIdle + time.Second)); err != nil {
		t.Fatal(err)
	}
	if got := versions(); got != 2 {
		t.Fatalf("%d versions after the idle session expired, want the 2 the rule keeps", got)
	}
}

// TestFailedSnapshotSessionCloses: a session whose chunk could not be read
// is closed at once; it could not go on, and would hold retention back.
func TestFailedSnapshotSessionCloses(t *testing.T) {
	src, fsys := twoChunkTree(t)
	srv := newSnapServer(src, logrus.New())
	defer srv.close()
	srv.serve(&nats.Msg{Data: []byte(`{"session":"","index":0}`)})
	if len(srv.sessions) != 1 {
		t.Fatalf("%d sessions open, want 1", len(srv.sessions))
	}
	if err := fsys.RemoveAll("/src/tree/big"); err != nil { // the second chunk's files
		t.Fatal(err)
	}
	for id := range srv.sessions {
		srv.serve(&nats.Msg{Data: []byte(`{"session":"` + id + `","index":1}`)})
	}
	if len(srv.sessions) != 0 {
		t.Fatalf("%d sessions open after a chunk failed, want 0", len(srv.sessions))
	}
}

// twoChunkTree is a tree whose snapshot takes two chunks, every line
// written to its file: 5 versions of a (under a retention rule keeping
// 2), one of each of big/6 to big/305.
func twoChunkTree(t *testing.T) (*tree.Tree, *vfs.MemFS) {
	t.Helper()
	cfg := tree.DefaultConfig()
	cfg.Retention = []tree.Rule{{MaxVersions: 2}}
	fsys := vfs.NewMem()
	src, err := tree.Open(fsys, "/src", cfg)
	if err != nil {
		t.Fatal(err)
	}
	big := []byte(`"` + strings.Repeat("v", 2000) + `"`)
	for seq := uint64(1); seq <= 305; seq++ {
		ts := time.Date(2026, 1, 1, 0, 0, int(seq), 0, time.UTC).Format(time.RFC3339Nano)
		put := tree.Put{Path: "a", Value: []byte("1")}
		if seq > 5 {
			put = tree.Put{Path: fmt.Sprintf("big/%d", seq), Value: big}
		}
		if _, err := src.Apply(1, seq, ts, "u", []tree.Put{put}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := src.Checkpoint(); err != nil {
		t.Fatal(err)
	}
	return src, fsys
}
