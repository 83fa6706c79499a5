package groupsvc

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/nats-io/nats.go"
	"github.com/sirupsen/logrus"

	"memstore/bus"
	"memstore/groupsvc/election"
	"memstore/replica/protocol"
)

// Router serves the public API as a queue group and forwards each request
// to a node, in batches (pipes): writes and linearizable reads to the
// leader, stale reads to any live member. A failover shows as a slower
// reply, not an error: on not_leader, unavailable or no answer it waits
// for the next view and retries until the request's deadline.
type Router struct {
	svc  *Service
	nc   *nats.Conn
	sub  bus.Subjects
	log  logrus.FieldLogger
	subs []*nats.Subscription

	pipes *pipes
	// stale is the route of stale gets: one pipe, whose batches each go
	// to a live member picked as the batch leaves. Per-node pipes made
	// batches a third the size (A/B: one pipe served 20-32% more stale
	// gets at 29-36% less CPU per get), and picking per batch still
	// spreads reads over the members. A member that is alive but does not
	// answer holds every stale get up for one turn (500 ms): then no batch
	// goes to it until it answers (pickLive).
	stale route

	mu       sync.Mutex
	inflight map[string]int // writer → requests being answered
}

// StartRouter subscribes to ms.api.<op> and ms.in.> in the router queue
// group. It leaves ms.api.get.stale to the member nodes.
func StartRouter(svc *Service) (*Router, error) {
	r := newRouter(svc)
	for _, subj := range []string{r.sub.APIOps(), r.sub.InAll()} {
		s, err := r.nc.QueueSubscribe(subj, bus.RouterQueue, r.serve)
		if err != nil {
			r.Close()
			return nil, err
		}
		s.SetPendingLimits(-1, -1)
		r.subs = append(r.subs, s)
	}
	return r, nil
}

func newRouter(svc *Service) *Router {
	r := &Router{svc: svc, nc: svc.nc, sub: svc.sub, log: svc.log.WithField("component", "router"), inflight: map[string]int{},
		pipes: newPipes(svc.nc)}
	r.stale = route{key: bus.Stale, to: func() string {
		cur := r.svc.current()
		if target := r.pickLive(cur.view, cur.nodes); target != 0 {
			return r.sub.Fwd(target, bus.OpGet)
		}
		return ""
	}}
	return r
}

// readCheck sends a read check in the current view's epoch as a batch of
// linearizable gets leaves for the leader, and names it in the batch's
// header: followers confirm the leader's leadership for these reads
// while the batch travels, instead of in a round the leader starts once
// it has them (protocol.Node.Read). It goes to as many followers as a
// majority needs besides the leader, picked at random among the live
// ones: an ack past the majority cost a follower a message in and one
// out, and the leader one more, for nothing. With too few known to be
// live it goes to every member (multicast). Unsent, the reads take a
// round; a picked follower that does not ack holds them up until then.
func (r *Router) readCheck(m *nats.Msg) {
	token := rand.Uint64() | 1
	cur := r.svc.current()
	var live []protocol.NodeID
	for _, n := range cur.nodes {
		if n.Alive && n.Member && n.ID != cur.view.Leader {
			live = append(live, n.ID)
		}
	}
	to := []protocol.NodeID{protocol.Multicast}
	if need := protocol.Quorum(cur.view.Members) - 1; len(live) >= need {
		rand.Shuffle(len(live), func(i, j int) { live[i], live[j] = live[j], live[i] })
		to = live[:need]
	}
	for _, id := range to {
		chk := protocol.Message{Type: protocol.MsgReadCheck, From: protocol.Group, To: id, Epoch: cur.view.Epoch, Seq: token}
		b, _ := chk.MarshalBinary() // never fails
		if r.nc.Publish(r.sub.Address(chk), b) != nil {
			return
		}
	}
	m.Header.Set(bus.HeaderReadCheck, strconv.FormatUint(token, 10))
}

