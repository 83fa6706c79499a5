package replica

import (
	"bytes"
	"encoding/json"
	"errors"
	"strconv"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/sirupsen/logrus"

	"memstore/bus"
	"memstore/replica/protocol"
	"memstore/replica/tree"
)

// apply applies one committed entry to the tree (write_to_file) and, on the
// leader, publishes each new version on ms.ev.<tokens>.
func (n *Node) apply(e protocol.Entry, leading bool) error {
	if e.Data == nil {
		_, err := n.tree.Apply(e.Epoch, e.Seq, "", "", nil)
		return err
	}
	c, err := decodeCommand(e.Data)
	if err != nil {
		return err
	}
	if c.Src != "" {
		if orig, dup := n.tree.Dedup(e.Epoch, e.Seq, c.TS, c.Src, c.SrcSeq); dup {
			if len(n.puts) > 0 { // one may wait for it: also on a leader deposed since it took the put
				if len(n.dups) > 10_000 { // answers that never came: a leader change
					clear(n.dups)
				}
				n.dups[e.Seq] = orig
			}
			return nil
		}
	}
	written, err := n.tree.Apply(e.Epoch, e.Seq, c.TS, c.User, c.treePuts())
	if err != nil || !leading {
		return err
	}
	for i, w := range written { // a batch names each path once (handlePut)
		if w.Line != nil {
			_ = n.nc.Publish(n.sub.Ev(c.Puts[i].Path), eventJSON(c.Puts[i].Path, w))
		}
	}
	return nil
}

// eventJSON is the bus.Event of a version Apply wrote, spliced from its
// line, not encoded again.
func eventJSON(path string, w tree.Written) []byte {
	return spliceVersion(`{`, path, w.Line, "prev_seq", w.Prev)
}

// spliceVersion writes a reply or event that carries a stored version at
// its top level: head, the path, the fields of the stored line (undecoded),
// then key: n unless n is 0. The path is one the tree holds, so valid
// (tree.ValidatePath): its characters need no escape in a JSON string.
func spliceVersion(head, path string, line []byte, key string, n uint64) []byte {
	b := append(make([]byte, 0, len(head)+len(path)+len(line)+len(key)+32), head...)
	b = append(append(append(b, `"path":"`...), path...), `",`...)
	b = append(b, line[1:len(line)-1]...)
	if n > 0 {
		b = append(append(append(b, ',', '"'), key...), '"', ':')
		b = strconv.AppendUint(b, n, 10)
	}
	return append(b, '}')
}

// request is one user request the router forwarded (bus.Forwarded);
// answer sends its reply and is called once.
type request struct {
	op     string
	user   string
	data   []byte
	check  uint64        // a linearizable get's read check (protocol.Node.Read); 0: none
	wait   time.Duration // how long a get may wait for its min_seq; 0: bus.RouterWait
	answer func([]byte)
}

// batchReply gathers the answers to a forwarded batch (or a client's
// batch of stale gets), from the loop and the aggregates' goroutines, and
// sends them in one message once all are in. If the replies of gets are
// too large for one message (large values), the largest go back empty,
// and the router (or client) asks for each of those alone; a lone reply too large is refused as too_large.
type batchReply struct {
	msg   *nats.Msg
	log   logrus.FieldLogger
	limit int  // payload limit of the message
	gets  bool // a batch of gets: replies may be left out, and asked for again
	mu    sync.Mutex
	reps  [][]byte
	left  int
}

func newBatchReply(m *nats.Msg, n, limit int, gets bool, log logrus.FieldLogger) *batchReply {
	return &batchReply{msg: m, log: log, limit: limit, gets: gets, reps: make([][]byte, n), left: n}
}

