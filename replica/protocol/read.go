package protocol

import "slices"

// pendingRead is a linearizable read waiting at the leader.
type pendingRead struct {
	id     uint64
	index  uint64 // commit seq when registered; 0 until the epoch's no-op commits
	hasIdx bool
	round  uint64 // read-index round that confirms it; 0 until one is started
}

// Read asks for a linearizable read (read_request); the answer is a
// ReadState with id. The leader records the commit seq (the read index),
// confirms with a majority round in its epoch that it still leads, and
// answers once it has applied up to the index. One round serves every read
// registered before it started.
func (n *Node) Read(id uint64) {
	if n.lead == nil {
		n.out.Reads = append(n.out.Reads, ReadState{ID: id, Err: ErrNotLeader})
		return
	}
	n.lead.reads = append(n.lead.reads, pendingRead{id: id})
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
		if r.hasIdx && r.round == 0 {
			waiting = true
		}
	}
	if waiting && l.confirmed == l.round {
		l.round++
		for i := range l.reads {
			if l.reads[i].hasIdx && l.reads[i].round == 0 {
				l.reads[i].round = l.round
			}
		}
		n.sendReadRound()
	}
	kept := l.reads[:0]
	for _, r := range l.reads {
		if r.round != 0 && r.round <= l.confirmed && n.applied >= r.index {
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
	if q := len(n.members)/2 + 1; len(acks) >= q && acks[q-1] > l.confirmed {
		l.confirmed = acks[q-1]
	}
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
