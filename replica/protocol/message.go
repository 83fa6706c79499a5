package protocol

import "fmt"

// MsgType says what a Message is.
type MsgType uint8

// Message types. The comment of each names the sender, the receiver and the
// fields it uses.
const (
	_ MsgType = iota
	// MsgPrepare (coordinator → member): promise to refuse every epoch below
	// Epoch. Fields: Epoch.
	MsgPrepare
	// MsgPromise (node → coordinator): the promise is durable. Fields: Epoch,
	// Last (the node's durable log end), Leaving (asked to leave: a node
	// not yet a member is then not admitted).
	MsgPromise
	// MsgReject (node → coordinator or leader): the sender's epoch is older
	// than the node's promise. Fields: Epoch (the node's promise).
	MsgReject
	// MsgView (coordinator → Multicast): the current view. Fields: View.
	MsgView
	// MsgAppend (leader → Multicast, or → one node for catch-up): entries
	// following Prev. With no entries and Prev = the leader's last entry it is
	// the leader's heartbeat. Fields: Epoch, Prev, Entries, Commit, Last (the
	// leader's log end).
	MsgAppend
	// MsgAck (follower → leader): the follower holds the leader's log durably
	// up to Seq. Fields: Epoch, Seq.
	MsgAck
	// MsgCatchUp (node → leader): send me entries after my log end
	// (get_master_copy_from_leader), or, if you do not hold my log end, after
	// Commit (the highest seq I know matches yours). Fields: Epoch, Last,
	// Commit.
	MsgCatchUp
	// MsgSnapshotNeeded (leader → node): the entries asked for are compacted
	// away; fetch a snapshot. Fields: Epoch, Seq (the leader's compaction point).
	MsgSnapshotNeeded
	// MsgReadPing (leader → Multicast): confirm I still lead, read-index
	// round Seq. Fields: Epoch, Seq.
	MsgReadPing
	// MsgReadAck (follower → leader): I follow you in Epoch, round Seq.
	MsgReadAck
	// MsgStatus (node → Group): the node's heartbeat. Fields: Epoch (the
	// node's promise), Last (durable log end), Commit, Applied, Leading.
	MsgStatus
	// MsgReadCheck (router → Multicast, as a batch of linearizable reads
	// leaves for the leader): confirm to your leader that you still follow
	// it in Epoch, for check Seq (a random token, not 0).
	MsgReadCheck
	// MsgCheckAck (follower → leader): I follow you in Epoch, and I got
	// read check Seq.
	MsgCheckAck
)

var msgNames = [...]string{
	MsgPrepare: "prepare", MsgPromise: "promise", MsgReject: "reject",
	MsgView: "view", MsgAppend: "append", MsgAck: "ack", MsgCatchUp: "catchup",
	MsgSnapshotNeeded: "snapshot_needed", MsgReadPing: "read_ping",
	MsgReadAck: "read_ack", MsgStatus: "status", MsgReadCheck: "read_check",
	MsgCheckAck: "check_ack",
}

func (t MsgType) String() string {
	if int(t) < len(msgNames) && msgNames[t] != "" {
		return msgNames[t]
	}
	return fmt.Sprintf("msg(%d)", uint8(t))
}

// Message is everything the protocol sends. One flat struct, as in
// etcd-io/raft: each type uses the fields its comment names.
type Message struct {
	Type    MsgType `json:"type"`
	From    NodeID  `json:"from"`
	To      NodeID  `json:"to"`
	Epoch   uint64  `json:"epoch,omitempty"`
	Prev    Point   `json:"prev"`
	Last    Point   `json:"last"`
	Entries []Entry `json:"entries,omitempty"`
	Commit  uint64  `json:"commit,omitempty"`
	Seq     uint64  `json:"seq,omitempty"`
	Applied uint64  `json:"applied,omitempty"`
	Leading bool    `json:"leading,omitempty"`
	Leaving bool    `json:"leaving,omitempty"`
	View    *View   `json:"view,omitempty"`
}

func (m Message) String() string {
	return fmt.Sprintf("%s %d→%d e%d prev=%v last=%v n=%d commit=%d seq=%d",
		m.Type, m.From, m.To, m.Epoch, m.Prev, m.Last, len(m.Entries), m.Commit, m.Seq)
}
