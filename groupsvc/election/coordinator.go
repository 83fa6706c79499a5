package election

import (
	"math/rand"
	"slices"

	"memstore/replica/protocol"
)

// Coordinator is the group service's state machine. It is not safe for
// concurrent use: one goroutine owns it.
type Coordinator struct {
	cfg Config
	rng *rand.Rand

	view   protocol.View // the view the store holds, as last learned
	rev    uint64        // its revision
	viewAt uint64        // tick the view was learned

	ticks       uint64
	publishedAt uint64
	nodes       map[protocol.NodeID]*nodeInfo
	maxEpoch    uint64                   // highest epoch seen: views, promises, rejects, attempts
	removing    map[protocol.NodeID]bool // members to take out though they cannot say so (Remove)

	attempt *attempt
	startAt uint64 // tick the next election may start (jitter)

	out Ready
}

// nodeInfo is what the coordinator knows of one node.
type nodeInfo struct {
	heardAt uint64
	status  protocol.Message
	// hold: not admitted before its next heartbeat; an attempt to admit
	// it ended without its promise, or it promised as leaving.
	hold bool
}

// attempt is one election in progress: prepare(epoch) sent to the members
// of the next view. One that admits a node asks that node first, and the
// members only once it promised: a view admits no node without its own
// promise (a joining node that stopped still counts as alive for a failure
// timeout, and the members' promises alone made it a member nobody would
// hear from), and a joiner that never answers costs the group nothing,
// since the members, who would have promised the new epoch and left their
// leader, were never asked.
type attempt struct {
	epoch     uint64
	old, next []protocol.NodeID // members of the current and of the next view
	promises  map[protocol.NodeID]protocol.Point
	startedAt uint64
	sentAt    uint64
	rev       uint64 // revision of the view it replaces
	asked     bool   // prepare sent to the old members (after the joiners promised)
	cas       bool   // compare-and-set issued, waiting for Stored
}

// joining reports whether id is a node the attempt admits.
func (a *attempt) joining(id protocol.NodeID) bool {
	return slices.Contains(a.next, id) && !slices.Contains(a.old, id)
}

// Ready is what the coordinator asks its driver to do.
type Ready struct {
	// Messages to send now.
	Messages []protocol.Message
	// CAS, if set: write View if the stored revision is still Rev, then
	// report what the store holds with Stored, whether the write won or not.
	CAS *CAS
}

// CAS is a compare-and-set of the view.
type CAS struct {
	View protocol.View
	Rev  uint64
}

// New starts a coordinator from the view the store holds (zero View and rev
// 0 if none yet).
func New(cfg Config, view protocol.View, rev uint64) (*Coordinator, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	return &Coordinator{cfg: cfg, rng: rand.New(rand.NewSource(cfg.Seed)),
		view: view, rev: rev, maxEpoch: view.Epoch, nodes: map[protocol.NodeID]*nodeInfo{}, removing: map[protocol.NodeID]bool{}}, nil
}

// Remove asks for node id to be taken out of the members, as a leaving
// node asks in its heartbeats, but also for a node that cannot: one that
// is down for good (memstore leave). A node that is not a member (any
// more) is not asked for.
func (c *Coordinator) Remove(id protocol.NodeID) {
	if c.view.IsMember(id) {
		c.removing[id] = true
	}
}

// View returns the stored view and its revision as last learned.
func (c *Coordinator) View() (protocol.View, uint64) { return c.view, c.rev }

// Ready returns what the driver must do now and clears it.
func (c *Coordinator) Ready() Ready {
	rd := c.out
	c.out = Ready{}
	return rd
}

// Stored reports what the store holds: after a CAS (won or lost), a read or
// a watch update. A newer view is adopted and published; a pending CAS ends.
func (c *Coordinator) Stored(v protocol.View, rev uint64) {
	if a := c.attempt; a != nil && a.cas {
		c.attempt = nil // won (v is ours), lost (someone else's), or not done (rev unchanged)
	}
	if rev <= c.rev {
		return
	}
	c.attempt = nil // an attempt started from an older view is void
	c.view, c.rev, c.viewAt = v, rev, c.ticks
	c.maxEpoch = max(c.maxEpoch, v.Epoch)
	c.publish()
}

// Step handles one message from a node.
func (c *Coordinator) Step(m protocol.Message) {
	switch m.Type {
	case protocol.MsgStatus:
		c.listenToNode(m)
	case protocol.MsgPromise:
		c.handlePromise(m)
	case protocol.MsgReject:
		c.maxEpoch = max(c.maxEpoch, m.Epoch)
		if a := c.attempt; a != nil && !a.cas && m.Epoch >= a.epoch {
			c.attempt = nil
		}
	}
}

// listenToNode records a node's heartbeat (listen_to_new_node for a node
// that is not a member yet).
func (c *Coordinator) listenToNode(m protocol.Message) {
	info := c.nodes[m.From]
	if info == nil {
		info = &nodeInfo{}
		c.nodes[m.From] = info
		if c.view.Epoch > 0 && !c.view.IsMember(m.From) {
			// A node new to the group learns the view, so the leader, at
			// once: it catches up from the leader before it can join.
			c.out.Messages = append(c.out.Messages, c.viewMsg(m.From))
		}
	}
	info.heardAt, info.status, info.hold = c.ticks, m, false
	c.maxEpoch = max(c.maxEpoch, m.Epoch)
}

