package protocol

import "fmt"

// Config tunes a Node. Time is counted in ticks: the driver calls Node.Tick
// at a fixed interval (100 ms in memstore).
type Config struct {
	// ID is this node's id; not zero, not a reserved address.
	ID NodeID
	// HeartbeatTicks is the number of ticks between two status heartbeats to
	// the group and between two leader heartbeats to the followers. Default 1.
	HeartbeatTicks int
	// RetryTicks is the number of ticks after which an unanswered catch-up
	// request or read-index round is sent again. Default 5.
	RetryTicks int
	// QuorumTicks: a leader that has not heard from a majority of members
	// within this many ticks refuses new writes with ErrNoQuorum rather
	// than queue them. Default 10.
	QuorumTicks int
	// MaxBatch is the most entries in one append message: a write batch or a
	// catch-up chunk. Default 512.
	MaxBatch int
	// MaxBytes bounds the entry data of one append message (a message
	// always carries at least one entry): messages must fit the transport's
	// largest payload. Default 512 KiB.
	MaxBytes int
	// MaxInflight is the most batches a leader keeps appended but not yet
	// committed; further proposals wait. Default 8.
	MaxInflight int
	// TestingKnobs break rules on purpose, so tests can prove that the
	// simulator's checks catch a broken protocol. Never set them otherwise.
	TestingKnobs TestingKnobs
}

// TestingKnobs are deliberate rule breaks for tests. The zero value is the
// correct protocol.
type TestingKnobs struct {
	// CountOldEpochAcks lets a leader commit an entry of an older epoch by
	// counting acks for it (the Raft "figure 8" bug).
	CountOldEpochAcks bool
	// AckBeforeDurable makes followers ack entries before they are fsynced.
	AckBeforeDurable bool
	// SkipPrevCheck makes followers accept a batch without checking that
	// they hold (prev_epoch, prev_seq).
	SkipPrevCheck bool
}

// DefaultConfig returns the defaults for node id.
func DefaultConfig(id NodeID) Config {
	return Config{ID: id, HeartbeatTicks: 1, RetryTicks: 5, QuorumTicks: 10, MaxBatch: 512, MaxBytes: 512 << 10, MaxInflight: 8}
}

func (c Config) validate() error {
	switch {
	case c.ID == 0 || c.ID >= Group:
		return fmt.Errorf("%w: id %d", errConfig, c.ID)
	case c.HeartbeatTicks < 1, c.RetryTicks < 1, c.QuorumTicks < 1, c.MaxBatch < 1, c.MaxBytes < 1, c.MaxInflight < 1:
		return fmt.Errorf("%w: every tick count and limit must be at least 1: %+v", errConfig, c)
	}
	return nil
}
