package protocol

import (
	"fmt"
	"slices"
)

// Node is one replica's protocol state machine. It is not safe for
// concurrent use: one goroutine owns it (see the package doc).
type Node struct {
	cfg Config
	id  NodeID

	log raftLog
	hs  HardState // in memory; durable once durableEpoch >= hs.Epoch
	// noLeadUpTo is the promise found at restart: this node never leads an
	// epoch up to it, because it may have lost unsynced entries it sent.
	noLeadUpTo uint64

	durableEpoch uint64         // highest promise known durable
	durable      uint64         // the log is durable up to this seq
	writes       []pendingWrite // issued, not yet reported by DiskDone
	nextWrite    uint64

	epoch   uint64   // epoch of the leader this node follows (or is)
	leader  NodeID   // that leader, 0 if unknown
	members []NodeID // members of epoch's view, nil if not yet known

	commit  uint64 // highest seq known committed
	applied uint64 // highest seq handed to the driver to apply
	ticks   uint64

	promises []promiseWait // coordinators waiting for a durable promise

	// follower side
	match      uint64 // the log matches the leader's up to here
	catchingUp bool   // a catch-up request is outstanding
	catchUpAt  uint64 // tick it was sent
	askFor     uint64 // a reader waits for this seq (AskCommit); 0: none
	asked      bool   // an ask is out: the leader's next append to this node answers it
	asks       int    // asks sent this tick (at most maxAsks)
	snapshot   bool   // a snapshot fetch is outstanding
	leaving    bool   // asked to leave the group
	saidLeave  uint64 // the latest epoch whose promise said leaving

	lead *leaderState // non-nil while leading epoch

	waiting   map[uint64]waiter // seq → proposal waiting for commit
	proposals []proposal        // accepted by the leader, not yet appended

	out Ready
}

type pendingWrite struct {
	id    uint64
	last  uint64 // the log's end once the write is done (capped by truncation)
	epoch uint64 // the promise the write makes durable, 0 if none
}

type promiseWait struct {
	coord NodeID
	epoch uint64
}

type waiter struct {
	id    uint64
	epoch uint64
}

type proposal struct {
	id   uint64
	data []byte
}

// NewNode starts a node from its recovered durable state.
func NewNode(cfg Config, r Restart) (*Node, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	if r.Applied < r.Start.Seq {
		return nil, fmt.Errorf("%w: applied %d before log start %d", errConfig, r.Applied, r.Start.Seq)
	}
	n := &Node{cfg: cfg, id: cfg.ID, hs: r.State, waiting: map[uint64]waiter{}}
	n.log.start = r.Start
	for _, e := range r.Entries {
		if e.Seq != n.log.lastSeq()+1 {
			return nil, fmt.Errorf("%w: restart entry seq %d after %d", errConfig, e.Seq, n.log.lastSeq())
		}
		n.log.append(e)
	}
	if r.Applied > n.log.lastSeq() {
		return nil, fmt.Errorf("%w: applied %d past log end %d", errConfig, r.Applied, n.log.lastSeq())
	}
	n.noLeadUpTo = r.State.Epoch
	n.durableEpoch = r.State.Epoch
	n.durable = n.log.lastSeq()
	n.commit, n.applied, n.match = r.Applied, r.Applied, r.Applied
	n.sendStatus() // the group hears of the node at once, not a tick later
	return n, nil
}

// sendStatus sends the node's heartbeat to the group.
func (n *Node) sendStatus() {
	n.send(Message{Type: MsgStatus, To: Group, Epoch: n.hs.Epoch, Last: n.durablePoint(),
		Commit: n.commit, Applied: n.applied, Leading: n.lead != nil, Leaving: n.leaving})
}

// Status is a node's state at a glance, for status replies and tests.
type Status struct {
	ID       NodeID
	Epoch    uint64 // epoch of the leader followed (or led)
	Promised uint64
	Leader   NodeID
	Leading  bool
	Start    Point // the log begins after Start (compacted before)
	Last     Point // the log's end, durable or not
	Durable  uint64
	Commit   uint64
	Applied  uint64
	Members  []NodeID
}

// Status returns the node's current state.
func (n *Node) Status() Status {
	return Status{
		ID: n.id, Epoch: n.epoch, Promised: n.hs.Epoch, Leader: n.leader,
		Leading: n.lead != nil, Start: n.log.start, Last: n.log.last(),
		Durable: n.durable, Commit: n.commit, Applied: n.applied,
		Members: slices.Clone(n.members),
	}
}

