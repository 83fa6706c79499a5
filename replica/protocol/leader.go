package protocol

import "slices"

// leaderState is what a node keeps while it leads an epoch.
type leaderState struct {
	progress map[NodeID]uint64 // member → highest seq acked durable (own epoch)
	heard    map[NodeID]uint64 // member → tick it last answered in this epoch
	start    uint64            // seq of the epoch's no-op
	batches  []uint64          // last seq of each batch not yet committed

	reads       []pendingRead
	round       uint64            // last read-index round started
	roundSentAt uint64            // tick it was (re)sent
	roundAcks   map[NodeID]uint64 // member → highest round acked
	confirmed   uint64            // highest round a majority acked
	checks      map[uint64]*check // read check token → who acked it
}

// becomeLeader starts leading n.epoch: a no-op of the new epoch is the first
// entry, so that older entries commit with it.
func (n *Node) becomeLeader() {
	n.lead = &leaderState{progress: map[NodeID]uint64{}, roundAcks: map[NodeID]uint64{}, heard: map[NodeID]uint64{}, checks: map[uint64]*check{}}
	for _, id := range n.members {
		n.lead.heard[id] = n.ticks // a grace period to hear from everyone
	}
	n.match = n.log.lastSeq()
	n.appendBatch([]proposal{{}})
	n.lead.start = n.log.lastSeq()
}

// stepDown stops leading. Proposals not yet in the log fail with
// ErrNotLeader; those in the log wait for their fate (applied or dropped).
func (n *Node) stepDown() {
	for _, p := range n.proposals {
		n.out.Replies = append(n.out.Replies, Reply{ID: p.id, Err: ErrNotLeader})
	}
	for _, r := range n.lead.reads {
		n.out.Reads = append(n.out.Reads, ReadState{ID: r.id, Err: ErrNotLeader})
	}
	n.proposals = nil
	n.lead = nil
}

// Propose asks the leader to write data; the answer comes as a Reply with id.
// This is where write_request lands on the leader.
func (n *Node) Propose(id uint64, data []byte) {
	if n.lead == nil {
		n.out.Replies = append(n.out.Replies, Reply{ID: id, Err: ErrNotLeader})
		return
	}
	if !n.quorumHeard() {
		n.out.Replies = append(n.out.Replies, Reply{ID: id, Err: ErrNoQuorum})
		return
	}
	n.proposals = append(n.proposals, proposal{id: id, data: data})
}

// flushProposals cuts the waiting proposals into batches while fewer than
// MaxInflight batches are uncommitted.
func (n *Node) flushProposals() {
	if n.lead == nil {
		return
	}
	for len(n.proposals) > 0 && len(n.lead.batches) < n.cfg.MaxInflight {
		k, size := 1, len(n.proposals[0].data)
		for k < min(len(n.proposals), n.cfg.MaxBatch) && size+len(n.proposals[k].data) <= n.cfg.MaxBytes {
			size += len(n.proposals[k].data)
			k++
		}
		n.appendBatch(n.proposals[:k])
		n.proposals = n.proposals[k:]
	}
}

// appendBatch appends one batch to the leader's log, asks for one write and
// sends one multicast (initiate_multicast).
func (n *Node) appendBatch(ps []proposal) {
	prev := n.log.lastSeq()
	es := make([]Entry, len(ps))
	for i, p := range ps {
		es[i] = Entry{Epoch: n.epoch, Seq: prev + 1 + uint64(i), Data: p.data}
		if p.data != nil {
			n.waiting[es[i].Seq] = waiter{id: p.id, epoch: n.epoch}
		}
	}
	n.log.append(es...)
	n.persistEntries(es)
	n.lead.batches = append(n.lead.batches, n.log.lastSeq())
	n.broadcastAppend(prev, es)
}

