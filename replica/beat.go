package replica

import (
	"sync"
	"time"
)

// busyBeat is how long a busy loop's heartbeat is kept going (beat): a
// loop stuck longer is down for the group, which elects without it.
const busyBeat = 5 * time.Second

// beat keeps the heartbeat of a busy loop going. The loop sends the node's
// status on each tick, but a turn that outlasts the group's failure timeout
// (1 s) made the group elect anew with no failure: a batch of 1,000 new
// paths on a slow disk held each node's loop about a second, and a 3-node
// cluster loading W5's versions changed leader 9 times in 19 s (issue 7).
// While a turn lasts more than a tick and a half, the node's last status
// is sent again on each tick, for up to busyBeat. It is still true: only
// the loop changes what a status says.
type beat struct {
	mu     sync.Mutex
	status []byte    // the loop's last status message, encoded
	sentAt time.Time // when a status last went out
}

// publishStatus sends a status the loop made (to the group) and keeps it
// to send again. The lock orders it with a resend: a stale status never
// follows a newer one.
func (n *Node) publishStatus(subject string, b []byte) error {
	n.beat.mu.Lock()
	defer n.beat.mu.Unlock()
	n.beat.status, n.beat.sentAt = b, time.Now()
	return n.nc.Publish(subject, b)
}

// beatLoop sends the last status again while the loop is busy; it ends
// with the node or its loop.
func (n *Node) beatLoop() {
	defer n.wg.Done()
	t := time.NewTicker(n.cfg.Tick)
	defer t.Stop()
	for {
		select {
		case <-n.ctx.Done():
			return
		case <-n.done:
			return
		case now := <-t.C:
			n.beat.mu.Lock()
			busy := now.Sub(time.Unix(0, n.turned.Load()))
			if n.beat.status != nil && now.Sub(n.beat.sentAt) > n.cfg.Tick*3/2 && busy < busyBeat {
				if err := n.nc.Publish(n.sub.Group(), n.beat.status); err == nil {
					n.beat.sentAt = now
					n.log.WithField("busy", busy.Round(time.Millisecond)).Debug("loop busy: its last status sent again")
				}
			}
			n.beat.mu.Unlock()
		}
	}
}