// answer returns the answer func of request i; only its first call counts.
func (b *batchReply) answer(i int) func([]byte) {
	return func(rep []byte) {
		b.mu.Lock()
		if b.reps[i] != nil {
			b.mu.Unlock()
			return
		}
		b.reps[i] = rep
		b.left--
		var out []byte
		if b.left == 0 {
			out = b.encode()
		}
		b.mu.Unlock()
		if out != nil {
			if err := b.msg.Respond(out); err != nil {
				b.log.WithError(err).WithField("replies", len(b.reps)).Warn("could not answer a batch")
			}
		}
	}
}

// encode encodes the replies, fitting them under the limit: only gets
// may be left out (a put's reply must come), and a lone reply too large
// becomes too_large.
func (b *batchReply) encode() []byte {
	if b.gets || len(b.reps) == 1 {
		bus.FitReplies(b.reps, b.limit)
	}
	return bus.EncodeReplies(b.reps)
}

func respond(rq request, v any) { rq.answer(bus.Encode(v)) }

func respondErr(rq request, e *bus.Error) { rq.answer(bus.ErrorReply(e)) }

// treeError maps a tree error to its wire code.
func treeError(err error) *bus.Error {
	switch {
	case errors.Is(err, tree.ErrBadPath):
		return bus.Errorf(bus.CodeBadPath, "%v", err)
	case errors.Is(err, tree.ErrNotFound):
		return bus.Errorf(bus.CodeNotFound, "%v", err)
	case errors.Is(err, tree.ErrTooLarge):
		return bus.Errorf(bus.CodeTooLarge, "%v", err)
	}
	return bus.Errorf(bus.CodeUnavailable, "%v", err)
}

// handleRequests serves a batch the router forwarded, in order.
func (n *Node) handleRequests(batch []request) {
	for _, rq := range batch {
		n.handleRequest(rq)
	}
}

// handleRequest serves one request the router forwarded (write_request,
// read_request on this node).
func (n *Node) handleRequest(rq request) {
	switch rq.op {
	case bus.OpPut:
		n.handlePut(rq)
	case bus.OpGet:
		n.handleGet(rq)
	case bus.OpHistory:
		n.handleHistory(rq)
	case bus.OpLs:
		var req bus.LsRequest
		if e := bus.DecodeRequest(rq.data, &req); e != nil {
			respondErr(rq, e)
			return
		}
		children, err := n.tree.Ls(req.Path)
		if err != nil {
			respondErr(rq, treeError(err))
			return
		}
		respond(rq, bus.LsReply{Result: bus.Result{OK: true}, Children: children})
	case bus.OpTree:
		var req bus.TreeRequest
		if e := bus.DecodeRequest(rq.data, &req); e != nil {
			respondErr(rq, e)
			return
		}
		at, e := parseTime(req.At)
		if e == nil && req.Limit < 0 {
			e = bus.Errorf(bus.CodeBadRequest, "limit %d: 0 (a full page) or more", req.Limit)
		}
		if e != nil {
			respondErr(rq, e)
			return
		}
		pvs, more, err := n.tree.Subtree(req.Path, at, req.After, req.Limit)
		if err != nil {
			respondErr(rq, treeError(err))
			return
		}
		rep := bus.TreeReply{Result: bus.Result{OK: true}, Values: make([]bus.PathVersion, len(pvs)), More: more}
		for i, pv := range pvs {
			rep.Values[i] = bus.PathVersion{Path: pv.Path, Version: wireVersion(pv.Version)}
		}
		respond(rq, rep)
	case bus.OpAgg:
		n.handleAgg(rq)
	default:
		respondErr(rq, bus.Errorf(bus.CodeBadRequest, "unknown request %q", rq.op))
	}
}

func wireVersion(v tree.Version) bus.Version {
	return bus.Version{Seq: v.Seq, TS: v.TS, EventTS: v.EventTS, User: v.User, Value: v.Value}
}

// parseTime reads an RFC 3339 time of a request; "" is the zero time.
func parseTime(s string) (time.Time, *bus.Error) {
	if s == "" {
		return time.Time{}, nil
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return time.Time{}, bus.Errorf(bus.CodeBadRequest, "time %q is not RFC 3339", s)
	}
	return t, nil
}

