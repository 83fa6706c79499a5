package protocol

import (
	"fmt"
	"slices"
)

// fromCurrentLeader checks a message sent by a leader: an older epoch than
// the promise is refused (the sender learns it is stale); a newer one is
// adopted, since only the leader of that epoch's view sends such messages.
func (n *Node) fromCurrentLeader(m Message) bool {
	if m.Epoch < n.hs.Epoch {
		n.send(Message{Type: MsgReject, To: m.From, Epoch: n.hs.Epoch})
		return false
	}
	if m.Epoch > n.epoch {
		n.adopt(m.Epoch, m.From)
	}
	if n.lead != nil || (n.leader != 0 && n.leader != m.From) {
		panic(fmt.Sprintf("protocol: node %d sees two leaders in epoch %d: %d and %d (leading=%v)",
			n.id, m.Epoch, n.leader, m.From, n.lead != nil))
	}
	n.leader = m.From
	return true
}

// handleAppend is listen_to_leader: accept a batch only for the current
// epoch and only if the log holds (prev_epoch, prev_seq); drop a conflicting
// uncommitted suffix; learn the commit seq.
func (n *Node) handleAppend(m Message) {
	if !wellFormed(m) || !n.fromCurrentLeader(m) {
		return
	}
	ok := m.Prev.Seq <= n.commit || n.log.has(m.Prev)
	if n.cfg.TestingKnobs.SkipPrevCheck {
		ok = m.Prev.Seq <= n.log.lastSeq()
	}
	if !ok {
		n.requestCatchUp()
		return
	}
	var fresh []Entry
	for i, e := range m.Entries {
		if e.Seq <= n.commit {
			continue
		}
		if e.Seq <= n.log.lastSeq() {
			if t, _ := n.log.term(e.Seq); t == e.Epoch {
				continue
			}
			n.truncateAfter(e.Seq - 1)
		}
		fresh = m.Entries[i:]
		break
	}
	n.log.append(fresh...)
	n.persistEntries(fresh)
	matched := n.match
	n.match = max(n.match, m.Prev.Seq+uint64(len(m.Entries)))
	n.commit = max(n.commit, min(m.Commit, n.match))
	if m.To == n.id && n.asked { // the answer to an ask (or a catch-up chunk)
		n.asked = false
		n.askFor = 0 // if not committed yet, the leader's appends will tell (asking again at once would ping-pong while the commit is stuck)
	}
	switch {
	case n.match >= m.Last.Seq:
		n.catchingUp = false
	case m.To != Multicast && n.match > matched:
		n.sendCatchUp() // pull the next chunk; without progress, wait for the retry
	}
	if len(fresh) == 0 || n.cfg.TestingKnobs.AckBeforeDurable {
		n.sendAck()
	}
}

// wellFormed reports whether an append's entries follow Prev one by one,
// with epochs that never go back and none after the message's: what every
// leader sends. Anything else is garbage or forged, and is dropped rather
// than let into the log (found by fuzzing: it crashed the node).
func wellFormed(m Message) bool {
	prev := m.Prev
	for _, e := range m.Entries {
		if e.Seq != prev.Seq+1 || e.Epoch < prev.Epoch || e.Epoch > m.Epoch {
			return false
		}
		prev = Point{Epoch: e.Epoch, Seq: e.Seq}
	}
	return true
}

// sendAck tells the leader how far this node durably holds its log.
func (n *Node) sendAck() {
	if n.lead != nil || n.leader == 0 || n.epoch != n.hs.Epoch {
		return
	}
	seq := min(n.durable, n.match)
	if n.cfg.TestingKnobs.AckBeforeDurable {
		seq = n.match
	} else if n.durableEpoch < n.epoch {
		return
	}
	if seq > 0 {
		n.send(Message{Type: MsgAck, To: n.leader, Epoch: n.epoch, Seq: seq})
	}
}

func (n *Node) requestCatchUp() {
	if n.catchingUp && n.ticks-n.catchUpAt < uint64(n.cfg.RetryTicks) {
		return
	}
	n.sendCatchUp()
}

