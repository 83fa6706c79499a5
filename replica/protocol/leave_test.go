package protocol

import "testing"

// TestJoinerLeaves: a node not yet a member that is asked to leave is out
// at once, unless it promised the epoch of a view it has not seen (not as
// leaving): that view may admit it, so it stays until a view of that epoch
// or later comes. A promise made after the ask says leaving, which keeps
// it out of any view, and the node is out once it said so.
func TestJoinerLeaves(t *testing.T) {
	view := func(epoch uint64, members ...NodeID) Message {
		return Message{Type: MsgView, From: 100, To: Multicast, View: &View{Epoch: epoch, Leader: 1, Members: members}}
	}
	promise := func(n *Node) Message { // carry out the write, find the promise
		t.Helper()
		rd := n.Ready()
		if rd.Write != nil {
			n.DiskDone(rd.Write.ID)
		}
		for _, m := range append(rd.Messages, n.Ready().Messages...) {
			if m.Type == MsgPromise {
				return m
			}
		}
		t.Fatal("no promise")
		return Message{}
	}
	newJoiner := func() *Node {
		n, err := NewNode(DefaultConfig(4), Restart{})
		if err != nil {
			t.Fatal(err)
		}
		n.Step(view(2, 1, 2, 3))
		n.Ready()
		return n
	}

	n := newJoiner()
	n.Leave()
	if !n.Left() {
		t.Fatal("a joiner that promised nothing is not out at once")
	}

	n = newJoiner()
	n.Step(Message{Type: MsgPrepare, From: 100, To: 4, Epoch: 3})
	if p := promise(n); p.Leaving {
		t.Fatal("promised as leaving before it was asked")
	}
	n.Leave()
	if n.Left() {
		t.Fatal("out while a view of the epoch it promised may admit it")
	}
	n.Step(view(3, 1, 2, 3, 4))
	if n.Left() {
		t.Fatal("out while a member: it must be taken out by a view change")
	}
	n.Step(view(4, 1, 2, 3))
	if !n.Left() {
		t.Fatal("not out in a view without it")
	}

	n = newJoiner()
	n.Leave()
	n.Step(Message{Type: MsgPrepare, From: 100, To: 4, Epoch: 3})
	if p := promise(n); !p.Leaving {
		t.Fatal("a promise after the ask to leave does not say so")
	}
	if !n.Left() {
		t.Fatal("not out once its promise said it is leaving")
	}
}

// TestOnlyAMembersRejectDeposes: a node joining promises the epoch of the
// view that would admit it before the members are asked, and refuses the
// leader's appends from then on; that refusal must not depose the leader,
// whose members have promised nothing newer. A member's does.
func TestOnlyAMembersRejectDeposes(t *testing.T) {
	n, err := NewNode(DefaultConfig(1), Restart{})
	if err != nil {
		t.Fatal(err)
	}
	n.Step(Message{Type: MsgView, From: 100, To: Multicast, View: &View{Epoch: 1, Leader: 1, Members: []NodeID{1, 2, 3}}})
	if rd := n.Ready(); rd.Write != nil {
		n.DiskDone(rd.Write.ID)
	}
	if !n.Status().Leading {
		t.Fatal("node 1 does not lead the view that names it")
	}
	n.Step(Message{Type: MsgReject, From: 4, To: 1, Epoch: 2})
	if !n.Status().Leading {
		t.Fatal("a joining node's refusal deposed the leader")
	}
	n.Step(Message{Type: MsgReject, From: 2, To: 1, Epoch: 2})
	if n.Status().Leading {
		t.Fatal("a member's refusal did not depose the leader")
	}
}