// Close stops serving.
func (r *Router) Close() {
	for _, s := range r.subs {
		_ = s.Unsubscribe()
	}
	r.pipes.close()
}

// serve is listen_to_user: one request, answered on its reply subject.
// Each writer may have MaxInflightPerUser requests being answered; beyond
// that a request is refused at once, so one user's flood cannot queue
// ahead of everyone else's requests.
func (r *Router) serve(m *nats.Msg) {
	user, e := writer(m)
	if e != nil {
		if m.Reply != "" {
			_ = m.Respond(bus.ErrorReply(e))
		}
		return
	}
	r.mu.Lock()
	busy := r.inflight[user] >= r.svc.cfg.MaxInflightPerUser
	if !busy {
		r.inflight[user]++
	}
	r.mu.Unlock()
	if busy {
		requestsRefused.Inc()
		if m.Reply != "" {
			_ = m.Respond(bus.ErrorReply(bus.Errorf(bus.CodeUnavailable,
				"%q has %d requests in flight, the most one writer may have: slow down and try again", user, r.svc.cfg.MaxInflightPerUser)))
		}
		return
	}
	go func() { // each request waits on its own
		defer func() {
			r.mu.Lock()
			if r.inflight[user]--; r.inflight[user] == 0 {
				delete(r.inflight, user)
			}
			r.mu.Unlock()
		}()
		r.answer(m, user)
	}()
}

func (r *Router) answer(m *nats.Msg, user string) {
	start := time.Now()
	op, data, err := r.route(m)
	var reply []byte
	codes := []string{"ok"} // of each request answered: a batch of gets counts each of its gets
	switch {
	case err != nil:
		reply, codes[0], op = bus.ErrorReply(err), err.Code, "unknown"
	case op == bus.OpStatus:
		reply = r.status()
	default:
		timeout := r.svc.cfg.RequestTimeout
		if d := bus.Deadline(m.Header); d > 0 {
			timeout = min(timeout, d)
		}
		if op == bus.OpGet && m.Header.Get(bus.HeaderBatch) != "" {
			reply, codes = r.forwardGets(data, user, timeout)
		} else {
			reply, codes[0] = r.forward(op, data, user, timeout, m.Reply != "")
		}
	}
	if m.Reply != "" {
		_ = m.Respond(reply)
	}
	took := time.Since(start).Seconds()
	for _, code := range codes {
		requestSeconds.WithLabelValues(op, code).Observe(took)
	}
}

// attemptWait is how long forward waits for a node's answer before it
// asks again (or at once, when a new view comes).
const attemptWait = 2 * time.Second

// toLeader is the route of op's batches to the leader of view; with
// check, each batch carries a read check (plain linearizable gets).
func (r *Router) toLeader(view protocol.View, op string, check bool) route {
	rt := fixedRoute(r.sub.Fwd(view.Leader, op))
	if check {
		rt.leave = r.readCheck
	}
	return rt
}

// settled reads a node's reply: its code ("ok" if none), and for
// not_leader and unavailable that it should be asked again elsewhere, and
// why.
func settled(rep []byte) (code string, again bool, why string) {
	if bytes.HasPrefix(rep, okPrefix) { // every encoder writes ok first: no need to read the rest
		return "ok", false, ""
	}
	var res bus.Result
	if bus.Decode(rep, &res) != nil || res.Error == nil {
		return "ok", false, ""
	}
	again = res.Error.Code == bus.CodeNotLeader || res.Error.Code == bus.CodeUnavailable
	return res.Error.Code, again, res.Error.Message
}

