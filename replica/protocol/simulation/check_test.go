package simulation

import (
	"errors"
	"fmt"
	"hash/fnv"
	"maps"
	"strings"

	"memstore/replica/protocol"
)

// checker holds what the whole cluster has done, to check the promises:
//   - at most one leader per epoch, so at most one leader commits in it;
//   - log matching: two logs holding (epoch, seq) are identical up to it
//     (every entry's hash chains its whole prefix);
//   - a committed entry is never lost or changed: every node applies the
//     same entry at each seq, and every new leader holds all of them;
//   - every acknowledged write is applied at its seq;
//   - a linearizable read reflects every write applied anywhere before it
//     was asked;
//   - a snapshot equals the state rebuilt from the committed entries.
type checker struct {
	s          *sim
	chain      map[protocol.Point]uint64 // entry → hash of the log up to it
	committed  map[uint64]protocol.Entry // seq → the entry applied there
	hashes     map[uint64]uint64         // seq → chain hash of the applied entry
	maxApplied uint64
	leaders    map[uint64]protocol.NodeID // epoch → leader
	views      map[uint64]protocol.View
}

func newChecker(s *sim) *checker {
	return &checker{s: s, chain: map[protocol.Point]uint64{}, committed: map[uint64]protocol.Entry{},
		hashes: map[uint64]uint64{}, leaders: map[uint64]protocol.NodeID{}, views: map[uint64]protocol.View{}}
}

// mirrorLog mirrors one node's in-memory log as chain hashes.
type mirrorLog struct {
	start  protocol.Point
	hashes []uint64 // hashes[i] is the chain hash at start.Seq+1+i
	epochs []uint64
}

func (m *mirrorLog) last() uint64 { return m.start.Seq + uint64(len(m.hashes)) }

func (m *mirrorLog) hashAt(seq uint64) (uint64, bool) {
	if seq <= m.start.Seq || seq > m.last() {
		return 0, false
	}
	return m.hashes[seq-m.start.Seq-1], true
}

func entryHash(prev uint64, e protocol.Entry) uint64 {
	h := fnv.New64a()
	fmt.Fprintf(h, "%d|%d|%d|%s", prev, e.Epoch, e.Seq, e.Data)
	return h.Sum64()
}

func (c *checker) mirrorFrom(id protocol.NodeID, start protocol.Point, log []protocol.Entry) mirrorLog {
	m := mirrorLog{start: start}
	c.extend(id, &m, log)
	return m
}

// extend appends entries to a mirror, checking log matching.
func (c *checker) extend(id protocol.NodeID, m *mirrorLog, es []protocol.Entry) {
	if len(es) == 0 {
		return
	}
	first := es[0].Seq
	if first <= m.start.Seq || first > m.last()+1 {
		c.s.fail("node %d writes entry %d outside its log (%v, %d]", id, first, m.start, m.last())
		return
	}
	k := first - m.start.Seq - 1
	m.hashes, m.epochs = m.hashes[:k], m.epochs[:k]
	prev := c.chain[m.start]
	if k > 0 {
		prev = m.hashes[k-1]
	}
	for _, e := range es {
		h := entryHash(prev, e)
		p := protocol.Point{Epoch: e.Epoch, Seq: e.Seq}
		if old, ok := c.chain[p]; ok && old != h {
			c.s.fail("log matching: node %d holds entry %v with a different history", id, p)
		}
		c.chain[p] = h
		m.hashes, m.epochs = append(m.hashes, h), append(m.epochs, e.Epoch)
		prev = h
	}
}

func (c *checker) write(sn *simNode, w protocol.Write) {
	if w.Reset != nil {
		if _, ok := c.chain[*w.Reset]; !ok && w.Reset.Seq > 0 {
			c.s.fail("node %d resets its log to unknown entry %v", sn.id, *w.Reset)
		}
		sn.mirror = mirrorLog{start: *w.Reset}
	}
	c.extend(sn.id, &sn.mirror, w.Entries)
}

func (c *checker) apply(sn *simNode, e protocol.Entry) {
	if e.Seq != sn.applied.Seq+1 {
		c.s.fail("node %d applies seq %d after %d", sn.id, e.Seq, sn.applied.Seq)
		return
	}
	h, ok := sn.mirror.hashAt(e.Seq)
	if !ok {
		c.s.fail("node %d applies seq %d it does not hold", sn.id, e.Seq)
		return
	}
	if old, ok := c.hashes[e.Seq]; ok && old != h {
		c.s.fail("committed entry changed: node %d applies %d/%d %q, others applied %d/%q",
			sn.id, e.Epoch, e.Seq, e.Data, c.committed[e.Seq].Epoch, c.committed[e.Seq].Data)
		return
	}
	c.hashes[e.Seq], c.committed[e.Seq] = h, e
	c.maxApplied = max(c.maxApplied, e.Seq)
	applyEntry(sn.kv, e)
	sn.applied = protocol.Point{Epoch: e.Epoch, Seq: e.Seq}
}

