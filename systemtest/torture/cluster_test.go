// Package torture is memstore's Jepsen-style test: a real cluster of
// separate processes (middleware and 5 nodes, each node reaching NATS
// through its own toxiproxy), concurrent clients on the public wire API,
// and a nemesis that kills, pauses, partitions, slows, restarts the
// middleware and cuts nodes back to what they had fsynced (power loss).
// Every run checks linearizability per path with porcupine, audits every
// acknowledged write through history reads, and compares the replicas'
// files once healed.
//
//	go test ./systemtest/torture                       # bounded: 5 faults of each kind
//	go test ./systemtest/torture -timeout 2h -torture.faults=20 -torture.ops=50000 -v
package torture

import (
	"context"
	"crypto/sha256"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	toxiproxy "github.com/Shopify/toxiproxy/v2"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"memstore/bus"
	"memstore/client"
	"memstore/internal/proc"
	"memstore/replica/storage/vfs"
)

const nodes = 5

// proc is one running process; done is closed when it exits.
type harness struct {
	t      *testing.T
	dir    string
	bin    string
	natsAt string // host:port of the middleware's NATS server
	tox    *toxiproxy.ApiServer

	mu      sync.Mutex // guards mw, nodes, paused
	mw      *proc.Proc
	nodes   map[int]*proc.Proc
	paused  map[int]bool
	proxies map[int]*toxiproxy.Proxy

	cl *client.Client // the nemesis's and checker's own client
}

// startHarness builds memstore and starts the middleware and 5 nodes.
func startHarness(t *testing.T, dir string) *harness {
	h := &harness{t: t, dir: dir, nodes: map[int]*proc.Proc{}, paused: map[int]bool{}, proxies: map[int]*toxiproxy.Proxy{}}
	h.bin = filepath.Join(dir, "memstore")
	if out, err := exec.Command("go", "build", "-o", h.bin, "memstore/cmd/memstore").CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	addr, err := proc.FreeAddr()
	if err != nil {
		t.Fatal(err)
	}
	h.natsAt = addr
	h.tox = toxiproxy.NewServer(toxiproxy.NewMetricsContainer(prometheus.NewRegistry()), zerolog.Nop())
	t.Cleanup(h.stopAll)
	h.startMiddleware()
	for id := 1; id <= nodes; id++ {
		p := toxiproxy.NewProxy(h.tox, fmt.Sprintf("node%d", id), "127.0.0.1:0", h.natsAt)
		if err := p.Start(); err != nil {
			t.Fatal(err)
		}
		h.proxies[id] = p
		h.startNode(id)
	}
	for start := time.Now(); time.Since(start) < 15*time.Second; time.Sleep(50 * time.Millisecond) {
		if h.cl, err = client.Dial("nats://"+h.natsAt, client.Options{Timeout: 5 * time.Second, Name: "torture-nemesis"}); err == nil {
			break
		}
	}
	if err != nil {
		t.Fatal(err)
	}
	if err := h.waitHealthy(60 * time.Second); err != nil {
		t.Fatal(err)
	}
	return h
}

func (h *harness) spawn(logName string, args ...string) *proc.Proc {
	p, err := proc.Start(h.bin, filepath.Join(h.dir, logName), args...)
	if err != nil {
		h.t.Fatal(err)
	}
	return p
}

func (h *harness) startMiddleware() {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.mw = h.spawn("middleware.log", "middleware", "--listen", h.natsAt, "--data", filepath.Join(h.dir, "mw"),
		"--bootstrap", strconv.Itoa(nodes), "--log-level", "warn")
}

func (h *harness) dataDir(id int) string { return filepath.Join(h.dir, fmt.Sprintf("node%d", id)) }
func (h *harness) journal(id int) string {
	return filepath.Join(h.dir, fmt.Sprintf("node%d.journal", id))
}

func (h *harness) startNode(id int) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.nodes[id] = h.spawn(fmt.Sprintf("node%d.log", id), "node", "--id", strconv.Itoa(id),
		"--server", "nats://"+h.proxies[id].Listen, "--data", h.dataDir(id), "--sync-journal", h.journal(id),
		"--log-level", "warn")
	h.paused[id] = false
}

func (h *harness) node(id int) *proc.Proc {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.nodes[id]
}

func (h *harness) killNode(id int) { h.node(id).Kill() }

