package simulation

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"memstore/replica/protocol"
)

// Named scenarios: each drives the simulated cluster by hand through one
// known hard case, with every check of the random schedules on.

func newScenario(t *testing.T, nodes, coords int) *sim {
	t.Helper()
	s := newSim(1, simConfig{nodes: nodes, coords: coords})
	s.waitLeader(t)
	return s
}

// round delivers every message in flight, makes every pending write durable,
// serves snapshot fetches, and ticks once.
func (s *sim) round() {
	for i := 0; len(s.net) > 0; i++ {
		e := s.net[0]
		s.net = s.net[1:]
		if i > 100000 {
			panic(fmt.Sprintf("message storm: %v", e.msg))
		}
		s.deliver(e)
	}
	for _, sn := range s.nodes {
		if sn.up {
			s.diskDone(sn, len(sn.disk.pending))
			if sn.fetch != nil {
				s.fetchSnapshot(sn)
			}
		}
	}
	s.tickAll()
	s.step++
}

// until runs rounds until cond holds; false after limit rounds.
func (s *sim) until(limit int, cond func() bool) bool {
	for i := 0; i < limit && s.err == nil; i++ {
		if cond() {
			return true
		}
		s.round()
	}
	return cond()
}

func (s *sim) leader() *simNode {
	for _, sn := range s.nodes {
		if sn.up && sn.n.Status().Leading && sn.n.Status().Epoch == s.kv.view.Epoch {
			return sn
		}
	}
	return nil
}

func (s *sim) waitLeader(t *testing.T) *simNode {
	t.Helper()
	if !s.until(300, func() bool { return s.leader() != nil }) {
		t.Fatalf("no leader: %v\n%s", s.err, s)
	}
	return s.leader()
}

// commit writes data at node at and runs until it is acknowledged.
func (s *sim) commit(t *testing.T, at protocol.NodeID, data string) {
	t.Helper()
	if w := s.write(at, data); !s.until(100, func() bool { return w.done }) || w.err != nil {
		t.Fatalf("write %s at node %d: %+v", data, at, w)
	}
}

// depose commits k2=old at the leader (its epoch's no-op commits: it can
// serve reads), cuts it off with the nodes in cut, runs until the others
// elect a leader that commits k2=new, and returns the old leader, which
// still believes it leads.
func (s *sim) depose(t *testing.T, cut ...protocol.NodeID) *simNode {
	t.Helper()
	old := s.leader()
	s.commit(t, old.id, "k2=old")
	s.isolate(append(cut, old.id)...)
	s.commit(t, s.waitLeaderOtherThan(t, old.id).id, "k2=new")
	return old
}

// servedStale fails the test if read r was served at old with the value
// k2 had before old was deposed.
func servedStale(t *testing.T, r *op, old *simNode) {
	t.Helper()
	if r.done && r.err == nil && old.kv["k2"] != "new" {
		t.Fatalf("stale leader %d served an old read: %+v", old.id, r)
	}
}

func (s *sim) write(at protocol.NodeID, data string) *op {
	s.opID++
	o := &op{id: s.opID, write: true, data: data, at: at}
	s.ops[o.id] = o
	sn := s.node(at)
	sn.n.Propose(o.id, []byte(data))
	s.flushNode(sn)
	return o
}

func (s *sim) isolate(ids ...protocol.NodeID) {
	s.side = map[protocol.NodeID]int{}
	for _, id := range ids {
		s.side[id] = 1
	}
}

// settle heals everything and runs until the cluster converges, then checks
// the outcome of every operation.
func (s *sim) settle(t *testing.T) {
	t.Helper()
	s.drop = nil
	s.heal()
	ok := s.until(2000, func() bool {
		return s.converged()
	})
	if s.err == nil && !ok {
		t.Fatalf("no convergence:\n%s", s)
	}
	s.chk.final()
	if s.err != nil {
		t.Fatalf("%v\n%s", s.err, strings.Join(s.trace[max(0, len(s.trace)-30):], "\n"))
	}
}

func appendsFrom(id protocol.NodeID, withEntries bool) func(envelope) bool {
	return func(e envelope) bool {
		return e.msg.From == id && e.msg.Type == protocol.MsgAppend && (!withEntries || len(e.msg.Entries) > 0)
	}
}