// Step handles one message from the network.
func (n *Node) Step(m Message) {
	if m.From == n.id {
		return
	}
	switch m.Type {
	case MsgPrepare:
		n.handlePrepare(m)
	case MsgView:
		if m.View != nil {
			n.handleView(*m.View)
		}
	case MsgAppend:
		n.handleAppend(m)
	case MsgAck:
		n.handleAck(m)
	case MsgCatchUp:
		n.handleCatchUp(m)
	case MsgSnapshotNeeded:
		n.handleSnapshotNeeded(m)
	case MsgReadPing:
		n.handleReadPing(m)
	case MsgReadAck:
		n.handleReadAck(m)
	case MsgReadCheck:
		n.handleReadCheck(m)
	case MsgCheckAck:
		n.handleCheckAck(m)
	case MsgReject:
		// Only a member's refusal deposes the leader: a node joining
		// promises the epoch of the view that would admit it before the
		// members are asked, and no view of that epoch can be chosen
		// before a majority of the members promised it (they refuse too).
		if n.lead != nil && m.Epoch > n.epoch && slices.Contains(n.members, m.From) {
			n.stepDown()
		}
	}
}

// Tick advances the node's clock by one tick.
func (n *Node) Tick() {
	n.ticks++
	if n.ticks%uint64(n.cfg.HeartbeatTicks) == 0 {
		n.sendStatus()
		if n.lead != nil {
			n.broadcastAppend(n.log.lastSeq(), nil)
		}
	}
	if n.catchingUp && n.ticks-n.catchUpAt >= uint64(n.cfg.RetryTicks) {
		n.sendCatchUp()
	}
	n.asks = 0
	if n.asked { // unanswered for a tick: lost, ask again
		n.asked = false
		n.ask()
	}
	if n.lead != nil {
		n.retryReadRound()
		n.expireChecks()
	}
}

// DiskDone reports that every write up to id is durable.
func (n *Node) DiskDone(id uint64) {
	for len(n.writes) > 0 && n.writes[0].id <= id {
		w := n.writes[0]
		n.writes = n.writes[1:]
		n.durable = w.last
		n.durableEpoch = max(n.durableEpoch, w.epoch)
	}
	n.answerPromises()
	if n.lead != nil {
		n.maybeCommit()
	} else {
		n.sendAck()
	}
}

// Compact forgets the log up to seq (at most the applied seq), all but the
// entries just before seq that hold at most keepBytes of data: a snapshot
// (the tree) covers what it forgets, and followers behind what it keeps
// will need one. It returns the log's start: every entry up to it is gone.
func (n *Node) Compact(seq uint64, keepBytes int) uint64 {
	seq = min(seq, n.applied, n.log.lastSeq())
	for kept := 0; seq > n.log.start.Seq; seq-- {
		if kept += len(n.log.entries[seq-n.log.start.Seq-1].Data); kept > keepBytes {
			break
		}
	}
	n.log.compact(seq)
	return n.log.start.Seq
}

// Ready returns what the driver must do now and clears it. Proposals waiting
// at a leader are cut into batches here: each batch is one append (one
// write, one fsync) and one multicast.
func (n *Node) Ready() Ready {
	n.flushProposals()
	n.applyCommitted()
	n.serveReads()
	rd := n.out
	n.out = Ready{}
	if rd.Write != nil {
		n.nextWrite++
		rd.Write.ID = n.nextWrite
		epoch := uint64(0)
		if rd.Write.State != nil {
			epoch = rd.Write.State.Epoch
		}
		n.writes = append(n.writes, pendingWrite{id: n.nextWrite, last: n.log.lastSeq(), epoch: epoch})
	}
	return rd
}

func (n *Node) send(m Message) {
	m.From = n.id
	n.out.Messages = append(n.out.Messages, m)
}

func (n *Node) durablePoint() Point {
	p, ok := n.log.point(n.durable)
	if !ok {
		panic(fmt.Sprintf("protocol: node %d durable seq %d outside log from %v", n.id, n.durable, n.log.start))
	}
	return p
}

// persistState asks for the promise in n.hs to be written.
func (n *Node) persistState() {
	n.writeOut().State = &HardState{Epoch: n.hs.Epoch}
}

// persistEntries asks for entries to be written after truncating the stored
// log before the first of them.
func (n *Node) persistEntries(es []Entry) {
	if len(es) == 0 {
		return
	}
	w := n.writeOut()
	first := es[0].Seq
	i := len(w.Entries)
	for i > 0 && w.Entries[i-1].Seq >= first {
		i--
	}
	w.Entries = append(w.Entries[:i], es...)
}

func (n *Node) writeOut() *Write {
	if n.out.Write == nil {
		n.out.Write = &Write{}
	}
	return n.out.Write
}

