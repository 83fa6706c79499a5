package election

import (
	"slices"
	"testing"

	"memstore/replica/protocol"
)

func newTestCoordinator(t *testing.T, view protocol.View, rev uint64) *Coordinator {
	t.Helper()
	cfg := DefaultConfig(100)
	cfg.JitterTicks = 0
	c, err := New(cfg, view, rev)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func status(id protocol.NodeID, last protocol.Point) protocol.Message {
	return protocol.Message{Type: protocol.MsgStatus, From: id, To: protocol.Group, Last: last}
}

func prepares(rd Ready) map[protocol.NodeID]uint64 {
	out := map[protocol.NodeID]uint64{}
	for _, m := range rd.Messages {
		if m.Type == protocol.MsgPrepare {
			out[m.To] = m.Epoch
		}
	}
	return out
}

// TestElectionChoosesMostUpToDate: the leader is the promiser with the
// highest (last epoch, last seq), ties to the lowest id; duplicated and late
// promises change nothing; the view is written by CAS at the stored revision.
func TestElectionChoosesMostUpToDate(t *testing.T) {
	members := []protocol.NodeID{1, 2, 3, 4, 5}
	c := newTestCoordinator(t, protocol.View{Epoch: 3, Leader: 1, Members: members}, 7)
	for _, id := range members[1:] {
		c.Step(status(id, protocol.Point{Epoch: 3, Seq: 10}))
	}
	for c.attempt == nil {
		c.Tick()
		for _, id := range members[1:] {
			c.Step(status(id, protocol.Point{Epoch: 3, Seq: 10}))
		}
	}
	ps := prepares(c.Ready())
	if len(ps) != 5 || ps[2] != 4 {
		t.Fatalf("prepares %v, want epoch 4 to all 5 members", ps)
	}
	promise := func(id protocol.NodeID, last protocol.Point) {
		c.Step(protocol.Message{Type: protocol.MsgPromise, From: id, Epoch: 4, Last: last})
	}
	promise(4, protocol.Point{Epoch: 3, Seq: 12})
	promise(4, protocol.Point{Epoch: 3, Seq: 12}) // duplicate
	promise(2, protocol.Point{Epoch: 3, Seq: 12})
	if rd := c.Ready(); rd.CAS != nil {
		t.Fatalf("CAS after 2 of 5 promises: %+v", rd.CAS)
	}
	promise(3, protocol.Point{Epoch: 2, Seq: 40}) // longer, but older epoch
	rd := c.Ready()
	if rd.CAS == nil {
		t.Fatal("no CAS after a majority of promises")
	}
	want := protocol.View{Epoch: 4, Leader: 2, Members: members}
	if rd.CAS.Rev != 7 || rd.CAS.View.Epoch != want.Epoch || rd.CAS.View.Leader != want.Leader {
		t.Fatalf("CAS %+v, want %+v at rev 7", rd.CAS, want)
	}
	promise(5, protocol.Point{Epoch: 9, Seq: 99}) // late: the choice is made
	if rd := c.Ready(); rd.CAS != nil {
		t.Fatalf("late promise changed the outcome: %+v", rd.CAS)
	}
	// Another coordinator won the race: adopt its view, never go back.
	other := protocol.View{Epoch: 4, Leader: 5, Members: members}
	c.Stored(other, 8)
	if v, rev := c.View(); v.Leader != 5 || rev != 8 || c.attempt != nil {
		t.Fatalf("after a lost CAS: view %+v rev %d attempt %v", v, rev, c.attempt)
	}
	c.Stored(protocol.View{Epoch: 3, Leader: 1, Members: members}, 7)
	if v, _ := c.View(); v.Epoch != 4 {
		t.Fatalf("view went back to epoch %d", v.Epoch)
	}
}

// TestNoElectionWithoutMajority: with most members silent, no prepare is
// sent and no epoch is burnt.
func TestNoElectionWithoutMajority(t *testing.T) {
	c := newTestCoordinator(t, protocol.View{Epoch: 2, Leader: 1, Members: []protocol.NodeID{1, 2, 3}}, 1)
	for i := 0; i < 100; i++ {
		c.Step(status(3, protocol.Point{}))
		c.Tick()
		if ps := prepares(c.Ready()); len(ps) > 0 {
			t.Fatalf("tick %d: prepare %v with 1 of 3 members alive", i, ps)
		}
	}
}

// TestRemoveADeadMember: a member down for good, which cannot ask to leave,
// is taken out when the operator asks (Remove): prepare goes to the other
// members only and the view is written without it. A node that is no
// member is not asked for.
func TestRemoveADeadMember(t *testing.T) {
	c := newTestCoordinator(t, protocol.View{Epoch: 2, Leader: 1, Members: []protocol.NodeID{1, 2, 3}}, 1)
	beat := func(ticks int) map[protocol.NodeID]uint64 {
		var ps map[protocol.NodeID]uint64
		for i := 0; i < ticks && len(ps) == 0; i++ {
			c.Step(protocol.Message{Type: protocol.MsgStatus, From: 1, To: protocol.Group, Epoch: 2, Leading: true})
			c.Step(protocol.Message{Type: protocol.MsgStatus, From: 2, To: protocol.Group, Epoch: 2})
			c.Tick()
			ps = prepares(c.Ready())
		}
		return ps
	}
	if ps := beat(100); len(ps) > 0 { // node 3 is silent: it stays a member
		t.Fatalf("prepare %v while the leader leads", ps)
	}
	c.Remove(9)
	if ps := beat(20); len(ps) > 0 {
		t.Fatalf("prepare %v after removing a node that is no member", ps)
	}
	c.Remove(3)
	ps := beat(20)
	if len(ps) != 2 || ps[1] != 3 || ps[2] != 3 {
		t.Fatalf("prepares %v, want epoch 3 to members 1 and 2", ps)
	}
	for _, id := range []protocol.NodeID{1, 2} {
		c.Step(protocol.Message{Type: protocol.MsgPromise, From: id, Epoch: 3, Last: protocol.Point{Epoch: 2, Seq: 5}})
	}
	rd := c.Ready()
	if rd.CAS == nil || !slices.Equal(rd.CAS.View.Members, []protocol.NodeID{1, 2}) {
		t.Fatalf("CAS %+v, want members [1 2]", rd.CAS)
	}
}

// TestSilentNonMembersAreForgotten: a node out of the group and silent for
// forgetTicks failure timeouts drops out of Nodes (status); a silent member
// stays listed, down.
func TestSilentNonMembersAreForgotten(t *testing.T) {
	c := newTestCoordinator(t, protocol.View{Epoch: 2, Leader: 1, Members: []protocol.NodeID{1, 2, 3}}, 1)
	c.Step(status(4, protocol.Point{}))                 // a node that came and went, never admitted
	c.Step(status(3, protocol.Point{Epoch: 2, Seq: 7})) // a member that falls silent
	// The last heartbeat a node's status shows: a member is always
	// listed (it is in the view), so only its heartbeat tells whether the
	// coordinator forgot it.
	last := func(id protocol.NodeID) (protocol.Point, bool) {
		i := slices.IndexFunc(c.Nodes(), func(n NodeInfo) bool { return n.ID == id })
		if i < 0 {
			return protocol.Point{}, false
		}
		return c.Nodes()[i].Last, true
	}
	for i := 0; i < forgetTicks*c.cfg.FailureTicks-1; i++ {
		c.Tick()
	}
	if _, listed := last(4); !listed {
		t.Fatal("node 4 forgotten before forgetTicks")
	}
	c.Tick()
	if _, listed := last(4); listed {
		t.Fatal("node 4 still listed after forgetTicks")
	}
	if p, _ := last(3); p.Seq != 7 {
		t.Fatalf("member 3's last heartbeat (seq 7) was forgotten: status shows %+v", p)
	}
}

// TestNoRemovalWithoutOldMajority: taking a dead member out of [1 2] while
// the other is dead too needs promises from a majority of [1 2], which
// cannot come: no prepare is sent, no epoch burnt.
func TestNoRemovalWithoutOldMajority(t *testing.T) {
	c := newTestCoordinator(t, protocol.View{Epoch: 2, Leader: 1, Members: []protocol.NodeID{1, 2}}, 1)
	for i := 0; i < 100; i++ {
		if i == c.cfg.FailureTicks { // past the start, when every node counts as alive
			c.Remove(2)
		}
		c.Step(protocol.Message{Type: protocol.MsgStatus, From: 1, To: protocol.Group, Epoch: 2, Leading: true})
		c.Tick()
		if ps := prepares(c.Ready()); len(ps) > 0 {
			t.Fatalf("tick %d: prepare %v with 1 of the 2 old members alive", i, ps)
		}
	}
}

// TestJoinNeedsTheJoinersPromise: an attempt to admit a caught-up node
// asks that node first and the members only once it promised, so a view
// never admits a node without its promise (it may have stopped since its
// last heartbeat), and a joiner that never answers costs the members
// nothing: they are never asked to promise, and keep their leader. It is
// asked again once heard again; one that promises while leaving ends the
// attempt and is not asked again.
func TestJoinNeedsTheJoinersPromise(t *testing.T) {
	for _, joiner := range []string{"promises", "is silent", "is leaving"} {
		c := newTestCoordinator(t, protocol.View{Epoch: 2, Leader: 1, Members: []protocol.NodeID{1, 2, 3}}, 1)
		left := false // node 4 was asked to leave
		beat := func(ids ...protocol.NodeID) {
			c.Step(protocol.Message{Type: protocol.MsgStatus, From: 1, To: protocol.Group, Epoch: 2, Leading: true, Commit: 5})
			for _, id := range ids {
				c.Step(protocol.Message{Type: protocol.MsgStatus, From: id, To: protocol.Group, Epoch: 2, Last: protocol.Point{Epoch: 2, Seq: 5},
					Leaving: id == 4 && left})
			}
		}
		var ps map[protocol.NodeID]uint64
		for i := 0; i < 100 && len(ps) == 0; i++ {
			beat(2, 3, 4)
			c.Tick()
			ps = prepares(c.Ready())
		}
		if len(ps) != 1 || ps[4] == 0 {
			t.Fatalf("%s: prepares %v, want one to node 4 alone", joiner, ps)
		}
		epoch := ps[4]
		switch joiner {
		case "promises":
			c.Step(protocol.Message{Type: protocol.MsgPromise, From: 4, Epoch: epoch, Last: protocol.Point{Epoch: 2, Seq: 5}})
			if ps := prepares(c.Ready()); len(ps) != 3 || ps[1] != epoch || ps[2] != epoch || ps[3] != epoch {
				t.Fatalf("after node 4's promise: prepares %v, want epoch %d to 1-3", ps, epoch)
			}
			for _, id := range []protocol.NodeID{1, 2, 3} {
				c.Step(protocol.Message{Type: protocol.MsgPromise, From: id, Epoch: epoch, Last: protocol.Point{Epoch: 2, Seq: 5}})
			}
			if rd := c.Ready(); rd.CAS == nil || !slices.Equal(rd.CAS.View.Members, []protocol.NodeID{1, 2, 3, 4}) {
				t.Fatalf("CAS %+v, want members [1 2 3 4]", rd.CAS)
			}
			continue
		case "is leaving":
			left = true
			c.Step(protocol.Message{Type: protocol.MsgPromise, From: 4, Epoch: epoch, Last: protocol.Point{Epoch: 2, Seq: 5}, Leaving: true})
			if rd := c.Ready(); rd.CAS != nil || len(prepares(rd)) > 0 || c.attempt != nil {
				t.Fatalf("a leaving joiner: CAS %+v, prepares %v, attempt %+v", rd.CAS, prepares(rd), c.attempt)
			}
		}
		for i := 0; i < 2*c.cfg.ElectionTicks; i++ { // node 4 is silent: the members are never asked
			beat(2, 3)
			c.Tick()
			rd := c.Ready()
			if ps := prepares(rd); ps[1]+ps[2]+ps[3] != 0 || rd.CAS != nil {
				t.Fatalf("%s, tick %d: prepares %v, CAS %+v", joiner, i, ps, rd.CAS)
			}
		}
		if c.attempt != nil {
			t.Fatalf("%s: the attempt was not given up", joiner)
		}
		for i := 0; i < 2*c.cfg.ElectionTicks; i++ { // not asked again while unheard
			beat(2, 3)
			c.Tick()
			if ps := prepares(c.Ready()); ps[4] != 0 {
				t.Fatalf("%s: prepare %v to node 4 again before it was heard", joiner, ps)
			}
		}
		asked := false
		for i := 0; i < 4*c.cfg.ElectionTicks && !asked; i++ { // heard again: asked again, unless it is leaving
			beat(2, 3, 4)
			c.Tick()
			asked = prepares(c.Ready())[4] != 0
		}
		if asked != (joiner == "is silent") {
			t.Fatalf("%s, then heard again: asked again %v", joiner, asked)
		}
	}
}

// TestNewNodeLearnsTheView: the first heartbeat of a node outside the view
// is answered with the view, addressed to it, so it can catch up from the
// leader at once; its later heartbeats, and a member's, are not.
func TestNewNodeLearnsTheView(t *testing.T) {
	members := []protocol.NodeID{1, 2, 3}
	c := newTestCoordinator(t, protocol.View{Epoch: 3, Leader: 1, Members: members}, 7)
	c.Ready()
	views := func() []protocol.Message {
		var out []protocol.Message
		for _, m := range c.Ready().Messages {
			if m.Type == protocol.MsgView {
				out = append(out, m)
			}
		}
		return out
	}
	c.Step(status(2, protocol.Point{Epoch: 3, Seq: 10}))
	if vs := views(); len(vs) != 0 {
		t.Fatalf("a member's heartbeat was answered with %+v", vs)
	}
	c.Step(status(4, protocol.Point{}))
	vs := views()
	if len(vs) != 1 || vs[0].To != 4 || vs[0].View == nil || vs[0].View.Leader != 1 || vs[0].View.Epoch != 3 {
		t.Fatalf("a new node's first heartbeat was answered with %+v, want view 3 led by 1, to node 4", vs)
	}
	c.Step(status(4, protocol.Point{}))
	if vs := views(); len(vs) != 0 {
		t.Fatalf("a known node's heartbeat was answered with %+v", vs)
	}
}
