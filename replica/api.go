package replica

import (
	"encoding/json"
	"errors"
	"strings"
	"time"

	"github.com/nats-io/nats.go"

	"memstore/bus"
	"memstore/replica/protocol"
	"memstore/replica/tree"
)

// apply applies one committed entry to the tree (write_to_file) and, on the
// leader, publishes each new version on ms.ev.<tokens>.
func (n *Node) apply(e protocol.Entry, leading bool) error {
	if e.Data == nil {
		return n.tree.Apply(e.Epoch, e.Seq, "", "", nil)
	}
	var c command
	if err := json.Unmarshal(e.Data, &c); err != nil {
		return errors.New("replica: undecodable committed entry " + err.Error())
	}
	if c.Src != "" {
		if orig, dup := n.tree.Dedup(e.Epoch, e.Seq, c.TS, c.Src, c.SrcSeq); dup {
			if leading {
				if len(n.dups) > 10_000 { // answers that never came: a leader change
					clear(n.dups)
				}
				n.dups[e.Seq] = orig
			}
			return nil
		}
	}
	if err := n.tree.Apply(e.Epoch, e.Seq, c.TS, c.User, c.treePuts()); err != nil {
		return err
	}
	if leading {
		for _, p := range c.Puts {
			ev := bus.PathVersion{Path: p.Path, Version: bus.Version{Seq: e.Seq, TS: c.TS, User: c.User, Value: p.Value}}
			_ = n.nc.Publish(n.sub.Ev(p.Path), bus.Encode(ev))
		}
	}
	return nil
}

func respond(m *nats.Msg, v any) {
	if m.Reply != "" {
		_ = m.Respond(bus.Encode(v))
	}
}

func respondErr(m *nats.Msg, e *bus.Error) {
	if m.Reply != "" {
		_ = m.Respond(bus.ErrorReply(e))
	}
}

// treeError maps a tree error to its wire code.
func treeError(err error) *bus.Error {
	switch {
	case errors.Is(err, tree.ErrBadPath):
		return bus.Errorf(bus.CodeBadPath, "%v", err)
	case errors.Is(err, tree.ErrNotFound):
		return bus.Errorf(bus.CodeNotFound, "%v", err)
	}
	return bus.Errorf(bus.CodeUnavailable, "%v", err)
}

// handleRequest serves one request the router forwarded (write_request,
// read_request on this node).
func (n *Node) handleRequest(m *nats.Msg) {
	op := m.Subject[strings.LastIndexByte(m.Subject, '.')+1:]
	switch op {
	case bus.OpPut:
		n.handlePut(m)
	case bus.OpGet:
		n.handleGet(m)
	case bus.OpHistory:
		n.handleHistory(m)
	case bus.OpLs:
		var req bus.LsRequest
		if e := bus.Decode(m.Data, &req); e != nil {
			respondErr(m, e)
			return
		}
		children, err := n.tree.Ls(req.Path)
		if err != nil {
			respondErr(m, treeError(err))
			return
		}
		respond(m, bus.LsReply{Result: bus.Result{OK: true}, Children: children})
	case bus.OpTree:
		var req bus.TreeRequest
		if e := bus.Decode(m.Data, &req); e != nil {
			respondErr(m, e)
			return
		}
		pvs, more, err := n.tree.Subtree(req.Path, req.Limit)
		if err != nil {
			respondErr(m, treeError(err))
			return
		}
		rep := bus.TreeReply{Result: bus.Result{OK: true}, Values: make([]bus.PathVersion, len(pvs)), More: more}
		for i, pv := range pvs {
			rep.Values[i] = bus.PathVersion{Path: pv.Path, Version: wireVersion(pv.Version)}
		}
		respond(m, rep)
	default:
		respondErr(m, bus.Errorf(bus.CodeBadRequest, "unknown request %q", op))
	}
}

func wireVersion(v tree.Version) bus.Version {
	return bus.Version{Seq: v.Seq, TS: v.TS, User: v.User, Value: v.Value}
}