// forgetTicks, in failure timeouts, is how long a non-member node stays
// known after its last heartbeat.
const forgetTicks = 30

// Tick advances the clock: node_status_check, then group_update.
func (c *Coordinator) Tick() {
	c.ticks++
	for id, info := range c.nodes {
		// A node out of the group (left, taken out, or never admitted) and
		// silent for forgetTicks is forgotten: status stops listing it.
		if !c.view.IsMember(id) && c.ticks-info.heardAt >= forgetTicks*uint64(c.cfg.FailureTicks) {
			delete(c.nodes, id)
		}
	}
	if c.view.Epoch > 0 && c.ticks-c.publishedAt >= uint64(c.cfg.PublishTicks) {
		c.publish()
	}
	if a := c.attempt; a != nil {
		switch {
		case c.ticks-a.startedAt >= 2*uint64(c.cfg.ElectionTicks):
			c.attempt = nil // even a CAS whose outcome never came back: its rev guards a retry
		case a.cas:
		case c.ticks-a.startedAt >= uint64(c.cfg.ElectionTicks):
			c.dropAttempt()
		case c.ticks-a.sentAt >= uint64(c.cfg.RetryTicks):
			c.sendPrepare()
		}
		return
	}
	c.groupUpdate()
}

// alive reports whether a node was heard from within FailureTicks (every
// node counts as alive during the first FailureTicks after a start).
func (c *Coordinator) alive(id protocol.NodeID) bool {
	info := c.nodes[id]
	if info == nil {
		return c.ticks < uint64(c.cfg.FailureTicks)
	}
	return c.ticks-info.heardAt < uint64(c.cfg.FailureTicks)
}

// leading reports whether the view's leader is alive and leads it, giving a
// new leader ElectionTicks to say so.
func (c *Coordinator) leading() bool {
	l := c.view.Leader
	if l == 0 || !c.alive(l) {
		return false
	}
	if c.ticks-c.viewAt < uint64(c.cfg.ElectionTicks) {
		return true
	}
	st := c.nodes[l].status
	return st.Leading && st.Epoch == c.view.Epoch
}

// groupUpdate is node_status_check's decision: elect when there is no
// leader or it is down, else change the members for a node leaving or a
// caught-up node joining, one at a time.
func (c *Coordinator) groupUpdate() {
	if c.view.Epoch == 0 {
		var ids []protocol.NodeID
		for id := range c.nodes {
			if c.alive(id) && !c.nodes[id].status.Leaving {
				ids = append(ids, id)
			}
		}
		if len(ids) >= c.cfg.Bootstrap {
			c.elect(ids, ids)
		}
		return
	}
	members := c.view.Members
	for id := range c.removing {
		if !c.view.IsMember(id) {
			delete(c.removing, id) // out
		}
	}
	if !c.leading() {
		c.elect(members, members)
		return
	}
	for _, id := range members {
		if info := c.nodes[id]; (c.removing[id] || info != nil && info.status.Leaving) && len(members) > 1 {
			c.elect(members, slices.DeleteFunc(slices.Clone(members), func(m protocol.NodeID) bool { return m == id }))
			return
		}
	}
	leader := c.nodes[c.view.Leader]
	if leader == nil {
		return
	}
	commit := leader.status.Commit
	for id, info := range c.nodes {
		if !c.view.IsMember(id) && c.alive(id) && !info.status.Leaving && !info.hold && info.status.Last.Seq+c.cfg.JoinLag >= commit {
			c.elect(members, append(slices.Clone(members), id))
			return
		}
	}
}

// elect starts the two-phase election of a view with members next, after
// a jitter; old are the current members.
func (c *Coordinator) elect(old, next []protocol.NodeID) {
	// Promises must come from a majority of both: without one alive, wait
	// rather than burn epochs (and a state write on every live member).
	if !c.majorityAlive(old) || !c.majorityAlive(next) {
		return
	}
	if c.startAt == 0 {
		c.startAt = c.ticks + uint64(c.rng.Intn(c.cfg.JitterTicks+1))
	}
	if c.ticks < c.startAt {
		return
	}
	c.startAt = 0
	c.maxEpoch++
	next = slices.Clone(next)
	slices.Sort(next)
	c.attempt = &attempt{epoch: c.maxEpoch, old: slices.Clone(old), next: next,
		promises: map[protocol.NodeID]protocol.Point{}, startedAt: c.ticks, rev: c.rev}
	c.attempt.asked = c.joinersPromised() // none: the members at once
	if c.cfg.TestingKnobs.SkipPrepare {
		for _, id := range next {
			if c.alive(id) && c.nodes[id] != nil {
				c.attempt.promises[id] = c.nodes[id].status.Last
			}
		}
		if len(c.attempt.promises) > 0 {
			c.choose()
		}
		return
	}
	c.sendPrepare()
}

