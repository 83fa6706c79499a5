package bench

import (
	"context"
	"errors"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"memstore/internal/proc"
)

func TestMedian(t *testing.T) {
	for _, c := range []struct {
		in   []float64
		want float64
	}{{[]float64{3, 1, 2}, 2}, {[]float64{4, 1, 3, 2}, 2.5}, {[]float64{7}, 7}, {nil, 0}} {
		if got := median(c.in); got != c.want {
			t.Errorf("median(%v) = %v, want %v", c.in, got, c.want)
		}
	}
}

// TestTable: every memstore row is divided by its JetStream sync=always
// row (for W3 the faster history read) and by its physical limit (none
// for JetStream's default sync, which does not fsync, nor for etcd's
// reads), medians against medians.
func TestTable(t *testing.T) {
	rows := []Row{
		{Workload: "limit", Params: "append 64 B + fdatasync, 64 per sync", System: Limit, Unit: "records/s", Values: []float64{100000, 90000, 110000}},
		{Workload: "limit", Params: "NATS request-reply, 32 requesters", System: Limit, Unit: "ops/s", Values: []float64{40000}},
		{Workload: "W1", Params: "durable puts, 64 B, 64 writers", System: MS3, Unit: "ops/s", Values: []float64{10000, 12000, 11000}, P50: []float64{5, 6, 5}, P99: []float64{9, 12, 10}, CPU: []float64{140, 120, 131}},
		{Workload: "W1", Params: "durable puts, 64 B, 64 writers", System: JSSync, Unit: "ops/s", Values: []float64{5000, 5500, 4000}},
		{Workload: "W2", Params: "linearizable get, 16 readers", System: MS3, Unit: "ops/s", Values: []float64{20000}},
		{Workload: "W2", Params: "direct get, 16 readers", System: JSSync, Unit: "ops/s", Values: []float64{10000}},
		{Workload: "W1", Params: "durable puts, 64 B, 64 writers", System: Etcd, Unit: "ops/s", Values: []float64{5500}},
		{Workload: "W2", Params: "stale get, 16 readers", System: MS3, Unit: "ops/s", Values: []float64{12000}},
		{Workload: "W2", Params: "serializable get, 16 readers", System: Etcd, Unit: "ops/s", Values: []float64{8000}},
		{Workload: "limit", Params: "append 64 B + fdatasync, 1 per sync", System: Limit, Unit: "records/s", Values: []float64{5000}},
		{Workload: "W1", Params: "durable puts, 64 B, 1 writers", System: MS3, Unit: "ops/s", Values: []float64{1000}},
		{Workload: "W1", Params: "durable puts, 64 B, 64 writers", System: JSDefault, Unit: "ops/s", Values: []float64{20000, 40000, 11000}},
		{Workload: "W3", Params: "history of 64 values, 16 readers", System: MS3, Unit: "ops/s", Values: []float64{8000}},
		{Workload: "W3", Params: "history of 64 values, 16 readers, KV History", System: JSSync, Unit: "ops/s", Values: []float64{500}},
		{Workload: "W3", Params: "history of 64 values, 16 readers, one batched direct get", System: JSSync, Unit: "ops/s", Values: []float64{4000}},
		{Workload: "W4", Params: failoverGap, System: MS3, Unit: "s", Values: []float64{0.9, 0.8, 1.1}},
		{Workload: "W4", Params: "acknowledged puts lost", System: MS3, Unit: "puts", Values: []float64{0, 0, 0}},
		{Workload: "W4", Params: failoverGap, System: JSSync, Unit: "s", Values: []float64{3, 4, 2.5}},
		{Workload: "W4", Params: "acknowledged puts lost", System: JSSync, Unit: "puts", Values: []float64{0, 0, 0}},
		{Workload: "W5", Params: catchUpRate, System: MS3, Unit: "MB/s", Values: []float64{60}},
		{Workload: "W5", Params: catchUpRate, System: JSSync, Unit: "MB/s", Values: []float64{20}},
	}
	var b strings.Builder
	if err := Table(&b, rows); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		// Against JetStream the median of each round's ratio (2.00, 2.18,
		// 2.75; against its default sync 0.50, 0.30, 1.00), not of the
		// medians (2.20; 0.55); against the limit, measured before the
		// rounds, the medians'.
		"| W1 | durable puts, 64 B, 64 writers | memstore 3 nodes | 11000 (10000–12000) ops/s | 5.00 (5.00–6.00) | 10.00 (9.00–12.00) | 131 (120–140) | 2.18× | 0.50× | 2.00× | 0.11× |",
		"| W2 | linearizable get, 16 readers | memstore 3 nodes | 20000 ops/s |  |  |  | 2.00× |  |  | 0.50× |",
		"| W2 | stale get, 16 readers | memstore 3 nodes | 12000 ops/s |  |  |  | 1.20× |  | 1.50× | 0.30× |",
		"| W1 | durable puts, 64 B, 64 writers | JetStream KV sync=always | 5000 (4000–5500) ops/s |  |  |  |  |  |  | 0.05× |",
		"| W1 | durable puts, 64 B, 64 writers | etcd 3 servers | 5500 ops/s |  |  |  | 1.10× |  |  | 0.06× |",
		"| W2 | serializable get, 16 readers | etcd 3 servers | 8000 ops/s |  |  |  | 0.80× |  |  |  |",
		"| W1 | durable puts, 64 B, 1 writers | memstore 3 nodes | 1000 ops/s |  |  |  |  |  |  | 0.20× |",
		"| W1 | durable puts, 64 B, 64 writers | JetStream KV default sync | 20000 (11000–40000) ops/s |  |  |  | 4.00× |  |  |  |",
		"| W3 | history of 64 values, 16 readers | memstore 3 nodes | 8000 ops/s |  |  |  | 2.00× |  |  | 0.20× |",
		"| W4 | " + failoverGap + " | memstore 3 nodes | 0.90 (0.80–1.10) s |  |  |  | 0.30× |  |  |  |",
		"| W4 | acknowledged puts lost | memstore 3 nodes | 0 (0–0) puts |  |  |  |  |  |  |  |",
		"| W5 | " + catchUpRate + " | memstore 3 nodes | 60.00 MB/s |  |  |  | 3.00× |  |  |  |",
	} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("table lacks\n%s\nin\n%s", want, b.String())
		}
	}
	if strings.Contains(b.String(), noEtcd) {
		t.Errorf("a table with etcd rows says it has none:\n%s", b.String())
	}
	// Without etcd the legend says so, and why the column is empty.
	b.Reset()
	if err := Table(&b, slices.DeleteFunc(slices.Clone(rows), func(r Row) bool { return r.System == Etcd })); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(b.String(), noEtcd) {
		t.Errorf("a table without etcd rows does not say so:\n%s", b.String())
	}
	// Nor does a table of W5 alone need etcd.
	b.Reset()
	if err := Table(&b, rows[len(rows)-2:]); err != nil || !strings.Contains(b.String(), "| W5 |") {
		t.Fatalf("a W5 table: %v\n%s", err, b.String())
	}
	if strings.Contains(b.String(), noEtcd) {
		t.Errorf("a W5 table says etcd is missing:\n%s", b.String())
	}
}

