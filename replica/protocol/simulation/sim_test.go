// Package simulation tests the protocol core (replica/protocol and
// groupsvc/election) together, deterministically: a seeded in-memory network
// and disks for 3- and 5-node clusters with one or two coordinators, that
// drops, delays, duplicates and reorders messages, partitions nodes, crashes
// nodes (losing every write not yet fsynced) and coordinators, and restarts
// them, while clients write and read. The checker (check_test.go) runs after
// every step.
package simulation

import (
	"fmt"
	"maps"
	"math/rand"
	"slices"
	"strings"

	"memstore/groupsvc/election"
	"memstore/replica/protocol"
)

// coordBase is the first coordinator address; nodes are 1..N.
const coordBase = 1000

// routerAddr is the router's address: it multicasts read checks.
const routerAddr = coordBase

type simConfig struct {
	nodes, coords int
	node          protocol.TestingKnobs
	coord         election.TestingKnobs
	chaosSteps    int // steps with faults
	healSteps     int // most steps allowed to converge after healing
	maxBatch      int // entries per append; 0 picks at random
}

type envelope struct {
	to  protocol.NodeID
	msg protocol.Message
	// a store update for a coordinator instead of a message
	stored *storedView
}

type storedView struct {
	view protocol.View
	rev  uint64
}

// disk is what a node keeps across a crash.
type disk struct {
	hs      protocol.HardState
	start   protocol.Point
	log     []protocol.Entry
	tree    protocol.Point    // the state machine's durable checkpoint
	treeKV  map[string]string // its contents
	pending []protocol.Write  // issued, not yet durable
}

type simNode struct {
	id   protocol.NodeID
	up   bool
	n    *protocol.Node
	disk disk
	// volatile state, rebuilt at restart
	kv      map[string]string
	applied protocol.Point
	mirror  mirrorLog
	fetch   *protocol.SnapshotRequest
	leading bool
	// maxBytes is the node's MaxBytes: no append it sends carries more
	// entry data, unless it carries a single entry.
	maxBytes int
	crashes  int // times it crashed: a read it took before is lost
}

type simCoord struct {
	id protocol.NodeID
	up bool
	c  *election.Coordinator
}

type op struct {
	id       uint64
	write    bool
	data     string
	at       protocol.NodeID
	issueMax uint64 // reads: highest applied seq anywhere at issue
	// reads: the node took it, after it had crashed this many times
	registered bool
	crashes    int
	done       bool
	seq        uint64
	err        error
}

// lateRead is a linearizable read on its way to its node, whose read
// check was multicast when it was asked.
type lateRead struct {
	o     *op
	check uint64
}

type sim struct {
	cfg       simConfig
	seed      int64
	rng       *rand.Rand
	step      int
	nodes     []*simNode
	coord     []*simCoord
	kv        storedView // the view store (JetStream KV in production)
	net       []envelope
	side      map[protocol.NodeID]int // partition side; nodes on different sides cannot talk
	ops       map[uint64]*op
	opID      uint64
	chk       *checker
	drop      func(envelope) bool // scenario filter: messages it matches are lost
	late      []lateRead          // checked reads whose check left before they reach their node
	snapshots int                 // snapshots installed
	trace     []string
	err       error
}

func newSim(seed int64, cfg simConfig) *sim {
	s := &sim{cfg: cfg, seed: seed, rng: rand.New(rand.NewSource(seed)), ops: map[uint64]*op{},
		side: map[protocol.NodeID]int{}}
	s.chk = newChecker(s)
	for i := 1; i <= cfg.nodes; i++ {
		sn := &simNode{id: protocol.NodeID(i), disk: disk{treeKV: map[string]string{}}}
		s.nodes = append(s.nodes, sn)
		s.startNode(sn)
	}
	for i := 1; i <= cfg.coords; i++ {
		sc := &simCoord{id: protocol.NodeID(coordBase + i)}
		s.coord = append(s.coord, sc)
		s.startCoord(sc)
	}
	return s
}

func (s *sim) logf(format string, args ...any) {
	line := fmt.Sprintf("%6d ", s.step) + fmt.Sprintf(format, args...)
	s.trace = append(s.trace, line)
	if len(s.trace) > 400 {
		s.trace = s.trace[len(s.trace)-300:]
	}
}

func (s *sim) fail(format string, args ...any) {
	if s.err == nil {
		s.err = fmt.Errorf("step %d: %s", s.step, fmt.Sprintf(format, args...))
		s.logf("FAIL %v", s.err)
	}
}

