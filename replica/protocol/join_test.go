package protocol

import "testing"

// TestNewNodeAsksAtOnce: a new node announces itself to the group in its
// first Ready, not a tick later; given a view it is not a member of, it
// asks the leader for entries at once; a follower that is a member waits
// for the leader's appends. If the leader drops that first ask (it did not
// lead yet), the leader's next heartbeat makes the node ask again at once.
// Once a snapshot is in, the node tells the group at once.
func TestNewNodeAsksAtOnce(t *testing.T) {
	view := Message{Type: MsgView, From: 100, To: 4, View: &View{Epoch: 2, Leader: 1, Members: []NodeID{1, 2, 3}}}

	n, err := NewNode(DefaultConfig(4), Restart{})
	if err != nil {
		t.Fatal(err)
	}
	rd := n.Ready()
	if len(rd.Messages) != 1 || rd.Messages[0].Type != MsgStatus || rd.Messages[0].To != Group {
		t.Fatalf("first Ready sends %+v, want one status to the group", rd.Messages)
	}
	n.Step(view)
	if cs := catchUps(n.Ready()); len(cs) != 1 || cs[0].To != 1 || cs[0].Epoch != 2 {
		t.Fatalf("after the view the new node sent catch-ups %+v, want one to leader 1 in epoch 2", cs)
	}
	n.Step(Message{Type: MsgAppend, From: 1, To: Multicast, Epoch: 2, Prev: Point{Epoch: 2, Seq: 10},
		Commit: 10, Last: Point{Epoch: 2, Seq: 10}})
	if cs := catchUps(n.Ready()); len(cs) != 1 || cs[0].To != 1 {
		t.Fatalf("after the leader's heartbeat the new node sent catch-ups %+v, want one to leader 1", cs)
	}

	n.Step(Message{Type: MsgSnapshotNeeded, From: 1, To: 4, Epoch: 2, Seq: 10})
	if rd := n.Ready(); rd.Snapshot == nil {
		t.Fatal("no snapshot fetch after the leader said one is needed")
	}
	n.SnapshotDone(Point{Epoch: 2, Seq: 10}, nil)
	var told bool
	for _, m := range n.Ready().Messages {
		told = told || m.Type == MsgStatus && m.Applied == 10
	}
	if !told {
		t.Fatal("the node did not tell the group at once that it holds the snapshot")
	}

	m, err := NewNode(DefaultConfig(2), Restart{})
	if err != nil {
		t.Fatal(err)
	}
	m.Ready()
	m.Step(view)
	if cs := catchUps(m.Ready()); len(cs) != 0 {
		t.Fatalf("a member follower sent catch-ups %+v on the view", cs)
	}
}

// TestNewLeaderTellsItsNoOpCommitted: once a new leader's no-op commits,
// it tells the followers at once, not at its next heartbeat: a deposed
// leader answers the puts it held only when it learns they committed.
func TestNewLeaderTellsItsNoOpCommitted(t *testing.T) {
	n, err := NewNode(DefaultConfig(1), Restart{})
	if err != nil {
		t.Fatal(err)
	}
	n.Ready()
	n.Step(Message{Type: MsgView, From: 100, To: Multicast, View: &View{Epoch: 2, Leader: 1, Members: []NodeID{1, 2, 3}}})
	rd := n.Ready()
	if rd.Write == nil || len(rd.Write.Entries) != 1 {
		t.Fatalf("the new leader wrote %+v, want its no-op", rd.Write)
	}
	noop := rd.Write.Entries[0].Seq
	n.DiskDone(rd.Write.ID)
	n.Ready()
	n.Step(Message{Type: MsgAck, From: 2, To: 1, Epoch: 2, Seq: noop})
	var told bool
	for _, m := range n.Ready().Messages {
		told = told || m.Type == MsgAppend && m.To == Multicast && m.Commit >= noop
	}
	if st := n.Status(); st.Commit != noop || !told {
		t.Fatalf("commit %d (want %d), followers told at once: %v", st.Commit, noop, told)
	}
}

// TestFollowerAsksForCommit: a follower with a reader waiting for a seq
// above the commit it knows asks its leader at once (a catch-up, which
// the leader answers with its commit), one ask at a time until the
// leader's next append; not for a seq it knows committed, nor as leader.
func TestFollowerAsksForCommit(t *testing.T) {
	n, err := NewNode(DefaultConfig(2), Restart{})
	if err != nil {
		t.Fatal(err)
	}
	n.Ready()
	n.Step(Message{Type: MsgView, From: 100, To: Multicast, View: &View{Epoch: 2, Leader: 1, Members: []NodeID{1, 2, 3}}})
	n.Ready()
	n.Step(Message{Type: MsgAppend, From: 1, To: Multicast, Epoch: 2, Entries: []Entry{{Epoch: 2, Seq: 1}, {Epoch: 2, Seq: 2}},
		Commit: 1, Last: Point{Epoch: 2, Seq: 2}})
	n.Ready()
	n.AskCommit(1)
	if cs := catchUps(n.Ready()); len(cs) != 0 {
		t.Fatalf("asked for seq 1, known committed: %+v", cs)
	}
	n.AskCommit(2)
	cs := catchUps(n.Ready())
	if len(cs) != 1 || cs[0].To != 1 || cs[0].Last.Seq != 2 {
		t.Fatalf("asked for seq 2: %+v, want one catch-up to the leader from seq 2", cs)
	}
	n.AskCommit(3)
	if cs := catchUps(n.Ready()); len(cs) != 0 {
		t.Fatalf("asked again before the leader answered: %+v", cs)
	}
	n.Step(Message{Type: MsgAppend, From: 1, To: 2, Epoch: 2, Prev: Point{Epoch: 2, Seq: 2}, Commit: 2, Last: Point{Epoch: 2, Seq: 2}})
	n.Ready()
	if st := n.Status(); st.Commit != 2 {
		t.Fatalf("the leader's answer left commit at %d, want 2", st.Commit)
	}
	n.AskCommit(3)
	if cs := catchUps(n.Ready()); len(cs) != 1 {
		t.Fatalf("after the leader's answer, asked for seq 3: %+v, want one catch-up", cs)
	}

	l, err := NewNode(DefaultConfig(1), Restart{})
	if err != nil {
		t.Fatal(err)
	}
	l.Ready()
	l.Step(Message{Type: MsgView, From: 100, To: Multicast, View: &View{Epoch: 2, Leader: 1, Members: []NodeID{1, 2, 3}}})
	l.Ready()
	l.AskCommit(5)
	if cs := catchUps(l.Ready()); len(cs) != 0 {
		t.Fatalf("a leader asked: %+v", cs)
	}
}

// catchUps are the catch-up requests of a Ready.
func catchUps(rd Ready) []Message {
	var out []Message
	for _, m := range rd.Messages {
		if m.Type == MsgCatchUp {
			out = append(out, m)
		}
	}
	return out
}
