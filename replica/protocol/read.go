package protocol

import "slices"

// pendingRead is a linearizable read waiting at the leader: its own, or a
// follower's batch asking for a read index.
type pendingRead struct {
	id     uint64 // the read's id, or the follower's batch
	from   NodeID // the follower that asked, 0 for the leader's own read
	at     uint64 // tick it was registered
	index  uint64 // commit seq when registered; 0 until the epoch's no-op commits
	hasIdx bool
	round  uint64 // read-index round that confirms it; 0 until one is started
}

// followerReads are the linearizable reads a follower serves itself, with a
// read index from its leader.
type followerReads struct {
	pending []followerRead
	batch   uint64 // the last batch asked for
	askedAt uint64 // tick it was asked
	acked   uint64 // the highest batch the leader answered
}

type followerRead struct {
	id     uint64
	at     uint64 // tick it was asked
	batch  uint64 // the batch whose read index serves it; 0 until one is asked
	index  uint64
	hasIdx bool
}

// Read asks for a linearizable read (read_request); the answer is a
// ReadState with id. The leader records the commit seq (the read index),
// confirms with a majority round in its epoch that it still leads, and
// answers once it has applied up to the index. One round serves every read
// registered before it started. A follower asks its leader for a read index
// (one request per batch of reads), then answers once it has applied up to
// it itself, so reads are served by every member. A read not answered
// within ReadTicks fails with ErrNotLeader.
func (n *Node) Read(id uint64) {
	switch {
	case n.lead != nil:
		n.lead.reads = append(n.lead.reads, pendingRead{id: id, at: n.ticks})
	case n.leader != 0 && n.leader != n.id && n.epoch == n.hs.Epoch:
		r := followerRead{id: id, at: n.ticks}
		if n.cfg.TestingKnobs.FollowerReadsWithoutIndex {
			r.index, r.hasIdx = n.applied, true
		}
		n.reads.pending = append(n.reads.pending, r)
	default:
		n.out.Reads = append(n.out.Reads, ReadState{ID: id, Err: ErrNotLeader})
	}
}

// handleReadIndex registers a follower's batch with the leader's reads: it
// gets its answer once a round started after it confirms the leadership.
func (n *Node) handleReadIndex(m Message) {
	if n.lead == nil || m.Epoch != n.epoch || !slices.Contains(n.members, m.From) {
		return // the follower's reads time out and fail
	}
	n.lead.reads = append(n.lead.reads, pendingRead{id: m.Seq, from: m.From, at: n.ticks})
}

// handleReadIndexAck gives the read index to every read of the batch
// answered and of the batches before it: it was taken after they were asked.
func (n *Node) handleReadIndexAck(m Message) {
	if n.lead != nil || m.Epoch != n.epoch || m.From != n.leader || m.Seq <= n.reads.acked || m.Seq > n.reads.batch {
		return // not for a batch of this start that is still unanswered
	}
	n.reads.acked = m.Seq
	for i := range n.reads.pending {
		if r := &n.reads.pending[i]; r.batch != 0 && r.batch <= m.Seq && !r.hasIdx {
			r.index, r.hasIdx = m.Commit, true
		}
	}
}

// serveFollowerReads asks for a read index for new reads (a request per
// Ready that has new reads; again after RetryTicks without an answer) and
// answers the reads whose index is applied.
func (n *Node) serveFollowerReads() {
	f := &n.reads
	if len(f.pending) == 0 {
		return
	}
	fresh := slices.ContainsFunc(f.pending, func(r followerRead) bool { return r.batch == 0 })
	if fresh || (f.acked < f.batch && n.ticks-f.askedAt >= uint64(n.cfg.RetryTicks)) {
		f.batch++
		f.askedAt = n.ticks
		for i := range f.pending {
			if f.pending[i].batch == 0 {
				f.pending[i].batch = f.batch
			}
		}
		n.send(Message{Type: MsgReadIndex, To: n.leader, Epoch: n.epoch, Seq: f.batch})
	}
	kept := f.pending[:0]
	for _, r := range f.pending {
		if r.hasIdx && n.applied >= r.index {
			n.out.Reads = append(n.out.Reads, ReadState{ID: r.id, Seq: r.index})
			continue
		}
		kept = append(kept, r)
	}
	f.pending = kept
}

// failFollowerReads fails the reads waiting for the leader being left.
func (n *Node) failFollowerReads() {
	for _, r := range n.reads.pending {
		n.out.Reads = append(n.out.Reads, ReadState{ID: r.id, Err: ErrNotLeader})
	}
	n.reads.pending = nil
}

// expireReads fails the reads older than ReadTicks: no majority confirmed
// a leader for them in time. A follower's batch the leader holds is
// dropped; the follower fails its reads itself.
func (n *Node) expireReads() {
	old := func(at uint64) bool { return n.ticks-at >= uint64(n.cfg.ReadTicks) }
	if l := n.lead; l != nil {
		l.reads = slices.DeleteFunc(l.reads, func(r pendingRead) bool {
			if old(r.at) && r.from == 0 {
				n.out.Reads = append(n.out.Reads, ReadState{ID: r.id, Err: ErrNotLeader})
			}
			return old(r.at)
		})
	}
	n.reads.pending = slices.DeleteFunc(n.reads.pending, func(r followerRead) bool {
		if old(r.at) {
			n.out.Reads = append(n.out.Reads, ReadState{ID: r.id, Err: ErrNotLeader})
		}
		return old(r.at)
	})
}

// serveReads assigns read indexes and rounds and answers confirmed reads:
// the leader's own once applied up to their index, a follower's batch at
// once (the follower applies it).
func (n *Node) serveReads() {
	l := n.lead
	if l == nil {
		n.serveFollowerReads()
		return
	}
	if len(l.reads) == 0 {
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
	if waiting { // rounds may overlap: an ack of a round confirms the ones before it

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
		confirmed := r.round != 0 && r.round <= l.confirmed
		switch {
		case confirmed && r.from != 0:
			n.send(Message{Type: MsgReadIndexAck, To: r.from, Epoch: n.epoch, Seq: r.id, Commit: r.index})
		case confirmed && n.applied >= r.index:
			n.out.Reads = append(n.out.Reads, ReadState{ID: r.id, Seq: r.index})
		default:
			kept = append(kept, r)
		}
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