// powerLoss kills a node and cuts its data dir back to what it fsynced.
func (h *harness) powerLoss(id int) (vfs.PowerLossReport, error) {
	h.killNode(id)
	return vfs.PowerLoss(h.dataDir(id), h.journal(id))
}

func (h *harness) pause(id int, on bool) {
	sig := syscall.SIGCONT
	if on {
		sig = syscall.SIGSTOP
	}
	h.node(id).Signal(sig)
	h.mu.Lock()
	h.paused[id] = on
	h.mu.Unlock()
}

func (h *harness) stopAll() {
	if h.cl != nil {
		h.cl.Close()
	}
	for id := 1; id <= nodes; id++ {
		if p := h.node(id); p != nil {
			p.Stop()
		}
		if px := h.proxies[id]; px != nil {
			px.Stop()
		}
	}
	if h.mw != nil {
		h.mw.Stop()
	}
}

// status reads the view; with the middleware down it fails.
func (h *harness) status(ctx context.Context) (bus.StatusReply, error) {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	return h.cl.Status(ctx)
}

// waitHealthy waits until every node is a live member, one leads, and a
// write goes through.
func (h *harness) waitHealthy(within time.Duration) error {
	deadline := time.Now().Add(within)
	var last error
	for time.Now().Before(deadline) {
		last = h.healthy()
		if last == nil {
			return nil
		}
		time.Sleep(100 * time.Millisecond)
	}
	return fmt.Errorf("cluster not healthy after %v: %w", within, last)
}

func (h *harness) healthy() error {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	st, err := h.status(ctx)
	if err != nil {
		return err
	}
	if err := st.Healthy(nodes); err != nil {
		return err
	}
	_, err = h.cl.Put(ctx, "torture/probe", []byte(`1`))
	return err
}

// leader returns the current leader's id, 0 if none is known.
func (h *harness) leader() int {
	st, err := h.status(context.Background())
	if err != nil {
		return 0
	}
	return int(st.Leader)
}

// quiesce waits until every node has applied the leader's commit.
func (h *harness) quiesce(within time.Duration) error {
	deadline := time.Now().Add(within)
	var last error
	for time.Now().Before(deadline) {
		st, err := h.status(context.Background())
		last = err
		if err == nil {
			var commit uint64
			for _, n := range st.Nodes {
				if n.ID == st.Leader {
					commit = n.Commit
				}
			}
			behind := 0
			for _, n := range st.Nodes {
				if n.Applied < commit {
					behind++
				}
			}
			if commit > 0 && behind == 0 && len(st.Nodes) == nodes {
				return nil
			}
			last = fmt.Errorf("%d nodes behind commit %d", behind, commit)
		}
		time.Sleep(100 * time.Millisecond)
	}
	return fmt.Errorf("not quiet after %v: %w", within, last)
}

// treeHashes stops every node gracefully and hashes each node's versions
// files: replicas that converged hold identical files.
func (h *harness) treeHashes() (map[int]map[string][32]byte, error) {
	for id := 1; id <= nodes; id++ {
		h.node(id).Stop()
	}
	out := map[int]map[string][32]byte{}
	for id := 1; id <= nodes; id++ {
		root := filepath.Join(h.dataDir(id), "tree")
		files := map[string][32]byte{}
		err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() || !strings.HasSuffix(p, "versions.jsonl") {
				return err
			}
			f, err := os.Open(p)
			if err != nil {
				return err
			}
			defer f.Close()
			hs := sha256.New()
			if _, err := io.Copy(hs, f); err != nil {
				return err
			}
			rel, _ := filepath.Rel(root, p)
			files[filepath.Dir(rel)] = [32]byte(hs.Sum(nil))
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("node %d: %w", id, err)
		}
		out[id] = files
	}
	return out, nil
}

// compareHashes returns the paths whose files differ between nodes.
func compareHashes(all map[int]map[string][32]byte) []string {
	var diff []string
	ref := all[1]
	seen := map[string]bool{}
	for id := 1; id <= nodes; id++ {
		for p := range all[id] {
			if seen[p] {
				continue
			}
			seen[p] = true
			for other := 1; other <= nodes; other++ {
				if all[other][p] != ref[p] {
					diff = append(diff, p)
					break
				}
			}
		}
	}
	return diff
}
