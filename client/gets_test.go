package client

import (
	"context"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"memstore/bus"
	"memstore/internal/natstest"
)

// fakeGetServer answers gets on subject in place of the member nodes
// (ms.api.get.stale) or the router (ms.api.get): it records each
// request's paths, holds the first request until release is closed, and
// answers each get with seq = its request's number; in a batch it leaves
// out the reply of the path leftOut, and with old it answers a batch as a
// server older than batches does (bad_request); it answers the later
// requests after delay, and never the one numbered drop.
type fakeGetServer struct {
	subject  string
	mu       sync.Mutex
	requests [][]string
	release  chan struct{}
	leftOut  string
	old      bool
	delay    time.Duration
	drop     int
}

func startFakeGetServer(t *testing.T, nc *nats.Conn, f *fakeGetServer) {
	t.Helper()
	sub, err := nc.Subscribe(f.subject, func(m *nats.Msg) {
		gets := [][]byte{m.Data}
		batch := m.Header.Get(bus.HeaderBatch) != ""
		if batch {
			var err error
			if gets, err = bus.SplitFrames(m.Data); err != nil {
				t.Errorf("batch %q: %v", m.Data, err)
				return
			}
		}
		var paths []string
		for _, g := range gets {
			req, e := bus.DecodeGetRequest(g)
			if e != nil {
				t.Errorf("get %s: %v", g, e)
				return
			}
			paths = append(paths, req.Path)
		}
		f.mu.Lock()
		f.requests = append(f.requests, paths)
		n := len(f.requests)
		f.mu.Unlock()
		switch {
		case n == f.drop:
			return
		case n == 1:
			<-f.release
		default:
			time.Sleep(f.delay)
		}
		reply := func(p string) []byte {
			return bus.Encode(bus.GetReply{Result: bus.Result{OK: true}, Path: p, Version: bus.Version{Seq: uint64(n), Value: []byte("1")}})
		}
		switch {
		case !batch:
			_ = m.Respond(reply(paths[0]))
		case f.old:
			_ = m.Respond(bus.ErrorReply(bus.Errorf(bus.CodeBadRequest, "not a get")))
		default:
			reps := make([][]byte, len(paths))
			for i, p := range paths {
				if reps[i] = []byte{}; p != f.leftOut {
					reps[i] = reply(p)
				}
			}
			_ = m.Respond(bus.EncodeReplies(reps))
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sub.Unsubscribe() })
}

func (f *fakeGetServer) seen() [][]string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.requests)
}

// TestGetsGoTogether: a lone Get goes alone; Gets of one consistency made
// while one is out go as one batch once it is answered, each answered with
// its own reply; a get whose reply was left out of the batch, or all of a
// batch a server older than batches refused, are asked again alone.
func TestGetsGoTogether(t *testing.T) {
	sub := bus.NewSubjects("")
	for _, tc := range []struct {
		name  string
		kind  string
		f     *fakeGetServer
		alone []string // asked again alone after the batch, in any order
		seq   map[string]uint64
	}{
		{"stale", bus.Stale, &fakeGetServer{subject: sub.StaleGet(), leftOut: "c"}, []string{"c"}, map[string]uint64{"first": 1, "b": 2, "c": 3, "d": 2}},
		{"stale, older node", bus.Stale, &fakeGetServer{subject: sub.StaleGet(), old: true}, []string{"b", "c", "d"}, nil},
		{"linearizable", bus.Linearizable, &fakeGetServer{subject: sub.API(bus.OpGet), leftOut: "c"}, []string{"c"}, map[string]uint64{"first": 1, "b": 2, "c": 3, "d": 2}},
		{"linearizable, older router", bus.Linearizable, &fakeGetServer{subject: sub.API(bus.OpGet), old: true}, []string{"b", "c", "d"}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, nc, _ := natstest.Start(t)
			c := New(nc, Options{})
			tc.f.release = make(chan struct{})
			startFakeGetServer(t, nc, tc.f)
			type outcome struct {
				path string
				rep  bus.GetReply
				err  error
			}
			out := make(chan outcome, 4)
			get := func(p string) {
				rep, err := c.Get(context.Background(), bus.GetRequest{Path: p, Consistency: tc.kind})
				out <- outcome{p, rep, err}
			}
			go get("first")
			for len(tc.f.seen()) == 0 {
				time.Sleep(time.Millisecond)
			}
			for _, p := range []string{"b", "c", "d"} {
				go get(p)
			}
			lane := c.stale
			if tc.kind != bus.Stale {
				lane = c.lin
			}
			waitQueued(t, c, &lane.queued, 3)
			close(tc.f.release)
			for range 4 {
				o := <-out
				if o.err != nil || o.rep.Path != o.path || tc.seq != nil && o.rep.Seq != tc.seq[o.path] {
					t.Errorf("get %s: %+v %v", o.path, o.rep, o.err)
				}
			}
			reqs := tc.f.seen()
			if len(reqs) != 2+len(tc.alone) || !slices.Equal(reqs[0], []string{"first"}) {
				t.Fatalf("requests %v: want [first], then the batch, then %v alone", reqs, tc.alone)
			}
			slices.Sort(reqs[1])
			if !slices.Equal(reqs[1], []string{"b", "c", "d"}) {
				t.Errorf("the batch held %v, want b, c and d", reqs[1])
			}
			var alone []string
			for _, r := range reqs[2:] {
				alone = append(alone, r...)
			}
			slices.Sort(alone)
			if !slices.Equal(alone, tc.alone) {
				t.Errorf("asked alone %v, want %v", alone, tc.alone)
			}
		})
	}
}