// truncateAfter drops the log above seq, which must not be committed.
func (n *Node) truncateAfter(seq uint64) {
	if seq < n.commit {
		panic(fmt.Sprintf("protocol: node %d truncating after %d below commit %d", n.id, seq, n.commit))
	}
	n.log.truncateAfter(seq)
	n.durable = min(n.durable, seq)
	for i := range n.writes {
		n.writes[i].last = min(n.writes[i].last, seq)
	}
	for s, w := range n.waiting {
		if s > seq {
			delete(n.waiting, s)
			n.out.Replies = append(n.out.Replies, Reply{ID: w.id, Err: ErrDropped})
		}
	}
}

// applyCommitted hands the committed, durable entries to the driver.
func (n *Node) applyCommitted() {
	upto := min(n.commit, n.durable)
	if upto <= n.applied {
		return
	}
	es := n.log.slice(n.applied, upto)
	n.out.Apply = append(n.out.Apply, es...)
	for _, e := range es {
		if w, ok := n.waiting[e.Seq]; ok {
			delete(n.waiting, e.Seq)
			r := Reply{ID: w.id, Seq: e.Seq}
			if w.epoch != e.Epoch {
				r = Reply{ID: w.id, Err: ErrDropped}
			}
			n.out.Replies = append(n.out.Replies, r)
		}
	}
	n.applied = upto
}

// handlePrepare is the node's half of an election: promise to refuse every
// epoch below m.Epoch, durably, then answer with the durable log end.
func (n *Node) handlePrepare(m Message) {
	if m.Epoch < n.hs.Epoch {
		n.send(Message{Type: MsgReject, To: m.From, Epoch: n.hs.Epoch})
		return
	}
	if m.Epoch > n.hs.Epoch {
		n.hs.Epoch = m.Epoch
		if n.lead != nil {
			n.stepDown()
		}
		n.persistState()
	}
	n.promises = append(n.promises, promiseWait{coord: m.From, epoch: m.Epoch})
	n.answerPromises()
}

func (n *Node) answerPromises() {
	kept := n.promises[:0]
	for _, p := range n.promises {
		switch {
		case p.epoch < n.hs.Epoch:
			n.send(Message{Type: MsgReject, To: p.coord, Epoch: n.hs.Epoch})
		case n.durableEpoch >= p.epoch:
			n.send(Message{Type: MsgPromise, To: p.coord, Epoch: p.epoch, Last: n.durablePoint(), Leaving: n.leaving})
			if n.leaving {
				n.saidLeave = max(n.saidLeave, p.epoch)
			}
		default:
			kept = append(kept, p)
		}
	}
	n.promises = kept
}

// handleView adopts a newer view: follow its leader, or lead.
func (n *Node) handleView(v View) {
	if v.Epoch < n.hs.Epoch || v.Epoch < n.epoch {
		return
	}
	if v.Epoch == n.epoch {
		if n.members == nil {
			n.members = slices.Clone(v.Members)
		}
		return
	}
	n.adopt(v.Epoch, v.Leader)
	n.members = slices.Clone(v.Members)
	switch {
	case v.Leader == n.id && v.Epoch > n.noLeadUpTo:
		n.becomeLeader()
	case v.Leader == n.id:
		n.leader = 0 // restarted since it was chosen: the group elects again
	case v.Leader != 0 && !slices.Contains(v.Members, n.id):
		// A node outside the view (a new one: the group sends it the view
		// when it first hears of it) asks the leader at once rather than
		// after its next heartbeat. Not marked as catching up: if the
		// leader does not lead yet and drops it, the heartbeat asks again.
		n.send(n.catchUpMsg())
	}
}

// Membership reports whether this node is among the members of the view
// it follows; known is false while it has not seen that view (it adopted
// an epoch from a message before the epoch's view came).
func (n *Node) Membership() (member, known bool) {
	return slices.Contains(n.members, n.id), n.members != nil
}

// Leave asks the group to take this node out of the members (a graceful
// leave); the driver stops the node once Left reports it out.
func (n *Node) Leave() {
	n.leaving = true
}

// Left reports whether this node asked to leave and holds a view without
// it: a member waits for the view change that removes it; a node not yet
// a member is out at once, since no view admits a node without its own
// promise, unless it promised the epoch of a view it has not seen yet
// (and not as leaving): that view may admit it, and it then leaves as a
// member.
func (n *Node) Left() bool {
	return n.leaving && n.members != nil && !slices.Contains(n.members, n.id) &&
		(n.hs.Epoch <= n.epoch || n.saidLeave >= n.hs.Epoch)
}

// adopt makes epoch (at least the promise) the current one, led by leader.
func (n *Node) adopt(epoch uint64, leader NodeID) {
	if n.lead != nil {
		n.stepDown()
	}
	n.epoch, n.leader, n.members = epoch, leader, nil
	n.match = n.commit
	n.catchingUp, n.snapshot, n.asked, n.askFor = false, false, false, 0
	if n.hs.Epoch < epoch {
		n.hs.Epoch = epoch
		n.persistState()
	}
}