func TestLeaderCrashBeforeCommit(t *testing.T) {
	s := newScenario(t, 5, 1)
	l := s.leader()
	// The batch reaches the followers but none of them can fsync it before
	// the leader dies: it was never committed, the client never heard.
	s.drop = func(e envelope) bool { return e.msg.Type == protocol.MsgAck }
	o := s.write(l.id, "k0=lost?")
	s.round()
	s.crashNode(l)
	s.settle(t)
	if o.done {
		t.Fatalf("client got an answer from a crashed leader: %+v", o)
	}
	if s.kv.view.Epoch < 2 {
		t.Fatalf("no new epoch after the leader crashed: %+v", s.kv.view)
	}
}

func TestLeaderCrashAfterCommit(t *testing.T) {
	s := newScenario(t, 5, 1)
	l := s.leader()
	o := s.write(l.id, "k0=kept")
	if !s.until(50, func() bool { return o.done }) || o.err != nil {
		t.Fatalf("write not acknowledged: %+v", o)
	}
	// Acknowledged, but the followers have not learned the commit yet: the
	// leader dies now. The entry must survive in the next leader.
	s.crashNode(l)
	s.settle(t)
	for _, sn := range s.nodes {
		if sn.kv["k0"] != "kept" {
			t.Fatalf("node %d lost the acknowledged write: %v", sn.id, sn.kv)
		}
	}
}

func TestLeaderPartitionedWithMinority(t *testing.T) {
	s := newScenario(t, 5, 1)
	old := s.leader()
	other := protocol.NodeID(1 + old.id%5)
	s.isolate(old.id, other)
	stale := s.write(old.id, "k1=minority")
	nl := s.waitLeaderOtherThan(t, old.id)
	fresh := s.write(nl.id, "k1=majority")
	if !s.until(100, func() bool { return fresh.done }) || fresh.err != nil {
		t.Fatalf("majority side cannot write: %+v", fresh)
	}
	if stale.done && stale.err == nil {
		t.Fatalf("minority leader acknowledged a write: %+v", stale)
	}
	s.settle(t)
	if !errors.Is(stale.err, protocol.ErrDropped) {
		t.Fatalf("minority write answered %v, want ErrDropped", stale.err)
	}
	for _, sn := range s.nodes {
		if sn.kv["k1"] != "majority" {
			t.Fatalf("node %d has %v", sn.id, sn.kv)
		}
	}
}

func (s *sim) waitLeaderOtherThan(t *testing.T, old protocol.NodeID) *simNode {
	t.Helper()
	if !s.until(300, func() bool { l := s.leader(); return l != nil && l.id != old }) {
		t.Fatalf("no new leader: %v\n%s", s.err, s)
	}
	return s.leader()
}

func TestStaleLeaderAfterViewChange(t *testing.T) {
	s := newScenario(t, 3, 1)
	old := s.depose(t) // paused, as far as everyone else can tell
	// The old leader wakes up still believing it leads: a linearizable read
	// there must not return the old value.
	r := s.newRead(old.id)
	s.side = map[protocol.NodeID]int{}
	s.take(r, 0)
	s.flushNode(old)
	s.settle(t)
	servedStale(t, r, old)
}

func TestCoordinatorRestartMidElection(t *testing.T) {
	s := newScenario(t, 5, 1)
	old := s.leader()
	epoch := s.kv.view.Epoch
	s.crashNode(old)
	// Run until prepares are out, then restart the coordinator.
	if !s.until(100, func() bool { return old.n == nil && s.anyPromised(epoch+1) }) {
		t.Fatal("no election started")
	}
	s.crashCoord(s.coord[0])
	s.round()
	s.startCoord(s.coord[0])
	nl := s.waitLeaderOtherThan(t, old.id)
	if s.kv.view.Epoch <= epoch {
		t.Fatalf("epoch went from %d to %d", epoch, s.kv.view.Epoch)
	}
	_ = nl
	s.settle(t)
}

func (s *sim) anyPromised(epoch uint64) bool {
	for _, sn := range s.nodes {
		if sn.up && sn.n.Status().Promised >= epoch {
			return true
		}
	}
	return false
}