func (s *sim) node(id protocol.NodeID) *simNode {
	if id >= 1 && int(id) <= len(s.nodes) {
		return s.nodes[id-1]
	}
	return nil
}

func (s *sim) startNode(sn *simNode) {
	d := &sn.disk
	r := protocol.Restart{State: d.hs, Start: d.start, Entries: slices.Clone(d.log), Applied: d.tree.Seq}
	last := d.start
	if len(d.log) > 0 {
		last = protocol.Point{Epoch: d.log[len(d.log)-1].Epoch, Seq: d.log[len(d.log)-1].Seq}
	}
	if !hasPoint(d.start, d.log, d.tree) && d.tree.Seq > 0 {
		// Crashed between installing a snapshot and resetting the log: the
		// log restarts at the snapshot.
		r.Start, r.Entries = d.tree, nil
		d.start, d.log = d.tree, nil
	} else if d.tree.Seq > last.Seq {
		panic("simulation: tree ahead of log")
	}
	cfg := protocol.DefaultConfig(sn.id)
	cfg.MaxBatch = 4 + s.rng.Intn(8)
	if s.cfg.maxBatch > 0 {
		cfg.MaxBatch = s.cfg.maxBatch
	}
	cfg.MaxInflight = 1 + s.rng.Intn(4)
	cfg.MaxBytes = 8 + s.rng.Intn(64) // a few writes: the byte bound cuts batches and catch-up chunks
	sn.maxBytes = cfg.MaxBytes
	cfg.TestingKnobs = s.cfg.node
	n, err := protocol.NewNode(cfg, r)
	if err != nil {
		panic(err)
	}
	sn.n, sn.up = n, true
	sn.kv = maps.Clone(d.treeKV)
	sn.applied = d.tree
	sn.fetch, sn.leading = nil, false
	sn.mirror = s.chk.mirrorFrom(sn.id, d.start, d.log)
	s.logf("node %d start: hs=%d start=%v entries=%d applied=%v", sn.id, d.hs.Epoch, d.start, len(d.log), d.tree)
}

func hasPoint(start protocol.Point, log []protocol.Entry, p protocol.Point) bool {
	if p == start {
		return true
	}
	if p.Seq <= start.Seq || p.Seq > start.Seq+uint64(len(log)) {
		return false
	}
	return log[p.Seq-start.Seq-1].Epoch == p.Epoch
}

func (s *sim) startCoord(sc *simCoord) {
	cfg := election.DefaultConfig(sc.id)
	cfg.Bootstrap = s.cfg.nodes
	cfg.Seed = s.rng.Int63()
	cfg.TestingKnobs = s.cfg.coord
	c, err := election.New(cfg, s.kv.view, s.kv.rev)
	if err != nil {
		panic(err)
	}
	sc.c, sc.up = c, true
}

// crashNode loses the node's volatile state and every write not fsynced;
// a prefix of the unsynced writes may have reached the disk anyway, the last
// one torn at an entry boundary.
func (s *sim) crashNode(sn *simNode) {
	d := &sn.disk
	k := s.rng.Intn(len(d.pending) + 1)
	for _, w := range d.pending[:k] {
		applyWrite(d, w)
	}
	if k < len(d.pending) && s.rng.Intn(2) == 0 {
		w := d.pending[k]
		torn := protocol.Write{Reset: w.Reset}
		if s.rng.Intn(2) == 0 {
			torn.State = w.State
		}
		if len(w.Entries) > 0 {
			torn.Entries = w.Entries[:s.rng.Intn(len(w.Entries))]
		}
		if torn.Reset == nil {
			applyWrite(d, torn)
		}
	}
	d.pending = nil
	sn.up, sn.n = false, nil
	sn.crashes++
	s.logf("node %d crash (kept %d unsynced writes)", sn.id, k)
}

// applyWrite makes a write durable on the simulated disk.
func applyWrite(d *disk, w protocol.Write) {
	if w.State != nil {
		d.hs = *w.State
	}
	if w.Reset != nil {
		d.start, d.log = *w.Reset, nil
	}
	if len(w.Entries) > 0 {
		first := w.Entries[0].Seq
		if first <= d.start.Seq {
			panic(fmt.Sprintf("simulation: write at %d below log start %d", first, d.start.Seq))
		}
		keep := min(uint64(len(d.log)), first-d.start.Seq-1)
		d.log = append(d.log[:keep:keep], w.Entries...)
	}
}

func (s *sim) crashCoord(sc *simCoord) {
	sc.up, sc.c = false, nil
	s.logf("coordinator %d crash", sc.id)
}

