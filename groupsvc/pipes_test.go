package groupsvc

import (
	"bytes"
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"memstore/bus"
	"memstore/internal/natstest"
)

const subject = "test.fwd"

// startPipes starts pipes and a fakeNode on subject; both stop when the
// test ends. A batch holds its pipe until it is answered.
func startPipes(t *testing.T) (*pipes, *fakeNode) {
	_, nc, _ := natstest.Start(t)
	ps := newPipes(nc)
	ps.turn = time.Minute // a held batch holds its pipe for the whole test
	t.Cleanup(ps.close)
	return ps, startFakeNode(t, nc, subject)
}

// fakeNode answers forwarded batches on subject, each reply its request's
// user and data, except that a request "big" in a batch with others is
// answered empty, as a node does when the replies are too large for one
// message; it holds the answer to the first batch until release is
// closed, and records the batches it got.
type fakeNode struct {
	release chan struct{}
	got     chan struct{} // the first batch came
	delay   time.Duration // how long the answer to each later batch takes; set before the first

	mu      sync.Mutex
	batches [][]bus.Forwarded
	at      []time.Time // when each batch came
}

// missingReply is a fake node's reply to the request "missing".
const missingReply = `{"ok":false,"error":{"code":"not_found","message":"no such path"}}`

func startFakeNode(t *testing.T, nc *nats.Conn, subject string) *fakeNode {
	f := &fakeNode{release: make(chan struct{}), got: make(chan struct{})}
	_, err := nc.Subscribe(subject, func(m *nats.Msg) {
		reqs, err := bus.DecodeForwarded(m.Data)
		if err != nil {
			return // the test sees no answer
		}
		f.mu.Lock()
		f.batches = append(f.batches, reqs)
		f.at = append(f.at, time.Now())
		first := len(f.batches) == 1
		f.mu.Unlock()
		reply := func() {
			reps := make([][]byte, len(reqs))
			for i, r := range reqs {
				switch {
				case string(r.Data) == "missing":
					reps[i] = []byte(missingReply)
				case string(r.Data) != "big" || len(reqs) == 1: // too big to go with others
					reps[i] = []byte(r.User + ":" + string(r.Data))
				}
			}
			_ = m.Respond(bus.EncodeReplies(reps))
		}
		if first {
			close(f.got)
			go func() {
				<-f.release
				reply()
			}()
			return
		}
		time.Sleep(f.delay)
		reply()
	})
	if err != nil {
		t.Fatal(err)
	}
	return f
}

func (f *fakeNode) sizes() []int {
	f.mu.Lock()
	defer f.mu.Unlock()
	var n []int
	for _, b := range f.batches {
		n = append(n, len(b))
	}
	return n
}

// waitQueued waits until n calls wait behind the batch in flight of the
// route key (a subject, for a fixed route).
func waitQueued(t *testing.T, ps *pipes, key string, n int) {
	t.Helper()
	for end := time.Now().Add(5 * time.Second); time.Now().Before(end); time.Sleep(time.Millisecond) {
		ps.mu.Lock()
		var k int
		if p := ps.all[key]; p != nil {
			k = len(p.queue)
		}
		ps.mu.Unlock()
		if k == n {
			return
		}
	}
	t.Fatalf("%d calls never queued", n)
}

// TestPipesBatchWhileOneIsInFlight: requests that come while a batch is
// unanswered go together in the next message, and each caller gets its
// own reply; then the idle pipe is dropped (a node gone leaves none).
func TestPipesBatchWhileOneIsInFlight(t *testing.T) {
	ps, node := startPipes(t)
	call := func(user, data string) error {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		rep, err := ps.request(ctx, context.Background(), fixedRoute(subject), bus.Forwarded{User: user, Data: []byte(data)}, true)
		if err == nil && string(rep) != user+":"+data {
			err = fmt.Errorf("reply %q, want %q", rep, user+":"+data)
		}
		return err
	}
	errs := make(chan error, 21)
	go func() { errs <- call("first", "0") }()
	<-node.got
	for i := range 20 {
		go func() { errs <- call(fmt.Sprintf("u%d", i), fmt.Sprint(i)) }()
	}
	waitQueued(t, ps, subject, 20)
	close(node.release)
	for range 21 {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}
	if got := node.sizes(); len(got) != 2 || got[0] != 1 || got[1] != 20 {
		t.Fatalf("batches of %v requests, want [1 20]", got)
	}
	for end := time.Now().Add(5 * time.Second); ; time.Sleep(time.Millisecond) {
		ps.mu.Lock()
		left := len(ps.all)
		ps.mu.Unlock()
		if left == 0 {
			break
		}
		if time.Now().After(end) {
			t.Fatalf("%d pipes kept after every batch was answered", left)
		}
	}
}

// ask forwards one request through ps on the test's subject and waits up
// to 10 s for its reply.
func ask(ps *pipes, user string, data []byte, awaited bool) error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err := ps.request(ctx, context.Background(), fixedRoute(subject), bus.Forwarded{User: user, Data: data}, awaited)
	return err
}