func TestTwoCoordinatorsRacing(t *testing.T) {
	for seed := int64(1); seed <= 50; seed++ {
		s := newSim(seed, simConfig{nodes: 5, coords: 2})
		s.waitLeader(t)
		l := s.leader()
		s.crashNode(l)
		s.waitLeaderOtherThan(t, l.id)
		s.settle(t)
		if got := len(s.chk.views); got < 2 {
			t.Fatalf("seed %d: %d views written", seed, got)
		}
	}
}

func TestFollowerMissedManyBatches(t *testing.T) {
	s := newScenario(t, 3, 1)
	l := s.leader()
	lag := s.node(protocol.NodeID(1 + l.id%3))
	s.isolate(lag.id)
	for i := 0; i < 200; i++ {
		s.write(l.id, fmt.Sprintf("k0=v%d", i))
		s.round()
	}
	// Compact the leader so part of what the follower misses is only in a
	// snapshot.
	s.checkpoint(l)
	s.settle(t)
	if s.snapshots == 0 {
		t.Fatal("the follower caught up without a snapshot, though the leader compacted its log")
	}
	if lag.applied != l.applied {
		t.Fatalf("lagging follower at %v, leader at %v", lag.applied, l.applied)
	}
}

// TestFigure8 plays the Raft paper's figure 8: an entry of an old epoch,
// replicated to a majority by a later leader, must not count as committed
// until an entry of that leader's own epoch is. With the rule broken the
// checker must see a committed entry lost.
func TestFigure8(t *testing.T) {
	for _, broken := range []bool{false, true} {
		s := newSim(1, simConfig{nodes: 5, coords: 1, maxBatch: 1,
			node: protocol.TestingKnobs{CountOldEpochAcks: broken}})
		s.waitLeader(t)
		n1, n2 := s.node(1), s.node(2)
		if s.leader() != n1 {
			t.Fatalf("leader %d, want 1", s.leader().id)
		}
		base := s.write(1, "k0=base")
		s.until(50, func() bool { return base.done })
		// (a) Leader 1 appends X, alone, then crashes.
		s.isolate(1)
		s.write(1, "k0=X")
		s.round()
		s.crashNode(n1)
		s.side = map[protocol.NodeID]int{}
		// (b) Node 2 is elected and appends its no-op Y at X's seq, alone.
		s.drop = appendsFrom(2, true)
		s.until(300, func() bool { return s.leader() == n2 })
		s.round()
		s.crashNode(n2)
		// (c) Node 1 is back and elected; it gets X to a majority, never its
		// own no-op.
		s.startNode(n1)
		s.drop = func(e envelope) bool {
			if e.msg.From != 1 || e.msg.Type != protocol.MsgAppend {
				return false
			}
			for _, en := range e.msg.Entries {
				if en.Epoch == n1.n.Status().Epoch {
					return true
				}
			}
			return false
		}
		s.until(300, func() bool { return s.leader() == n1 })
		for i := 0; i < 20; i++ {
			s.round()
		}
		for _, id := range []protocol.NodeID{3, 4, 5} {
			if m := s.node(id).mirror; m.last() < 3 || m.epochs[2] != 1 {
				t.Fatalf("node %d does not hold X (epoch 1, seq 3): %+v", id, m)
			}
		}
		// (d) Node 1 dies, node 2 is back with its later-epoch Y.
		s.crashNode(n1)
		s.startNode(n2)
		s.drop = nil
		s.until(300, func() bool { return s.leader() != nil })
		if broken {
			s.heal()
			s.until(300, func() bool { return s.err != nil })
			if s.err == nil {
				t.Fatal("counting acks for old-epoch entries went unnoticed")
			}
			t.Logf("rule break caught: %v", s.err)
			continue
		}
		s.settle(t)
		for _, sn := range s.nodes {
			if sn.kv["k0"] != "base" {
				t.Fatalf("node %d: X survived its overwrite or base was lost: %v", sn.id, sn.kv)
			}
		}
	}
}

