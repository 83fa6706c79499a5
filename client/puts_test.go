package client

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"memstore/bus"
	"memstore/internal/natstest"
)

// fakeRouter answers ms.api.put in place of the store: it records each
// request's paths (one request a slice), holds the first request until
// release is closed (or, with drop, never answers it), waits delay
// before answering the first slow requests (all if 0), and answers with
// seq = the request's number, or with the error refuse names for it.
type fakeRouter struct {
	mu       sync.Mutex
	requests [][]string
	release  chan struct{}
	drop     bool
	delay    time.Duration
	slow     int
	refuse   func(paths []string) string // an error code, or ""
}

func startFakeRouter(t *testing.T, nc *nats.Conn, f *fakeRouter) {
	t.Helper()
	sub, err := nc.Subscribe(bus.NewSubjects("").API(bus.OpPut), func(m *nats.Msg) {
		req, e := bus.DecodePutRequest(m.Data)
		if e != nil {
			t.Errorf("request %s: %v", m.Data, e)
			return
		}
		paths := []string{req.Path}
		if len(req.Values) > 0 {
			paths = nil
			for _, v := range req.Values {
				paths = append(paths, v.Path)
			}
		}
		f.mu.Lock()
		f.requests = append(f.requests, paths)
		n := len(f.requests)
		f.mu.Unlock()
		if n == 1 && f.drop {
			return
		}
		if n == 1 && f.release != nil {
			<-f.release
		}
		if f.slow == 0 || n <= f.slow {
			time.Sleep(f.delay)
		}
		if f.refuse != nil {
			if code := f.refuse(paths); code != "" {
				_ = m.Respond(bus.ErrorReply(bus.Errorf(code, "refused")))
				return
			}
		}
		_ = m.Respond(bus.Encode(bus.PutReply{Result: bus.Result{OK: true}, Seq: uint64(n), TS: "t"}))
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sub.Unsubscribe() })
}

// waitOut waits until the first request is out.
func (f *fakeRouter) waitOut() {
	for len(f.seen()) == 0 {
		time.Sleep(time.Millisecond)
	}
}

func (f *fakeRouter) seen() [][]string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.requests)
}

// waitQueued waits until the queue of c that queue names (under c.mu)
// holds n calls behind the request out.
func waitQueued[T any](t *testing.T, c *Client, queue *[]T, n int) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(time.Millisecond) {
		c.mu.Lock()
		q := len(*queue)
		c.mu.Unlock()
		if q == n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d calls queued, want %d", q, n)
		}
	}
}

type putOutcome struct {
	path string
	rep  bus.PutReply
	err  error
}

// putBehind puts first, and once its request is out (held by f), the
// other paths, each in its own goroutine; once they queue it releases f.
// The outcomes come on the channel as the Puts are answered.
func putBehind(t *testing.T, c *Client, f *fakeRouter, first string, paths ...string) <-chan putOutcome {
	t.Helper()
	out := make(chan putOutcome, len(paths)+1)
	put := func(p string) {
		rep, err := c.Put(context.Background(), p, json.RawMessage(`1`))
		out <- putOutcome{p, rep, err}
	}
	go put(first)
	f.waitOut()
	for _, p := range paths {
		go put(p)
	}
	waitQueued(t, c, &c.queued, len(paths))
	close(f.release)
	return out
}

// TestPutsGoTogether: a lone Put goes alone; Puts made while one is out
// go as one batch request once it is answered, each answered with the
// batch's seq; a second Put of a path waits for the next batch.
func TestPutsGoTogether(t *testing.T) {
	_, nc, _ := natstest.Start(t)
	c := New(nc, Options{})
	f := &fakeRouter{release: make(chan struct{})}
	startFakeRouter(t, nc, f)
	out := putBehind(t, c, f, "a", "b", "c", "d", "b", "e")
	seqs := map[string][]uint64{}
	for range 6 {
		o := <-out
		if o.err != nil {
			t.Fatalf("put %s: %v", o.path, o.err)
		}
		seqs[o.path] = append(seqs[o.path], o.rep.Seq)
	}
	got := f.seen()
	if len(got) != 3 || !slices.Equal(got[0], []string{"a"}) || len(got[1]) != 4 || !slices.Equal(got[2], []string{"b"}) {
		t.Fatalf("requests %v, want [a], then b c d e in one batch, then b", got)
	}
	slices.Sort(got[1])
	if !slices.Equal(got[1], []string{"b", "c", "d", "e"}) {
		t.Fatalf("batch %v, want b c d e", got[1])
	}
	slices.Sort(seqs["b"])
	if !slices.Equal(seqs["a"], []uint64{1}) || !slices.Equal(seqs["c"], []uint64{2}) || !slices.Equal(seqs["e"], []uint64{2}) || !slices.Equal(seqs["b"], []uint64{2, 3}) {
		t.Fatalf("seqs %v", seqs)
	}
}