func applyEntry(kv map[string]string, e protocol.Entry) {
	if e.Data == nil {
		return
	}
	k, v, _ := strings.Cut(string(e.Data), "=")
	kv[k] = v
}

func (c *checker) reply(sn *simNode, r protocol.Reply) {
	o := c.s.ops[r.ID]
	if o == nil || o.done {
		c.s.fail("node %d replies to unknown or finished op %d", sn.id, r.ID)
		return
	}
	o.done, o.seq, o.err = true, r.Seq, r.Err
	if r.Err != nil {
		return
	}
	e, ok := c.committed[r.Seq]
	if !ok || string(e.Data) != o.data {
		c.s.fail("write %q acknowledged at seq %d, which holds %q", o.data, r.Seq, e.Data)
	}
}

func (c *checker) read(sn *simNode, r protocol.ReadState) {
	o := c.s.ops[r.ID]
	if o == nil || o.done || o.write {
		c.s.fail("node %d answers unknown read %d", sn.id, r.ID)
		return
	}
	o.done, o.seq, o.err = true, r.Seq, r.Err
	if r.Err != nil {
		return
	}
	if sn.applied.Seq < r.Seq {
		c.s.fail("node %d serves read %d at applied %d below its read index %d", sn.id, r.ID, sn.applied.Seq, r.Seq)
	}
	if sn.applied.Seq < o.issueMax {
		c.s.fail("stale linearizable read %d at node %d: served at seq %d, but seq %d was applied before it was asked",
			r.ID, sn.id, sn.applied.Seq, o.issueMax)
	}
}

// status checks leadership after each driver pass.
func (c *checker) status(sn *simNode) {
	st := sn.n.Status()
	if st.Leading && !sn.leading {
		if l, ok := c.leaders[st.Epoch]; ok && l != sn.id {
			c.s.fail("two leaders in epoch %d: %d and %d", st.Epoch, l, sn.id)
		}
		c.leaders[st.Epoch] = sn.id
		// Leader completeness: the new leader holds every committed entry.
		for seq := sn.mirror.start.Seq + 1; seq <= c.maxApplied; seq++ {
			h, ok := sn.mirror.hashAt(seq)
			if want, applied := c.hashes[seq]; applied && (!ok || h != want) {
				c.s.fail("new leader %d of epoch %d lacks committed entry %d", sn.id, st.Epoch, seq)
				break
			}
		}
	}
	sn.leading = st.Leading
}

func (c *checker) view(v protocol.View) {
	if old, ok := c.views[v.Epoch]; ok {
		c.s.fail("two views written for epoch %d: %+v and %+v", v.Epoch, old, v)
	}
	c.views[v.Epoch] = v
}

// snapshot checks a snapshot against the state rebuilt from the committed
// entries.
func (c *checker) snapshot(sn *simNode, p protocol.Point, kv map[string]string) {
	want := map[string]string{}
	for seq := uint64(1); seq <= p.Seq; seq++ {
		e, ok := c.committed[seq]
		if !ok {
			c.s.fail("snapshot at %v includes seq %d that no node applied", p, seq)
			return
		}
		applyEntry(want, e)
	}
	if !maps.Equal(want, kv) {
		c.s.fail("snapshot for node %d at %v is %v, committed entries give %v", sn.id, p, kv, want)
	}
}

// final checks the outcome of every client operation once the cluster has
// converged: acknowledged writes applied at their seq, refused ones nowhere.
func (c *checker) final() {
	written := map[string]uint64{}
	for seq, e := range c.committed {
		if e.Data != nil {
			if _, dup := written[string(e.Data)]; dup {
				c.s.fail("write %q committed twice", e.Data)
			}
			written[string(e.Data)] = seq
		}
	}
	for _, o := range c.s.ops {
		if !o.write || !o.done {
			continue
		}
		seq, ok := written[o.data]
		switch {
		case o.err == nil && (!ok || seq != o.seq):
			c.s.fail("acknowledged write %q at seq %d lost (found at %d)", o.data, o.seq, seq)
		case errors.Is(o.err, protocol.ErrNotLeader) || errors.Is(o.err, protocol.ErrDropped) || errors.Is(o.err, protocol.ErrNoQuorum):
			if ok {
				c.s.fail("write %q refused with %v but committed at seq %d", o.data, o.err, seq)
			}
		}
	}
}