// forwardGets forwards a batch of gets (bus.HeaderBatch: the Go client
// sends the linearizable gets of its readers that overlap so) and answers
// their replies as frames, in order, fitted in one message. The plain
// linearizable ones go to the leader together, in one try (one at a time,
// the pipe would send the first alone and the rest a round later); the
// others, and those that try did not settle, go as forward sends each
// alone, side by side. The batch is one request of its writer's in-flight
// limit, as a batch of puts is. It returns the reply and each get's code
// (one code for a batch refused whole).
func (r *Router) forwardGets(data []byte, user string, timeout time.Duration) ([]byte, []string) {
	gets, e := bus.SplitGetBatch(data)
	if e != nil {
		return bus.ErrorReply(e), []string{e.Code}
	}
	codes := make([]string, len(gets))
	deadline := time.Now().Add(timeout)
	reps := make([][]byte, len(gets))
	var plain []int
	for i, g := range gets {
		if !isStale(g) && !waits(g) {
			plain = append(plain, i)
		}
	}
	if cur := r.svc.current(); len(plain) > 0 && cur.view.Leader != 0 {
		rt := r.toLeader(cur.view, bus.OpGet, true)
		reqs := make([]bus.Forwarded, len(plain))
		for j, i := range plain {
			reqs[j] = bus.Forwarded{User: user, Data: gets[i]}
		}
		ctx, cancel := context.WithTimeout(cur.changed, min(attemptWait, timeout))
		got, errs := r.pipes.requestAll(ctx, cur.changed, rt, reqs)
		cancel()
		for j, i := range plain {
			if code, again, _ := settled(got[j]); errs[j] == nil && len(got[j]) > 0 && !again {
				reps[i], codes[i] = got[j], code
			}
		}
	}
	var wg sync.WaitGroup
	for i, g := range gets {
		if reps[i] == nil {
			wg.Go(func() { reps[i], codes[i] = r.forward(bus.OpGet, g, user, time.Until(deadline), true) })
		}
	}
	wg.Wait()
	bus.FitReplies(reps, int(r.nc.MaxPayload()))
	return bus.EncodeReplies(reps), codes
}

// okPrefix starts every successful reply (bus.Result encodes ok first).
var okPrefix = []byte(`{"ok":true`)

// writer names who sent a request: the user the NATS server authenticated
// when the request crossed from the USERS account (it cannot be forged
// there: the server replaces the header), else the self-declared Ms-User
// of a server without auth. A request that crossed without its user is
// refused: a self-declared name would let anyone write as anyone.
func writer(m *nats.Msg) (string, *bus.Error) {
	user, crossed := bus.RequestUser(m.Header.Get(bus.HeaderRequestInfo))
	switch {
	case crossed && user == "":
		return "", bus.Errorf(bus.CodeForbidden, "the NATS server does not say who sent this request: its import of ms.api.> and ms.in.> needs share: true")
	case crossed:
		return user, nil
	}
	return m.Header.Get(bus.HeaderUser), nil
}

// route maps a message to an API op and its request payload.
func (r *Router) route(m *nats.Msg) (string, []byte, *bus.Error) {
	if path, ok := r.sub.PathFromIn(m.Subject); ok {
		value := json.RawMessage(m.Data)
		if !json.Valid(value) { // a bare word from `nats pub` is stored as a string
			value = bus.Encode(string(m.Data))
		}
		return bus.OpPut, bus.Encode(bus.PutRequest{Path: path, Value: value, EventTS: m.Header.Get(bus.HeaderEventTime)}), nil
	}
	op, ok := strings.CutPrefix(m.Subject, r.sub.Prefix+".api.")
	switch {
	case !ok:
		return "", nil, bus.Errorf(bus.CodeBadRequest, "unknown subject %s", m.Subject)
	case op == bus.OpPut, op == bus.OpGet, op == bus.OpHistory, op == bus.OpLs, op == bus.OpTree, op == bus.OpStatus, op == bus.OpAgg:
		return op, m.Data, nil
	}
	return "", nil, bus.Errorf(bus.CodeBadRequest, "unknown request %q", op)
}

