package torture

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"memstore/bus"
	"memstore/client"
)

// Outcomes of an operation.
const (
	opOK      = iota
	opRefused // the store said it was not done (unavailable, not_leader)
	opUnknown // no answer, or timeout: a put may or may not have happened
)

// op is one recorded operation of a client.
type op struct {
	client    int
	put       bool
	path      string
	value     string // written, or read ("" for not found)
	call, ret int64  // ns since the start of the run
	outcome   int
	seq       uint64 // of an acknowledged put, or of the version read
	err       string
}

// workload runs clients that put unique values, read linearizably and read
// history, recording every operation.
type workload struct {
	clients []*client.Client
	paths   []string
	start   time.Time

	mu   sync.Mutex
	ops  []op
	done atomic.Int64 // operations finished

	historyErrs []string // history reads that showed something impossible
}

func newWorkload(url string, clients, paths int) (*workload, error) {
	w := &workload{start: time.Now()}
	for i := 0; i < paths; i++ {
		w.paths = append(w.paths, fmt.Sprintf("torture/k%d", i))
	}
	for i := 0; i < clients; i++ {
		c, err := client.Dial(url, client.Options{Timeout: 3 * time.Second, Name: fmt.Sprintf("torture-client-%d", i),
			User: fmt.Sprintf("c%d", i)})
		if err != nil {
			w.close()
			return nil, err
		}
		w.clients = append(w.clients, c)
	}
	return w, nil
}

func (w *workload) close() {
	for _, c := range w.clients {
		c.Close()
	}
}

func (w *workload) now() int64 { return time.Since(w.start).Nanoseconds() }

// run drives every client until ctx ends.
func (w *workload) run(ctx context.Context, seed int64) {
	var wg sync.WaitGroup
	for i, c := range w.clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			w.client(ctx, i, c, rand.New(rand.NewSource(seed+int64(i))))
		}()
	}
	wg.Wait()
}

func classify(err error) (int, string) {
	var be *bus.Error
	switch {
	case err == nil:
		return opOK, ""
	case errors.As(err, &be) && (be.Code == bus.CodeUnavailable || be.Code == bus.CodeNotLeader):
		return opRefused, be.Error()
	default:
		return opUnknown, err.Error()
	}
}

func (w *workload) client(ctx context.Context, id int, c *client.Client, rng *rand.Rand) {
	for n := 0; ctx.Err() == nil; n++ {
		path := w.paths[rng.Intn(len(w.paths))]
		rctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		o := op{client: id, path: path, call: w.now()}
		switch r := rng.Intn(20); {
		case r < 10:
			o.put = true
			o.value = fmt.Sprintf("c%d-%d", id, n)
			rep, err := c.Put(rctx, path, bus.Encode(o.value))
			o.ret = w.now()
			o.outcome, o.err = classify(err)
			o.seq = rep.Seq
		case r < 19:
			g, err := c.Get(rctx, bus.GetRequest{Path: path})
			o.ret = w.now()
			if bus.HasCode(err, bus.CodeNotFound) {
				err = nil
			}
			o.outcome, o.err = classify(err)
			if err == nil && g.Seq > 0 {
				o.seq = g.Seq
				_ = json.Unmarshal(g.Value, &o.value)
			}
		default:
			w.checkHistory(rctx, c, path)
			cancel()
			continue
		}
		cancel()
		w.mu.Lock()
		w.ops = append(w.ops, o)
		w.mu.Unlock()
		w.done.Add(1)
		if o.outcome != opOK {
			select { // back off a little while the cluster heals
			case <-ctx.Done():
			case <-time.After(50 * time.Millisecond):
			}
		}
	}
}

// checkHistory reads one page of history: seqs must rise and every value
// must be one a client wrote.
func (w *workload) checkHistory(ctx context.Context, c *client.Client, path string) {
	h, err := c.History(ctx, bus.HistoryRequest{Path: path, Limit: 100})
	if err != nil {
		return
	}
	var prev uint64
	for _, v := range h.Values {
		var s string
		if json.Unmarshal(v.Value, &s) != nil || len(s) < 2 || s[0] != 'c' {
			w.fail("history of %s holds %s at seq %d, which no client wrote", path, v.Value, v.Seq)
		}
		if v.Seq <= prev {
			w.fail("history of %s: seq %d after %d", path, v.Seq, prev)
		}
		prev = v.Seq
	}
}

func (w *workload) fail(format string, args ...any) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.historyErrs) < 20 {
		w.historyErrs = append(w.historyErrs, fmt.Sprintf(format, args...))
	}
}

// recorded returns a copy of the operations so far.
func (w *workload) recorded() []op {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]op(nil), w.ops...)
}

func (o op) String() string {
	kind := "get"
	if o.put {
		kind = "put"
	}
	return fmt.Sprintf("c%d %s %s %q seq=%d [%s, %s] outcome=%d %s", o.client, kind, o.path, o.value, o.seq,
		strconv.FormatFloat(float64(o.call)/1e9, 'f', 3, 64), strconv.FormatFloat(float64(o.ret)/1e9, 'f', 3, 64), o.outcome, o.err)
}