// parseRange reads the since and until of a request.
func parseRange(since, until string) (time.Time, time.Time, *bus.Error) {
	from, e := parseTime(since)
	if e != nil {
		return time.Time{}, time.Time{}, e
	}
	to, e := parseTime(until)
	return from, to, e
}

// handleAgg checks an aggregate and computes it beside the loop (it may
// read millions of versions), a few at a time.
func (n *Node) handleAgg(rq request) {
	var req bus.AggRequest
	if e := bus.DecodeRequest(rq.data, &req); e != nil {
		respondErr(rq, e)
		return
	}
	var q tree.AggQuery
	var e *bus.Error
	if q.Since, q.Until, e = parseRange(req.Since, req.Until); e != nil {
		respondErr(rq, e)
		return
	}
	if req.Every != "" {
		d, err := time.ParseDuration(req.Every)
		if err != nil || d <= 0 {
			respondErr(rq, bus.Errorf(bus.CodeBadRequest, "every %q is not a positive duration (1m, 15s)", req.Every))
			return
		}
		q.Every = d
	}
	switch req.Time {
	case "", bus.CommitTime:
	case bus.EventTime:
		q.ByEvent = true
	default:
		respondErr(rq, bus.Errorf(bus.CodeBadRequest, "time %q: commit or event", req.Time))
		return
	}
	select {
	case n.aggs <- struct{}{}:
	default:
		respondErr(rq, bus.Errorf(bus.CodeUnavailable, "node %d is busy with %d aggregates; try again", n.cfg.ID, cap(n.aggs)))
		return
	}
	n.wg.Add(1)
	go func() {
		defer n.wg.Done()
		defer func() { <-n.aggs }()
		a, err := n.tree.Aggregate(req.Path, q)
		if err != nil {
			respondErr(rq, treeError(err))
			return
		}
		rep := bus.AggReply{Result: bus.Result{OK: true}, AggStats: wireStats(a.Stats)}
		for _, b := range a.Buckets {
			rep.Buckets = append(rep.Buckets, bus.AggBucket{Start: b.Start.Format(time.RFC3339Nano), AggStats: wireStats(b.Stats)})
		}
		respond(rq, rep)
	}()
}

func wireStats(s tree.Stats) bus.AggStats {
	out := bus.AggStats{Count: s.Count, Numeric: s.Numeric}
	if s.Count > 0 {
		first, last := wireVersion(s.First), wireVersion(s.Last)
		out.First, out.Last = &first, &last
	}
	if s.Numeric > 0 {
		mean := s.Sum / float64(s.Numeric)
		out.Min, out.Max, out.Mean, out.Sum = &s.Min, &s.Max, &mean, &s.Sum
	}
	return out
}