// TestPipesGatherTheCallersJustAnswered: once a batch of more than one
// request lands (load), the pipe waits, for up to that batch's round
// trip, until its callers have asked again, so callers that each wait for
// their answer go on together in one batch, instead of splitting into
// batches that take turns, each waiting for the other's round.
func TestPipesGatherTheCallersJustAnswered(t *testing.T) {
	ps, node := startPipes(t)
	node.delay = 50 * time.Millisecond // the round trip, and so the most a gathering waits
	const callers, rounds = 20, 3
	errs := make(chan error, callers+1)
	go func() { errs <- ask(ps, "first", []byte("x"), true) }()
	<-node.got
	for i := range callers {
		go func() {
			var err error
			for r := 0; r < rounds && err == nil; r++ {
				err = ask(ps, fmt.Sprintf("u%d", i), []byte("x"), true)
			}
			errs <- err
		}()
	}
	waitQueued(t, ps, subject, callers)
	close(node.release)
	for range callers + 1 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	if got := node.sizes(); fmt.Sprint(got) != "[1 20 20 20]" {
		t.Fatalf("batches of %v requests, want [1 20 20 20]: the callers answered together go on together", got)
	}
}

// TestPipesGatherNotWithALeftover: a batch cut short by the size limit
// leaves requests ready to go; after it lands they go at once, without
// waiting a round for callers (here one-shot ones) who will not come.
func TestPipesGatherNotWithALeftover(t *testing.T) {
	ps, node := startPipes(t)
	const delay = 400 * time.Millisecond
	node.delay = delay
	limit := min(maxBatchBytes, int(ps.nc.MaxPayload())/8)
	big := bytes.Repeat([]byte("x"), limit/2-64) // two to a batch
	errs := make(chan error, 7)
	go func() { errs <- ask(ps, "u", []byte("first"), true) }()
	<-node.got
	for range 6 {
		go func() { errs <- ask(ps, "u", big, true) }()
	}
	waitQueued(t, ps, subject, 6)
	close(node.release)
	for range 7 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	if got := node.sizes(); fmt.Sprint(got) != "[1 2 2 2]" {
		t.Fatalf("batches of %v requests, want [1 2 2 2]", got)
	}
	// Each batch of 2 leaves as the one before lands (a round after it
	// left); had the 2 landings with a leftover waited a round, it would
	// have left 2 rounds after.
	node.mu.Lock()
	defer node.mu.Unlock()
	for i := 2; i < len(node.at); i++ {
		if gap := node.at[i].Sub(node.at[i-1]); gap >= delay*3/2 {
			t.Errorf("batch %d left %v after the one before (a round is %v): the leftovers waited for callers who do not come back", i+1, gap, delay)
		}
	}
}

// TestPipesGatherOnlyForCallersWhoWait: requests whose senders do not
// wait for the answer (publishes on ms.in without a reply subject) are not
// waited for once answered: a request that comes after their batch landed
// goes at once, not after a round spent gathering.
func TestPipesGatherOnlyForCallersWhoWait(t *testing.T) {
	ps, node := startPipes(t)
	const delay = 300 * time.Millisecond
	node.delay = delay
	errs := make(chan error, 21)
	go func() { errs <- ask(ps, "u", []byte("x"), true) }()
	<-node.got
	for range 20 {
		go func() { errs <- ask(ps, "u", []byte("x"), false) }()
	}
	waitQueued(t, ps, subject, 20)
	close(node.release)
	for range 21 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	start := time.Now()
	if err := ask(ps, "u", []byte("x"), true); err != nil {
		t.Fatal(err)
	}
	// One round; after a gathering it would have been two.
	if took := time.Since(start); took >= delay*3/2 {
		t.Fatalf("a request after a batch nobody waited for took %v, a round is %v", took, delay)
	}
	if got := node.sizes(); fmt.Sprint(got) != "[1 20 1]" {
		t.Fatalf("batches of %v requests, want [1 20 1]", got)
	}
}

// TestPipesSendOnlyWhatIsStillWanted: a request whose caller's deadline
// passed while it queued is not sent; batches stay under maxBatchBytes,
// and a larger request goes alone.
func TestPipesSendOnlyWhatIsStillWanted(t *testing.T) {
	ps, node := startPipes(t)
	send := func(data []byte, d time.Duration) error {
		ctx, cancel := context.WithTimeout(context.Background(), d)
		defer cancel()
		_, err := ps.request(ctx, context.Background(), fixedRoute(subject), bus.Forwarded{User: "u", Data: data}, true)
		return err
	}
	errs := make(chan error, 6)
	go func() { errs <- send([]byte("0"), 5*time.Second) }()
	<-node.got
	if err := send([]byte("late"), 20*time.Millisecond); err != errNotSent {
		t.Fatalf("a request past its deadline while it queued: %v, want errNotSent", err)
	}
	half := bytes.Repeat([]byte("h"), maxBatchBytes/2-100)
	for i, data := range [][]byte{half, half, half, bytes.Repeat([]byte("b"), maxBatchBytes+1)} {
		go func() { errs <- send(data, 5*time.Second) }()
		waitQueued(t, ps, subject, i+2) // in this order
	}
	close(node.release)
	for range 5 {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}
	if got := node.sizes(); fmt.Sprint(got) != "[1 2 1 1]" {
		t.Fatalf("batches of %v requests, want [1 2 1 1]: the late one dropped, two halves together, the big one alone", got)
	}
}