// sendCatchUp is get_master_copy_from_leader: ask the leader for entries
// after this log's end, or, if the leader does not hold that end, after the
// highest seq known to match its log (Commit: the commit seq or the match
// in this epoch, whichever is higher).
func (n *Node) sendCatchUp() {
	if n.leader == 0 || n.lead != nil || n.snapshot {
		return
	}
	n.catchingUp, n.catchUpAt = true, n.ticks
	n.send(n.catchUpMsg())
}

// AskCommit is for a reader that waits on this follower until it has
// applied seq (a get's min_seq, read-your-writes): if seq is above the
// commit it knows, it asks the leader now (a catch-up request, which the
// leader answers with an append to this node carrying its commit) rather
// than wait for the next append, a heartbeat up to a tick away. One ask
// is out at a time, asked again if unanswered at the next tick; if the
// leader had not committed seq yet when it answered, its later appends
// tell, as without an ask.
func (n *Node) AskCommit(seq uint64) {
	n.askFor = max(n.askFor, seq)
	n.ask()
}

// maxAsks bounds the asks of a tick (640 a second at the default tick):
// readers waiting for seqs nobody wrote yet would otherwise have their
// follower ask at every round trip (about 1,600 asks a second in a
// review), and under load the leader's appends carry the commit every
// round anyway. One writer putting and then reading its put on the
// followers, 250 times a second, needs about 8 a tick; at a cap of 8
// some of its gets waited for the next heartbeat.
const maxAsks = 64

// ask sends the leader an ask for its commit if a reader waits above the
// commit this node knows, and none is out.
func (n *Node) ask() {
	if n.askFor <= n.commit {
		n.askFor = 0
		return
	}
	if n.asked || n.asks >= maxAsks || n.lead != nil || n.leader == 0 || n.snapshot || n.catchingUp { // a catch-up's appends carry the commit
		return
	}
	n.asked = true
	n.asks++
	n.send(n.catchUpMsg())
}

func (n *Node) catchUpMsg() Message {
	return Message{Type: MsgCatchUp, To: n.leader, Epoch: n.epoch, Last: n.log.last(),
		Commit: max(n.commit, n.match)}
}

func (n *Node) handleSnapshotNeeded(m Message) {
	if !n.fromCurrentLeader(m) || n.snapshot {
		return
	}
	if n.match >= m.Seq { // stale: since it asked, its log came to match the leader's past what it compacted
		return
	}
	n.snapshot = true
	n.out.Snapshot = &SnapshotRequest{Leader: m.From, Epoch: m.Epoch, Seq: m.Seq}
}

// SnapshotDone reports the end of a snapshot fetch: the state machine now
// holds every entry up to p, durably; or err says the fetch failed and
// catch-up starts over.
func (n *Node) SnapshotDone(p Point, err error) {
	n.snapshot = false
	if err != nil {
		n.catchingUp = false
		return
	}
	if p.Seq <= n.applied {
		n.sendCatchUp()
		return
	}
	var kept []Entry
	if n.log.has(p) {
		kept = slices.Clone(n.log.slice(p.Seq, n.log.lastSeq()))
	}
	for s, w := range n.waiting {
		if s <= p.Seq || kept == nil {
			delete(n.waiting, s)
			n.out.Replies = append(n.out.Replies, Reply{ID: w.id, Err: ErrIndeterminate})
		}
	}
	n.log.reset(p)
	n.log.append(kept...)
	n.commit = max(n.commit, p.Seq)
	n.applied, n.durable = p.Seq, p.Seq
	n.match = max(n.match, p.Seq)
	for i := range n.writes {
		n.writes[i].last = p.Seq // the snapshot covers whatever they held
	}
	w := n.writeOut()
	w.Reset = &p
	w.Entries = kept
	n.sendCatchUp()
	n.sendStatus() // the group hears now, not at the next tick, that the node caught up: it admits it sooner
}
