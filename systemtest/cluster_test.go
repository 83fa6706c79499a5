// Package systemtest runs memstore's processes together in one test
// process: the embedded NATS server on a random loopback port, the group
// service and router, and nodes on temporary data dirs, driven through the
// public wire API with the Go client.
package systemtest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/sirupsen/logrus"

	"memstore/bus"
	"memstore/client"
	"memstore/groupsvc"
	"memstore/replica"
	"memstore/replica/protocol"
	"memstore/replica/storage/vfs"
	"memstore/sensor"
)

type cluster struct {
	t      testing.TB
	dir    string
	srv    *bus.Server
	mwConn *nats.Conn
	svc    *groupsvc.Service
	router *groupsvc.Router
	nodes  map[protocol.NodeID]*replica.Node
	conns  map[protocol.NodeID]*nats.Conn
	cl     *client.Client
	log    *logrus.Logger
}

func quietLogger() *logrus.Logger {
	l := logrus.New()
	l.SetOutput(io.Discard)
	return l
}

func startCluster(t testing.TB, n int) *cluster {
	t.Helper()
	c := &cluster{t: t, dir: t.TempDir(), nodes: map[protocol.NodeID]*replica.Node{},
		conns: map[protocol.NodeID]*nats.Conn{}, log: quietLogger()}
	t.Cleanup(c.stop)
	c.restartMiddleware(n)
	for id := 1; id <= n; id++ {
		c.startNode(protocol.NodeID(id))
	}
	c.waitFor("a leader", 15*time.Second, func() error {
		st, err := c.cl.Status(context.Background())
		if err != nil || st.Leader == 0 || len(st.Members) != n {
			return fmt.Errorf("status %+v: %v", st, err)
		}
		for _, ns := range st.Nodes {
			if ns.State == "leader" {
				return nil
			}
		}
		return errors.New("no node reports leading")
	})
	return c
}

// restartMiddleware starts the NATS server, group service, router and
// client on the cluster's folder (again, after stop).
func (c *cluster) restartMiddleware(bootstrap int) {
	t := c.t
	t.Helper()
	cfg := bus.DefaultServerConfig(filepath.Join(c.dir, "mw"))
	cfg.Port = -1
	srv, err := bus.StartServer(cfg, c.log)
	if err != nil {
		t.Fatal(err)
	}
	c.srv = srv
	c.mwConn, err = srv.Connect("mw", c.log)
	if err != nil {
		t.Fatal(err)
	}
	gcfg := groupsvc.DefaultConfig(1000)
	gcfg.Election.Bootstrap = bootstrap
	c.svc, err = groupsvc.Start(c.mwConn, gcfg, c.log)
	if err != nil {
		t.Fatal(err)
	}
	c.router, err = groupsvc.StartRouter(c.svc)
	if err != nil {
		t.Fatal(err)
	}
	c.cl, err = client.Dial(srv.ClientURL(), client.Options{Timeout: 10 * time.Second, User: "tester"})
	if err != nil {
		t.Fatal(err)
	}
}

func (c *cluster) startNode(id protocol.NodeID) {
	c.t.Helper()
	c.startNodeWith(id, func(*replica.Config) {})
}

func (c *cluster) startNodeWith(id protocol.NodeID, tune func(*replica.Config)) {
	c.t.Helper()
	nc, err := bus.Connect(c.srv.ClientURL(), "node-"+strconv.Itoa(int(id)), c.log)
	if err != nil {
		c.t.Fatal(err)
	}
	cfg := replica.DefaultConfig(id, filepath.Join(c.dir, fmt.Sprintf("node%d", id)))
	cfg.CheckpointEvery = 100 * time.Millisecond
	tune(&cfg)
	node, err := replica.Start(nc, cfg, c.log.WithField("node", id))
	if err != nil {
		c.t.Fatal(err)
	}
	c.nodes[id], c.conns[id] = node, nc
}

func (c *cluster) stopNode(id protocol.NodeID) {
	if n := c.nodes[id]; n != nil {
		n.Close()
		c.conns[id].Close()
		delete(c.nodes, id)
	}
}

func (c *cluster) stop() {
	if c.srv == nil {
		return // already stopped
	}
	c.cl.Close()
	for id := range c.nodes {
		c.stopNode(id)
	}
	c.router.Close()
	c.svc.Close()
	c.mwConn.Close()
	c.srv.Shutdown()
	c.srv = nil
}

