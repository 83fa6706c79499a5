package protocol

import "math"

// NodeID names a replica or a coordinator. Zero means "none".
type NodeID uint64

// Reserved addresses for Message.To.
const (
	// Multicast addresses every replica at once: the one subject all nodes
	// read (initiate_multicast).
	Multicast NodeID = math.MaxUint64
	// Group addresses the group service: every coordinator reads it.
	Group NodeID = math.MaxUint64 - 1
)

// Point names one position of the log: the entry (Epoch, Seq).
// The zero Point is the empty log's start.
type Point struct {
	Epoch uint64 `json:"epoch"`
	Seq   uint64 `json:"seq"`
}

// Less orders points by epoch, then seq: the "more up to date log" order
// used by elections.
func (p Point) Less(q Point) bool {
	if p.Epoch != q.Epoch {
		return p.Epoch < q.Epoch
	}
	return p.Seq < q.Seq
}

// Entry is one position of the replicated log. Data is opaque to the
// protocol; nil Data is the no-op a leader appends at the start of its epoch.
type Entry struct {
	Epoch uint64 `json:"epoch"`
	Seq   uint64 `json:"seq"`
	Data  []byte `json:"data,omitempty"`
}

// View is the group's current configuration: a leader's term (Epoch), the
// leader and the voting members. Views are written by compare-and-set, so
// there is at most one view per epoch.
type View struct {
	Epoch   uint64   `json:"epoch"`
	Leader  NodeID   `json:"leader"`
	Members []NodeID `json:"members"`
}

// IsMember reports whether id votes in the view.
func (v View) IsMember(id NodeID) bool {
	for _, m := range v.Members {
		if m == id {
			return true
		}
	}
	return false
}

// Quorum is how many of members make a majority: elections, commits and
// read checks all count to it.
func Quorum(members []NodeID) int { return len(members)/2 + 1 }