// TestPipesDropAFlightNobodyWaitsFor: once every caller of a batch in
// flight has given up (a new view sent them elsewhere), the pipe stops
// waiting for it, and the next request goes at once, even to the same
// node (the same leader elected again).
func TestPipesDropAFlightNobodyWaitsFor(t *testing.T) {
	ps, node := startPipes(t)
	ctx, cancel := context.WithCancel(context.Background())
	errs := make(chan error, 1)
	go func() {
		_, err := ps.request(ctx, context.Background(), fixedRoute(subject), bus.Forwarded{User: "u", Data: []byte("gone")}, true)
		errs <- err
	}()
	<-node.got
	cancel()
	if err := <-errs; err != context.Canceled {
		t.Fatalf("the caller that gave up: %v", err)
	}
	next, stop := context.WithTimeout(context.Background(), 2*time.Second)
	defer stop()
	rep, err := ps.request(next, context.Background(), fixedRoute(subject), bus.Forwarded{User: "u", Data: []byte("next")}, true)
	if err != nil || string(rep) != "u:next" {
		t.Fatalf("the next request, while the first batch is still unanswered: %q %v", rep, err)
	}
	close(node.release)
}

// TestPipesQueuedCallsFollowANewView: a call still queued when a new view
// comes is not sent (the router sends it to the new leader instead), even
// an unkeyed put, whose own deadline is the whole request's.
func TestPipesQueuedCallsFollowANewView(t *testing.T) {
	ps, node := startPipes(t)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_, _ = ps.request(ctx, context.Background(), fixedRoute(subject), bus.Forwarded{User: "u", Data: []byte("0")}, true)
	}()
	<-node.got
	changed, newView := context.WithCancel(context.Background())
	errs := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_, err := ps.request(ctx, changed, fixedRoute(subject), bus.Forwarded{User: "u", Data: []byte("put")}, true)
		errs <- err
	}()
	waitQueued(t, ps, subject, 1)
	newView()
	select {
	case err := <-errs:
		if err != errNotSent {
			t.Fatalf("a queued call at a new view: %v, want errNotSent", err)
		}
	case <-time.After(2 * time.Second):
		t.Fatal("a queued call still waits 2 s after a new view")
	}
	close(node.release)
	if got := node.sizes(); fmt.Sprint(got) != "[1]" {
		t.Fatalf("batches of %v requests, want [1]: the queued call never sent", got)
	}
}

// TestPipesALostBatchHoldsItsPipeOnlyItsTurn: the requests behind a batch
// that is never answered (lost on its way) go when its turn ends, and are
// answered, while it still waits.
func TestPipesALostBatchHoldsItsPipeOnlyItsTurn(t *testing.T) {
	ps, node := startPipes(t)
	ps.turn = 100 * time.Millisecond
	defer close(node.release)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_, _ = ps.request(ctx, context.Background(), fixedRoute(subject), bus.Forwarded{User: "u", Data: []byte("lost")}, true)
	}()
	<-node.got
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	rep, err := ps.request(ctx, context.Background(), fixedRoute(subject), bus.Forwarded{User: "u", Data: []byte("next")}, true)
	if err != nil || string(rep) != "u:next" {
		t.Fatalf("the request behind a lost batch: %q %v", rep, err)
	}
}

// TestPipesRequestAllGoesTogether: calls queued together go in one batch,
// the first batch of an idle pipe or the next of a busy one, each
// answered with its own reply.
func TestPipesRequestAllGoesTogether(t *testing.T) {
	ps, node := startPipes(t)
	close(node.release)
	rt := fixedRoute(subject)
	reqs := []bus.Forwarded{{User: "u", Data: []byte("a")}, {User: "u", Data: []byte("b")}, {User: "u", Data: []byte("c")}}
	for range 2 {
		reps, errs := ps.requestAll(context.Background(), context.Background(), rt, reqs)
		for i, r := range reqs {
			if errs[i] != nil || string(reps[i]) != "u:"+string(r.Data) {
				t.Errorf("call %s: %q %v", r.Data, reps[i], errs[i])
			}
		}
	}
	if sizes := fmt.Sprint(node.sizes()); sizes != "[3 3]" {
		t.Errorf("batches of %s calls, want [3 3]", sizes)
	}
}