// TestNodeJoinsAndLeaves adds a fresh node to a running 3-node cluster: it
// gets the master copy from the leader (a snapshot, then the tail) and
// becomes a voting member through a view change; then a member leaves
// gracefully through another view change.
func TestNodeJoinsAndLeaves(t *testing.T) {
	s := newScenario(t, 3, 1)
	l := s.leader()
	for i := 0; i < 100; i++ {
		s.write(l.id, fmt.Sprintf("k%d=v%d", i%3, i))
		s.round()
	}
	s.checkpoint(l)
	sn := &simNode{id: 4, disk: disk{treeKV: map[string]string{}}}
	s.nodes = append(s.nodes, sn)
	s.startNode(sn)
	if member, _ := sn.n.Membership(); member {
		t.Fatal("node 4 says it is a member before any view names it")
	}
	if !s.until(300, func() bool { member, _ := sn.n.Membership(); return member && s.leader() != nil }) {
		t.Fatalf("node 4 never became a member: %+v\n%s", s.kv.view, s)
	}
	if sn.applied.Seq < 100 {
		t.Fatalf("node 4 joined at applied %v, before catching up", sn.applied)
	}
	s.settle(t)
	if s.snapshots == 0 {
		t.Fatal("node 4 caught up without the snapshot the compacted leader must send")
	}
	leaving := s.node(protocol.NodeID(1 + s.leader().id%4))
	leaving.n.Leave()
	if !s.until(300, func() bool { return !s.kv.view.IsMember(leaving.id) && s.leader() != nil }) {
		t.Fatalf("node %d never left: %+v", leaving.id, s.kv.view)
	}
	if len(s.kv.view.Members) != 3 {
		t.Fatalf("members after leave: %v", s.kv.view.Members)
	}
	if !s.until(100, func() bool { return leaving.n.Left() }) {
		t.Fatalf("node %d never saw itself out: %+v", leaving.id, leaving.n.Status())
	}
	if member, known := leaving.n.Membership(); member || !known {
		t.Fatalf("node %d out of the view: member %v, known %v", leaving.id, member, known)
	}
	w := s.write(s.leader().id, "k0=after-leave")
	if !s.until(100, func() bool { return w.done }) || w.err != nil {
		t.Fatalf("write after leave: %+v", w)
	}
}

// TestReadsShareOneRound: 100 linearizable reads registered at the leader
// at once are confirmed by one read-index round (one read_ping), not one
// each: leadership costs a round per batch of reads (issue 7's W2).
func TestReadsShareOneRound(t *testing.T) {
	s := newScenario(t, 3, 1)
	l := s.leader()
	s.commit(t, l.id, "k=v") // the epoch's no-op commits with it: reads get their index at once
	rounds := map[uint64]bool{}
	s.drop = func(e envelope) bool {
		if e.msg.Type == protocol.MsgReadPing && e.msg.From == l.id {
			rounds[e.msg.Seq] = true
		}
		return false
	}
	var reads []*op
	for range 100 {
		r := s.newRead(l.id)
		s.take(r, 0)
		reads = append(reads, r)
	}
	s.flushNode(l)
	done := func() bool {
		for _, r := range reads {
			if !r.done {
				return false
			}
		}
		return true
	}
	if !s.until(100, done) {
		t.Fatal("the reads were not answered")
	}
	for _, r := range reads {
		if r.err != nil {
			t.Fatalf("read %d: %v", r.id, r.err)
		}
	}
	if len(rounds) != 1 {
		t.Fatalf("%d read-index rounds for 100 reads, want 1", len(rounds))
	}
	s.settle(t)
}

// TestCheckedReadsNeedNoRound: reads whose read check the followers ack
// are answered without a read-index round from the leader, also when the
// acks come before the reads; reads whose check is lost take a round
// after checkTicks and are answered too.
func TestCheckedReadsNeedNoRound(t *testing.T) {
	s := newScenario(t, 3, 1)
	l := s.leader()
	s.commit(t, l.id, "k=v")
	pings := 0
	lose := false
	s.drop = func(e envelope) bool {
		if e.msg.Type == protocol.MsgReadPing {
			pings++
		}
		return lose && e.msg.Type == protocol.MsgReadCheck
	}
	checked := func(before bool) []*op {
		token := s.sendCheck()
		if before { // the acks reach the leader before the reads
			for len(s.net) > 0 {
				e := s.net[0]
				s.net = s.net[1:]
				s.deliver(e)
			}
		}
		var reads []*op
		for range 10 {
			r := s.newRead(l.id)
			s.take(r, token)
			reads = append(reads, r)
		}
		s.flushNode(l)
		return reads
	}
	answered := func(reads []*op) bool {
		for _, r := range reads {
			if !r.done || r.err != nil {
				return false
			}
		}
		return true
	}
	for _, before := range []bool{false, true} {
		reads := checked(before)
		if !s.until(10, func() bool { return answered(reads) }) || pings != 0 {
			t.Fatalf("checked reads (acks first: %v): answered %v, %d read pings", before, answered(reads), pings)
		}
	}
	lose = true
	reads := checked(false)
	if !s.until(20, func() bool { return answered(reads) }) || pings == 0 {
		t.Fatalf("reads whose check was lost: answered %v after %d read pings", answered(reads), pings)
	}
	s.settle(t)
}