// TestPutsRefusedForContentGoAlone: a batch refused for what one of its
// values is (nothing of it written) is sent again a Put at a time, so
// only the bad Put fails; a batch refused for anything else (unavailable,
// forbidden: who sent it) fails every Put of it, none sent again.
func TestPutsRefusedForContentGoAlone(t *testing.T) {
	for _, tc := range []struct {
		code  string
		alone bool
	}{{bus.CodeBadPath, true}, {bus.CodeBadRequest, true}, {bus.CodeTooLarge, true}, {bus.CodeForbidden, false}, {bus.CodeUnavailable, false}} {
		t.Run(tc.code, func(t *testing.T) {
			_, nc, _ := natstest.Start(t)
			c := New(nc, Options{})
			f := &fakeRouter{release: make(chan struct{}), refuse: func(paths []string) string {
				if slices.Contains(paths, "bad") {
					return tc.code
				}
				return ""
			}}
			startFakeRouter(t, nc, f)
			out := putBehind(t, c, f, "x", "bad", "y", "z")
			for range 4 {
				o := <-out
				failed := o.path == "bad" || !tc.alone && o.path != "x"
				if failed != (o.err != nil) || failed && !bus.HasCode(o.err, tc.code) || !failed && o.rep.Seq == 0 {
					t.Errorf("put %s: %+v %v", o.path, o.rep, o.err)
				}
			}
			want := 2 // x, then the batch
			if tc.alone {
				want += 3 // bad, y and z again, each alone
			}
			got := f.seen()
			if len(got) != want {
				t.Fatalf("requests %v, want %d", got, want)
			}
			for _, r := range got[2:] {
				if len(r) != 1 {
					t.Errorf("requests %v: a Put sent again went with others", got)
				}
			}
		})
	}
}

// TestPutGivenUpBeforeSentIsNotSent: a Put whose caller stops waiting
// while it queues is dropped from the queue, never sent, and says it
// timed out; a value that is not JSON is refused before anything is sent.
func TestPutGivenUpBeforeSentIsNotSent(t *testing.T) {
	_, nc, _ := natstest.Start(t)
	c := New(nc, Options{})
	f := &fakeRouter{release: make(chan struct{})}
	startFakeRouter(t, nc, f)
	done := make(chan error, 1)
	go func() {
		_, err := c.Put(context.Background(), "x", json.RawMessage(`1`))
		done <- err
	}()
	f.waitOut()
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if _, err := c.Put(ctx, "y", json.RawMessage(`1`)); !errors.Is(err, ErrTimeout) {
		t.Fatalf("a Put that timed out while queued: %v", err)
	}
	ctx, cancel = context.WithTimeout(context.Background(), time.Minute)
	go func() {
		defer cancel()
		for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(time.Millisecond) {
			c.mu.Lock()
			q := len(c.queued)
			c.mu.Unlock()
			if q == 1 {
				return
			}
		}
	}()
	if _, err := c.Put(ctx, "y", json.RawMessage(`1`)); !errors.Is(err, context.Canceled) {
		t.Fatalf("a Put cancelled while queued: %v", err)
	}
	close(f.release)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	for _, v := range []string{``, `{"a":`, `hello`} {
		if _, err := c.Put(context.Background(), "z", json.RawMessage(v)); !bus.HasCode(err, bus.CodeBadRequest) {
			t.Errorf("value %q: %v", v, err)
		}
	}
	if _, err := c.Put(context.Background(), "z", json.RawMessage(`1`)); err != nil {
		t.Fatal(err)
	}
	if got := f.seen(); len(got) != 2 || !slices.Equal(got[0], []string{"x"}) || !slices.Equal(got[1], []string{"z"}) {
		t.Fatalf("requests %v, want x's, then z's", got)
	}
}

// TestPutsGatherTheWritersJustAnswered: writers that put again as soon
// as they are answered go as one batch, not as a lone first-comer and the
// rest behind it in turns. 8 writers, 3 Puts each, each request answered
// after 20 ms: [w0], [w1…w7], then two batches of 8 (4 requests);
// without gathering, the first writer back goes alone each round (7).
func TestPutsGatherTheWritersJustAnswered(t *testing.T) {
	_, nc, _ := natstest.Start(t)
	c := New(nc, Options{})
	f := &fakeRouter{delay: 20 * time.Millisecond}
	startFakeRouter(t, nc, f)
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 3 {
				if _, err := c.Put(context.Background(), "w"+strconv.Itoa(w), json.RawMessage(strconv.Itoa(i))); err != nil {
					t.Error(err)
				}
			}
		}()
		if w == 0 {
			f.waitOut()
		}
	}
	wg.Wait()
	got := f.seen()
	n := 0
	for _, r := range got {
		n += len(r)
	}
	if n != 24 || len(got) > 5 {
		t.Fatalf("%d puts in %d requests %v, want 24 in at most 5", n, len(got), got)
	}
}

