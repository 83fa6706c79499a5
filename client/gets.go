package client

import (
	"context"
	"slices"
	"strconv"
	"time"

	"github.com/nats-io/nats.go"

	"memstore/bus"
)

// Coalescing of Gets, as of Puts (puts.go): while one get request of a
// lane is out, the Gets without min_seq that come for it queue, and its
// answer sends them as one batch (bus.HeaderBatch), answered in one
// message. There are two lanes: stale gets on ms.api.get.stale, which a
// member node answers, and linearizable gets on ms.api.get, which the
// router forwards each to the leader (and batches again). A lone Get goes
// at once, alone, from its caller's goroutine. A batch waits for the
// latest deadline in it (a stale one: the first ask's share of it), and
// stops when the last of its callers has given up, so a lost reply holds
// the Gets queued behind it no longer than that. A get whose batch fails
// has that for its answer (a stale one counts it as its first ask and goes
// on alone, Get); one whose reply was left out of the batch's (too large
// to come with the others, or the batch refused by a server older than
// batches) asks alone as if it had not been sent.
const getBatchBytes = 128 << 10 // of requests, a batch: its replies are bounded by who answers

// getLane is the queue of one kind of Gets; its fields but subject, asks
// and routed are guarded by the Client's mu.
type getLane struct {
	subject string
	asks    int  // a batch waits for 1/asks of the latest deadline in it: the first ask's share
	routed  bool // to the router: its requests say the writer and the deadline (Client.message); a node needs neither
	queued  []*getCall
	getting bool      // a request of the lane is out
	more    gathering // of the lane's sender
}

func newGetLane(subject string, asks int, routed bool) *getLane {
	return &getLane{subject: subject, asks: asks, routed: routed, more: newGathering()}
}

// getCall is one Get waiting to be sent or answered.
type getCall struct {
	data     []byte // the encoded request
	deadline time.Time
	flight   *flight        // set when it leaves the queue; c.mu
	done     chan getResult // buffered: the sender never waits for the caller
}

// getResult is a getCall's reply; neither reply nor err: ask alone.
type getResult struct {
	reply []byte
	err   error
}

// coalescedGet asks for req, without min_seq, in the next batch of lane l;
// errAlone: its reply was left out of the batch's.
func (c *Client) coalescedGet(ctx context.Context, l *getLane, req bus.GetRequest, rep *bus.GetReply) error {
	deadline, _ := ctx.Deadline()
	k := &getCall{data: bus.Encode(req), deadline: deadline, done: make(chan getResult, 1)}
	c.mu.Lock()
	idle := !l.getting
	if idle {
		l.getting = true
		l.fly(ctx, []*getCall{k}) // its own caller's: it stops if that gives up
	} else {
		l.queued = append(l.queued, k)
		l.more.queued(len(l.queued))
	}
	c.mu.Unlock()
	if idle {
		c.flyGets(l, []*getCall{k})
		c.mu.Lock()
		next := c.takeGets(l)
		l.getting = len(next) > 0
		c.mu.Unlock()
		if next != nil {
			go c.sendGets(l, next) // ends when nothing is left to send; each batch by its share of the time
		}
	}
	select {
	case r := <-k.done:
		switch {
		case r.err != nil:
			return r.err
		case len(r.reply) == 0:
			return errAlone
		}
		if e := bus.Decode(r.reply, rep); e != nil {
			return e
		}
		return rep.Err()
	case <-ctx.Done():
		c.mu.Lock()
		giveUp(k.flight, &l.queued, k)
		c.mu.Unlock()
		return requestError(l.subject, ctx.Err())
	}
}

// takeGets removes the next batch from l's queue, in order, within
// bus.MaxBatchGets gets and getBatchBytes. c.mu is held.
func (c *Client) takeGets(l *getLane) []*getCall {
	k, size := 0, 0
	for ; k < min(len(l.queued), bus.MaxBatchGets); k++ {
		if k > 0 && size+len(l.queued[k].data) > getBatchBytes {
			break
		}
		size += len(l.queued[k].data)
	}
	if k == 0 {
		return nil
	}
	batch := slices.Clone(l.queued[:k])
	l.queued = slices.Delete(l.queued, 0, k)
	l.fly(context.Background(), batch)
	return batch
}

// fly makes the flight of batch, within parent: it ends at l's share of
// the latest deadline in the batch, or when the last of its callers gives
// up. c.mu is held.
func (l *getLane) fly(parent context.Context, batch []*getCall) {
	var latest time.Time
	for _, k := range batch {
		if k.deadline.After(latest) {
			latest = k.deadline
		}
	}
	f := &flight{waiting: len(batch)}
	f.ctx, f.cancel = context.WithTimeout(parent, time.Until(latest)/time.Duration(l.asks))
	for _, k := range batch {
		k.flight = f
	}
}

// sendGets sends batch and, after gathering, what queued meanwhile in l,
// until nothing has. It is the one request of l out while l.getting.
func (c *Client) sendGets(l *getLane, batch []*getCall) {
	for len(batch) > 0 {
		left := time.Now()
		if c.flyGets(l, batch) && len(batch) > 1 {
			c.gather(&l.more, len(batch), time.Since(left), func() int { return len(l.queued) })
		}
		c.mu.Lock()
		batch = c.takeGets(l)
		l.getting = len(batch) > 0
		c.mu.Unlock()
	}
}

// flyGets sends one request of batch on l, while its flight lasts, and
// hands each call its reply; it says whether the request was answered.
func (c *Client) flyGets(l *getLane, batch []*getCall) bool {
	f := batch[0].flight
	defer f.cancel()
	ctx := f.ctx
	var data []byte
	if len(batch) == 1 {
		data = batch[0].data
	} else {
		for _, k := range batch {
			data = bus.AppendFrame(data, k.data)
		}
	}
	msg := nats.NewMsg(l.subject)
	if msg.Data = data; l.routed {
		msg = c.message(ctx, l.subject, data)
	}
	if len(batch) > 1 {
		msg.Header.Set(bus.HeaderBatch, strconv.Itoa(len(batch)))
	}
	m, err := c.nc.RequestMsgWithContext(ctx, msg)
	if err != nil {
		for _, k := range batch {
			k.done <- getResult{err: requestError(l.subject, err)}
		}
		return false
	}
	replies := [][]byte{m.Data}
	if len(batch) > 1 {
		if replies, err = bus.DecodeReplies(m.Data, len(batch)); err != nil {
			replies = make([][]byte, len(batch)) // not frames (a server older than batches): each asks alone
		}
	}
	for i, k := range batch {
		k.done <- getResult{reply: replies[i]}
	}
	return true
}
