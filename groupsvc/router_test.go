package groupsvc

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"memstore/bus"
	"memstore/groupsvc/election"
	"memstore/internal/natstest"
	"memstore/replica/protocol"
)

// TestForwardFollowsANewViewAtOnce: a keyed put in flight to a leader that
// never answers (it died with the request) is sent to the new leader as
// soon as the new view comes, not after the 2 s attempt: the whole request
// here has 1.5 s.
func TestForwardFollowsANewViewAtOnce(t *testing.T) {
	r, nc, svc := startRouter(t, nil)
	svc.setState(protocol.View{Epoch: 1, Leader: 1, Members: []protocol.NodeID{1, 2, 3}}, nil)
	var mu sync.Mutex
	sent := map[protocol.NodeID]int{}
	for _, id := range []protocol.NodeID{1, 2} {
		_, err := nc.Subscribe(svc.sub.Fwd(id, bus.OpPut), func(m *nats.Msg) {
			reqs, err := bus.DecodeForwarded(m.Data)
			mu.Lock()
			sent[id] += len(reqs)
			mu.Unlock()
			if err != nil || id == 1 { // dies with the request: no answer; the group names node 2
				svc.setState(protocol.View{Epoch: 2, Leader: 2, Members: []protocol.NodeID{1, 2, 3}}, nil)
				return
			}
			_ = m.Respond(bus.EncodeReplies([][]byte{[]byte(`{"ok":true,"seq":7,"ts":"2026-11-24T00:00:00Z"}`)}))
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	rep, code := r.forward(bus.OpPut, []byte(`{"path":"a/b","value":1,"source":"s","source_seq":1}`), "u", 1500*time.Millisecond, true)
	if code != "ok" {
		t.Fatalf("forward answered %s: %s", code, rep)
	}
	mu.Lock()
	defer mu.Unlock()
	if sent[1] != 1 || sent[2] != 1 {
		t.Fatalf("sent to node 1 %d times, to node 2 %d times; want once each", sent[1], sent[2])
	}
}

// startRouter starts a router whose view names node 1 leader of 1 member,
// with nodes as the group service sees them; it stops when the test ends.
func startRouter(t *testing.T, nodes []election.NodeInfo) (*Router, *nats.Conn, *Service) {
	_, nc, log := natstest.Start(t)
	svc := &Service{nc: nc, sub: bus.NewSubjects(bus.DefaultPrefix), log: log}
	svc.state.changed, svc.state.cancel = context.WithCancel(context.Background())
	t.Cleanup(svc.state.cancel)
	svc.setState(protocol.View{Epoch: 1, Leader: 1, Members: []protocol.NodeID{1}}, nodes)
	r := newRouter(svc)
	r.pipes.turn = time.Minute // a held batch holds its pipe for the whole test
	t.Cleanup(r.Close)
	return r, nc, svc
}

// TestSlowRequestsGoAlone: a get that waits for its min_seq, or an
// aggregate, goes at once, not queued behind a batch in flight, so it
// never holds a batch of others up.
func TestSlowRequestsGoAlone(t *testing.T) {
	r, nc, svc := startRouter(t, nil)
	for op, slow := range map[string]string{bus.OpGet: `{"path":"a/b","min_seq":9}`, bus.OpAgg: `{"path":"a/b"}`} {
		node := startFakeNode(t, nc, svc.sub.Fwd(1, op))
		held := make(chan string, 1)
		go func() {
			rep, _ := r.forward(op, []byte(`{"path":"a/held"}`), "u", 3*time.Second, true)
			held <- string(rep)
		}()
		<-node.got
		if rep, code := r.forward(op, []byte(slow), "u", time.Second, true); code != "ok" || string(rep) != "u:"+slow {
			t.Errorf("%s %s while a batch is in flight: %s %s", op, slow, code, rep)
		}
		close(node.release)
		if rep := <-held; rep != `u:{"path":"a/held"}` {
			t.Errorf("the held %s: %s", op, rep)
		}
	}
}

// TestWaitsSeesEverySpellingOfMinSeq: a get the node would read as
// having a min_seq goes alone, however its key is spelt.
func TestWaitsSeesEverySpellingOfMinSeq(t *testing.T) {
	for data, want := range map[string]bool{
		`{"path":"a/b"}`:                        false,
		`{"path":"a/b","consistency":"stale"}`:  false,
		`{"path":"a/b","min_seq":0}`:            false,
		`{"path":"a/b","min_seq":7}`:            true,
		`{"path":"a/b","MIN_SEQ":7}`:            true,
		`{"path":"a/b","min\u005fseq":7}`:       true,
		"{\"path\":\"a/b\",\"min_\u017feq\":7}": true, // ſ folds to s
	} {
		if got := waits([]byte(data)); got != want {
			t.Errorf("waits(%s) = %v, want %v", data, got, want)
		}
		var req bus.GetRequest // what the node reads
		if e := bus.DecodeRequest([]byte(data), &req); e != nil || (req.MinSeq > 0) != want {
			t.Errorf("the node reads %s as min_seq %d (%v)", data, req.MinSeq, e)
		}
	}
}

// TestForwardAsksAgainForWhatDidNotFit: a get whose reply was left out of
// a batch's (too large to go with the others) is asked for again, alone;
// a put never is (asked again, it could be written twice).
func TestForwardAsksAgainForWhatDidNotFit(t *testing.T) {
	r, nc, svc := startRouter(t, nil)
	for op, want := range map[string]string{bus.OpGet: "[1 2 1]", bus.OpPut: "[1 2]"} {
		node := startFakeNode(t, nc, svc.sub.Fwd(1, op))
		go func() { _, _ = r.forward(op, []byte("0"), "u", 3*time.Second, true) }()
		<-node.got
		codes := make(chan string, 2)
		for i, data := range []string{"big", "small"} {
			go func() {
				_, code := r.forward(op, []byte(data), "u", 3*time.Second, true)
				codes <- code
			}()
			waitQueued(t, r.pipes, svc.sub.Fwd(1, op), i+1)
		}
		close(node.release)
		got := []string{<-codes, <-codes}
		slices.Sort(got)
		if op == bus.OpGet && fmt.Sprint(got) != "[ok ok]" || op == bus.OpPut && fmt.Sprint(got) != "[ok timeout]" {
			t.Errorf("%s: answers %v", op, got)
		}
		if sizes := fmt.Sprint(node.sizes()); sizes != want {
			t.Errorf("%s: batches of %s requests, want %s", op, sizes, want)
		}
	}
}

// TestStaleGetsBatchApart: a stale get to the leader does not wait in a
// batch of linearizable ones (which wait for a read-index round, forever
// without a majority).
func TestStaleGetsBatchApart(t *testing.T) {
	r, nc, svc := startRouter(t, []election.NodeInfo{{ID: 1, Alive: true, Member: true}})
	node := startFakeNode(t, nc, svc.sub.Fwd(1, bus.OpGet))
	go func() { _, _ = r.forward(bus.OpGet, []byte(`{"path":"a/b"}`), "u", 3*time.Second, true) }()
	<-node.got
	stale := `{"path":"a/b","consistency":"stale"}`
	if rep, code := r.forward(bus.OpGet, []byte(stale), "u", time.Second, true); code != "ok" || string(rep) != "u:"+stale {
		t.Errorf("a stale get while a linearizable batch waits: %s %s", code, rep)
	}
	close(node.release)
}

// TestIsStaleSeesEscapes: a get is routed as stale (to any live member,
// in its own batch) exactly when the node's decoder reads it as one: spelt
// with escapes, with the key twice (the last wins), or nested (not the
// request's key).
func TestIsStaleSeesEscapes(t *testing.T) {
	for data, want := range map[string]bool{
		`{"path":"a/b"}`: false,
		`{"path":"a/b","consistency":"linearizable"}`:                       false,
		`{"path":"a/b","consistency":"stale"}`:                              true,
		`{"path":"a/b","CONSISTENCY":"st\u0061le"}`:                         true,
		`{"path":"a/b","consistency":"stale","consistency":"linearizable"}`: false,
		`{"path":"a/b","consistency":"linearizable","consistency":"stale"}`: true,
		`{"path":"a/b","Consistency":"linearizable","consistency":"stale"}`: true,
		`{"path":"a/b","x":{"consistency":"stale"}}`:                        false,
		`{"consistency":"stale","path":"a/b"}`:                              true,
		`{"path":"a\",\"consistency\":\"stale\"}"}`:                         false,
	} {
		var req struct {
			Consistency string `json:"consistency"`
		}
		if err := json.Unmarshal([]byte(data), &req); err != nil || (req.Consistency == bus.Stale) != want {
			t.Fatalf("the case %s is wrong: the decoder reads %q (%v)", data, req.Consistency, err)
		}
		if got := isStale([]byte(data)); got != want {
			t.Errorf("isStale(%s) = %v, want %v", data, got, want)
		}
	}
}

// TestWriterNeedsTheServersWord: a request that crossed the USERS import
// is written as the user the server names; one whose import does not
// share the user is refused, never taken at its self-declared Ms-User.
func TestWriterNeedsTheServersWord(t *testing.T) {
	msg := func(info string) *nats.Msg {
		m := nats.NewMsg("ms.api.put")
		m.Header.Set(bus.HeaderUser, "mallory-claims-alice")
		if info != "" {
			m.Header.Set(bus.HeaderRequestInfo, info)
		}
		return m
	}
	if u, e := writer(msg(`{"acc":"USERS","user":"alice"}`)); e != nil || u != "alice" {
		t.Errorf("shared import: %q %v, want alice", u, e)
	}
	if u, e := writer(msg(`{"acc":"USERS"}`)); e == nil || e.Code != bus.CodeForbidden {
		t.Errorf("import without share: %q %v, want forbidden", u, e)
	}
	if u, e := writer(msg("")); e != nil || u != "mallory-claims-alice" {
		t.Errorf("no auth: %q %v, want the declared name", u, e)
	}
}

// TestStaleGetsShareOnePipe: stale gets queue in one pipe, whatever member
// each would go to, and the batch that queued goes as one message to a
// live member once the batch in flight lands; a member not alive gets
// none.
func TestStaleGetsShareOnePipe(t *testing.T) {
	r, nc, svc := startRouter(t, []election.NodeInfo{
		{ID: 1, Alive: true, Member: true}, {ID: 2, Alive: true, Member: true}, {ID: 3, Member: true}})
	nodes := map[protocol.NodeID]*fakeNode{}
	for id := protocol.NodeID(1); id <= 3; id++ {
		nodes[id] = startFakeNode(t, nc, svc.sub.Fwd(id, bus.OpGet))
	}
	stale := `{"path":"a/b","consistency":"stale"}`
	errs := make(chan error, 11)
	get := func() {
		rep, code := r.forward(bus.OpGet, []byte(stale), "u", 5*time.Second, true)
		if code != "ok" || string(rep) != "u:"+stale {
			errs <- fmt.Errorf("stale get: %s %s", code, rep)
			return
		}
		errs <- nil
	}
	go get()
	select {
	case <-nodes[1].got:
	case <-nodes[2].got:
	case <-time.After(5 * time.Second):
		t.Fatal("the first stale get reached no live member")
	}
	for range 10 {
		go get()
	}
	waitQueued(t, r.pipes, bus.Stale, 10)
	for _, n := range nodes {
		close(n.release)
	}
	for range 11 {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}
	sizes := append(nodes[1].sizes(), nodes[2].sizes()...)
	slices.Sort(sizes)
	if !slices.Equal(sizes, []int{1, 10}) || len(nodes[3].sizes()) != 0 {
		t.Fatalf("batches of %v to the live members and %v to the dead one, want [1 10] and none", sizes, nodes[3].sizes())
	}
}

// TestStaleGetsSkipAHangingMember: once a stale batch to a member is
// unanswered past its turn, the next batches go to the other members (a
// member alive to the group service may still hang), until it answers.
func TestStaleGetsSkipAHangingMember(t *testing.T) {
	r, nc, svc := startRouter(t, []election.NodeInfo{{ID: 1, Alive: true, Member: true}, {ID: 2, Alive: true, Member: true}})
	r.pipes.turn = 50 * time.Millisecond
	nodes := map[protocol.NodeID]*fakeNode{}
	for id := protocol.NodeID(1); id <= 2; id++ {
		nodes[id] = startFakeNode(t, nc, svc.sub.Fwd(id, bus.OpGet))
	}
	stale := []byte(`{"path":"a/b","consistency":"stale"}`)
	go func() { _, _ = r.forward(bus.OpGet, stale, "u", 5*time.Second, true) }() // held by the node it reaches
	hung, ok := protocol.NodeID(1), protocol.NodeID(2)
	select {
	case <-nodes[1].got:
	case <-nodes[2].got:
		hung, ok = 2, 1
	case <-time.After(5 * time.Second):
		t.Fatal("the first stale get reached no member")
	}
	close(nodes[ok].release)
	defer close(nodes[hung].release)
	for end := time.Now().Add(5 * time.Second); !r.pipes.lags(svc.sub.Fwd(hung, bus.OpGet)); time.Sleep(time.Millisecond) {
		if time.Now().After(end) {
			t.Fatal("the held batch never counted as lagging")
		}
	}
	for i := range 20 { // within the held get's 2 s attempt: its batch still lags
		if rep, code := r.forward(bus.OpGet, stale, "u", time.Second, true); code != "ok" || string(rep) != "u:"+string(stale) {
			t.Fatalf("stale get %d: %s %s", i, code, rep)
		}
	}
	if got := nodes[hung].sizes(); len(got) != 1 {
		t.Fatalf("the hanging member got batches %v after its first, want none", got)
	}
}

// TestLinearizableGetsCarryAReadCheck: a batch of linearizable gets leaves
// for the leader with a read check sent just before it (here multicast on
// ms.sys.all: no follower is known to be live), in the view's epoch, its
// token (a new one each batch) named in the batch's header; stale gets,
// min_seq gets and puts carry none.
func TestLinearizableGetsCarryAReadCheck(t *testing.T) {
	r, nc, svc := startRouter(t, []election.NodeInfo{{ID: 1, Alive: true, Member: true}})
	svc.setState(protocol.View{Epoch: 7, Leader: 1, Members: []protocol.NodeID{1, 2, 3}}, []election.NodeInfo{{ID: 1, Alive: true, Member: true}})
	checks, err := nc.SubscribeSync(svc.sub.All())
	if err != nil {
		t.Fatal(err)
	}
	headers := make(chan string, 3)
	for _, op := range []string{bus.OpGet, bus.OpPut} {
		if _, err := nc.Subscribe(svc.sub.Fwd(1, op), func(m *nats.Msg) {
			headers <- m.Header.Get(bus.HeaderReadCheck)
			_ = m.Respond(bus.EncodeReplies([][]byte{[]byte(`{"ok":true}`)}))
		}); err != nil {
			t.Fatal(err)
		}
	}
	tokens := map[uint64]bool{}
	for range 2 { // each batch has a check of its own
		if rep, code := r.forward(bus.OpGet, []byte(`{"path":"a/b"}`), "u", 2*time.Second, true); code != "ok" {
			t.Fatalf("get: %s %s", code, rep)
		}
		m, err := checks.NextMsg(2 * time.Second)
		if err != nil {
			t.Fatal(err)
		}
		var chk protocol.Message
		if err := chk.UnmarshalBinary(m.Data); err != nil {
			t.Fatal(err)
		}
		if h := <-headers; chk.Type != protocol.MsgReadCheck || chk.Epoch != 7 || chk.Seq == 0 || h != strconv.FormatUint(chk.Seq, 10) {
			t.Fatalf("read check %v, batch header %q", chk, h)
		}
		tokens[chk.Seq] = true
	}
	if len(tokens) != 2 {
		t.Fatalf("two batches, read check tokens %v: want two different ones", tokens)
	}
	for _, req := range []struct{ op, data string }{
		{bus.OpGet, `{"path":"a/b","consistency":"stale"}`},
		{bus.OpGet, `{"path":"a/b","min_seq":1}`},
		{bus.OpPut, `{"path":"a/b","value":1}`},
	} {
		if rep, code := r.forward(req.op, []byte(req.data), "u", 2*time.Second, true); code != "ok" {
			t.Fatalf("%s: %s %s", req.data, code, rep)
		}
		if h := <-headers; h != "" {
			t.Fatalf("%s went with read check %q", req.data, h)
		}
	}
	if m, err := checks.NextMsg(100 * time.Millisecond); err == nil {
		t.Fatalf("a read check for a stale get or a put: %q", m.Data)
	}
}

// TestReadCheckGoesToAMajority: a read check goes to as many live
// followers as a majority needs besides the leader, a random pick each
// time, on their own subjects; with too few live, to everyone.
func TestReadCheckGoesToAMajority(t *testing.T) {
	r, nc, svc := startRouter(t, nil)
	got := make(chan string, 64)
	for _, subj := range []string{svc.sub.All(), "ms.sys.to.*"} {
		if _, err := nc.Subscribe(subj, func(m *nats.Msg) { got <- m.Subject }); err != nil {
			t.Fatal(err)
		}
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	members := []protocol.NodeID{1, 2, 3, 4, 5}
	nodes := []election.NodeInfo{{ID: 1, Alive: true, Member: true}, {ID: 2, Alive: true, Member: true},
		{ID: 3, Alive: true, Member: true}, {ID: 4, Alive: true, Member: true}, {ID: 5, Member: true}}
	checks := func() []string {
		r.readCheck(nats.NewMsg("x"))
		if err := nc.Flush(); err != nil {
			t.Fatal(err)
		}
		var subjects []string
		for {
			select {
			case s := <-got:
				subjects = append(subjects, s)
			case <-time.After(100 * time.Millisecond):
				slices.Sort(subjects)
				return subjects
			}
		}
	}
	svc.setState(protocol.View{Epoch: 3, Leader: 1, Members: members}, nodes)
	picked := map[string]bool{}
	for range 20 {
		subjects := checks()
		if len(subjects) != 2 || subjects[0] == subjects[1] {
			t.Fatalf("a check went to %v, want 2 of ms.sys.to.2-4", subjects)
		}
		for _, s := range subjects {
			if s != "ms.sys.to.2" && s != "ms.sys.to.3" && s != "ms.sys.to.4" {
				t.Fatalf("a check went to %s: not a live follower", s)
			}
			picked[s] = true
		}
	}
	if len(picked) != 3 {
		t.Errorf("20 checks went to %v only: want every live follower picked at times", picked)
	}
	nodes[2].Alive, nodes[3].Alive = false, false // 1 live follower, 2 needed
	svc.setState(protocol.View{Epoch: 3, Leader: 1, Members: members}, nodes)
	if subjects := checks(); len(subjects) != 1 || subjects[0] != svc.sub.All() {
		t.Fatalf("with too few live a check went to %v, want the multicast", subjects)
	}
}

// TestGetBatchesAnsweredInOrder: a batch of gets from a client
// (bus.HeaderBatch) goes to the leader in one batch, and one the node
// left out of it is asked for again alone; the replies come as frames in
// the batch's order, and each get's code is its own reply's. A batch that
// is not frames is refused.
func TestGetBatchesAnsweredInOrder(t *testing.T) {
	r, nc, svc := startRouter(t, nil)
	node := startFakeNode(t, nc, svc.sub.Fwd(1, bus.OpGet))
	close(node.release)
	gets := []string{`{"path":"a"}`, "big", "missing", `{"path":"b"}`}
	var batch []byte
	for _, g := range gets {
		batch = bus.AppendFrame(batch, g)
	}
	rep, codes := r.forwardGets(batch, "u", 3*time.Second)
	reps, err := bus.DecodeReplies(rep, len(gets))
	if err != nil {
		t.Fatalf("a batch of gets: %q %v", rep, err)
	}
	for i, g := range gets {
		want := "u:" + g
		if g == "missing" {
			want = missingReply
		}
		if string(reps[i]) != want {
			t.Errorf("reply %d: %q, want the node's reply to %s", i, reps[i], g)
		}
	}
	if got := fmt.Sprint(codes); got != "[ok ok not_found ok]" {
		t.Errorf("codes %s, want each get's own", got)
	}
	if sizes := fmt.Sprint(node.sizes()); sizes != "[4 1]" {
		t.Errorf("batches of %s gets, want [4 1]: the four together, then the one left out alone", sizes)
	}
	if rep, codes := r.forwardGets([]byte{0xff}, "u", time.Second); fmt.Sprint(codes) != "["+bus.CodeBadRequest+"]" {
		t.Errorf("a batch that is not frames: %v %s", codes, rep)
	}
}