// handlePut checks a write and proposes it; the reply waits for commit.
func (n *Node) handlePut(rq request) {
	if len(rq.data) > n.cfg.MaxRequestBytes {
		respondErr(rq, bus.Errorf(bus.CodeTooLarge, "put request of %d bytes, at most %d", len(rq.data), n.cfg.MaxRequestBytes))
		return
	}
	req, e := bus.DecodePutRequest(rq.data)
	if e != nil {
		respondErr(rq, e)
		return
	}
	puts := req.Values
	switch {
	case (req.Path != "" || req.EventTS != "") && len(req.Values) > 0:
		respondErr(rq, bus.Errorf(bus.CodeBadRequest, "give path, value and event_ts, or values, not both"))
		return
	case req.Path != "" || req.Value != nil:
		puts = []bus.PathValue{{Path: req.Path, Value: req.Value, EventTS: req.EventTS}}
	case len(puts) == 0:
		respondErr(rq, bus.Errorf(bus.CodeBadRequest, "nothing to put: give path and value, or values"))
		return
	case len(puts) > n.cfg.MaxBatch:
		respondErr(rq, bus.Errorf(bus.CodeTooLarge, "%d values in one batch, at most %d", len(puts), n.cfg.MaxBatch))
		return
	}
	if (req.Source == "") != (req.SourceSeq == 0) {
		respondErr(rq, bus.Errorf(bus.CodeBadRequest, "give source and source_seq (above 0) together"))
		return
	}
	ts := time.Now().UTC()
	if !ts.After(n.lastTS) { // commit times never go back, even across leaders with skewed clocks
		ts = n.lastTS.Add(time.Nanosecond)
	}
	c := command{TS: ts.Format(time.RFC3339Nano), User: rq.user,
		Src: req.Source, SrcSeq: req.SourceSeq}
	if c.User == "" {
		c.User = "anonymous"
	}
	var named map[string]bool
	if len(puts) > 1 {
		named = make(map[string]bool, len(puts))
	}
	for _, p := range puts {
		if named != nil {
			if named[p.Path] {
				respondErr(rq, bus.Errorf(bus.CodeBadRequest, "%s is named twice in one batch", p.Path))
				return
			}
			named[p.Path] = true
		}
		if err := tree.ValidatePath(p.Path); err != nil {
			respondErr(rq, bus.Errorf(bus.CodeBadPath, "%v", err))
			return
		}
		if len(p.Value) == 0 { // the request decoder has checked it is JSON
			respondErr(rq, bus.Errorf(bus.CodeBadRequest, "value of %s is missing", p.Path))
			return
		}
		if p.EventTS != "" {
			if _, err := time.Parse(time.RFC3339Nano, p.EventTS); err != nil {
				respondErr(rq, bus.Errorf(bus.CodeBadRequest, "event_ts %q of %s is not RFC 3339", p.EventTS, p.Path))
				return
			}
		}
		if len(p.Value) > n.cfg.MaxValueBytes {
			respondErr(rq, bus.Errorf(bus.CodeTooLarge, "value of %s is %d bytes, at most %d", p.Path, len(p.Value), n.cfg.MaxValueBytes))
			return
		}
		if !marshalled(p.Value) {
			p.Value, _ = json.Marshal(p.Value) // compact, on one line, as json.Marshal spells it; the decoder has checked it is JSON
		}
		c.Puts = append(c.Puts, p)
	}
	data := c.encode()
	n.lastTS = ts
	n.nextID++
	n.puts[n.nextID] = pendingPut{rq: rq, ts: c.TS, keyed: c.Src != ""}
	n.pn.Propose(n.nextID, data)
}

// marshalled reports whether json.Marshal would leave the valid JSON
// value v as it is: no white space (between tokens, or in a string,
// where it stays), no <, > or & and no U+2028 or U+2029 (which it
// escapes; both start with the byte 0xE2, which this takes as a no).
// The Go client's values are (it encodes with json.Marshal): compacting
// each again was a twelfth of a leader's CPU under puts (issue 7).
func marshalled(v []byte) bool {
	return !bytes.ContainsAny(v, " \t\n\r<>&") && bytes.IndexByte(v, 0xE2) < 0
}

func (n *Node) answerPut(r protocol.Reply) {
	p, ok := n.puts[r.ID]
	if !ok {
		return
	}
	delete(n.puts, r.ID)
	switch orig, dup := n.dups[r.Seq]; {
	case r.Err == nil && dup:
		delete(n.dups, r.Seq)
		respond(p.rq, bus.PutReply{Result: bus.Result{OK: true}, Seq: orig.Seq, TS: orig.TS, Duplicate: true, SourceSeq: orig.SrcSeq})
	case r.Err == nil:
		p.rq.answer(putReplyJSON(r.Seq, p.ts))
	case errors.Is(r.Err, protocol.ErrNotLeader):
		respondErr(p.rq, bus.Errorf(bus.CodeNotLeader, "node %d does not lead", n.cfg.ID))
	case errors.Is(r.Err, protocol.ErrNoQuorum):
		respondErr(p.rq, bus.Errorf(bus.CodeUnavailable, "the leader cannot reach a majority of the members; not written"))
	case errors.Is(r.Err, protocol.ErrDropped):
		respondErr(p.rq, bus.Errorf(bus.CodeUnavailable, "the leader changed before the write committed; it was not written"))
	default:
		respondErr(p.rq, bus.Errorf(bus.CodeTimeout, "the leader changed; the write may or may not have been committed"))
	}
}