// waitFor polls check until it passes or the time is up.
func (c *cluster) waitFor(what string, total time.Duration, check func() error) {
	c.t.Helper()
	deadline := time.Now().Add(total)
	var err error
	for time.Now().Before(deadline) {
		if err = check(); err == nil {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	c.t.Fatalf("no %s after %v: %v", what, total, err)
}

// follower is a member that does not lead now: node 1, or 2 if 1 leads.
func (c *cluster) follower() protocol.NodeID {
	if c.leader() == 1 {
		return 2
	}
	return 1
}

func (c *cluster) leader() protocol.NodeID {
	st, err := c.cl.Status(context.Background())
	if err != nil {
		c.t.Fatal(err)
	}
	return protocol.NodeID(st.Leader)
}

func ctx(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func code(err error) string {
	var be *bus.Error
	if errors.As(err, &be) {
		return be.Code
	}
	return ""
}

func TestClusterWireAPI(t *testing.T) {
	c := startCluster(t, 3)
	cx := ctx(t)
	events := make(chan bus.Event, 10)
	wctx, stopWatch := context.WithCancel(cx)
	watchDone := make(chan error, 1)
	go func() { watchDone <- c.cl.Watch(wctx, "plant1/>", func(ev bus.Event) { events <- ev }) }()
	time.Sleep(100 * time.Millisecond) // the subscription is in place
	var seqs []uint64
	for i := 0; i < 5; i++ {
		rep, err := c.cl.Put(cx, "plant1/line3/temp", json.RawMessage(fmt.Sprint(20+i)))
		if err != nil {
			t.Fatal(err)
		}
		seqs = append(seqs, rep.Seq)
	}
	for i := 0; i < 5; i++ {
		select {
		case pv := <-events:
			if pv.Path != "plant1/line3/temp" || pv.Seq != seqs[i] || i > 0 && pv.PrevSeq != seqs[i-1] {
				t.Fatalf("event %d: %+v", i, pv)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("no event %d from watch", i)
		}
	}
	stopWatch()
	if err := <-watchDone; err != nil {
		t.Fatal(err)
	}
	if _, err := c.cl.PutBatch(cx, []bus.PathValue{{Path: "plant1/line1/hum", Value: json.RawMessage(`55`)},
		{Path: "plant2/state", Value: json.RawMessage(`{"run":true}`)}}); err != nil {
		t.Fatal(err)
	}
	g, err := c.cl.Get(cx, bus.GetRequest{Path: "plant1/line3/temp"})
	if err != nil || string(g.Value) != "24" || g.Seq != seqs[4] || g.User != "tester" {
		t.Fatalf("linearizable get: %+v %v", g, err)
	}
	g, err = c.cl.Get(cx, bus.GetRequest{Path: "plant2/state", Consistency: bus.Stale, MinSeq: seqs[4] + 1})
	if err != nil || string(g.Value) != `{"run":true}` {
		t.Fatalf("min_seq get: %+v %v", g, err)
	}
	h, err := c.cl.History(cx, bus.HistoryRequest{Path: "plant1/line3/temp", Limit: 3})
	if err != nil || len(h.Values) != 3 || !h.More || h.Values[0].Seq != seqs[0] {
		t.Fatalf("history: %+v %v", h, err)
	}
	h, _ = c.cl.History(cx, bus.HistoryRequest{Path: "plant1/line3/temp", AfterSeq: h.Values[2].Seq})
	if len(h.Values) != 2 || h.More {
		t.Fatalf("history page 2: %+v", h)
	}
	kids, err := c.cl.Ls(cx, "plant1")
	if err != nil || fmt.Sprint(kids) != "[line1 line3]" {
		t.Fatalf("ls: %v %v", kids, err)
	}
	tr, err := c.cl.Tree(cx, bus.TreeRequest{})
	if err != nil || len(tr.Values) != 3 {
		t.Fatalf("tree: %+v %v", tr, err)
	}
	var walked []string // page by page, one path a page
	err = c.cl.Subtree(cx, bus.TreeRequest{Limit: 1}, func(pv bus.PathVersion) error {
		walked = append(walked, pv.Path)
		return nil
	})
	if err != nil || fmt.Sprint(walked) != "[plant1/line1/hum plant1/line3/temp plant2/state]" {
		t.Fatalf("tree paged with after: %v %v", walked, err)
	}
	for _, bad := range []string{"../x", "a//b", "/a"} {
		if _, err := c.cl.Put(cx, bad, json.RawMessage(`1`)); code(err) != bus.CodeBadPath {
			t.Fatalf("put %q: %v", bad, err)
		}
	}
	if _, err := c.cl.Get(cx, bus.GetRequest{Path: "no/such"}); code(err) != bus.CodeNotFound {
		t.Fatalf("get missing: %v", err)
	}
	big := json.RawMessage(`"` + strings.Repeat("x", 70_000) + `"`)
	if _, err := c.cl.Put(cx, "a/big", big); code(err) != bus.CodeTooLarge {
		t.Fatalf("put 70 KB: %v", err)
	}
	// Every node converges on the same applied state.
	c.waitFor("all nodes applied", 5*time.Second, func() error {
		st, _ := c.cl.Status(cx)
		for _, n := range st.Nodes {
			if n.Applied < seqs[4]+1 {
				return fmt.Errorf("node %d applied %d", n.ID, n.Applied)
			}
		}
		return nil
	})
}

func TestClusterFailoverAndRestart(t *testing.T) {
	c := startCluster(t, 3)
	cx := ctx(t)
	acked := map[string]uint64{}
	write := func(i int) {
		t.Helper()
		p := fmt.Sprintf("f/k%d", i%7)
		// Keyed, so the router may resend it across the leader change: a
		// request in flight to a leader that stops is lost, and an unkeyed
		// put would then be answered timeout (outcome unknown).
		rep, err := c.cl.Write(cx, bus.PutRequest{Path: p, Value: json.RawMessage(strconv.Itoa(i)), Source: "failover-test", SourceSeq: uint64(i + 1)})
		if err != nil {
			t.Fatalf("put %d: %v", i, err)
		}
		acked[fmt.Sprintf("%s=%d", p, i)] = rep.Seq
	}
	for i := 0; i < 20; i++ {
		write(i)
	}
	old := c.leader()
	c.stopNode(old)
	// Stale gets go on with no leader: the followers stay in ms-nodes
	// until a view leaves them out (the failure timeout alone is 1 s).
	stopped := time.Now()
	for range 10 {
		if _, err := c.cl.Get(cx, bus.GetRequest{Path: "f/k0", Consistency: bus.Stale}); err != nil {
			t.Fatalf("stale get %v after the leader stopped: %v", time.Since(stopped), err)
		}
	}
	if c.leader() != old {
		t.Log("the view changed before the stale gets were done: they did not test the gap")
	}
	start := time.Now()
	write(20) // the router resends it across the leader change
	t.Logf("write across failover took %v", time.Since(start).Round(time.Millisecond))
	for i := 21; i < 40; i++ {
		write(i)
	}
	if c.leader() == old {
		t.Fatal("the stopped leader still leads")
	}
	c.startNode(old) // restarts from its data dir and catches up
	c.waitFor("the restarted node to catch up", 10*time.Second, func() error {
		st, _ := c.cl.Status(cx)
		for _, n := range st.Nodes {
			if protocol.NodeID(n.ID) == old && n.Applied >= acked["f/k4=39"] {
				return nil
			}
		}
		return fmt.Errorf("status %+v", st.Nodes)
	})
	for kv, seq := range acked {
		p, v, _ := strings.Cut(kv, "=")
		h, err := c.cl.History(cx, bus.HistoryRequest{Path: p, AfterSeq: seq - 1, Limit: 1})
		if err != nil || len(h.Values) != 1 || h.Values[0].Seq != seq || string(h.Values[0].Value) != v {
			t.Fatalf("acknowledged %s at seq %d: %+v %v", kv, seq, h, err)
		}
	}
}

// TestNodeJoinsWithSnapshot starts a 5-node cluster that compacts its log
// hard, writes enough that a new node cannot catch up from the log, then
// starts node 6: it fetches the master copy as a snapshot, catches up the
// tail, and becomes a voting member through a view change.
func TestNodeJoinsWithSnapshot(t *testing.T) {
	c := startCluster(t, 5)
	cx := ctx(t)
	for i := 0; i < 300; i++ {
		if _, err := c.cl.Put(cx, fmt.Sprintf("j/p%d", i%40), json.RawMessage(strconv.Itoa(i))); err != nil {
			t.Fatal(err)
		}
	}
	// Restart the nodes with a short log so the leader has compacted.
	for id := protocol.NodeID(1); id <= 5; id++ {
		c.stopNode(id)
		c.startNodeWith(id, func(cfg *replica.Config) { cfg.KeepLogBytes = 1 })
	}
	c.waitFor("a leader after restart", 15*time.Second, func() error {
		_, err := c.cl.Put(cx, "j/after", json.RawMessage(`1`))
		return err
	})
	time.Sleep(300 * time.Millisecond) // a checkpoint compacts the leader's log
	c.startNode(6)
	c.waitFor("node 6 as a member", 20*time.Second, func() error {
		st, err := c.cl.Status(cx)
		if err != nil {
			return err
		}
		if len(st.Members) != 6 || st.Leader == 0 {
			return fmt.Errorf("members %v", st.Members)
		}
		for _, n := range st.Nodes {
			if n.ID == 6 && n.Applied >= 300 {
				return nil
			}
		}
		return fmt.Errorf("node 6 not caught up: %+v", st.Nodes)
	})
	// Its log starts after a snapshot, not at seq 1.
	segs, err := os.ReadDir(filepath.Join(c.dir, "node6", "wal"))
	if err != nil || len(segs) == 0 || segs[0].Name() <= fmt.Sprintf("%020d.seg", 1) {
		t.Fatalf("node 6 log segments %v (%v): caught up without a snapshot", segs, err)
	}
	// Node 6 now counts in the majority (4 of 6) and holds what was
	// written before it joined.
	stopped := 0
	for id := protocol.NodeID(1); id <= 5 && stopped < 2; id++ {
		if id != c.leader() {
			c.stopNode(id)
			stopped++
		}
	}
	rep, err := c.cl.Put(cx, "j/last", json.RawMessage(`"ok"`))
	if err != nil {
		t.Fatalf("write with node 6 counted in the majority: %v", err)
	}
	g, err := c.cl.Get(cx, bus.GetRequest{Path: "j/p39", MinSeq: rep.Seq})
	if err != nil || string(g.Value) != "279" {
		t.Fatalf("get: %+v %v", g, err)
	}
}

// TestPlainNATSClient uses the cluster the way the nats CLI does, with no
// memstore code: a request on ms.api.get, a publish on ms.in, and a
// subscription on ms.ev.
func TestPlainNATSClient(t *testing.T) {
	c := startCluster(t, 3)
	nc, err := nats.Connect(c.srv.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	events, err := nc.SubscribeSync("ms.ev.plant1.>")
	if err != nil {
		t.Fatal(err)
	}
	nc.Flush()
	// nats pub ms.in.plant1.line3.temp 21.5  (fire and forget)
	if err := nc.Publish("ms.in.plant1.line3.temp", []byte("21.5")); err != nil {
		t.Fatal(err)
	}
	ev, err := events.NextMsg(5 * time.Second)
	if err != nil {
		t.Fatalf("no event on ms.ev: %v", err)
	}
	var pv bus.PathVersion
	if e := bus.Decode(ev.Data, &pv); e != nil || pv.Path != "plant1/line3/temp" || string(pv.Value) != "21.5" || ev.Subject != "ms.ev.plant1.line3.temp" {
		t.Fatalf("event %s %s", ev.Subject, ev.Data)
	}
	// nats req ms.in.plant1.line3.state running  (a bare word is a string)
	m, err := nc.Request("ms.in.plant1.line3.state", []byte("running"), 5*time.Second)
	if err != nil || !strings.Contains(string(m.Data), `"ok":true`) {
		t.Fatalf("ingest with ack: %v %s", err, m.Data)
	}
	// nats req ms.api.get '{"path":"plant1/line3/temp"}'
	m, err = nc.Request("ms.api.get", []byte(`{"path":"plant1/line3/temp"}`), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	var g bus.GetReply
	if e := bus.Decode(m.Data, &g); e != nil || !g.OK || string(g.Value) != "21.5" || g.Seq != pv.Seq {
		t.Fatalf("get: %s", m.Data)
	}
	m, _ = nc.Request("ms.api.get", []byte(`{"path":"plant1/line3/state"}`), 5*time.Second)
	if !strings.Contains(string(m.Data), `"value":"running"`) {
		t.Fatalf("string value: %s", m.Data)
	}
	// nats req ms.api.get.stale '{"path":"plant1/line3/temp","min_seq":N}'
	// (a member node answers, past the router), and the same stale get on
	// ms.api.get (the router forwards it)
	for _, subj := range []string{"ms.api.get.stale", "ms.api.get"} {
		m, err = nc.Request(subj, []byte(fmt.Sprintf(`{"path":"plant1/line3/temp","consistency":"stale","min_seq":%d}`, pv.Seq)), 5*time.Second)
		if err != nil {
			t.Fatalf("stale get on %s: %v", subj, err)
		}
		var sg bus.GetReply
		if e := bus.Decode(m.Data, &sg); e != nil || !sg.OK || string(sg.Value) != "21.5" || sg.Seq != pv.Seq || sg.AppliedSeq < pv.Seq {
			t.Fatalf("stale get on %s: %s", subj, m.Data)
		}
	}
	m, _ = nc.Request("ms.api.put", []byte(`{"path":"a b","value":1}`), 5*time.Second)
	if !strings.Contains(string(m.Data), `"code":"bad_path"`) {
		t.Fatalf("bad path: %s", m.Data)
	}
	for _, tc := range []struct{ subject, body, code string }{
		{"ms.api.put", `not json`, bus.CodeBadRequest},
		{"ms.api.put", `{"path":5,"value":1}`, bus.CodeBadRequest},
		{"ms.api.put", `{"path":"a/b"}`, bus.CodeBadRequest},
		{"ms.api.put", `{"path":"a/b","value":1,"values":[{"path":"c","value":2}]}`, bus.CodeBadRequest},
		{"ms.api.put", `{"path":"` + strings.Repeat("a", 300) + `","value":1}`, bus.CodeBadPath},
		{"ms.api.put", `{"path":"a//b","value":1}`, bus.CodeBadPath},
		{"ms.api.put", `{"values":[{"path":"ok/x","value":1},{"path":"../x","value":2}]}`, bus.CodeBadPath},
		{"ms.api.get", `{"path":"a/b","consistency":"sometimes"}`, bus.CodeBadRequest},
		{"ms.api.get.stale", `{"path":"a/b","consistency":"linearizable"}`, bus.CodeBadRequest},
		{"ms.api.get.stale", `{"path":"a/../b"}`, bus.CodeBadPath},
		{"ms.api.history", `{"path":"plant1/line3/temp","since":"yesterday"}`, bus.CodeBadRequest},
		{"ms.api.frobnicate", `{}`, bus.CodeBadRequest},
		{"ms.api.put", `{"path":"a/b","value":1,"vaule":2}`, bus.CodeBadRequest},              // unknown field
		{"ms.api.put", `{"path":"a/b","value":1} {"path":"c","value":2}`, bus.CodeBadRequest}, // data after the request
		{"ms.api.put", `{"path":"a/./b","value":1}`, bus.CodeBadPath},
		{"ms.api.put", `{"path":"a/../b","value":1}`, bus.CodeBadPath},
		{"ms.api.put", `{"path":"a/\u0000b","value":1}`, bus.CodeBadPath},
		{"ms.api.put", `{"path":"a/\u0007b","value":1}`, bus.CodeBadPath},
		{"ms.api.put", `{"path":"plänt/x","value":1}`, bus.CodeBadPath},
		{"ms.api.put", `{"path":"` + strings.Repeat("a/", 16) + `a","value":1}`, bus.CodeBadPath}, // 17 segments
		{"ms.api.put", `{"path":"a/b","value":"` + strings.Repeat("x", 70_000) + `"}`, bus.CodeTooLarge},
		{"ms.api.put", hugeBatch(1001), bus.CodeTooLarge},
		{"ms.api.history", `{"path":"plant1/line3/temp","limit":-1}`, bus.CodeBadRequest},
		{"ms.api.tree", `{"path":"plant1","limit":-5}`, bus.CodeBadRequest},
	} {
		m, err := nc.Request(tc.subject, []byte(tc.body), 5*time.Second)
		if err != nil || !strings.Contains(string(m.Data), `"code":"`+tc.code+`"`) {
			t.Errorf("%s %s: want %s, got %v %s", tc.subject, tc.body, tc.code, err, m.Data)
		}
	}
	// Nothing was written by any of them.
	m, _ = nc.Request("ms.api.ls", []byte(`{"path":""}`), 5*time.Second)
	if !strings.Contains(string(m.Data), `"children":["plant1"]`) {
		t.Fatalf("bad requests changed the tree: %s", m.Data)
	}
}

// TestConcurrentUsersReadTheirWrites: 5 nodes, 8 users writing and reading
// at once; every linearizable read sees the user's acknowledged write.
func TestConcurrentUsersReadTheirWrites(t *testing.T) {
	c := startCluster(t, 5)
	cx := ctx(t)
	errs := make(chan error, 8)
	for u := 0; u < 8; u++ {
		go func(u int) {
			for i := 0; i < 25; i++ {
				p := fmt.Sprintf("users/u%d/k%d", u, i%3)
				rep, err := c.cl.Put(cx, p, json.RawMessage(strconv.Itoa(i)))
				if err != nil {
					errs <- err
					return
				}
				g, err := c.cl.Get(cx, bus.GetRequest{Path: p})
				if err != nil || g.Seq < rep.Seq || string(g.Value) != strconv.Itoa(i) {
					errs <- fmt.Errorf("user %d read %+v after writing %d at seq %d: %v", u, g, i, rep.Seq, err)
					return
				}
			}
			errs <- nil
		}(u)
	}
	for u := 0; u < 8; u++ {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
}

// TestLinearizableGetsTakeNoRound: linearizable gets through the router
// are confirmed by the read checks it sends with their batches: the
// leader starts no read-index round (read_ping) of its own.
func TestLinearizableGetsTakeNoRound(t *testing.T) {
	c := startCluster(t, 3)
	cx := ctx(t)
	rep, err := c.cl.Put(cx, "lin/k", json.RawMessage(`1`))
	if err != nil {
		t.Fatal(err)
	}
	nc, err := nats.Connect(c.srv.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	var mu sync.Mutex
	seen := map[protocol.MsgType]int{}
	for _, subj := range []string{"ms.sys.all", "ms.sys.to.*"} { // checks go to followers, rounds to all
		if _, err := nc.Subscribe(subj, func(m *nats.Msg) {
			var msg protocol.Message
			if msg.UnmarshalBinary(m.Data) == nil {
				mu.Lock()
				seen[msg.Type]++
				mu.Unlock()
			}
		}); err != nil {
			t.Fatal(err)
		}
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 30; i++ {
		g, err := c.cl.Get(cx, bus.GetRequest{Path: "lin/k"})
		if err != nil || g.Seq != rep.Seq {
			t.Fatalf("get %d: %+v %v", i, g, err)
		}
	}
	// The subscription's handler may still be on the last messages: a
	// flush says they reached nc, not that the handler has counted them.
	c.waitFor("a read check per get and no read ping", 2*time.Second, func() error {
		mu.Lock()
		defer mu.Unlock()
		if seen[protocol.MsgReadCheck] < 30 || seen[protocol.MsgReadPing] != 0 {
			return fmt.Errorf("30 linearizable gets: %d read checks, %d read pings; want 30 or more, and none",
				seen[protocol.MsgReadCheck], seen[protocol.MsgReadPing])
		}
		return nil
	})
}

// TestMajorityDownIsUnavailable: with 2 of 3 nodes down a write answers
// unavailable within the router's deadline, and succeeds once they return.
func TestMajorityDownIsUnavailable(t *testing.T) {
	c := startCluster(t, 3)
	cx := ctx(t)
	if _, err := c.cl.Put(cx, "m/a", json.RawMessage(`1`)); err != nil {
		t.Fatal(err)
	}
	l := c.leader()
	for id := protocol.NodeID(1); id <= 3; id++ {
		if id != l {
			c.stopNode(id)
		}
	}
	// Once the leader has not heard from a majority for QuorumTicks (1 s),
	// it refuses writes: nothing is written, the answer is unavailable. (A
	// write it accepted just before noticing answers timeout: its outcome is
	// open until the majority returns.)
	time.Sleep(1500 * time.Millisecond)
	start := time.Now()
	_, err := c.cl.Put(cx, "m/b", json.RawMessage(`2`))
	if code(err) != bus.CodeUnavailable || time.Since(start) > 6*time.Second {
		t.Fatalf("write without a majority: %v (after %v)", err, time.Since(start))
	}
	if _, err := c.cl.Get(cx, bus.GetRequest{Path: "m/a"}); code(err) != bus.CodeUnavailable {
		t.Fatalf("linearizable read without a majority: %v", err)
	}
	for id := protocol.NodeID(1); id <= 3; id++ {
		if id != l {
			c.startNode(id)
		}
	}
	c.waitFor("writes again", 15*time.Second, func() error {
		_, err := c.cl.Put(cx, "m/c", json.RawMessage(`3`))
		return err
	})
	if g, err := c.cl.Get(cx, bus.GetRequest{Path: "m/a"}); err != nil || string(g.Value) != "1" {
		t.Fatalf("m/a: %+v %v", g, err)
	}
}

// TestFullShutdownKeepsEverything stops every node and the middleware and
// starts them again on the same folders: every acknowledged version is
// back, history included, and the epoch did not go back.
func TestFullShutdownKeepsEverything(t *testing.T) {
	c := startCluster(t, 3)
	cx := ctx(t)
	for i := 0; i < 50; i++ {
		if _, err := c.cl.Put(cx, fmt.Sprintf("s/p%d", i%5), json.RawMessage(strconv.Itoa(i))); err != nil {
			t.Fatal(err)
		}
	}
	st, _ := c.cl.Status(cx)
	epoch := st.Epoch
	dir := c.dir
	c.stop()
	c2 := &cluster{t: t, dir: dir, nodes: map[protocol.NodeID]*replica.Node{}, conns: map[protocol.NodeID]*nats.Conn{}, log: quietLogger()}
	c2.restartMiddleware(3)
	for id := protocol.NodeID(1); id <= 3; id++ {
		c2.startNode(id)
	}
	t.Cleanup(c2.stop)
	c2.waitFor("a leader after a full restart", 15*time.Second, func() error {
		_, err := c2.cl.Get(cx, bus.GetRequest{Path: "s/p0"})
		return err
	})
	st, _ = c2.cl.Status(cx)
	if st.Epoch <= epoch {
		t.Fatalf("epoch %d after restart, was %d", st.Epoch, epoch)
	}
	for p := 0; p < 5; p++ {
		h, err := c2.cl.History(cx, bus.HistoryRequest{Path: fmt.Sprintf("s/p%d", p)})
		if err != nil || len(h.Values) != 10 || string(h.Values[9].Value) != strconv.Itoa(45+p) {
			t.Fatalf("history of s/p%d after restart: %+v %v", p, h, err)
		}
	}
}

// TestGracefulLeave asks a follower to leave: a view change removes it, the
// node stops by itself, and the cluster writes on with the other members.
func TestGracefulLeave(t *testing.T) {
	c := startCluster(t, 4)
	cx := ctx(t)
	leaving := c.follower()
	if _, err := c.mwConn.Request(bus.NewSubjects("").Leave(leaving), nil, 5*time.Second); err != nil {
		t.Fatal(err)
	}
	select {
	case <-c.nodes[leaving].Done():
	case <-time.After(15 * time.Second):
		t.Fatal("the leaving node did not stop")
	}
	if err := c.nodes[leaving].Err(); err != nil {
		t.Fatalf("left with an error: %v", err)
	}
	st, _ := c.cl.Status(cx)
	if len(st.Members) != 3 {
		t.Fatalf("members after leave: %v", st.Members)
	}
	if _, err := c.cl.Put(cx, "after/leave", json.RawMessage(`1`)); err != nil {
		t.Fatal(err)
	}
}

// TestLeaveADeadMember: a member down for good cannot ask to leave, so
// the group service takes it out when asked (memstore leave), and the
// others write on without counting it.
func TestLeaveADeadMember(t *testing.T) {
	c := startCluster(t, 3)
	cx := ctx(t)
	dead := c.follower()
	c.stopNode(dead)
	rep, err := c.mwConn.Request(bus.NewSubjects("").Leave(dead), nil, 5*time.Second)
	var res bus.Result
	if err != nil || bus.Decode(rep.Data, &res) != nil || res.Err() != nil {
		t.Fatalf("leave of a dead member: %v %+v", err, res)
	}
	c.waitFor("a view without the dead member", 10*time.Second, func() error {
		st, err := c.cl.Status(cx)
		if err != nil || len(st.Members) != 2 || slices.Contains(st.Members, uint64(dead)) || st.Leader == 0 {
			return fmt.Errorf("status %+v %v", st, err)
		}
		return nil
	})
	if _, err := c.cl.Put(cx, "after/dead", json.RawMessage(`1`)); err != nil {
		t.Fatal(err)
	}
	// A non-member is the node's to answer: the group service says nothing.
	if _, err := c.mwConn.Request(bus.NewSubjects("").Leave(99), nil, 500*time.Millisecond); !errors.Is(err, nats.ErrTimeout) {
		t.Fatalf("leave of an unknown node: %v, want no answer", err)
	}
}

// TestSecondNodeWithTheSameIDIsRefused: a node started with the id of one
// that runs (from another folder) refuses to start; the id is free again
// once that one has stopped.
func TestSecondNodeWithTheSameIDIsRefused(t *testing.T) {
	c := startCluster(t, 3)
	nc, err := bus.Connect(c.srv.ClientURL(), "second-node-2", c.log)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	cfg := replica.DefaultConfig(2, filepath.Join(c.dir, "second-node2"))
	if n, err := replica.Start(nc, cfg, c.log); err == nil || !strings.Contains(err.Error(), "running already") {
		if n != nil {
			n.Close()
		}
		t.Fatalf("a second node 2: %v", err)
	}
	c.stopNode(2)
	n, err := replica.Start(nc, cfg, c.log)
	if err != nil {
		t.Fatalf("node 2 once the first has stopped: %v", err)
	}
	n.Close()
}

// TestLeaveWhileJoining asks a node to leave before it is a member: it is
// out of the group already, so it stops (it waited for a view change that
// never came, and went on running). Its disk is held until the request is
// answered, so it cannot catch up and be admitted first.
func TestLeaveWhileJoining(t *testing.T) {
	c := startCluster(t, 3)
	cx := ctx(t)
	for i := range 100 { // more entries than JoinLag: node 4 joins only once it holds them
		if _, err := c.cl.Put(cx, "j/x", json.RawMessage(strconv.Itoa(i))); err != nil {
			t.Fatal(err)
		}
	}
	disk, held, holding := vfs.NewMem(), make(chan struct{}), atomic.Bool{}
	disk.BeforeMutate(func() {
		if holding.Load() {
			<-held
		}
	})
	c.startNodeWith(4, func(cfg *replica.Config) { cfg.FS = disk })
	release := sync.OnceFunc(func() { close(held) })
	t.Cleanup(release) // runs before the cluster's stop, which waits for node 4's disk: a failed test must not hang
	holding.Store(true)
	c.waitFor("node 4 to take the request", 5*time.Second, func() error {
		_, err := c.mwConn.Request(bus.NewSubjects("").Leave(4), nil, time.Second)
		return err
	})
	release()
	select {
	case <-c.nodes[4].Done():
	case <-time.After(15 * time.Second):
		st, _ := c.cl.Status(cx)
		t.Fatalf("the leaving node did not stop; status %+v", st)
	}
	if err := c.nodes[4].Err(); err != nil {
		t.Fatalf("left with an error: %v", err)
	}
	st, _ := c.cl.Status(cx)
	if slices.Contains(st.Members, 4) {
		t.Fatalf("members after leave: %v", st.Members)
	}
}

// sensorValues counts the values stored by the first n sensors under
// prefix.
func (c *cluster) sensorValues(prefix string, n int) int {
	c.t.Helper()
	stored := 0
	for i := 0; i < n; i++ {
		h, err := c.cl.History(ctx(c.t), bus.HistoryRequest{Path: sensor.Path(prefix, i)})
		if err != nil && code(err) != bus.CodeNotFound {
			c.t.Fatal(err)
		}
		stored += len(h.Values)
	}
	return stored
}

// TestSensorFeedsTheStore runs the sensor simulator in both modes: every
// acknowledged value is stored, and fire-and-forget values arrive.
func TestSensorFeedsTheStore(t *testing.T) {
	c := startCluster(t, 3)
	cx := ctx(t)
	st, err := sensor.Run(cx, c.cl, sensor.Config{Prefix: "p", Sensors: 10, Rate: 50, Count: 20, Seed: 1, Mode: sensor.ModeAck}, nil)
	if err != nil || st.Acked != st.Sent || st.Sent+st.Dropouts != 200 {
		t.Fatalf("ack mode: %s %v", st, err)
	}
	if stored := c.sensorValues("p", 10); stored != st.Acked {
		t.Fatalf("%d values stored, %d acknowledged", stored, st.Acked)
	}
	st, err = sensor.Run(cx, c.cl, sensor.Config{Prefix: "q", Sensors: 5, Rate: 50, Count: 10, Seed: 2, Mode: sensor.ModeFire}, nil)
	if err != nil || st.Sent == 0 {
		t.Fatalf("fire mode: %s %v", st, err)
	}
	c.waitFor("fire-and-forget values", 5*time.Second, func() error {
		tr, err := c.cl.Tree(cx, bus.TreeRequest{Path: "q"})
		if err != nil || len(tr.Values) != 5 {
			return fmt.Errorf("tree q: %d paths, %v", len(tr.Values), err)
		}
		return nil
	})
}

// TestKeyedWritesAreWrittenOnce: a put resent with the same (source,
// sequence) is answered as a duplicate with the original seq and stores
// nothing; an older sequence is a duplicate too; a newer one is written.
func TestKeyedWritesAreWrittenOnce(t *testing.T) {
	c := startCluster(t, 3)
	cx := ctx(t)
	req := bus.PutRequest{Path: "d/x", Value: json.RawMessage(`1`), Source: "s", SourceSeq: 10}
	first, err := c.cl.Write(cx, req)
	if err != nil || first.Duplicate {
		t.Fatalf("first: %+v %v", first, err)
	}
	again, err := c.cl.Write(cx, req)
	if err != nil || !again.Duplicate || again.Seq != first.Seq || again.TS != first.TS || again.SourceSeq != 10 {
		t.Fatalf("resent: %+v %v (first %+v)", again, err, first)
	}
	req.SourceSeq, req.Value = 5, json.RawMessage(`2`)
	if old, err := c.cl.Write(cx, req); err != nil || !old.Duplicate || old.SourceSeq != 10 {
		t.Fatalf("older sequence: %+v %v", old, err)
	}
	req.SourceSeq, req.Value = 11, json.RawMessage(`3`)
	if next, err := c.cl.Write(cx, req); err != nil || next.Duplicate {
		t.Fatalf("newer sequence: %+v %v", next, err)
	}
	h, err := c.cl.History(cx, bus.HistoryRequest{Path: "d/x"})
	if err != nil || len(h.Values) != 2 || string(h.Values[0].Value) != "1" || string(h.Values[1].Value) != "3" {
		t.Fatalf("history: %+v %v", h, err)
	}
	if _, err := c.cl.Write(cx, bus.PutRequest{Path: "d/x", Value: json.RawMessage(`1`), Source: "s"}); code(err) != bus.CodeBadRequest {
		t.Fatalf("source without a sequence: %v", err)
	}
	// The table is replicated: after a failover the new leader knows it.
	c.stopNode(c.leader())
	again, err = c.cl.Write(cx, bus.PutRequest{Path: "d/x", Value: json.RawMessage(`1`), Source: "s", SourceSeq: 10})
	if err != nil || !again.Duplicate {
		t.Fatalf("resent after failover: %+v %v", again, err)
	}
}

// TestLargeBatchesReplicate: batches near the 1 MiB request limit commit
// and reach a follower that catches up on several of them (regression: an
// append message over the transport's payload limit was dropped silently,
// so such batches never replicated and a joining node never caught up).
func TestLargeBatchesReplicate(t *testing.T) {
	c := startCluster(t, 3)
	cx := ctx(t)
	lag := c.follower()
	c.stopNode(lag)
	// 800 KB batches, over the 512 KiB bound of one append, on 200 paths:
	// new paths cost a mkdir and a create each, slow on a busy disk.
	big := json.RawMessage(`"` + strings.Repeat("x", 4000) + `"`)
	var last uint64
	for b := 0; b < 4; b++ {
		vals := make([]bus.PathValue, 200)
		for i := range vals {
			vals[i] = bus.PathValue{Path: fmt.Sprintf("big/p%d", i), Value: big}
		}
		rep, err := c.cl.PutBatch(cx, vals)
		if err != nil {
			t.Fatalf("batch %d: %v", b, err)
		}
		last = rep.Seq
	}
	vals := make([]bus.PathValue, 200)
	for i := range vals {
		vals[i] = bus.PathValue{Path: fmt.Sprintf("big/p%d", i), Value: json.RawMessage(`"` + strings.Repeat("y", 5500) + `"`)}
	}
	if _, err := c.cl.PutBatch(cx, vals); code(err) != bus.CodeTooLarge {
		t.Fatalf("a 1.1 MB request: %v", err)
	}
	c.startNode(lag)
	c.waitFor("the follower caught up", 20*time.Second, func() error {
		st, err := c.cl.Status(cx)
		if err != nil {
			return err
		}
		for _, n := range st.Nodes {
			if n.ID == uint64(lag) && n.Applied >= last {
				return nil
			}
		}
		return fmt.Errorf("node %d not at seq %d: %+v", lag, last, st.Nodes)
	})
}

// hugeBatch is a put request of n values on distinct paths.
func hugeBatch(n int) string {
	parts := make([]string, n)
	for i := range parts {
		parts[i] = fmt.Sprintf(`{"path":"huge/p%d","value":%d}`, i, i)
	}
	return `{"values":[` + strings.Join(parts, ",") + `]}`
}

// TestSensorSourceOfAnotherProcess: a sensor whose source another writer
// has used further on gets every batch called a duplicate at its first
// sending: nothing of it is written, so nothing counts as acknowledged,
// and Refused says why. Two sensors on one host and prefix share their
// default source: some batches of each are refused, but every value
// acknowledged is stored.
func TestSensorSourceOfAnotherProcess(t *testing.T) {
	c := startCluster(t, 3)
	cx := ctx(t)
	if _, err := c.cl.Write(cx, bus.PutRequest{Path: "other/x", Value: json.RawMessage(`1`), Source: "shared", SourceSeq: math.MaxInt64}); err != nil {
		t.Fatal(err)
	}
	st, err := sensor.Run(cx, c.cl, sensor.Config{Prefix: "s", Sensors: 3, Rate: 50, Count: 5, Seed: 1, Mode: sensor.ModeAck, Source: "shared"}, nil)
	if err != nil || st.Acked != 0 || st.Refused == nil || st.Errors == 0 {
		t.Fatalf("a sensor on a source used further on: %s, refused %v, %v", st, st.Refused, err)
	}
	var wg sync.WaitGroup
	stats := make([]sensor.Stats, 2)
	for i := range stats {
		wg.Add(1)
		go func() {
			defer wg.Done()
			stats[i], _ = sensor.Run(cx, c.cl, sensor.Config{Prefix: "both", Sensors: 5, Rate: 100, Count: 40, Seed: int64(i), Mode: sensor.ModeAck}, nil)
		}()
	}
	wg.Wait()
	stored := c.sensorValues("both", 5)
	if acked := stats[0].Acked + stats[1].Acked; stored != acked {
		t.Fatalf("two sensors on one prefix: %d values stored, %d acknowledged (%s; %s)", stored, acked, stats[0], stats[1])
	}
}

// TestMinSeqNotReachedSaysSo: a get waiting for a seq the store has not
// reached times out saying so, not that no leader could answer.
func TestMinSeqNotReachedSaysSo(t *testing.T) {
	c := startCluster(t, 3)
	cx, cancel := context.WithTimeout(ctx(t), 2*time.Second)
	defer cancel()
	rep, err := c.cl.Put(ctx(t), "far/x", json.RawMessage(`1`))
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.cl.Get(cx, bus.GetRequest{Path: "far/x", Consistency: bus.Stale, MinSeq: rep.Seq + 1000})
	if code(err) != bus.CodeTimeout || !strings.Contains(err.Error(), "min_seq") {
		t.Fatalf("a get waiting for an unreached seq: %v", err)
	}
}

// TestCoalescedPutsLandOnce: 32 writers on one client, each putting its
// own path 10 times and a path they all share now and then: the client
// sends the Puts that overlap as batches, and every acknowledged value is
// in its path's history once, at the seq its ack gave, in each writer's
// order; the shared path never holds two versions at one seq (a batch
// names a path once); and some acks share a seq (batches were sent).
func TestCoalescedPutsLandOnce(t *testing.T) {
	c := startCluster(t, 3)
	cx := ctx(t)
	const writers, puts = 32, 10
	type ack struct {
		path, value string
		seq         uint64
	}
	acks := make(chan ack, writers*puts*2)
	errs := make(chan error, writers)
	for w := range writers {
		go func() {
			put := func(p, v string) error {
				rep, err := c.cl.Put(cx, p, json.RawMessage(v))
				if err == nil {
					acks <- ack{p, v, rep.Seq}
				}
				return err
			}
			for i := range puts {
				err := put(fmt.Sprintf("co/w%d", w), strconv.Itoa(i))
				if err == nil && i%5 == 0 {
					err = put("co/shared", strconv.Quote(fmt.Sprintf("w%d-%d", w, i)))
				}
				if err != nil {
					errs <- err
					return
				}
			}
			errs <- nil
		}()
	}
	for range writers {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	close(acks)
	want := map[string]map[string]uint64{} // path → value → seq
	paths := map[uint64]int{}              // seq → paths acknowledged at it
	for a := range acks {
		if want[a.path] == nil {
			want[a.path] = map[string]uint64{}
		}
		want[a.path][a.value] = a.seq
		paths[a.seq]++
	}
	shared := 0
	for _, n := range paths {
		if n > 1 {
			shared++
		}
	}
	if shared == 0 {
		t.Error("no two Puts were acknowledged at one seq: nothing was sent as a batch")
	}
	for p, values := range want {
		var got []bus.Version
		if err := c.cl.Versions(cx, bus.HistoryRequest{Path: p}, func(v bus.Version) error {
			got = append(got, v)
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		if len(got) != len(values) {
			t.Fatalf("%s holds %d versions, %d acknowledged", p, len(got), len(values))
		}
		for i, v := range got {
			if seq, ok := values[string(v.Value)]; !ok || seq != v.Seq || i > 0 && v.Seq <= got[i-1].Seq {
				t.Fatalf("%s: version %d is %s at seq %d (acknowledged at %d, known %v)", p, i, v.Value, v.Seq, seq, ok)
			}
			if p != "co/shared" && string(v.Value) != strconv.Itoa(i) {
				t.Fatalf("%s: version %d is %s, out of its writer's order", p, i, v.Value)
			}
		}
	}
	t.Logf("%d puts acknowledged at %d seqs, %d of them shared", writers*puts+writers*2, len(paths), shared)
}

// TestCoalescedGetsReadTheirPaths: many readers on one client, whose
// stale gets overlap and go to member nodes in batches, each get their
// own path's value, as do their linearizable gets beside them.
func TestCoalescedGetsReadTheirPaths(t *testing.T) {
	c := startCluster(t, 3)
	cx := ctx(t)
	const readers, gets = 32, 20
	for r := range readers {
		if _, err := c.cl.Put(cx, fmt.Sprintf("cg/r%d", r), json.RawMessage(strconv.Itoa(r))); err != nil {
			t.Fatal(err)
		}
	}
	errs := make(chan error, readers)
	for r := range readers {
		go func() {
			p, v := fmt.Sprintf("cg/r%d", r), strconv.Itoa(r)
			for i := range gets {
				kind := []string{bus.Linearizable, bus.Stale}[i%2]
				g, err := c.cl.Get(cx, bus.GetRequest{Path: p, Consistency: kind})
				if kind == bus.Stale && code(err) == bus.CodeNotFound { // a member that has not applied the put yet
					continue
				}
				if err != nil || g.Path != p || string(g.Value) != v {
					errs <- fmt.Errorf("%s get of %s: %+v %v", kind, p, g, err)
					return
				}
			}
			errs <- nil
		}()
	}
	for range readers {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
}