func TestMeasure(t *testing.T) {
	// One call in 25 takes 30 ms, the rest 1 ms: the p50 sees the fast
	// ones, the p99 the slow ones.
	s, err := measure(context.Background(), 4, 400*time.Millisecond, func(_ context.Context, _, i int) error {
		d := time.Millisecond
		if i%25 == 24 {
			d = 30 * time.Millisecond
		}
		time.Sleep(d)
		return nil
	})
	if err != nil || s.ops <= 0 || s.p50 < 1 || s.p50 > 10 || s.p99 < 25 {
		t.Fatalf("p50 %.1f ms (want 1–10), p99 %.1f ms (want ≥ 25), %.0f ops/s: %v", s.p50, s.p99, s.ops, err)
	}
	if measured := int(s.ops*0.4 + 0.5); s.done < measured+4 { // each worker did some in the warm-up
		t.Fatalf("%d operations done in all, %d measured", s.done, measured)
	}
	cut, cancel := context.WithCancel(context.Background())
	time.AfterFunc(50*time.Millisecond, cancel)
	if _, err := measure(cut, 2, time.Second, func(context.Context, int, int) error { return nil }); !errors.Is(err, context.Canceled) {
		t.Fatalf("an interrupted measurement gave %v, not context.Canceled", err)
	}
	boom := errors.New("boom")
	if _, err := measure(context.Background(), 2, 100*time.Millisecond, func(context.Context, int, int) error { return boom }); !errors.Is(err, boom) {
		t.Fatalf("error not returned: %v", err)
	}
}