// putReplyJSON is the bus.PutReply of a committed put, spelt as the
// encoder spells it (ts is the leader's own RFC 3339): by reflection it was
// a twentieth of a leader's CPU at 64 writers (issue 7).
func putReplyJSON(seq uint64, ts string) []byte {
	b := strconv.AppendUint(append(make([]byte, 0, 32+len(ts)), `{"ok":true,"seq":`...), seq, 10)
	return append(append(append(b, `,"ts":"`...), ts...), `"}`...)
}

// handleGet serves a get: linearizable through the read index, stale from
// the applied state, min_seq once applied up to it.
func (n *Node) handleGet(rq request) {
	req, e := bus.DecodeGetRequest(rq.data)
	if e != nil {
		respondErr(rq, e)
		return
	}
	if err := tree.ValidatePath(req.Path); err != nil {
		respondErr(rq, bus.Errorf(bus.CodeBadPath, "%v", err))
		return
	}
	switch {
	case req.Consistency != "" && req.Consistency != bus.Linearizable && req.Consistency != bus.Stale:
		respondErr(rq, bus.Errorf(bus.CodeBadRequest, "consistency %q: linearizable or stale", req.Consistency))
	case req.MinSeq > 0:
		wait := bus.RouterWait
		if rq.wait > 0 {
			wait = min(wait, rq.wait)
		}
		n.waits = append(n.waits, pendingRead{rq: rq, req: req, deadline: time.Now().Add(wait)})
		n.pn.AskCommit(req.MinSeq) // a follower learns the leader's commit now, not at its next heartbeat
	case req.Consistency == bus.Stale:
		n.serveGet(rq, req)
	default:
		n.nextID++
		n.reads[n.nextID] = pendingRead{rq: rq, req: req}
		n.pn.Read(n.nextID, rq.check)
	}
}

func (n *Node) serveGet(rq request, req bus.GetRequest) {
	line, applied, err := n.tree.GetJSON(req.Path)
	if err != nil {
		respondErr(rq, treeError(err))
		return
	}
	rq.answer(spliceVersion(`{"ok":true,`, req.Path, line, "applied_seq", applied)) // a bus.GetReply
}

// stallAfter is how long a node's loop may go without a turn (it takes
// one every tick, 100 ms, when idle) before the node refuses stale gets:
// a loop stuck on a hung disk applies nothing, and its tree only ages.
const stallAfter = time.Second

// serveStaleGet answers a get on ms.api.get.stale (read_request, past the
// router), or a batch of them (bus.HeaderBatch), from the applied state,
// on the subscription's goroutine: the tree is safe to read beside the
// loop. A min_seq not applied yet waits in the loop, for as long as the
// get's Ms-Deadline-Ms says if sooner (in a batch, the batch waits).
func (n *Node) serveStaleGet(m *nats.Msg) {
	if m.Header.Get(bus.HeaderBatch) == "" {
		n.staleGet(m, m.Data, func(b []byte) { _ = m.Respond(b) })
		return
	}
	gets, e := bus.SplitGetBatch(m.Data)
	if e != nil {
		_ = m.Respond(bus.ErrorReply(e))
		return
	}
	replies := newBatchReply(m, len(gets), int(n.nc.MaxPayload()), true, n.log)
	for i, g := range gets {
		n.staleGet(m, g, replies.answer(i))
	}
}

