package groupsvc

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/nats-io/nats.go"

	"memstore/bus"
)

const (
	// batchesInFlight is how many batches of puts to one node may wait for
	// their replies at once; puts queue behind them, to go together.
	batchesInFlight = 4
	// slotWait is how long a batch waits for one of those to be answered
	// before it goes anyway: a node that died or stalls must not hold new
	// puts back (a dead node's batches wait out their deadlines, while a
	// new one learns at once that no node has the subject).
	slotWait = 50 * time.Millisecond
	// batchPuts and batchBytes bound what one batch carries.
	batchPuts  = 512
	batchBytes = 256 << 10
)

// putBatcher forwards the puts bound for one node in batches
// (ms.sys.fwd.<id>.puts): puts wait in a queue, and a sender takes all
// that are queued and sends them as one message, with up to
// batchesInFlight batches unanswered. Under light load a put goes alone
// and at once; under heavy load one message carries many, which saves the
// NATS server, the router and the node a message, a callback and a reply
// per put. The node answers each put as if it had come alone.
type putBatcher struct {
	nc      *nats.Conn
	subject string
	queue   chan *forwardedPut
	slots   chan struct{}
	wg      sync.WaitGroup
}

type forwardedPut struct {
	user, data []byte
	deadline   time.Time
	done       chan putResult // buffered: the sender never waits on it
}

type putResult struct {
	reply []byte
	err   error
}

func newPutBatcher(nc *nats.Conn, subject string) *putBatcher {
	return &putBatcher{nc: nc, subject: subject, queue: make(chan *forwardedPut, 4096), slots: make(chan struct{}, batchesInFlight)}
}

// request sends one put through the batcher and waits up to timeout for
// its reply; nats.ErrNoResponders means that no node had it.
func (b *putBatcher) request(data []byte, user string, timeout time.Duration) ([]byte, error) {
	p := &forwardedPut{user: []byte(user), data: data, deadline: time.Now().Add(timeout), done: make(chan putResult, 1)}
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case b.queue <- p:
	case <-t.C:
		return nil, nats.ErrTimeout
	}
	select {
	case r := <-p.done:
		return r.reply, r.err
	case <-t.C:
		return nil, nats.ErrTimeout
	}
}

// run sends batches until ctx ends, which also ends those in flight.
func (b *putBatcher) run(ctx context.Context) {
	defer b.wg.Wait()
	wait := time.NewTimer(slotWait)
	defer wait.Stop()
	for {
		wait.Reset(slotWait)
		slot := true
		select {
		case b.slots <- struct{}{}:
		case <-wait.C:
			slot = false
		case <-ctx.Done():
			return
		}
		var batch []*forwardedPut
		select {
		case p := <-b.queue:
			batch = append(batch, p)
		case <-ctx.Done():
			if slot {
				<-b.slots
			}
			return
		}
		size := len(batch[0].data)
	more:
		for len(batch) < batchPuts && size < batchBytes {
			select {
			case p := <-b.queue:
				batch = append(batch, p)
				size += len(p.data)
			default:
				break more
			}
		}
		forwardedBatch.Observe(float64(len(batch)))
		b.wg.Add(1)
		go func() {
			defer b.wg.Done()
			b.send(ctx, batch)
			if slot {
				<-b.slots
			}
		}()
	}
}

// send forwards one batch and hands each put its reply, or the batch's
// error.
func (b *putBatcher) send(ctx context.Context, batch []*forwardedPut) {
	frames := make([][]byte, 0, 2*len(batch))
	deadline := batch[0].deadline
	for _, p := range batch {
		frames = append(frames, p.user, p.data)
		if p.deadline.After(deadline) {
			deadline = p.deadline
		}
	}
	var replies [][]byte
	ctx, cancel := context.WithDeadline(ctx, deadline)
	defer cancel()
	msg, err := b.nc.RequestWithContext(ctx, b.subject, bus.PackFrames(frames))
	if err == nil {
		replies, err = bus.UnpackFrames(msg.Data)
		if err == nil && len(replies) != len(batch) {
			err = fmt.Errorf("%d replies to %d puts", len(replies), len(batch))
		}
	}
	for i, p := range batch {
		if err != nil {
			p.done <- putResult{err: err}
			continue
		}
		p.done <- putResult{reply: replies[i]}
	}
}
