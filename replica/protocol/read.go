package protocol

import "slices"

// pendingRead is a linearizable read waiting at the leader.
type pendingRead struct {
	id     uint64
	index  uint64 // commit seq when registered; 0 until the epoch's no-op commits
	hasIdx bool
	round  uint64 // read-index round that confirms it; 0 until one is started
	check  uint64 // read check that may confirm it instead; 0: none
	at     uint64 // tick it was registered
}

// check is what a leader knows of a read check: the followers that acked it
// in its epoch, and the tick the first ack came.
type check struct {
	acks []NodeID
	at   uint64
}

// checkTicks is how long a read waits for its read check before it takes a
// read-index round instead (the check, or an ack, may be lost); a check
// seen this long ago is forgotten after twice that.
const checkTicks = 2

// Read asks for a linearizable read (read_request); the answer is a
// ReadState with id. The leader records the commit seq (the read index),
// confirms that it still leads with a majority in its epoch, and answers
// once it has applied up to the index.
//
// The confirmation is a read-index round the leader starts (one round
// serves every read registered before it started) or, if chk is not 0, the
// read check chk: whoever sent the read multicast MsgReadCheck with that
// token after the read was asked, and each follower that still follows
// this leader acks it (MsgCheckAck), so the round runs while the read
// travels. A read whose check has no majority after checkTicks takes a
// round.
func (n *Node) Read(id, chk uint64) {
	if n.lead == nil {
		n.out.Reads = append(n.out.Reads, ReadState{ID: id, Err: ErrNotLeader})
		return
	}
	n.lead.reads = append(n.lead.reads, pendingRead{id: id, check: chk, at: n.ticks})
}

// needsRound reports whether a read waits for a read-index round: it has
// none yet, and no check, or a check late and not confirmed.
func (n *Node) needsRound(r *pendingRead) bool {
	return r.hasIdx && r.round == 0 && (r.check == 0 || (n.ticks-r.at >= checkTicks && !n.readConfirmed(r)))
}

// readConfirmed reports whether a majority of members (the leader
// included) confirmed r: its round, or its check.
func (n *Node) readConfirmed(r *pendingRead) bool {
	l := n.lead
	if r.round != 0 && r.round <= l.confirmed {
		return true
	}
	if r.check == 0 {
		return false
	}
	votes := 0
	if c := l.checks[r.check]; c != nil {
		votes = len(c.acks) // members other than the leader: handleCheckAck and Step see to it
	}
	if slices.Contains(n.members, n.id) {
		votes++
	}
	return votes >= Quorum(n.members)
}

// serveReads assigns read indexes and rounds and answers confirmed reads.
func (n *Node) serveReads() {
	l := n.lead
	if l == nil || len(l.reads) == 0 {
		return
	}
	waiting := false
	for i := range l.reads {
		r := &l.reads[i]
		if !r.hasIdx && n.commit >= l.start {
			r.index, r.hasIdx = n.commit, true
		}
		if n.needsRound(r) {
			waiting = true
		}
	}
	if waiting && l.confirmed == l.round {
		l.round++
		for i := range l.reads {
			if n.needsRound(&l.reads[i]) {
				l.reads[i].round = l.round
			}
		}
		n.sendReadRound()
	}
	kept := l.reads[:0]
	for _, r := range l.reads {
		if r.hasIdx && n.applied >= r.index && n.readConfirmed(&r) {
			n.out.Reads = append(n.out.Reads, ReadState{ID: r.id, Seq: r.index})
			continue
		}
		kept = append(kept, r)
	}
	l.reads = kept
}

func (n *Node) sendReadRound() {
	l := n.lead
	l.roundSentAt = n.ticks
	n.send(Message{Type: MsgReadPing, To: Multicast, Epoch: n.epoch, Seq: l.round})
	n.updateConfirmed()
}

func (n *Node) retryReadRound() {
	l := n.lead
	if l.confirmed < l.round && n.ticks-l.roundSentAt >= uint64(n.cfg.RetryTicks) {
		n.sendReadRound()
	}
}

func (n *Node) handleReadAck(m Message) {
	if n.lead == nil || m.Epoch != n.epoch || !slices.Contains(n.members, m.From) {
		return
	}
	n.heardFrom(m.From)
	if m.Seq > n.lead.roundAcks[m.From] {
		n.lead.roundAcks[m.From] = m.Seq
		n.updateConfirmed()
	}
}

// updateConfirmed sets confirmed to the highest round a majority of members
// (the leader included) acknowledged.
func (n *Node) updateConfirmed() {
	l := n.lead
	acks := make([]uint64, 0, len(n.members))
	for _, id := range n.members {
		if id == n.id {
			acks = append(acks, l.round)
		} else {
			acks = append(acks, min(l.roundAcks[id], l.round))
		}
	}
	slices.Sort(acks)
	slices.Reverse(acks)
	if q := Quorum(n.members); len(acks) >= q && acks[q-1] > l.confirmed {
		l.confirmed = acks[q-1]
	}
}

// handleCheckAck counts a follower's ack of a read check in this epoch.
func (n *Node) handleCheckAck(m Message) {
	if n.lead == nil || m.Epoch != n.epoch || m.Seq == 0 || !slices.Contains(n.members, m.From) {
		return
	}
	n.heardFrom(m.From)
	c := n.lead.checks[m.Seq]
	if c == nil {
		c = &check{at: n.ticks}
		n.lead.checks[m.Seq] = c
	}
	if !slices.Contains(c.acks, m.From) {
		c.acks = append(c.acks, m.From)
	}
}

// expireChecks forgets read checks first acked 2×checkTicks ago, so checks
// whose batch never comes do not pile up; a read that comes later still
// is confirmed by a round, checkTicks after it came.
func (n *Node) expireChecks() {
	for token, c := range n.lead.checks {
		if n.ticks-c.at >= 2*checkTicks {
			delete(n.lead.checks, token)
		}
	}
}

// handleReadCheck acks a read check to this node's leader if it follows
// one, durably, in the check's epoch and has promised no later epoch. A
// check for another epoch is ignored: the reads it covers take a round.
func (n *Node) handleReadCheck(m Message) {
	if n.lead != nil || n.leader == 0 || m.Seq == 0 || m.Epoch != n.epoch || m.Epoch != n.hs.Epoch || n.durableEpoch < m.Epoch {
		return
	}
	n.send(Message{Type: MsgCheckAck, To: n.leader, Epoch: m.Epoch, Seq: m.Seq})
}

// handleReadPing confirms to the leader of the current epoch that this node
// still follows it.
func (n *Node) handleReadPing(m Message) {
	if !n.fromCurrentLeader(m) {
		return
	}
	if n.durableEpoch >= m.Epoch {
		n.send(Message{Type: MsgReadAck, To: m.From, Epoch: m.Epoch, Seq: m.Seq})
	}
}
