package groupsvc

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"

	"memstore/bus"
)

// pipes batches the requests the router forwards (bus.Forwarded): per
// route (a node and op, or the stale gets to any member), while one batch
// is unanswered the next requests
// queue, and go as one message when it lands. At low load each request
// goes at once, alone; under load one message carries many, which saves
// the NATS server and the node most of their work per request. (Letting
// 2 or 4 batches fly at once measured 10-20% slower for puts and for
// linearizable reads: smaller batches, and the leader batches reads
// again behind one read index anyway.) Under load a pipe whose batch
// lands waits a little for that batch's callers to ask again (gather).
type pipes struct {
	nc     *nats.Conn
	ctx    context.Context // ends at close: flights stop waiting
	cancel context.CancelFunc
	wg     sync.WaitGroup // flights
	turn   time.Duration  // how long a batch holds its pipe: maxTurn

	mu      sync.Mutex       // guards all, lagging, and wg.Add against close
	all     map[string]*pipe // by route key, while a batch is in flight: nodes gone leave none behind
	lagging map[string]int   // by subject: batches unanswered past their turn
}

// route names a pipe (key) and where its batches go: to names the subject
// of each batch as it leaves ("": nowhere to go now); leave, if set, is
// called with each batch's message just before it is sent (linearizable
// gets multicast their read check and name it in a header).
type route struct {
	key   string
	to    func() string
	leave func(*nats.Msg)
}

// fixedRoute is the route of every batch to one subject.
func fixedRoute(subject string) route {
	return route{key: subject, to: func() string { return subject }}
}

// pipe is the queue of a route while a batch of it is in flight.
type pipe struct {
	rt    route
	queue []*call
	bytes int           // of the queue, framed
	more  chan struct{} // a request queued (buffered 1): a gathering flight looks again
}

// call is one request in a pipe. Its state goes from queued to sent (by
// the flight) or to abandoned (by the caller, when it gives up first): a
// call is never sent after its caller has given up. done gets the reply
// or error of a sent call, once, and is buffered.
type call struct {
	req     bus.Forwarded
	awaited bool // its caller waits for the answer (it may ask again once answered)
	state   atomic.Int32
	flight  *flight // set before the call is sent
	done    chan result
}

// flight is a batch on its way: cancel stops waiting for its answer, once
// none of its callers waits any more.
type flight struct {
	waiting atomic.Int32
	cancel  context.CancelFunc
}

// leave counts one caller out, and stops the wait after the last.
func (f *flight) leave(n int32) {
	if f.waiting.Add(-n) == 0 {
		f.cancel()
	}
}

const (
	queued int32 = iota
	sent
	abandoned
)

type result struct {
	data []byte
	err  error
}

// errNowhere fails a batch whose route names no subject when it leaves
// (no live node): it was not sent.
var errNowhere = errors.New("groupsvc: no node to send to")

// errNotSent is the error of a request whose caller gave up while it
// queued: it was never sent, so it did nothing.
var errNotSent = errors.New("groupsvc: not sent: its caller stopped waiting while it queued")

// maxTurn is how long a batch unanswered holds its pipe: then the next
// one goes, while the first still waits for its answer. A batch lost on
// its way (a node reconnecting to NATS) holds up the requests behind it
// for this long, not until its callers give up (2 to 4 s); a healthy
// batch is answered within milliseconds.
const maxTurn = 500 * time.Millisecond

func newPipes(nc *nats.Conn) *pipes {
	ctx, cancel := context.WithCancel(context.Background())
	return &pipes{nc: nc, ctx: ctx, cancel: cancel, turn: maxTurn, all: map[string]*pipe{}, lagging: map[string]int{}}
}

// request forwards req in a batch of route rt, and waits for its reply
// until ctx ends; awaited says whether the request's own caller waits for
// the answer (a publish on ms.in without a reply subject does not). A
// request still queued then, or when changed ends (a new view: it may be
// meant for another node now), is not sent: errNotSent. A reply may be
// empty: too large to come with the others (gets only; ask again alone).
func (ps *pipes) request(ctx, changed context.Context, rt route, req bus.Forwarded, awaited bool) ([]byte, error) {
	c := &call{req: req, awaited: awaited, done: make(chan result, 1)}
	if err := ps.enqueue(rt, []*call{c}); err != nil {
		return nil, err
	}
	return c.await(ctx, changed)
}

