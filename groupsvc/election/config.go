package election

import (
	"errors"
	"fmt"

	"memstore/replica/protocol"
)

// Config tunes a Coordinator. Time is counted in ticks of the driver's clock
// (100 ms in memstore).
type Config struct {
	// ID is this coordinator's address; it must not be a node's id.
	ID protocol.NodeID
	// FailureTicks: a node not heard from for this many ticks is down.
	// Default 10.
	FailureTicks int
	// RetryTicks: prepare is sent again to silent members after this many
	// ticks. Default 3.
	RetryTicks int
	// ElectionTicks: an election attempt that has not written a view after
	// this many ticks is given up and retried with a higher epoch; also the
	// time a new leader has to report that it leads. Default 20.
	ElectionTicks int
	// PublishTicks: the view is published again every this many ticks, so a
	// node that missed it learns it. Default 10.
	PublishTicks int
	// Bootstrap is the number of nodes heard from before the first view is
	// formed. Default 3.
	Bootstrap int
	// JoinLag: a node that is not a member becomes one once its durable log
	// is within this many entries of the leader's commit. Default 64.
	JoinLag uint64
	// Seed seeds the jitter before an election starts (0 to JitterTicks).
	Seed int64
	// JitterTicks is the most ticks an election start is delayed, so that
	// racing coordinators rarely collide. Default 2.
	JitterTicks int
	// TestingKnobs break rules on purpose for tests. Never set them otherwise.
	TestingKnobs TestingKnobs
}

// TestingKnobs are deliberate rule breaks for tests; the zero value is the
// correct protocol.
type TestingKnobs struct {
	// SkipPrepare names a leader from heartbeats alone, without the prepare
	// round.
	SkipPrepare bool
	// FirstPromise names a leader after the first promise, not a majority.
	FirstPromise bool
}

// DefaultConfig returns the defaults for coordinator id.
func DefaultConfig(id protocol.NodeID) Config {
	return Config{ID: id, FailureTicks: 10, RetryTicks: 3, ElectionTicks: 20,
		PublishTicks: 10, Bootstrap: 3, JoinLag: 64, JitterTicks: 2}
}

var errConfig = errors.New("election: invalid config")

func (c Config) validate() error {
	switch {
	case c.ID == 0 || c.ID >= protocol.Group:
		return fmt.Errorf("%w: id %d", errConfig, c.ID)
	case c.FailureTicks < 1, c.RetryTicks < 1, c.ElectionTicks < 1, c.PublishTicks < 1, c.Bootstrap < 1, c.JitterTicks < 0:
		return fmt.Errorf("%w: %+v", errConfig, c)
	}
	return nil
}