func TestRawAppend(t *testing.T) {
	rate, err := rawAppend(context.Background(), t.TempDir(), 64, 100*time.Millisecond)
	if err != nil || rate <= 0 {
		t.Fatalf("%v %v", rate, err)
	}
}

func TestRunRefusesMemoryFilesystem(t *testing.T) {
	if !inMemory("/dev/shm") {
		t.Skip("no tmpfs at /dev/shm here")
	}
	dir, err := os.MkdirTemp("/dev/shm", "bench")
	if err != nil {
		t.Skip(err)
	}
	defer os.RemoveAll(dir)
	if _, err := Run(context.Background(), Config{Dir: dir}); err == nil || !strings.Contains(err.Error(), "tmpfs") {
		t.Fatalf("a run on tmpfs: %v", err)
	}
}

// TestFailoverOnce: a fake cluster refuses puts for 400 ms after the kill
// and drops one put it acknowledged: the gap covers the outage and the
// lost put is counted.
func TestFailoverOnce(t *testing.T) {
	var mu sync.Mutex
	var killed time.Time
	stored := map[[2]int]bool{}
	dropped := false
	target := failoverTarget{
		put: func(_ context.Context, w, i int) error {
			time.Sleep(time.Millisecond)
			mu.Lock()
			defer mu.Unlock()
			if !killed.IsZero() && time.Since(killed) < 400*time.Millisecond {
				return errors.New("no leader")
			}
			if !killed.IsZero() && !dropped {
				dropped = true // acknowledged, never stored
				return nil
			}
			stored[[2]int{w, i}] = true
			return nil
		},
		kill: func() {
			mu.Lock()
			killed = time.Now()
			mu.Unlock()
		},
		stored: func(context.Context) (map[[2]int]bool, error) { return stored, nil },
	}
	gap, missing, acked, err := failoverOnce(context.Background(), target, 300*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	// The outage lasts 400 ms from the kill, but a put that passed the
	// check just before it is acknowledged just after: the gap from that
	// ack may be a little shorter (399.2 ms seen in CI). Without the
	// outage it would be about a millisecond.
	if gap < 300*time.Millisecond || gap > 2*time.Second || missing != 1 || acked < 100 {
		t.Fatalf("gap %v (want 300 ms to 2 s), %d of %d acknowledged lost (want 1)", gap, missing, acked)
	}
	mu.Lock()
	defer mu.Unlock()
	if since := time.Since(killed); since < time.Second {
		t.Fatalf("the writers stopped %v after the kill, before a second of acknowledgements", since)
	}
}

// TestSideBySide: each repetition measures every system in turn, one
// further along each time, and each measurement lands in its own row;
// only systems that are read are prefilled.
func TestSideBySide(t *testing.T) {
	var mu sync.Mutex
	var order []string
	prefilled := map[string]bool{}
	fake := func(system string, kinds ...string) *target {
		tg := &target{system: system, put: func(_ context.Context, key string, _ []byte) error {
			time.Sleep(50 * time.Microsecond) // a request's round trip, not a spin
			mu.Lock()
			defer mu.Unlock()
			if key == "h" {
				prefilled[system] = true
			}
			if strings.HasPrefix(key, "w") && (len(order) == 0 || order[len(order)-1] != system) {
				order = append(order, system) // a measurement's first put
			}
			return nil
		}}
		for _, k := range kinds {
			tg.gets = append(tg.gets, getKind{k, func(context.Context, string) error { time.Sleep(50 * time.Microsecond); return nil }})
		}
		return tg
	}
	r := &runner{cfg: Config{Reps: 2, Duration: 20 * time.Millisecond, Writers: []int{1}, Readers: []int{1}, Only: []string{"W1", "W2"}}}
	r.cfg.defaults()
	targets := []*target{fake("A", "k1", "k2"), fake("B", "k"), fake("C")}
	if err := r.sideBySideWorkloads(context.Background(), targets); err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(order, " "); got != "A B C B C A" {
		t.Errorf("W1 measured in the order %s, want A B C B C A", got)
	}
	want := map[string]bool{"W1 A durable puts, 64 B, 1 writers": true, "W1 B durable puts, 64 B, 1 writers": true,
		"W1 C durable puts, 64 B, 1 writers": true, "W2 A k1 get, 1 readers": true, "W2 A k2 get, 1 readers": true, "W2 B k get, 1 readers": true}
	for _, row := range r.rows {
		name := row.Workload + " " + row.System + " " + row.Params
		if !want[name] || len(row.Values) != 2 {
			t.Errorf("row %s with %d values", name, len(row.Values))
		}
		delete(want, name)
	}
	if len(want) > 0 {
		t.Errorf("rows missing: %v", want)
	}
	if !prefilled["A"] || !prefilled["B"] || prefilled["C"] {
		t.Errorf("prefilled %v, want A and B", prefilled)
	}
}

// TestStepsGoOnAfterAFailure: a step that fails leaves the next ones to
// run, and the error names it; an interrupt stops the run at once, keeps
// the failures before it, and does not count the step it cut short.
func TestStepsGoOnAfterAFailure(t *testing.T) {
	var progress strings.Builder
	r := &runner{cfg: Config{Progress: &progress}}
	var ran []string
	ok := func(name string) step {
		return step{name, func(context.Context) error { ran = append(ran, name); return nil }}
	}
	boom := errors.New("list keys: context deadline exceeded")
	err := r.steps(context.Background(), []step{ok("limits"),
		{"W4", func(context.Context) error { ran = append(ran, "W4"); return boom }}, ok("W5")})
	var failed Failed
	if !errors.As(err, &failed) || len(failed) != 1 || !errors.Is(err, boom) || !strings.HasPrefix(err.Error(), "W4 failed") ||
		strings.Join(ran, ",") != "limits,W4,W5" {
		t.Fatalf("ran %v, error %v", ran, err)
	}
	if !strings.Contains(progress.String(), "W4") || !strings.Contains(progress.String(), "list keys") {
		t.Fatalf("progress does not tell of the failure: %q", progress.String())
	}

	ctx, cancel := context.WithCancel(context.Background())
	ran = nil
	err = r.steps(ctx, []step{
		{"limits", func(context.Context) error { ran = append(ran, "limits"); return boom }},
		{"W1-W3", func(context.Context) error { ran = append(ran, "W1-W3"); cancel(); return errors.New("cut short") }},
		ok("W4")})
	if !errors.As(err, &failed) || len(failed) != 1 || !errors.Is(err, boom) || strings.Join(ran, ",") != "limits,W1-W3" {
		t.Fatalf("interrupted: ran %v, error %v", ran, err)
	}
}

// TestRetryStopsWhenItsProcessExited: a wait on a process that has exited
// fails at once, naming its log, instead of retrying until its deadline
// (a server that could not restart once held a run for 30 minutes).
func TestRetryStopsWhenItsProcessExited(t *testing.T) {
	log := t.TempDir() + "/p.log"
	p, err := proc.Start("/bin/sh", log, "-c", "exit 3")
	if err != nil {
		t.Fatal(err)
	}
	<-p.Done()
	calls := 0
	err = retry(context.Background(), time.Hour, func() error {
		calls++
		if err := running(p, "server x", log); err != nil {
			return err
		}
		return errors.New("not yet")
	})
	if !errors.Is(err, errExited) || !strings.Contains(err.Error(), log) || calls != 1 {
		t.Fatalf("after %d calls: %v, want errExited naming %s at the first", calls, err, log)
	}
}