// requestAll forwards reqs, whose callers wait, as request does each, but
// queued together: an idle pipe sends them all in its first batch, and a
// busy one in its next, where one at a time the first would go alone and
// the rest a round later. Replies and errors are in reqs' order.
func (ps *pipes) requestAll(ctx, changed context.Context, rt route, reqs []bus.Forwarded) ([][]byte, []error) {
	calls := make([]*call, len(reqs))
	for i, req := range reqs {
		calls[i] = &call{req: req, awaited: true, done: make(chan result, 1)}
	}
	reps, errs := make([][]byte, len(reqs)), make([]error, len(reqs))
	if err := ps.enqueue(rt, calls); err != nil {
		for i := range errs {
			errs[i] = err
		}
		return reps, errs
	}
	for i, c := range calls {
		reps[i], errs[i] = c.await(ctx, changed)
	}
	return reps, errs
}

// enqueue queues calls in rt's pipe, or, if it is idle, starts a flight
// with them.
func (ps *pipes) enqueue(rt route, calls []*call) error {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	if ps.ctx.Err() != nil { // closed: start no flight
		return fmt.Errorf("groupsvc: the router is closing: %w", errNotSent)
	}
	p := ps.all[rt.key]
	if p == nil { // the pipe is idle: go at once
		p = &pipe{rt: rt, more: make(chan struct{}, 1)}
		ps.all[rt.key] = p
		ps.wg.Add(1)
		go ps.fly(rt.key, p, calls)
		return nil
	}
	p.queue = append(p.queue, calls...) // a batch is in flight: queue
	for _, c := range calls {
		p.bytes += framed(c.req)
	}
	select {
	case p.more <- struct{}{}:
	default:
	}
	return nil
}

// await waits for c's reply until ctx ends; a call still queued then, or
// when changed ends, is not sent: errNotSent.
func (c *call) await(ctx, changed context.Context) ([]byte, error) {
	select {
	case r := <-c.done:
		return r.data, r.err
	case <-changed.Done():
		if c.state.CompareAndSwap(queued, abandoned) {
			return nil, errNotSent
		}
	case <-ctx.Done():
	}
	select { // sent: its answer, unless ctx ends first
	case r := <-c.done:
		return r.data, r.err
	case <-ctx.Done():
		if c.state.CompareAndSwap(queued, abandoned) {
			return nil, errNotSent
		}
		c.flight.leave(1) // sent: c.flight was set before
		return nil, ctx.Err()
	}
}

// close stops the pipes: no new flight starts, the flights stop waiting,
// and close returns once they have ended.
func (ps *pipes) close() {
	ps.mu.Lock()
	ps.cancel() // under mu: request sees it before it could start a flight
	ps.mu.Unlock()
	ps.wg.Wait()
}

// lags reports whether a batch sent to subject is still unanswered past
// its turn: the node may hang.
func (ps *pipes) lags(subject string) bool {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	return ps.lagging[subject] > 0
}

// requestAlone forwards req as a batch of its own, at once, where rt
// names. It is for requests whose answer may take long (an aggregate, a
// min_seq read that waits for its seq): in a batch, they would hold up
// the others.
func (ps *pipes) requestAlone(ctx context.Context, rt route, req bus.Forwarded) ([]byte, error) {
	reps, err := ps.roundTrip(ctx, rt.to(), rt.leave, []bus.Forwarded{req})
	if err != nil {
		return nil, err
	}
	if len(reps[0]) == 0 {
		return nil, errors.New("groupsvc: the node left the only reply of a batch empty")
	}
	return reps[0], nil
}

// A batch holds at most maxBatch requests and maxBatchBytes of them,
// framing included, and at most an eighth of the NATS payload limit, so
// that its replies fit in one message: a put's reply is at most about
// three times its request, and an error reply a few hundred bytes. A
// larger request goes alone.
const (
	maxBatch      = 1024
	maxBatchBytes = 1 << 20
)

