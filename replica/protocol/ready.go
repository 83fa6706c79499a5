package protocol

// Ready is what the node asks its driver to do, collected since the last call
// to Node.Ready. The driver handles the parts in this order:
//
//  1. Write: hand it to storage, which applies writes in the order they were
//     issued and, once a write is durable (fsync), calls Node.DiskDone with
//     its ID. The driver may keep several writes in flight.
//  2. Messages: send them now. None of them depends on Write being durable
//     (acks and promises are only produced by DiskDone).
//  3. Apply: apply these committed entries to the state, in order.
//  4. Replies and Reads: answer clients. A ReadState is served from the state
//     after step 3. A Reply (its entry committed, so durable on a majority)
//     may be sent before step 3, if step 3 is done before any read that
//     must see it is served.
//  5. Snapshot: if set, fetch a snapshot from the leader, install it, then
//     call Node.SnapshotInstalled.
type Ready struct {
	Write    *Write
	Messages []Message
	Apply    []Entry
	Replies  []Reply
	Reads    []ReadState
	Snapshot *SnapshotRequest
}

// Empty reports whether there is nothing to do.
func (rd Ready) Empty() bool {
	return rd.Write == nil && len(rd.Messages) == 0 && len(rd.Apply) == 0 &&
		len(rd.Replies) == 0 && len(rd.Reads) == 0 && rd.Snapshot == nil
}

// Write is one ordered, atomic-enough disk action: the driver does its parts
// in this order, then one fsync covers them all. Ready hands it over: the
// protocol keeps no reference to it or to its Entries' backing array, so
// the driver may carry it out on another goroutine.
type Write struct {
	ID uint64
	// State, if set, replaces the durable state (the promised epoch).
	State *HardState
	// Reset, if set, discards the whole log: it restarts after Reset (a
	// snapshot at that point was installed).
	Reset *Point
	// Entries are appended; when the first one's seq is at or below the
	// stored log's end, the stored log is first truncated to just before it.
	Entries []Entry
}

// HardState is the protocol state that must survive a crash besides the log.
type HardState struct {
	// Epoch is the highest epoch this node promised: it refuses every
	// message of an older epoch.
	Epoch uint64
}

// Reply answers Node.Propose: the entry's seq once it is committed (and
// durable locally: its entry is in the same Ready's Apply), or an error
// (ErrNotLeader, ErrDropped, ErrIndeterminate).
type Reply struct {
	ID  uint64
	Seq uint64
	Err error
}

// ReadState answers Node.Read: serve the read from the applied state now; it
// reflects every write committed before the read was asked (Seq is the read
// index), or Err is ErrNotLeader.
type ReadState struct {
	ID  uint64
	Seq uint64
	Err error
}

// SnapshotRequest asks the driver to fetch the leader's snapshot.
type SnapshotRequest struct {
	Leader NodeID
	Epoch  uint64
	// Seq is the leader's compaction point: the snapshot must be at or past it.
	Seq uint64
}

// Restart is a node's durable state at start: what storage recovered.
type Restart struct {
	State HardState
	// Start is where the stored log begins: the point covered by the
	// installed snapshot (zero for a fresh node).
	Start Point
	// Entries are the stored log entries after Start.
	Entries []Entry
	// Applied is the seq up to which the state machine (the tree) holds the
	// entries durably; Start.Seq <= Applied <= the last entry's seq.
	Applied uint64
}
