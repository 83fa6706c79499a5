package protocol

import "errors"

// Errors a Reply or ReadState carries. They say whether the write may have
// happened, so the caller knows whether a retry is safe.
var (
	// ErrNotLeader means this node does not lead; nothing was written, a
	// retry at the leader is safe.
	ErrNotLeader = errors.New("protocol: not leader")
	// ErrDropped means the entry was discarded by a newer leader: it was not
	// committed and never will be; a retry is safe.
	ErrDropped = errors.New("protocol: entry dropped by a newer leader")
	// ErrNoQuorum means the leader has not heard from a majority of the
	// members lately, so it did not accept the write: nothing was written.
	ErrNoQuorum = errors.New("protocol: leader cannot reach a majority")
	// ErrIndeterminate means this node lost track of the entry (a snapshot
	// replaced its log): it may or may not have been committed.
	ErrIndeterminate = errors.New("protocol: outcome unknown")
)

// errConfig is returned by NewNode for an invalid Config.
var errConfig = errors.New("protocol: invalid config")
