package client

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"time"

	"memstore/bus"
)

// Coalescing of Puts. The Puts of one Client that overlap in time go to
// the store together: while one put request is out, new Puts queue, and
// its answer sends what has queued as one batch request (one seq for all,
// committed together). A lone Put goes at once, alone; many writers share
// one message each way instead of one each, which is where the router and
// the NATS server spend their time under load. A batch refused for what
// one of its values is (bad_path, bad_request, too_large) changed
// nothing, so each of its Puts is sent again alone, for an answer
// of its own. The router batches its requests to the leader the same way
// (groupsvc's pipes); a second request in flight measured slower there
// and here (smaller batches).
const (
	// batchValues and batchBytes bound one coalesced batch within the
	// store's defaults (1,000 values, 1 MiB a request), counting the
	// values as given: encoded, a value's <, > and & take 6 bytes each.
	batchValues = 1000
	batchBytes  = 128 << 10
	// maxGather bounds a gather (below): a round slowed by a leader
	// change must not hold the Puts that queue after it as long.
	maxGather = 20 * time.Millisecond
	// flightMax bounds a request: the router answers by bus.RouterWait,
	// so a reply lost (in a reconnect) holds the Puts queued behind it
	// no longer than that and a margin.
	flightMax = bus.RouterWait + time.Second
)

// call is one Put waiting to be sent or answered.
type call struct {
	pv       bus.PathValue
	deadline time.Time
	size     int
	flight   *flight        // set when it leaves the queue; c.mu
	done     chan putResult // buffered: the sender never waits for the caller
}

// flight is the request of a batch: it ends by the latest deadline of its
// calls (at most flightMax), or when the last of its callers gives up.
type flight struct {
	ctx     context.Context
	cancel  context.CancelFunc
	waiting int // callers still waiting; c.mu
}

// giveUp is what a caller who stops waiting for call k does (c.mu held):
// out of its flight if it has left the queue (f, set then), stopping the
// flight after the last caller, so the calls behind it go; else out of
// queue, never to be sent.
func giveUp[T comparable](f *flight, queue *[]T, k T) {
	if f != nil {
		if f.waiting--; f.waiting == 0 {
			f.cancel()
		}
	} else if i := slices.Index(*queue, k); i >= 0 {
		*queue = slices.Delete(*queue, i, i+1)
	}
}

// putResult is a call's answer, or alone: send it again by itself.
type putResult struct {
	rep   bus.PutReply
	err   error
	alone bool
}

// refusedForContent are the codes with which a batch is refused for what
// one of its values is; nothing of it was written.
var refusedForContent = []string{bus.CodeBadPath, bus.CodeBadRequest, bus.CodeTooLarge}

// Put writes one value and returns once it is committed. Puts that
// overlap in time are sent together (above): a Put's seq and ts may then
// be shared with other paths written at the same moment.
func (c *Client) Put(ctx context.Context, path string, value json.RawMessage) (bus.PutReply, error) {
	switch {
	case len(value) == 0:
		return bus.PutReply{}, bus.Errorf(bus.CodeBadRequest, "value of %s is missing", path)
	case !json.Valid(value):
		return bus.PutReply{}, bus.Errorf(bus.CodeBadRequest, "value of %s is not JSON", path)
	}
	deadline, bounded := ctx.Deadline()
	var expired <-chan time.Time // the client's Timeout, if ctx has none: a timer costs less than a context per Put
	if !bounded {
		deadline = time.Now().Add(c.opts.Timeout)
		t := time.NewTimer(c.opts.Timeout)
		defer t.Stop()
		expired = t.C
	}
	value = slices.Clone(value) // the batch may be encoded after this Put gave up, and its caller reused value
	k := &call{pv: bus.PathValue{Path: path, Value: value}, deadline: deadline,
		size: len(path) + len(value) + 32, done: make(chan putResult, 1)}
	c.mu.Lock()
	c.queued = append(c.queued, k)
	var batch []*call
	if !c.putting {
		batch, c.putting = c.take(), true
	} else {
		c.more.queued(len(c.queued))
	}
	c.mu.Unlock()
	if batch != nil {
		go c.send(batch) // ends when nothing is left to send; each request by its flight's deadline
	}
	var err error
	select {
	case r := <-k.done:
		if !r.alone {
			return r.rep, r.err
		}
		ctx, cancel := context.WithDeadline(ctx, deadline)
		defer cancel()
		return c.Write(ctx, bus.PutRequest{Path: path, Value: value})
	case <-expired:
		err = context.DeadlineExceeded
	case <-ctx.Done():
		err = ctx.Err()
	}
	c.mu.Lock()
	giveUp(k.flight, &c.queued, k)
	c.mu.Unlock()
	return bus.PutReply{}, requestError(c.sub.API(bus.OpPut), err)
}