// deliver hands one envelope to its receiver, unless it is down or cut off.
func (s *sim) deliver(e envelope) {
	if e.stored != nil {
		if sc := s.coordByID(e.to); sc != nil && sc.up {
			sc.c.Stored(e.stored.view, e.stored.rev)
			s.flushCoord(sc)
		}
		return
	}
	if s.side[e.msg.From] != s.side[e.to] || (s.drop != nil && s.drop(e)) {
		return
	}
	if sn := s.node(e.to); sn != nil {
		if sn.up {
			sn.n.Step(e.msg)
			s.flushNode(sn)
		}
		return
	}
	if sc := s.coordByID(e.to); sc != nil && sc.up {
		sc.c.Step(e.msg)
		s.flushCoord(sc)
	}
}

func (s *sim) coordByID(id protocol.NodeID) *simCoord {
	for _, sc := range s.coord {
		if sc.id == id {
			return sc
		}
	}
	return nil
}

// send expands a message's address into envelopes.
func (s *sim) send(m protocol.Message) {
	if m.Type == protocol.MsgAppend && len(m.Entries) > 1 {
		size := 0
		for _, e := range m.Entries {
			size += len(e.Data)
		}
		if sn := s.node(m.From); size > sn.maxBytes {
			s.fail("node %d sent an append of %d entries holding %d bytes, over its MaxBytes %d", m.From, len(m.Entries), size, sn.maxBytes)
		}
	}
	switch m.To {
	case protocol.Multicast:
		for _, sn := range s.nodes {
			if sn.id != m.From {
				s.net = append(s.net, envelope{to: sn.id, msg: m})
			}
		}
	case protocol.Group:
		for _, sc := range s.coord {
			s.net = append(s.net, envelope{to: sc.id, msg: m})
		}
	default:
		s.net = append(s.net, envelope{to: m.To, msg: m})
	}
}

// flushNode runs the node's driver loop once: persist, send, apply, reply.
func (s *sim) flushNode(sn *simNode) {
	for sn.up {
		rd := sn.n.Ready()
		if rd.Empty() {
			break
		}
		if rd.Write != nil {
			sn.disk.pending = append(sn.disk.pending, *rd.Write)
			s.chk.write(sn, *rd.Write)
		}
		for _, m := range rd.Messages {
			s.send(m)
		}
		for _, e := range rd.Apply {
			s.chk.apply(sn, e)
		}
		for _, r := range rd.Replies {
			s.chk.reply(sn, r)
		}
		for _, r := range rd.Reads {
			s.chk.read(sn, r)
		}
		if rd.Snapshot != nil && sn.fetch == nil {
			sn.fetch = rd.Snapshot
		}
	}
	if sn.up {
		s.chk.status(sn)
	}
}

func (s *sim) flushCoord(sc *simCoord) {
	rd := sc.c.Ready()
	for _, m := range rd.Messages {
		s.send(m)
	}
	if rd.CAS != nil {
		if s.kv.rev == rd.CAS.Rev {
			s.kv = storedView{view: rd.CAS.View, rev: s.kv.rev + 1}
			s.logf("coordinator %d CAS won: %+v rev %d", sc.id, rd.CAS.View, s.kv.rev)
			s.chk.view(rd.CAS.View)
			for _, o := range s.coord { // watch updates
				if o != sc {
					s.net = append(s.net, envelope{to: o.id, stored: &storedView{s.kv.view, s.kv.rev}})
				}
			}
		}
		s.net = append(s.net, envelope{to: sc.id, stored: &storedView{s.kv.view, s.kv.rev}})
	}
}

// diskDone makes the oldest pending writes of a node durable.
func (s *sim) diskDone(sn *simNode, k int) {
	d := &sn.disk
	k = min(k, len(d.pending))
	if k == 0 {
		return
	}
	for _, w := range d.pending[:k] {
		applyWrite(d, w)
	}
	id := d.pending[k-1].ID
	d.pending = d.pending[k:]
	sn.n.DiskDone(id)
	s.flushNode(sn)
}

// checkpoint makes the node's applied state durable (the tree) and compacts
// the log behind it, keeping a few entries' worth of bytes.
func (s *sim) checkpoint(sn *simNode) {
	d := &sn.disk
	if !sn.up || sn.applied.Seq <= d.tree.Seq {
		return
	}
	d.tree, d.treeKV = sn.applied, maps.Clone(sn.kv)
	c := sn.n.Compact(sn.applied.Seq, s.rng.Intn(48)) // a write is about 8 bytes: keep up to ~6
	if c <= d.start.Seq {
		return
	}
	i := c - d.start.Seq
	d.start = protocol.Point{Epoch: d.log[i-1].Epoch, Seq: c}
	d.log = slices.Clone(d.log[i:])
}