// TestStaleGetCancelledReturns: a lone stale Get, sent from its caller's
// goroutine, stops waiting when its caller cancels, not at the end of its
// share of the client's timeout.
func TestStaleGetCancelledReturns(t *testing.T) {
	_, nc, _ := natstest.Start(t)
	c := New(nc, Options{Timeout: 30 * time.Second})
	f := &fakeGetServer{subject: bus.NewSubjects("").StaleGet(), release: make(chan struct{})}
	startFakeGetServer(t, nc, f)
	defer close(f.release)
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(100*time.Millisecond, cancel)
	start := time.Now()
	_, err := c.Get(ctx, bus.GetRequest{Path: "a", Consistency: bus.Stale})
	if waited := time.Since(start); err == nil || waited > 5*time.Second {
		t.Fatalf("a stale get cancelled after 100ms returned %v after %v", err, waited)
	}
}

// TestGetBatchWaitsForItsLatestDeadline: a batch waits as long as the
// latest deadline in it says, not the earliest: a Get with little time
// left gives up alone, and the one queued with it still gets its answer.
func TestGetBatchWaitsForItsLatestDeadline(t *testing.T) {
	_, nc, _ := natstest.Start(t)
	c := New(nc, Options{})
	f := &fakeGetServer{subject: bus.NewSubjects("").API(bus.OpGet), release: make(chan struct{}), delay: 300 * time.Millisecond}
	startFakeGetServer(t, nc, f)
	go func() { _, _ = c.Get(context.Background(), bus.GetRequest{Path: "first"}) }()
	for len(f.seen()) == 0 {
		time.Sleep(time.Millisecond)
	}
	short, cancel := context.WithTimeout(context.Background(), 150*time.Millisecond)
	defer cancel()
	go func() { _, _ = c.Get(short, bus.GetRequest{Path: "short"}) }()
	waitQueued(t, c, &c.lin.queued, 1)
	long := make(chan error, 1)
	go func() {
		_, err := c.Get(context.Background(), bus.GetRequest{Path: "long"})
		long <- err
	}()
	waitQueued(t, c, &c.lin.queued, 2)
	close(f.release)
	if err := <-long; err != nil {
		t.Fatalf("a get with 5 s left, batched with one with 150 ms left: %v", err)
	}
}

// TestGetLaneMovesOnWhenItsCallersLeave: a batch whose reply is lost
// holds the Gets queued behind it only until its callers have given up.
func TestGetLaneMovesOnWhenItsCallersLeave(t *testing.T) {
	_, nc, _ := natstest.Start(t)
	c := New(nc, Options{})
	f := &fakeGetServer{subject: bus.NewSubjects("").API(bus.OpGet), release: make(chan struct{}), drop: 2}
	startFakeGetServer(t, nc, f)
	go func() { _, _ = c.Get(context.Background(), bus.GetRequest{Path: "first"}) }()
	for len(f.seen()) == 0 {
		time.Sleep(time.Millisecond)
	}
	lost, cancel := context.WithCancel(context.Background())
	go func() { _, _ = c.Get(lost, bus.GetRequest{Path: "lost"}) }()
	waitQueued(t, c, &c.lin.queued, 1)
	close(f.release)
	for len(f.seen()) < 2 { // the lost one's request is out
		time.Sleep(time.Millisecond)
	}
	cancel()
	next, cancelNext := context.WithTimeout(context.Background(), time.Second)
	defer cancelNext()
	if g, err := c.Get(next, bus.GetRequest{Path: "next"}); err != nil || g.Path != "next" {
		t.Fatalf("a get after the only caller of a lost batch gave up: %+v %v", g, err)
	}
}