// take removes the next batch from the queue, in order, each path once
// (a second Put of a path waits for the next batch), within the bounds,
// and makes its flight. c.mu is held.
func (c *Client) take() []*call {
	var batch, rest []*call
	named := map[string]bool{}
	size := 0
	var deadline time.Time
	for _, k := range c.queued {
		if named[k.pv.Path] || len(batch) == batchValues || len(batch) > 0 && size+k.size > batchBytes {
			rest = append(rest, k)
			continue
		}
		named[k.pv.Path] = true
		size += k.size
		batch = append(batch, k)
		if k.deadline.After(deadline) {
			deadline = k.deadline
		}
	}
	c.queued = rest
	if len(batch) > 0 {
		if latest := time.Now().Add(flightMax); deadline.After(latest) {
			deadline = latest
		}
		f := &flight{waiting: len(batch)}
		f.ctx, f.cancel = context.WithDeadline(context.Background(), deadline)
		for _, k := range batch {
			k.flight = f
		}
	}
	return batch
}

// send makes the put request of batch and hands each call its answer;
// then, after gathering, it sends what queued meanwhile, until nothing
// has. It is the one request out while c.putting.
func (c *Client) send(batch []*call) {
	for len(batch) > 0 {
		req := bus.PutRequest{Path: batch[0].pv.Path, Value: batch[0].pv.Value}
		if len(batch) > 1 {
			req = bus.PutRequest{Values: make([]bus.PathValue, len(batch))}
			for i, k := range batch {
				req.Values[i] = k.pv
			}
		}
		f := batch[0].flight
		left := time.Now()
		rep, err := c.Write(f.ctx, req)
		f.cancel()
		round := time.Since(left)
		var e *bus.Error
		res := putResult{rep: rep, err: err, alone: len(batch) > 1 && errors.As(err, &e) && slices.Contains(refusedForContent, e.Code)}
		for _, k := range batch {
			k.done <- res
		}
		if len(batch) > 1 && err == nil {
			c.gather(&c.more, len(batch), round, func() int { return len(c.queued) })
		}
		c.mu.Lock()
		batch = c.take()
		c.putting = len(batch) > 0
		c.mu.Unlock()
	}
}

// gathering is how a sender waits for its queue to fill (gather): the
// callers who queue wake it once the queue holds want calls, not each
// time one queues (with Put's timer in place of a context, the wait for
// 64 answered writers to put again fell from 0.13-0.17 to 0.10-0.11 ms a
// round, issue 7).
type gathering struct {
	want int           // queue length that wakes the sender; 0: none waits (c.mu)
	full chan struct{} // buffered 1
}

func newGathering() gathering { return gathering{full: make(chan struct{}, 1)} }

// queued is told the queue's length n after a call queued (c.mu held).
func (g *gathering) queued(n int) {
	if g.want > 0 && n >= g.want {
		g.want = 0
		select {
		case g.full <- struct{}{}:
		default:
		}
	}
}

// gather waits, for up to round (the trip of the batch just answered)
// and maxGather, until a queue holds as many calls as that batch had, or
// a full batch: queued says how many it holds (under c.mu), and g is
// told when it does.
// Its callers, answered, likely ask again at once; sent at once, the
// first one back would go alone and the rest queue behind it, and the
// callers would split into two batches that take turns, each waiting
// out the other's round (16 writers: half the puts per second).
func (c *Client) gather(g *gathering, want int, round time.Duration, queued func() int) {
	want = min(want, batchValues)
	c.mu.Lock()
	select {
	case <-g.full: // left from a gather that ended on its timer
	default:
	}
	if queued() >= want {
		c.mu.Unlock()
		return
	}
	g.want = want
	c.mu.Unlock()
	t := time.NewTimer(min(round, maxGather))
	select {
	case <-g.full:
	case <-t.C:
	}
	t.Stop()
	c.mu.Lock()
	g.want = 0
	c.mu.Unlock()
}
