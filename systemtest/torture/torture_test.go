package torture

import (
	"context"
	"flag"
	"fmt"
	"math/rand"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

var (
	flagFaults  = flag.Int("torture.faults", 5, "faults of each kind to inject")
	flagOps     = flag.Int("torture.ops", 0, "keep injecting faults until at least this many operations ran")
	flagClients = flag.Int("torture.clients", 6, "concurrent clients")
	flagPaths   = flag.Int("torture.paths", 10, "paths the clients write and read")
	flagSeed    = flag.Int64("torture.seed", 0, "seed of the nemesis and the clients (0: from the clock)")
	flagKeep    = flag.Bool("torture.keep", false, "keep the run's folder (logs, data, visualization) even when it passes")
)

// TestTorture runs the workload against a real 5-node cluster while the
// nemesis injects faults, then checks linearizability, audits the
// histories, and compares the replicas. A failing run keeps its folder.
func TestTorture(t *testing.T) {
	if testing.Short() {
		t.Skip("runs a real cluster under faults for minutes")
	}
	seed := *flagSeed
	if seed == 0 {
		seed = time.Now().UnixNano() % 1_000_000
	}
	dir, err := os.MkdirTemp("", "memstore-torture-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() || *flagKeep {
			t.Logf("run folder kept: %s (replay with -torture.seed=%d)", dir, seed)
			return
		}
		os.RemoveAll(dir)
	})
	logf := func(format string, args ...any) {
		t.Logf("%s "+format, append([]any{time.Now().Format("15:04:05.000")}, args...)...)
	}
	logf("seed %d, folder %s", seed, dir)
	h := startHarness(t, dir)
	w, err := newWorkload("nats://"+h.natsAt, *flagClients, *flagPaths)
	if err != nil {
		t.Fatal(err)
	}
	defer w.close()
	ctx, stop := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		w.run(ctx, seed)
	}()
	n := &nemesis{h: h, rng: rand.New(rand.NewSource(seed)), counts: map[string]int{}, logf: logf}
	var nemErr error
	for r := 0; r < *flagFaults || int(w.done.Load()) < *flagOps; r++ {
		if nemErr = n.round(ctx); nemErr != nil {
			break
		}
		logf("round %d done: %d operations so far", r+1, w.done.Load())
	}
	time.Sleep(500 * time.Millisecond) // some operations on the healed cluster
	stop()
	wg.Wait()
	if nemErr != nil {
		t.Fatalf("the cluster did not recover: %v", nemErr)
	}
	ops := w.recorded()

	actx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	a, err := audit(actx, h.cl, w.paths, ops)
	if err != nil {
		t.Fatalf("audit: %v", err)
	}
	html := filepath.Join(dir, "linearizability.html")
	lin, err := checkLinearizable(ops, html, 3*time.Minute)
	if err != nil {
		t.Error(err)
	}
	if err := h.quiesce(30 * time.Second); err != nil {
		t.Error(err)
	}
	hashes, err := h.treeHashes()
	if err != nil {
		t.Fatal(err)
	}
	diverged := compareHashes(hashes)

	summary := fmt.Sprintf("ops=%d acked=%d indeterminate=%d refused=%d faults=%s lost=%d dup=%d linearizable=%s",
		len(ops), a.acked, a.indeterminate, a.refusedPuts, n.summary(), a.lost, a.dup, lin)
	t.Log(summary)
	_ = os.WriteFile(filepath.Join(dir, "summary"), []byte(summary+"\n"), 0o600)
	var failed strings.Builder
	for _, o := range ops {
		if o.outcome != opOK {
			fmt.Fprintln(&failed, o)
		}
	}
	_ = os.WriteFile(filepath.Join(dir, "failed-ops.txt"), []byte(failed.String()), 0o600)
	for _, p := range a.problems {
		t.Error(p)
	}
	for _, p := range w.historyErrs {
		t.Error(p)
	}
	switch {
	case a.lost > 0 || a.dup > 0 || a.foreign > 0 || a.misplaced > 0 || a.orderViolations > 0:
		t.Errorf("audit: lost=%d dup=%d foreign=%d misplaced=%d order=%d", a.lost, a.dup, a.foreign, a.misplaced, a.orderViolations)
	case lin == "false":
		t.Errorf("not linearizable: see %s", html)
	case lin == "unknown":
		t.Error("porcupine could not decide linearizability within its 3 minutes: nothing was checked")
	case len(diverged) > 0:
		t.Errorf("replicas differ on %d paths: %s", len(diverged), strings.Join(diverged[:min(len(diverged), 10)], ", "))
	}
	if n.majority > 0 && a.refusedPuts == 0 {
		t.Errorf("a majority was down %d times, yet no put was answered unavailable", n.majority)
	}
	for k, c := range n.counts {
		if c < *flagFaults {
			t.Errorf("only %d faults of kind %s", c, k)
		}
	}
}