// TestPutsHeldNoLongerThanNeeded: a Put without a deadline of its own
// gives up after the client's Timeout even while it queues; the Puts
// behind a request whose reply is lost go once its last caller gives
// up; and after a slow round the next Puts are not held for as long.
func TestPutsHeldNoLongerThanNeeded(t *testing.T) {
	t.Run("Timeout while queued", func(t *testing.T) {
		_, nc, _ := natstest.Start(t)
		c := New(nc, Options{Timeout: 200 * time.Millisecond})
		f := &fakeRouter{release: make(chan struct{})}
		startFakeRouter(t, nc, f)
		defer close(f.release)
		go func() {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			_, _ = c.Put(ctx, "a", json.RawMessage(`1`))
		}()
		f.waitOut()
		start := time.Now()
		if _, err := c.Put(context.Background(), "b", json.RawMessage(`1`)); !errors.Is(err, ErrTimeout) || time.Since(start) > 2*time.Second {
			t.Fatalf("a Put queued past the client's Timeout: %v after %v", err, time.Since(start))
		}
	})
	t.Run("reply lost", func(t *testing.T) {
		_, nc, _ := natstest.Start(t)
		c := New(nc, Options{})
		f := &fakeRouter{drop: true}
		startFakeRouter(t, nc, f)
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		gone := make(chan struct{})
		go func() {
			defer close(gone)
			_, _ = c.Put(ctx, "a", json.RawMessage(`1`))
		}()
		f.waitOut()
		cancel() // its only caller gives up: nothing waits for the lost reply
		<-gone
		ctx, cancel = context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		if _, err := c.Put(ctx, "b", json.RawMessage(`1`)); err != nil {
			t.Fatalf("a Put behind a request nobody waits for: %v", err)
		}
	})
	t.Run("after a slow round", func(t *testing.T) {
		_, nc, _ := natstest.Start(t)
		c := New(nc, Options{})
		f := &fakeRouter{delay: 400 * time.Millisecond, slow: 2, release: make(chan struct{})}
		startFakeRouter(t, nc, f)
		out := putBehind(t, c, f, "a", "b", "c")
		for range 3 {
			if o := <-out; o.err != nil {
				t.Fatal(o.err)
			}
		}
		ctx, cancel := context.WithTimeout(context.Background(), 150*time.Millisecond)
		defer cancel()
		if _, err := c.Put(ctx, "d", json.RawMessage(`1`)); err != nil {
			t.Fatalf("a Put just after a slow batch of 2: %v (requests %v)", err, f.seen())
		}
	})
}

// TestGatheringWakesOnceFull: a gathering sender is woken once its queue
// holds what it waits for, not as each call queues; gather drains a wake
// left from an earlier gather, and leaves none armed behind it.
func TestGatheringWakesOnceFull(t *testing.T) {
	g := newGathering()
	g.want = 3
	if g.queued(2); len(g.full) != 0 {
		t.Fatal("woken with 2 of 3 calls queued")
	}
	if g.queued(3); len(g.full) != 1 || g.want != 0 {
		t.Fatalf("with 3 of 3 queued: %d wakes, want %d left armed", len(g.full), g.want)
	}

	c := &Client{more: newGathering()}
	queued := func() int { return len(c.queued) }
	c.more.full <- struct{}{} // left from a gather that ended on its timer
	c.queued = make([]*call, 3)
	c.gather(&c.more, 3, time.Minute, queued)
	if len(c.more.full) != 0 || c.more.want != 0 {
		t.Fatalf("after a gather of a full queue: %d wakes left, want %d armed", len(c.more.full), c.more.want)
	}
	c.queued = nil
	filled := make(chan struct{})
	go func() {
		defer close(filled)
		for range 3 {
			c.mu.Lock()
			c.queued = append(c.queued, &call{})
			c.more.queued(len(c.queued))
			c.mu.Unlock()
		}
	}()
	c.gather(&c.more, 3, time.Minute, queued)
	<-filled
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.more.want != 0 {
		t.Fatalf("a gather ended with want %d armed", c.more.want)
	}
}