// forward sends a request to the right node, retrying across leader
// changes until the deadline (write_request, read_request); awaited says
// whether its sender waits for the answer.
func (r *Router) forward(op string, data []byte, user string, timeout time.Duration, awaited bool) ([]byte, string) {
	deadline := time.Now().Add(timeout)
	stale := op == bus.OpGet && isStale(data)
	// An unkeyed put is sent once: a retry could write it twice. It may
	// wait for the whole deadline (a big batch on a busy disk takes
	// seconds).
	once := op == bus.OpPut && !keyed(data)
	last := "no leader" // why the latest attempt failed
	// Puts and plain gets are answered about as fast as each other, so
	// they go in batches; the rest alone.
	waiting := op == bus.OpGet && waits(data)
	waited := false // a waiting get was held by a node until its attempt ended
	batched := op == bus.OpPut || op == bus.OpGet && !waiting
	for time.Now().Before(deadline) {
		cur := r.svc.current()
		rt := r.stale // picks a live member as each batch leaves
		if !stale {
			if cur.view.Leader == 0 {
				waitForChange(cur.changed, deadline)
				continue
			}
			rt = r.toLeader(cur.view, op, op == bus.OpGet && batched) // a min_seq get waits for its seq, not for a read index
		}
		// Anything but an unkeyed put is sent again after 2 s without an
		// answer, or at once when a new view comes (the leader it went to
		// may be dead: waiting out the 2 s would stall every writer).
		parent, attempt := cur.changed, attemptWait
		if once {
			parent, attempt = context.Background(), time.Until(deadline)
		}
		ctx, cancel := context.WithTimeout(parent, min(attempt, time.Until(deadline)))
		fwd := bus.Forwarded{User: user, Data: data}
		var rep []byte
		var err error
		if batched {
			rep, err = r.pipes.request(ctx, cur.changed, rt, fwd, awaited)
		} else {
			rep, err = r.pipes.requestAlone(ctx, rt, fwd)
		}
		if err == nil && len(rep) == 0 { // too large to come with the others
			if op != bus.OpGet {
				err = errors.New("groupsvc: an empty reply to a put") // asked again, it could be written twice
			} else {
				rep, err = r.pipes.requestAlone(ctx, rt, fwd)
			}
		}
		cancel()
		if errors.Is(err, nats.ErrMaxPayload) { // not sent
			return bus.ErrorReply(bus.Errorf(bus.CodeTooLarge, "request of %d bytes: more than the NATS server carries", len(data))), bus.CodeTooLarge
		}
		if err != nil && once && !errors.Is(err, nats.ErrNoResponders) && !errors.Is(err, errNotSent) {
			// The leader may have committed it: a retry could write twice.
			return bus.ErrorReply(bus.Errorf(bus.CodeTimeout, "the leader did not answer (%v): the write may or may not have been committed", err)), bus.CodeTimeout
		}
		if err != nil {
			last = fmt.Sprintf("no answer: %v", err)
			waited = waited || waiting && errors.Is(err, context.DeadlineExceeded)
			waitForChange(cur.changed, deadline)
			continue
		}
		code, again, why := settled(rep)
		if again {
			last = why
			waitForChange(cur.changed, deadline)
			continue
		}
		return rep, code
	}
	if waited { // a node held it: it had not applied the seq
		return bus.ErrorReply(bus.Errorf(bus.CodeTimeout, "no node applied the get's min_seq within %v", timeout)), bus.CodeTimeout
	}
	return bus.ErrorReply(bus.Errorf(bus.CodeUnavailable, "no leader could answer within %v: %s", timeout, last)), bus.CodeUnavailable
}

// waitForChange waits for a new view (changed is done) for up to 200 ms,
// then lets the caller retry anyway: the failure may have been a blip.
func waitForChange(changed context.Context, deadline time.Time) {
	t := time.NewTimer(min(200*time.Millisecond, time.Until(deadline)))
	defer t.Stop()
	select {
	case <-changed.Done():
	case <-t.C:
	}
}