// staleGet answers one stale get, data, of message m.
func (n *Node) staleGet(m *nats.Msg, data []byte, answer func([]byte)) {
	rq := request{op: bus.OpGet, data: data, answer: answer}
	staleGets.WithLabelValues(n.label).Inc()
	req, e := bus.DecodeGetRequest(data)
	stalled := time.Since(time.Unix(0, n.turned.Load()))
	switch {
	case stalled > stallAfter:
		respondErr(rq, bus.Errorf(bus.CodeUnavailable, "node %d has been stuck for %v (a hung disk?), so its state may be old: ask again, another member may answer",
			n.cfg.ID, stalled.Round(time.Millisecond)))
	case e != nil:
		respondErr(rq, e)
	case req.Consistency != "" && req.Consistency != bus.Stale:
		respondErr(rq, bus.Errorf(bus.CodeBadRequest, "consistency %q on %s, which serves stale gets: ask %s for others",
			req.Consistency, m.Subject, n.sub.API(bus.OpGet)))
	case req.MinSeq > n.tree.AppliedPoint().Seq:
		rq.wait = bus.Deadline(m.Header)
		n.toLoop([]request{rq})
	default:
		n.serveGet(rq, req)
	}
}

func (n *Node) answerRead(r protocol.ReadState) {
	p, ok := n.reads[r.ID]
	if !ok {
		return
	}
	delete(n.reads, r.ID)
	if r.Err != nil {
		respondErr(p.rq, bus.Errorf(bus.CodeNotLeader, "node %d does not lead", n.cfg.ID))
		return
	}
	n.serveGet(p.rq, p.req)
}

// serveWaits answers min_seq reads whose seq is applied.
func (n *Node) serveWaits() {
	applied := n.tree.AppliedPoint().Seq
	kept := n.waits[:0]
	for _, w := range n.waits {
		if applied >= w.req.MinSeq {
			n.serveGet(w.rq, w.req)
			continue
		}
		kept = append(kept, w)
	}
	n.waits = kept
}

func (n *Node) expireWaits() {
	now := time.Now()
	kept := n.waits[:0]
	for _, w := range n.waits {
		if now.After(w.deadline) {
			respondErr(w.rq, bus.Errorf(bus.CodeTimeout, "node %d has not applied the get's min_seq %d yet", n.cfg.ID, w.req.MinSeq))
			continue
		}
		kept = append(kept, w)
	}
	n.waits = kept
}

func (n *Node) handleHistory(rq request) {
	var req bus.HistoryRequest
	if e := bus.DecodeRequest(rq.data, &req); e != nil {
		respondErr(rq, e)
		return
	}
	if req.Limit < 0 {
		respondErr(rq, bus.Errorf(bus.CodeBadRequest, "limit %d: 0 (a full page) or more", req.Limit))
		return
	}
	q := tree.HistoryQuery{AfterSeq: req.AfterSeq, Limit: req.Limit}
	var e *bus.Error
	if q.Since, q.Until, e = parseRange(req.Since, req.Until); e != nil {
		respondErr(rq, e)
		return
	}
	lines, more, err := n.tree.HistoryJSON(req.Path, q)
	if err != nil {
		respondErr(rq, treeError(err))
		return
	}
	rq.answer(historyReply(lines, more))
}

// historyReply splices the stored lines, which are the wire's versions,
// into a history reply, decoding none, allocated once at its size.
func historyReply(lines []json.RawMessage, more bool) []byte {
	const head, tail = `{"ok":true,"values":[`, `],"more":false}`
	size := len(head) + len(tail) + max(len(lines)-1, 0) // and the commas
	for _, l := range lines {
		size += len(l)
	}
	b := make([]byte, 0, size)
	b = append(b, head...)
	for i, l := range lines {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, l...)
	}
	b = append(b, `],"more":`...)
	b = strconv.AppendBool(b, more)
	return append(b, '}')
}