// TestStaleLeaderCheckedRead: a deposed leader that still believes it
// leads gets a read with a read check, in the old epoch (a router that
// has not seen the new view) or in the new one: the followers of the new
// leader ack neither to it, so it does not serve the read from its old
// state.
func TestStaleLeaderCheckedRead(t *testing.T) {
	for _, newEpoch := range []bool{false, true} {
		s := newScenario(t, 3, 1)
		oldEpoch := s.kv.view.Epoch
		old := s.depose(t)
		s.side = map[protocol.NodeID]int{}
		epoch := oldEpoch
		if newEpoch {
			epoch = s.kv.view.Epoch
		}
		token := s.rng.Uint64() | 1
		s.send(protocol.Message{Type: protocol.MsgReadCheck, From: routerAddr, To: protocol.Multicast, Epoch: epoch, Seq: token})
		r := s.newRead(old.id)
		s.take(r, token)
		s.flushNode(old)
		s.settle(t)
		servedStale(t, r, old)
	}
}

// TestDuplicateCheckAckCountsOnce: 5 nodes; the old leader and one
// follower are cut off while the other three elect a leader and commit.
// The old leader gets a read whose check only its follower can ack, and
// the network delivers that ack twice: it counts once (the leader and one
// follower are 2 of 5), so the read is not served from the old state.
func TestDuplicateCheckAckCountsOnce(t *testing.T) {
	s := newScenario(t, 5, 1)
	buddy := protocol.NodeID(1)
	if s.leader().id == 1 {
		buddy = 2
	}
	old := s.depose(t, buddy)
	if !old.n.Status().Leading {
		t.Fatal("the old leader stepped down: the case is not set up")
	}
	s.side[routerAddr] = 1 // the router reaches only the cut-off side
	s.net = nil
	s.send(protocol.Message{Type: protocol.MsgReadCheck, From: routerAddr, To: protocol.Multicast, Epoch: old.n.Status().Epoch, Seq: 77})
	r := s.newRead(old.id)
	s.take(r, 77)
	s.flushNode(old)
	acks := 0
	for len(s.net) > 0 {
		e := s.net[0]
		s.net = s.net[1:]
		s.deliver(e)
		if e.msg.Type == protocol.MsgCheckAck {
			acks++
			s.deliver(e)
		}
	}
	if acks != 1 {
		t.Fatalf("%d check acks reached the old leader, want 1 (its follower's)", acks)
	}
	s.settle(t)
	servedStale(t, r, old)
}

// TestOldCheckAcksConfirmNoLaterRead: the acks of a check sent while the
// old leader still led reach it after it was deposed; a read that comes
// then, with a check of its own (never acked), is not confirmed by them.
func TestOldCheckAcksConfirmNoLaterRead(t *testing.T) {
	s := newScenario(t, 3, 1)
	old := s.leader()
	s.commit(t, old.id, "k2=old")
	s.sendCheck()
	var held []envelope
	for len(s.net) > 0 {
		e := s.net[0]
		s.net = s.net[1:]
		if e.msg.Type == protocol.MsgCheckAck {
			held = append(held, e)
			continue
		}
		s.deliver(e)
	}
	if len(held) != 2 {
		t.Fatalf("%d check acks held, want 2", len(held))
	}
	s.isolate(old.id)
	s.commit(t, s.waitLeaderOtherThan(t, old.id).id, "k2=new")
	s.side = map[protocol.NodeID]int{}
	for _, e := range held {
		s.deliver(e)
	}
	r := s.newRead(old.id)
	s.take(r, s.rng.Uint64()|1)
	s.flushNode(old)
	s.settle(t)
	servedStale(t, r, old)
}
