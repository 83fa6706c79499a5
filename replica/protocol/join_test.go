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
// the leader answers with an append carrying its commit). One ask is out
// at a time: a multicast does not answer it, the leader's append to the
// follower does; an ask unanswered for a tick goes again, an answered one
// does not (the leader's appends tell the rest); none for a seq it knows
// committed, nor as leader.
func TestFollowerAsksForCommit(t *testing.T) {
	n, err := NewNode(DefaultConfig(2), Restart{})
	if err != nil {
		t.Fatal(err)
	}
	asks := func(want int, what string) {
		t.Helper()
		if cs := catchUps(n.Ready()); len(cs) != want || want == 1 && cs[0].To != 1 {
			t.Fatalf("%s: asks %+v, want %d to the leader", what, cs, want)
		}
	}
	n.Ready()
	n.Step(Message{Type: MsgView, From: 100, To: Multicast, View: &View{Epoch: 2, Leader: 1, Members: []NodeID{1, 2, 3}}})
	n.Ready()
	n.Step(Message{Type: MsgAppend, From: 1, To: Multicast, Epoch: 2, Entries: []Entry{{Epoch: 2, Seq: 1}, {Epoch: 2, Seq: 2}},
		Commit: 1, Last: Point{Epoch: 2, Seq: 2}})
	n.Ready()
	n.AskCommit(1)
	asks(0, "seq 1, known committed")
	n.AskCommit(2)
	asks(1, "seq 2")
	n.AskCommit(3)
	asks(0, "seq 3 while an ask is out")
	n.Step(Message{Type: MsgAppend, From: 1, To: Multicast, Epoch: 2, Prev: Point{Epoch: 2, Seq: 2}, Entries: []Entry{{Epoch: 2, Seq: 3}},
		Commit: 1, Last: Point{Epoch: 2, Seq: 3}})
	asks(0, "after a multicast, which does not answer the ask")
	n.Tick()
	asks(1, "a tick later, unanswered")
	n.Step(Message{Type: MsgAppend, From: 1, To: 2, Epoch: 2, Prev: Point{Epoch: 2, Seq: 3}, Commit: 2, Last: Point{Epoch: 2, Seq: 3}})
	n.Tick()
	asks(0, "answered with commit 2, below seq 3: the leader's appends tell the rest")
	n.Step(Message{Type: MsgAppend, From: 1, To: Multicast, Epoch: 2, Prev: Point{Epoch: 2, Seq: 3}, Commit: 3, Last: Point{Epoch: 2, Seq: 3}})
	if st := n.Status(); st.Commit != 3 {
		t.Fatalf("commit %d after the appends, want 3", st.Commit)
	}
	n.AskCommit(4)
	asks(1, "seq 4")
	sent := 1
	for seq := uint64(5); seq < 5+2*maxAsks; seq++ { // answered each time, still at most maxAsks a tick
		n.Step(Message{Type: MsgAppend, From: 1, To: 2, Epoch: 2, Prev: Point{Epoch: 2, Seq: 3}, Commit: 3, Last: Point{Epoch: 2, Seq: 3}})
		n.AskCommit(seq)
		sent += len(catchUps(n.Ready()))
	}
	if sent != maxAsks {
		t.Fatalf("%d asks in a tick, want %d", sent, maxAsks)
	}
	n.Tick()
	n.AskCommit(30)
	asks(1, "the next tick")

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

// TestStaleSnapshotNeededIgnored: a snapshot_needed that comes after the
// follower's log came to match the leader's past the compacted point (an
// append repaired it meanwhile) starts no snapshot; one for a follower
// that is behind it does.
func TestStaleSnapshotNeededIgnored(t *testing.T) {
	n, err := NewNode(DefaultConfig(2), Restart{})
	if err != nil {
		t.Fatal(err)
	}
	n.Ready()
	n.Step(Message{Type: MsgView, From: 100, To: Multicast, View: &View{Epoch: 2, Leader: 1, Members: []NodeID{1, 2, 3}}})
	n.Ready()
	n.Step(Message{Type: MsgAppend, From: 1, To: Multicast, Epoch: 2, Entries: []Entry{{Epoch: 2, Seq: 1}, {Epoch: 2, Seq: 2}, {Epoch: 2, Seq: 3}},
		Commit: 1, Last: Point{Epoch: 2, Seq: 3}})
	n.Ready()
	n.Step(Message{Type: MsgSnapshotNeeded, From: 1, To: 2, Epoch: 2, Seq: 3})
	if rd := n.Ready(); rd.Snapshot != nil {
		t.Fatalf("a follower matching the leader up to 3 fetches a snapshot from 3: %+v", rd.Snapshot)
	}
	n.Step(Message{Type: MsgSnapshotNeeded, From: 1, To: 2, Epoch: 2, Seq: 8})
	if rd := n.Ready(); rd.Snapshot == nil || rd.Snapshot.Seq != 8 {
		t.Fatalf("a follower behind the leader's compacted point fetches %+v, want a snapshot from 8", rd.Snapshot)
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