// handlePut checks a write and proposes it; the reply waits for commit.
func (n *Node) handlePut(m *nats.Msg) {
	var req bus.PutRequest
	if e := bus.Decode(m.Data, &req); e != nil {
		respondErr(m, e)
		return
	}
	puts := req.Values
	switch {
	case req.Path != "" && len(req.Values) > 0:
		respondErr(m, bus.Errorf(bus.CodeBadRequest, "give path and value, or values, not both"))
		return
	case req.Path != "" || req.Value != nil:
		puts = []bus.PathValue{{Path: req.Path, Value: req.Value}}
	case len(puts) == 0:
		respondErr(m, bus.Errorf(bus.CodeBadRequest, "nothing to put: give path and value, or values"))
		return
	case len(puts) > n.cfg.MaxBatch:
		respondErr(m, bus.Errorf(bus.CodeTooLarge, "%d values in one batch, at most %d", len(puts), n.cfg.MaxBatch))
		return
	}
	if (req.Source == "") != (req.SourceSeq == 0) {
		respondErr(m, bus.Errorf(bus.CodeBadRequest, "give source and source_seq (above 0) together"))
		return
	}
	c := command{TS: time.Now().UTC().Format(time.RFC3339Nano), User: m.Header.Get(bus.HeaderUser),
		Src: req.Source, SrcSeq: req.SourceSeq}
	if c.User == "" {
		c.User = "anonymous"
	}
	for _, p := range puts {
		if err := tree.ValidatePath(p.Path); err != nil {
			respondErr(m, bus.Errorf(bus.CodeBadPath, "%v", err))
			return
		}
		if len(p.Value) == 0 || !json.Valid(p.Value) {
			respondErr(m, bus.Errorf(bus.CodeBadRequest, "value of %s is missing or not JSON", p.Path))
			return
		}
		if len(p.Value) > n.cfg.MaxValueBytes {
			respondErr(m, bus.Errorf(bus.CodeTooLarge, "value of %s is %d bytes, at most %d", p.Path, len(p.Value), n.cfg.MaxValueBytes))
			return
		}
		c.Puts = append(c.Puts, p) // json.Marshal compacts the value onto one line
	}
	data, _ := json.Marshal(c)
	n.nextID++
	n.puts[n.nextID] = pendingPut{msg: m, ts: c.TS}
	n.pn.Propose(n.nextID, data)
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
		respond(p.msg, bus.PutReply{Result: bus.Result{OK: true}, Seq: orig.Seq, TS: orig.TS, Duplicate: true})
	case r.Err == nil:
		respond(p.msg, bus.PutReply{Result: bus.Result{OK: true}, Seq: r.Seq, TS: p.ts})
	case errors.Is(r.Err, protocol.ErrNotLeader):
		respondErr(p.msg, bus.Errorf(bus.CodeNotLeader, "node %d does not lead", n.cfg.ID))
	case errors.Is(r.Err, protocol.ErrNoQuorum):
		respondErr(p.msg, bus.Errorf(bus.CodeUnavailable, "the leader cannot reach a majority of the members; not written"))
	case errors.Is(r.Err, protocol.ErrDropped):
		respondErr(p.msg, bus.Errorf(bus.CodeUnavailable, "the leader changed before the write committed; it was not written"))
	default:
		respondErr(p.msg, bus.Errorf(bus.CodeTimeout, "the leader changed; the write may or may not have been committed"))
	}
}

// handleGet serves a get: linearizable through the read index, stale from
// the applied state, min_seq once applied up to it.
func (n *Node) handleGet(m *nats.Msg) {
	var req bus.GetRequest
	if e := bus.Decode(m.Data, &req); e != nil {
		respondErr(m, e)
		return
	}
	if err := tree.ValidatePath(req.Path); err != nil {
		respondErr(m, bus.Errorf(bus.CodeBadPath, "%v", err))
		return
	}
	switch {
	case req.Consistency != "" && req.Consistency != bus.Linearizable && req.Consistency != bus.Stale:
		respondErr(m, bus.Errorf(bus.CodeBadRequest, "consistency %q: linearizable or stale", req.Consistency))
	case req.MinSeq > 0:
		n.waits = append(n.waits, pendingRead{msg: m, req: req, deadline: time.Now().Add(4 * time.Second)})
	case req.Consistency == bus.Stale:
		n.serveGet(m, req)
	default:
		n.nextID++
		n.reads[n.nextID] = pendingRead{msg: m, req: req}
		n.pn.Read(n.nextID)
	}
}

func (n *Node) serveGet(m *nats.Msg, req bus.GetRequest) {
	v, err := n.tree.Get(req.Path)
	if err != nil {
		respondErr(m, treeError(err))
		return
	}
	respond(m, bus.GetReply{Result: bus.Result{OK: true}, Path: req.Path, Version: wireVersion(v),
		AppliedSeq: n.tree.AppliedPoint().Seq})
}

func (n *Node) answerRead(r protocol.ReadState) {
	p, ok := n.reads[r.ID]
	if !ok {
		return
	}
	delete(n.reads, r.ID)
	if r.Err != nil {
		respondErr(p.msg, bus.Errorf(bus.CodeNotLeader, "node %d does not lead", n.cfg.ID))
		return
	}
	n.serveGet(p.msg, p.req)
}

// serveWaits answers min_seq reads whose seq is applied.
func (n *Node) serveWaits() {
	applied := n.tree.AppliedPoint().Seq
	kept := n.waits[:0]
	for _, w := range n.waits {
		if applied >= w.req.MinSeq {
			n.serveGet(w.msg, w.req)
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
			respondErr(w.msg, bus.Errorf(bus.CodeTimeout, "node %d has not applied seq %d yet", n.cfg.ID, w.req.MinSeq))
			continue
		}
		kept = append(kept, w)
	}
	n.waits = kept
}

func (n *Node) handleHistory(m *nats.Msg) {
	var req bus.HistoryRequest
	if e := bus.Decode(m.Data, &req); e != nil {
		respondErr(m, e)
		return
	}
	q := tree.HistoryQuery{AfterSeq: req.AfterSeq, Limit: req.Limit}
	for _, tm := range []struct {
		s   string
		dst *time.Time
	}{{req.Since, &q.Since}, {req.Until, &q.Until}} {
		if tm.s == "" {
			continue
		}
		t, err := time.Parse(time.RFC3339Nano, tm.s)
		if err != nil {
			respondErr(m, bus.Errorf(bus.CodeBadRequest, "time %q is not RFC 3339", tm.s))
			return
		}
		*tm.dst = t
	}
	vs, more, err := n.tree.History(req.Path, q)
	if err != nil {
		respondErr(m, treeError(err))
		return
	}
	rep := bus.HistoryReply{Result: bus.Result{OK: true}, Values: make([]bus.Version, len(vs)), More: more}
	for i, v := range vs {
		rep.Values[i] = wireVersion(v)
	}
	respond(m, rep)
}
