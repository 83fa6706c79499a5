package client

import (
	"context"
	"slices"
	"strconv"
	"time"

	"github.com/nats-io/nats.go"

	"memstore/bus"
)

// Coalescing of stale Gets, as of Puts (puts.go): while one request on
// ms.api.get.stale is out, the stale Gets without min_seq that come queue,
// and its answer sends them as one batch (bus.HeaderBatch), which one
// member node answers in one message. A lone Get goes at once, alone, from
// its caller's goroutine. A get whose batch fails (no answer in time, a
// node stopping) counts that as its first ask and goes on alone (Get); one
// whose reply the node left out, too large to come with the others, asks
// alone as if it had not been sent.
const getBatchBytes = 128 << 10 // of requests, a batch: its replies are bounded by the node

// getCall is one stale Get waiting to be sent or answered.
type getCall struct {
	data     []byte // the encoded request
	deadline time.Time
	done     chan getResult // buffered: the sender never waits for the caller
}

// getResult is a getCall's reply; neither reply nor err: ask alone.
type getResult struct {
	reply []byte
	err   error
}

// coalescedGet asks for req, without min_seq, in the next batch of stale
// gets; errAlone: its reply was left out of the batch.
func (c *Client) coalescedGet(ctx context.Context, req bus.GetRequest, rep *bus.GetReply) error {
	deadline, _ := ctx.Deadline()
	k := &getCall{data: bus.Encode(req), deadline: deadline, done: make(chan getResult, 1)}
	c.mu.Lock()
	idle := !c.getting
	if idle {
		c.getting = true
	} else {
		c.gets = append(c.gets, k)
	}
	c.mu.Unlock()
	if idle {
		c.flyGets(ctx, []*getCall{k}) // its own caller's: it stops if that gives up
		c.mu.Lock()
		next := c.takeGets()
		c.getting = len(next) > 0
		c.mu.Unlock()
		if next != nil {
			go c.sendGets(next) // ends when nothing is left to send; each batch by its share of the time
		}
	} else {
		select {
		case c.moreGets <- struct{}{}: // a gathering send looks again
		default:
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
		if i := slices.Index(c.gets, k); i >= 0 { // not sent yet: it never will be
			c.gets = slices.Delete(c.gets, i, i+1)
		}
		c.mu.Unlock()
		return requestError(c.sub.StaleGet(), ctx.Err())
	}
}

// takeGets removes the next batch from the queue, in order, within
// batchValues gets and getBatchBytes. c.mu is held.
func (c *Client) takeGets() []*getCall {
	k, size := 0, 0
	for ; k < min(len(c.gets), batchValues); k++ {
		if k > 0 && size+len(c.gets[k].data) > getBatchBytes {
			break
		}
		size += len(c.gets[k].data)
	}
	batch := slices.Clone(c.gets[:k])
	c.gets = slices.Delete(c.gets, 0, k)
	return batch
}

// sendGets sends batch and, after gathering, what queued meanwhile, until
// nothing has. It is the one request out while c.getting.
func (c *Client) sendGets(batch []*getCall) {
	for len(batch) > 0 {
		left := time.Now()
		if c.flyGets(context.Background(), batch) && len(batch) > 1 {
			c.gather(c.moreGets, len(batch), time.Since(left), func() int { return len(c.gets) })
		}
		c.mu.Lock()
		batch = c.takeGets()
		c.getting = len(batch) > 0
		c.mu.Unlock()
	}
}

// flyGets sends one request of batch, for the first ask's share of the
// earliest deadline in it (Get) while ctx lasts, and hands each call its
// reply; it says whether the request was answered.
func (c *Client) flyGets(ctx context.Context, batch []*getCall) bool {
	wait := c.opts.Timeout
	for _, k := range batch {
		if !k.deadline.IsZero() {
			wait = min(wait, time.Until(k.deadline)/staleAsks)
		}
	}
	ctx, cancel := context.WithTimeout(ctx, wait)
	defer cancel()
	subject := c.sub.StaleGet()
	msg := nats.NewMsg(subject)
	if len(batch) == 1 {
		msg.Data = batch[0].data
	} else {
		msg.Header.Set(bus.HeaderBatch, strconv.Itoa(len(batch)))
		for _, k := range batch {
			msg.Data = bus.AppendFrame(msg.Data, k.data)
		}
	}
	m, err := c.nc.RequestMsgWithContext(ctx, msg)
	if err != nil {
		for _, k := range batch {
			k.done <- getResult{err: requestError(subject, err)}
		}
		return false
	}
	replies := [][]byte{m.Data}
	if len(batch) > 1 {
		if replies, err = bus.DecodeReplies(m.Data, len(batch)); err != nil {
			replies = make([][]byte, len(batch)) // not frames (an older node): each asks alone
		}
	}
	for i, k := range batch {
		k.done <- getResult{reply: replies[i]}
	}
	return true
}