// broadcastAppend multicasts entries after prev; with none, it is the
// leader's heartbeat.
func (n *Node) broadcastAppend(prev uint64, es []Entry) {
	p, _ := n.log.point(prev)
	n.send(Message{Type: MsgAppend, To: Multicast, Epoch: n.epoch, Prev: p, Entries: es,
		Commit: n.commit, Last: n.log.last()})
}

// quorumHeard reports whether a majority of members (the leader included)
// answered within QuorumTicks.
func (n *Node) quorumHeard() bool {
	k := 0
	for _, id := range n.members {
		if id == n.id || n.ticks-n.lead.heard[id] <= uint64(n.cfg.QuorumTicks) {
			k++
		}
	}
	return k >= Quorum(n.members)
}

// heardFrom notes that a member answered in this epoch.
func (n *Node) heardFrom(id NodeID) {
	if _, ok := n.lead.heard[id]; ok {
		n.lead.heard[id] = n.ticks
	}
}

func (n *Node) handleAck(m Message) {
	if n.lead == nil || m.Epoch != n.epoch || !slices.Contains(n.members, m.From) {
		return
	}
	n.heardFrom(m.From)
	seq := min(m.Seq, n.log.lastSeq())
	if seq > n.lead.progress[m.From] {
		n.lead.progress[m.From] = seq
		n.maybeCommit()
	}
}

// maybeCommit advances commit to the highest seq a majority of members hold
// durably, if that entry is of this epoch (older entries commit with it).
func (n *Node) maybeCommit() {
	acked := make([]uint64, 0, len(n.members))
	for _, id := range n.members {
		if id == n.id {
			acked = append(acked, n.durable)
		} else {
			acked = append(acked, n.lead.progress[id])
		}
	}
	slices.Sort(acked)
	slices.Reverse(acked)
	q := Quorum(n.members)
	if len(acked) < q {
		return
	}
	c := acked[q-1]
	if c <= n.commit {
		return
	}
	if e, ok := n.log.term(c); !ok || (e != n.epoch && !n.cfg.TestingKnobs.CountOldEpochAcks) {
		return
	}
	if n.commit < n.lead.start && c >= n.lead.start {
		// The epoch's no-op commits, and with it what earlier leaders left.
		// The followers hear it now, not at the next heartbeat: a deposed
		// leader answers the puts it held once it applies them, and their
		// writers, waiting, may send nothing that would carry the commit
		// (a leader change under 16 writers held them 100 ms).
		defer n.broadcastAppend(n.log.lastSeq(), nil)
	}
	n.commit = c
	i := 0
	for i < len(n.lead.batches) && n.lead.batches[i] <= c {
		i++
	}
	n.lead.batches = n.lead.batches[i:]
}

// handleCatchUp answers a node that is behind from the log
// (connect_with_followers, initiate_leader_to_new_node), one chunk per
// request: the node pulls the next chunk when this one is in, which is the
// flow control. When the entries are compacted away it answers "snapshot
// needed".
func (n *Node) handleCatchUp(m Message) {
	if n.lead == nil {
		return
	}
	if m.Epoch == n.epoch {
		n.heardFrom(m.From)
	}
	after := min(m.Commit, n.log.lastSeq())
	if m.Last.Seq <= n.log.lastSeq() && n.log.has(m.Last) {
		after = m.Last.Seq
	}
	if after < n.log.start.Seq {
		n.send(Message{Type: MsgSnapshotNeeded, To: m.From, Epoch: n.epoch, Seq: n.log.start.Seq})
		return
	}
	es := n.log.slice(after, min(after+uint64(n.cfg.MaxBatch), n.log.lastSeq()))
	for i, size := 0, 0; i < len(es); i++ { // at most MaxBytes, at least one entry
		if size += len(es[i].Data); size > n.cfg.MaxBytes && i > 0 {
			es = es[:i]
			break
		}
	}
	prev, _ := n.log.point(after)
	n.send(Message{Type: MsgAppend, To: m.From, Epoch: n.epoch, Prev: prev,
		Entries: es, Commit: n.commit, Last: n.log.last()})
}