// fly sends batch, then whatever queued meanwhile, until the queue is
// empty, each batch where the pipe's route names as it leaves; each batch
// holds the pipe until it is answered or its turn ends. Then the pipe,
// idle, is dropped.
func (ps *pipes) fly(key string, p *pipe, batch []*call) {
	defer ps.wg.Done()
	limit := min(maxBatchBytes, int(ps.nc.MaxPayload())/8)
	for len(batch) > 0 {
		k, size := 1, framed(batch[0].req)
		for ; k < min(len(batch), maxBatch) && size+framed(batch[k].req) <= limit; k++ {
			size += framed(batch[k].req)
		}
		landed, subject := make(chan struct{}), p.rt.to()
		var done, lagging bool // guarded by mu: the batch was answered; it outlived its turn, and counts in ps.lagging
		ps.wg.Add(1)           // this flight holds the count above 0: close's Wait sees it
		go func(calls []*call) {
			defer ps.wg.Done()
			defer close(landed)
			ps.send(subject, p.rt.leave, calls)
			ps.mu.Lock()
			done = true
			if lagging {
				if ps.lagging[subject]--; ps.lagging[subject] == 0 {
					delete(ps.lagging, subject)
				}
			}
			ps.mu.Unlock()
		}(slices.Clone(batch[:k]))
		turn, left := time.NewTimer(ps.turn), time.Now()
		round := time.Duration(0) // how long the batch took to land; 0: it outlived its turn
		select {
		case <-landed:
			round = time.Since(left)
		case <-turn.C:
			ps.mu.Lock()
			if !done {
				lagging = true
				ps.lagging[subject]++
			}
			ps.mu.Unlock()
		}
		turn.Stop()
		if back := awaitedIn(batch[:k]); back > 1 && round > 0 && k == len(batch) { // under load, with nothing left over: the callers just answered may ask again
			ps.gather(p, back, round, limit)
		}
		ps.mu.Lock()
		batch, p.queue, p.bytes = append(batch[k:], p.queue...), nil, 0
		if len(batch) == 0 {
			delete(ps.all, key)
		}
		ps.mu.Unlock()
	}
}

// awaitedIn counts the calls whose callers wait for their answer.
func awaitedIn(calls []*call) int {
	n := 0
	for _, c := range calls {
		if c.awaited {
			n++
		}
	}
	return n
}

// full reports whether p's queue holds want requests, or limit bytes.
func (ps *pipes) full(p *pipe, want, limit int) bool {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	return len(p.queue) >= want || p.bytes >= limit
}

// gather waits, for up to round (the trip of the batch that just landed),
// until p's queue holds the answered callers of that batch who wait for
// their answers (they may ask again; a publisher on ms.in without a reply
// subject goes on at its own pace), besides those queued already, or a
// full batch (maxBatch, or limit bytes). Sent at once, the first
// caller back would go alone and the rest queue behind it: the callers
// split into two batches that take turns, each waiting for the other's
// round, which halves the batches and doubles the fsyncs per request (64
// writers: 30 puts per WAL batch instead of 60, and 15% fewer puts/s; 16
// writers: 30-45% fewer). Waiting longer than a round would cost more
// than the second batch.
func (ps *pipes) gather(p *pipe, answered int, round time.Duration, limit int) {
	ps.mu.Lock()
	want := min(answered+len(p.queue), maxBatch)
	ps.mu.Unlock()
	t := time.NewTimer(round)
	defer t.Stop()
	for !ps.full(p, want, limit) {
		select {
		case <-p.more:
		case <-t.C:
			return
		case <-ps.ctx.Done():
			return
		}
	}
}

// send forwards the calls whose callers still wait as one message and
// hands each its reply, or the message's error. It stops waiting when all
// of them have given up (a new view sent them elsewhere).
func (ps *pipes) send(subject string, leave func(*nats.Msg), batch []*call) {
	ctx, cancel := context.WithCancel(ps.ctx)
	defer cancel()
	f := &flight{cancel: cancel}
	f.waiting.Store(int32(len(batch))) // before any caller of the batch can leave
	live, reqs := batch[:0], make([]bus.Forwarded, 0, len(batch))
	for _, c := range batch {
		c.flight = f
		if c.state.CompareAndSwap(queued, sent) {
			live, reqs = append(live, c), append(reqs, c.req)
		}
	}
	if len(live) == 0 {
		return
	}
	f.leave(int32(len(batch) - len(live))) // the callers who gave up before
	reps, err := ps.roundTrip(ctx, subject, leave, reqs)
	for i, c := range live {
		if err != nil {
			c.done <- result{err: err}
		} else {
			c.done <- result{data: reps[i]}
		}
	}
}

// framed is the size of req in a batch, at most.
func framed(req bus.Forwarded) int {
	return len(req.User) + len(req.Data) + 2*binary.MaxVarintLen32
}

// roundTrip sends a batch (after leave, if set, saw its message) and
// waits for its replies; an error names the subject (the node) it went
// to. No subject: errNowhere.
func (ps *pipes) roundTrip(ctx context.Context, subject string, leave func(*nats.Msg), reqs []bus.Forwarded) ([][]byte, error) {
	if subject == "" {
		return nil, errNowhere
	}
	msg := nats.NewMsg(subject)
	msg.Data = bus.EncodeForwarded(reqs)
	if leave != nil {
		leave(msg)
	}
	rep, err := ps.nc.RequestMsgWithContext(ctx, msg)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", subject, err)
	}
	reps, err := bus.DecodeReplies(rep.Data, len(reqs))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", subject, err)
	}
	return reps, nil
}