// sendPrepare sends prepare(epoch) to the members of the next view that
// have not promised yet: to the joiners alone until they all promised.
func (c *Coordinator) sendPrepare() {
	a := c.attempt
	a.sentAt = c.ticks
	for _, id := range a.next {
		if _, ok := a.promises[id]; !ok && (a.asked || a.joining(id)) {
			c.out.Messages = append(c.out.Messages, protocol.Message{Type: protocol.MsgPrepare,
				From: c.cfg.ID, To: id, Epoch: a.epoch})
		}
	}
}

// handlePromise counts a promise; once every joiner promised, the members
// are asked. A joiner that promises while leaving ends the attempt (no
// member was asked yet) and is not admitted.
func (c *Coordinator) handlePromise(m protocol.Message) {
	a := c.attempt
	if a == nil || a.cas || m.Epoch != a.epoch || !slices.Contains(a.next, m.From) {
		return // late, duplicated or foreign
	}
	if _, dup := a.promises[m.From]; dup {
		return
	}
	if a.joining(m.From) && m.Leaving { // it promises first: no member was asked
		if info := c.nodes[m.From]; info != nil {
			info.hold = true
		}
		c.attempt = nil
		return
	}
	a.promises[m.From] = m.Last
	if !a.asked {
		if c.joinersPromised() {
			a.asked, a.startedAt = true, c.ticks // the members get the whole ElectionTicks
			c.sendPrepare()
		}
		return
	}
	if c.cfg.TestingKnobs.FirstPromise || (c.majority(a.old) && c.majority(a.next)) {
		c.choose()
	}
}

// dropAttempt gives up the attempt; a joiner that did not promise is not
// asked again before its next heartbeat.
func (c *Coordinator) dropAttempt() {
	a := c.attempt
	for _, id := range a.next {
		if _, ok := a.promises[id]; !ok && a.joining(id) && c.nodes[id] != nil {
			c.nodes[id].hold = true
		}
	}
	c.attempt = nil
}

// joinersPromised reports whether every node the attempt admits promised.
func (c *Coordinator) joinersPromised() bool {
	a := c.attempt
	for _, id := range a.next {
		if _, ok := a.promises[id]; !ok && a.joining(id) {
			return false
		}
	}
	return true
}

// majorityAlive reports whether a majority of members is alive.
func (c *Coordinator) majorityAlive(members []protocol.NodeID) bool {
	up := 0
	for _, id := range members {
		if c.alive(id) {
			up++
		}
	}
	return up >= protocol.Quorum(members)
}

// majority reports whether a majority of members promised.
func (c *Coordinator) majority(members []protocol.NodeID) bool {
	n := 0
	for _, id := range members {
		if _, ok := c.attempt.promises[id]; ok {
			n++
		}
	}
	return n >= protocol.Quorum(members)
}

// choose names the promiser with the most up-to-date log (highest last
// epoch, then last seq; ties to the lowest id) and asks to write the view.
func (c *Coordinator) choose() {
	a := c.attempt
	var best protocol.NodeID
	var bestLast protocol.Point
	for _, id := range a.next {
		last, ok := a.promises[id]
		if ok && (best == 0 || bestLast.Less(last)) {
			best, bestLast = id, last
		}
	}
	a.cas = true
	c.out.CAS = &CAS{View: protocol.View{Epoch: a.epoch, Leader: best, Members: a.next}, Rev: a.rev}
}

// publish multicasts the stored view to every node.
func (c *Coordinator) publish() {
	c.publishedAt = c.ticks
	c.out.Messages = append(c.out.Messages, c.viewMsg(protocol.Multicast))
}

// viewMsg is the stored view, addressed to a node or to Multicast.
func (c *Coordinator) viewMsg(to protocol.NodeID) protocol.Message {
	v := c.view
	v.Members = slices.Clone(v.Members)
	return protocol.Message{Type: protocol.MsgView, From: c.cfg.ID, To: to, Epoch: v.Epoch, View: &v}
}

// NodeInfo is what the coordinator knows of one node, for status replies.
type NodeInfo struct {
	ID      protocol.NodeID
	Alive   bool
	Member  bool
	Leading bool
	Leaving bool
	Last    protocol.Point
	Commit  uint64
	Applied uint64
}

// Nodes lists every node heard from and every member, by id.
func (c *Coordinator) Nodes() []NodeInfo {
	ids := slices.Clone(c.view.Members)
	for id := range c.nodes {
		if !slices.Contains(ids, id) {
			ids = append(ids, id)
		}
	}
	slices.Sort(ids)
	out := make([]NodeInfo, 0, len(ids))
	for _, id := range ids {
		ni := NodeInfo{ID: id, Alive: c.alive(id) && c.nodes[id] != nil, Member: c.view.IsMember(id)}
		if info := c.nodes[id]; info != nil {
			st := info.status
			ni.Leading, ni.Leaving, ni.Last, ni.Commit, ni.Applied = st.Leading, st.Leaving, st.Last, st.Commit, st.Applied
		}
		out = append(out, ni)
	}
	return out
}
