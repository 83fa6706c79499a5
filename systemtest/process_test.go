package systemtest

import (
	"context"
	"encoding/json"
	"fmt"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"memstore/bus"
	"memstore/client"
	"memstore/internal/proc"
)

// buildBinary builds cmd/memstore once for the process tests.
func buildBinary(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "memstore")
	out, err := exec.Command("go", "build", "-o", bin, "../cmd/memstore").CombinedOutput()
	if err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	return bin
}

// freeAddr returns a free loopback address.
func freeAddr(t *testing.T) string {
	t.Helper()
	addr, err := proc.FreeAddr()
	if err != nil {
		t.Fatal(err)
	}
	return addr
}

// startProc starts a memstore process, stopped when the test ends.
func startProc(t *testing.T, bin, logPath string, args ...string) *proc.Proc {
	t.Helper()
	p, err := proc.Start(bin, logPath, args...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Stop)
	return p
}

// procCluster is a middleware and nodes, each a real process, and a
// client; all stop when the test ends.
type procCluster struct {
	t             *testing.T
	bin, dir, url string
	nodes         map[int]*proc.Proc
	cl            *client.Client
}

// startProcCluster starts the middleware and nodes 1…n and waits for a
// leader.
func startProcCluster(t *testing.T, n int) *procCluster {
	t.Helper()
	bin := buildBinary(t) // first: a port found free is taken just before it is used
	addr := freeAddr(t)
	c := &procCluster{t: t, bin: bin, dir: t.TempDir(), url: "nats://" + addr, nodes: map[int]*proc.Proc{}}
	startProc(t, c.bin, filepath.Join(c.dir, "mw.log"), "middleware", "--listen", addr,
		"--data", filepath.Join(c.dir, "mw"), "--bootstrap", strconv.Itoa(n))
	for id := 1; id <= n; id++ {
		c.startNode(id)
	}
	deadline := time.Now().Add(15 * time.Second)
	for {
		var err error
		if c.cl == nil {
			c.cl, err = client.Dial(c.url, client.Options{Timeout: 10 * time.Second})
		}
		if err == nil {
			var st bus.StatusReply
			st, err = c.cl.Status(context.Background())
			if err == nil && st.Leader != 0 {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no leader: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Cleanup(c.cl.Close)
	return c
}

// startNode starts node id (again), its log in a file of its own.
func (c *procCluster) startNode(id int) *proc.Proc {
	c.nodes[id] = startProc(c.t, c.bin, filepath.Join(c.dir, fmt.Sprintf("node%d-%d.log", id, time.Now().UnixNano())),
		"node", "--id", strconv.Itoa(id), "--server", c.url, "--data", filepath.Join(c.dir, fmt.Sprintf("node%d", id)))
	return c.nodes[id]
}

// TestLeaveCommand runs memstore leave on real processes: nodes asked
// just after their start, and one asked once it is a member, each leave
// and stop, and the command says so (exit 0). (A node not yet a member
// stops as soon as it takes the request; its answer, sent after, once
// raced its exit on a busy machine, which this test has not reproduced
// on an idle one: bench W5 did.)
func TestLeaveCommand(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs real processes")
	}
	c := startProcCluster(t, 3)
	leave := func(id int) {
		t.Helper()
		if out, err := exec.Command(c.bin, "leave", "--id", strconv.Itoa(id), "--server", c.url, "--timeout", "10s").CombinedOutput(); err != nil {
			t.Fatalf("leave node %d: %v\n%s", id, err, out)
		}
		select {
		case <-c.nodes[id].Done():
		case <-time.After(15 * time.Second):
			t.Fatalf("node %d still runs after it left", id)
		}
	}
	for id := 4; id <= 6; id++ {
		c.startNode(id)
		leave(id)
	}
	c.startNode(7)
	deadline := time.Now().Add(15 * time.Second)
	for {
		st, err := c.cl.Status(ctx(t))
		if err == nil && slices.Contains(st.Members, 7) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("node 7 not a member: %+v %v", st, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	leave(7)
}

// TestKillLeaderProcess runs the middleware and 3 nodes as real processes,
// kills the leader with SIGKILL under writes, and checks that a new leader
// takes over, no acknowledged write is lost, and the killed node catches up
// after a restart.
func TestKillLeaderProcess(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs real processes")
	}
	c := startProcCluster(t, 3)
	cl, nodes := c.cl, c.nodes
	cx := ctx(t)
	acked := map[int]uint64{}
	for i := 0; i < 30; i++ {
		rep, err := cl.Put(cx, fmt.Sprintf("k/p%d", i), json.RawMessage(strconv.Itoa(i)))
		if err != nil {
			t.Fatal(err)
		}
		acked[i] = rep.Seq
	}
	// Writers keep going while the leader is killed.
	type ack struct {
		path string
		seq  uint64
		val  string
	}
	acks := make(chan ack, 10000)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for w := 0; w < 4; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				p, v := fmt.Sprintf("load/w%d/k%d", w, i%5), strconv.Itoa(i)
				if rep, err := cl.Put(cx, p, json.RawMessage(v)); err == nil {
					acks <- ack{p, rep.Seq, v}
				}
			}
		}(w)
	}
	time.Sleep(300 * time.Millisecond)
	st, _ := cl.Status(cx)
	leader := int(st.Leader)
	killed := time.Now()
	nodes[leader].Kill() // dead and reaped: its connection is closed
	var rep bus.PutReply
	for try := 0; ; try++ {
		var err error
		rep, err = cl.Put(cx, "k/after", json.RawMessage(strconv.Itoa(try)))
		if err == nil {
			break
		}
		// A put that reached the leader as it died has an unknown outcome:
		// the store says timeout rather than retry it and maybe write twice.
		if code(err) != bus.CodeTimeout || try > 0 {
			t.Fatalf("put after SIGKILL of the leader: %v", err)
		}
	}
	t.Logf("first acknowledged write %v after SIGKILL of leader %d", time.Since(killed).Round(time.Millisecond), leader)
	time.Sleep(300 * time.Millisecond)
	close(stop)
	wg.Wait()
	close(acks)
	n := 0
	for a := range acks {
		n++
		h, err := cl.History(cx, bus.HistoryRequest{Path: a.path, AfterSeq: a.seq - 1, Limit: 1})
		if err != nil || len(h.Values) != 1 || h.Values[0].Seq != a.seq || string(h.Values[0].Value) != a.val {
			t.Fatalf("acknowledged %s=%s at seq %d lost: %+v %v", a.path, a.val, a.seq, h, err)
		}
	}
	t.Logf("%d writes acknowledged under load, none lost", n)
	for i, seq := range acked {
		g, err := cl.Get(cx, bus.GetRequest{Path: fmt.Sprintf("k/p%d", i)})
		if err != nil || g.Seq != seq || string(g.Value) != strconv.Itoa(i) {
			t.Fatalf("acknowledged k/p%d at %d: %+v %v", i, seq, g, err)
		}
	}
	c.startNode(leader)
	deadline := time.Now().Add(15 * time.Second)
	for {
		st, err := cl.Status(cx)
		caught := false
		for _, n := range st.Nodes {
			if int(n.ID) == leader && n.State != "down" && n.Applied >= rep.Seq {
				caught = true
			}
		}
		if err == nil && caught {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("restarted node %d did not catch up: %+v %v", leader, st.Nodes, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