// waits reports whether a get may wait seconds for its min_seq, which
// would hold up a batch.
func waits(data []byte) bool {
	if !mayName(data, "min_seq") {
		return false
	}
	var req struct {
		MinSeq uint64 `json:"min_seq"`
	}
	return bus.Decode(data, &req) != nil || req.MinSeq > 0
}

// mayName reports whether data, a small JSON request, may spell word (a
// lower-case ASCII key or value) as the node's decoder reads it: keys
// match ignoring case, and escapes and some non-ASCII letters (ſ, K) spell
// anything. False means it surely does not, and spares a decode (a tenth
// of the middleware's CPU under gets).
func mayName(data []byte, word string) bool {
	for _, c := range data {
		if c == '\\' || c >= utf8.RuneSelf {
			return true
		}
	}
	for i := 0; i+len(word) <= len(data); i++ {
		if data[i]|0x20 == word[0] && bytes.EqualFold(data[i:i+len(word)], []byte(word)) {
			return true
		}
	}
	return false
}

// keyed reports whether a put carries a (source, sequence) key: the store
// writes it at most once, so resending it is safe.
func keyed(data []byte) bool {
	if !bytes.Contains(data, []byte(`"source"`)) {
		// Skip the decode (a tenth of the router's CPU). Not mayName: a
		// put may be a megabyte, and a key spelt "Source" only loses the
		// resend.
		return false
	}
	var req struct { // only the key: the values may be a megabyte
		Source    string `json:"source"`
		SourceSeq uint64 `json:"source_seq"`
	}
	return bus.Decode(data, &req) == nil && req.Source != "" && req.SourceSeq > 0
}

// isStale reports whether a get asks for a stale read, as the node reads
// it (bus.DecodeGetRequest, which reads the Go client's spellings without
// a JSON decode: one per stale get was a tenth of the middleware's CPU
// under them). A get the node refuses is not stale: the leader answers it.
func isStale(data []byte) bool {
	req, e := bus.DecodeGetRequest(data)
	return e == nil && req.Consistency == bus.Stale
}

// pickLive picks a live member at random for a stale get, skipping
// those with a batch of stale gets unanswered past its turn (alive to the
// group service, yet it may hang) unless all have one; the leader if none
// is live.
func (r *Router) pickLive(view protocol.View, nodes []election.NodeInfo) protocol.NodeID {
	var live, answering []protocol.NodeID
	for _, n := range nodes {
		if n.Alive && n.Member {
			live = append(live, n.ID)
			if !r.pipes.lags(r.sub.Fwd(n.ID, bus.OpGet)) {
				answering = append(answering, n.ID)
			}
		}
	}
	switch {
	case len(answering) > 0:
		return answering[rand.IntN(len(answering))]
	case len(live) > 0:
		return live[rand.IntN(len(live))]
	}
	return view.Leader
}

// status answers ms.api.status from the coordinator's state.
func (r *Router) status() []byte {
	view, nodes := r.svc.View()
	rep := bus.StatusReply{Result: bus.Result{OK: true}, Epoch: view.Epoch, Leader: uint64(view.Leader), Auth: r.svc.cfg.Auth}
	for _, m := range view.Members {
		rep.Members = append(rep.Members, uint64(m))
	}
	var leaderCommit uint64
	for _, n := range nodes {
		if n.ID == view.Leader {
			leaderCommit = n.Commit
		}
	}
	for _, n := range nodes {
		ns := bus.NodeStatus{ID: uint64(n.ID), Member: n.Member, LastSeq: n.Last.Seq, Commit: n.Commit, Applied: n.Applied}
		switch {
		case !n.Alive:
			ns.State = "down"
		case n.Leading && n.ID == view.Leader:
			ns.State = "leader"
		case !n.Member:
			ns.State = "joining"
		default:
			ns.State = "follower"
		}
		if leaderCommit > n.Applied {
			ns.Lag = leaderCommit - n.Applied
		}
		rep.Nodes = append(rep.Nodes, ns)
	}
	return bus.Encode(rep)
}