// fetchSnapshot serves a node's snapshot request from the leader it names.
func (s *sim) fetchSnapshot(sn *simNode) {
	req := sn.fetch
	sn.fetch = nil
	src := s.node(req.Leader)
	if src == nil || !src.up || s.side[src.id] != s.side[sn.id] || src.applied.Seq < req.Seq {
		sn.n.SnapshotDone(protocol.Point{}, fmt.Errorf("leader %d unavailable", req.Leader))
		s.flushNode(sn)
		return
	}
	p, kv := src.applied, maps.Clone(src.kv)
	s.chk.snapshot(sn, p, kv)
	if p.Seq > sn.applied.Seq {
		sn.kv, sn.applied = kv, p
		sn.disk.tree, sn.disk.treeKV = p, maps.Clone(kv)
	}
	s.logf("node %d installs snapshot %v from %d", sn.id, p, src.id)
	s.snapshots++
	sn.n.SnapshotDone(p, nil)
	s.flushNode(sn)
}

// propose sends a client write to the node the store names as leader (or,
// sometimes, to any node).
func (s *sim) propose() {
	s.opID++
	o := &op{id: s.opID, write: true, data: fmt.Sprintf("k%d=w%d", s.rng.Intn(3), s.opID), at: s.target()}
	s.ops[o.id] = o
	if sn := s.node(o.at); sn.up {
		sn.n.Propose(o.id, []byte(o.data))
		s.flushNode(sn)
	}
}

// read asks for a linearizable read. Half of them carry a read check, as
// the router sends them: multicast in the epoch of the stored view when the
// read leaves, and a third of those reach their node only later, after
// the check and maybe its acks. Sometimes a late read arrives instead.
func (s *sim) read() {
	if len(s.late) > 0 && s.rng.Intn(3) == 0 {
		r := s.late[0]
		s.late = s.late[1:]
		s.take(r.o, r.check)
		s.flushNode(s.node(r.o.at))
		return
	}
	at := s.target()
	if s.rng.Intn(2) == 0 { // a read may reach any node: only the leader may answer it
		at = protocol.NodeID(1 + s.rng.Intn(len(s.nodes)))
	}
	o := s.newRead(at)
	var check uint64
	if s.rng.Intn(2) == 0 {
		check = s.sendCheck()
		if s.rng.Intn(3) == 0 {
			s.late = append(s.late, lateRead{o: o, check: check})
			return
		}
	}
	s.take(o, check)
	s.flushNode(s.node(at))
}

// newRead records a linearizable read asked now, for node at.
func (s *sim) newRead(at protocol.NodeID) *op {
	s.opID++
	o := &op{id: s.opID, at: at, issueMax: s.chk.maxApplied}
	s.ops[o.id] = o
	return o
}

// take hands read o, with read check chk (0: none), to its node if it is
// up; the caller flushes the node (flushNode does nothing to a node down).
func (s *sim) take(o *op, chk uint64) {
	if sn := s.node(o.at); sn.up {
		o.registered, o.crashes = true, sn.crashes
		sn.n.Read(o.id, chk)
	}
}

// sendCheck multicasts a new read check in the stored view's epoch.
func (s *sim) sendCheck() uint64 {
	token := s.rng.Uint64() | 1
	s.send(protocol.Message{Type: protocol.MsgReadCheck, From: routerAddr, To: protocol.Multicast, Epoch: s.kv.view.Epoch, Seq: token})
	return token
}

func (s *sim) target() protocol.NodeID {
	if l := s.kv.view.Leader; l != 0 && s.rng.Intn(5) > 0 {
		return l
	}
	return protocol.NodeID(1 + s.rng.Intn(len(s.nodes)))
}

func (s *sim) tickAll() {
	for _, sn := range s.nodes {
		if sn.up {
			sn.n.Tick()
			s.flushNode(sn)
		}
	}
	for _, sc := range s.coord {
		if sc.up {
			sc.c.Tick()
			s.flushCoord(sc)
		}
	}
}

func (s *sim) String() string {
	var b strings.Builder
	for _, sn := range s.nodes {
		if !sn.up {
			fmt.Fprintf(&b, "node %d down\n", sn.id)
			continue
		}
		fmt.Fprintf(&b, "node %d %+v pending=%d\n", sn.id, sn.n.Status(), len(sn.disk.pending))
	}
	fmt.Fprintf(&b, "view %+v rev %d, %d messages in flight\n", s.kv.view, s.kv.rev, len(s.net))
	return b.String()
}
