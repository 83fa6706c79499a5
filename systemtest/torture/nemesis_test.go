package torture

import (
	"context"
	"fmt"
	"math/rand"
	"strings"
	"time"
)

// Fault kinds, in the order of the summary line.
var kinds = []string{"kill", "pause", "partition", "middleware", "powerloss"}

// nemesis injects one fault at a time, holds it, heals it, and waits for
// the cluster to be healthy again.
type nemesis struct {
	h      *harness
	rng    *rand.Rand
	counts map[string]int
	logf   func(format string, args ...any)
	epoch  uint64 // the view's epoch after the last heal: it never goes back
	// majority counts kills of a majority, held past the clients' timeout.
	majority int
}

// fault is what inject did and how to undo it; it is held at least hold.
type fault struct {
	what string
	heal func()
	hold time.Duration
}

// pick returns the leader (or any node if none is known) and k-1 others.
func (n *nemesis) pick(k int, withLeader bool) []int {
	ids := n.rng.Perm(nodes)
	for i := range ids {
		ids[i]++
	}
	if l := n.h.leader(); l != 0 {
		for i, id := range ids {
			if id == l {
				ids[0], ids[i] = ids[i], ids[0]
			}
		}
		if !withLeader {
			ids = ids[1:]
		}
	}
	return ids[:k]
}

func (n *nemesis) inject(kind string) fault {
	h := n.h
	switch kind {
	case "kill":
		var ids []int
		what := ""
		var hold time.Duration
		switch n.counts[kind] % 5 { // every variant in each 5 kills
		case 0:
			ids, what = n.pick(1, true), "leader"
		case 1:
			ids, what = n.pick(1, false), "follower"
		case 2:
			ids, what = n.pick(2, false), "two followers"
		case 3:
			ids, what = n.pick(2, true), "leader and a follower"
		default: // held past twice the clients' 3 s timeout: writes sent while it lasts answer unavailable
			ids, what, hold = n.pick(3, true), "a majority (past the promise: writes must answer unavailable)", 8*time.Second
			n.majority++
		}
		for _, id := range ids {
			h.killNode(id)
		}
		return fault{fmt.Sprintf("kill -9 %s %v", what, ids), func() {
			for _, id := range ids {
				h.startNode(id)
			}
		}, hold}
	case "pause":
		ids, what := n.pick(1, true), "leader"
		if n.rng.Intn(3) == 0 {
			ids, what = n.pick(1, false), "follower"
		}
		h.pause(ids[0], true)
		return fault{what: fmt.Sprintf("SIGSTOP %s %d", what, ids[0]), heal: func() { h.pause(ids[0], false) }}
	case "partition":
		withLeader := n.rng.Intn(3) > 0
		id := n.pick(1, withLeader)[0]
		px := h.proxies[id]
		var what string
		switch n.rng.Intn(4) {
		case 0:
			px.Stop()
			what = "cut"
		case 1:
			for _, stream := range []string{"upstream", "downstream"} {
				n.toxic(id, fmt.Sprintf(`{"name":"lat_%s","type":"latency","stream":%q,"attributes":{"latency":150,"jitter":100}}`, stream, stream))
			}
			what = "latency 150±100 ms each way on"
		case 2:
			for _, stream := range []string{"upstream", "downstream"} {
				n.toxic(id, fmt.Sprintf(`{"name":"bw_%s","type":"bandwidth","stream":%q,"attributes":{"rate":32}}`, stream, stream))
			}
			what = "bandwidth 32 KB/s each way on"
		default:
			n.toxic(id, `{"name":"slow_close","type":"slow_close","stream":"downstream","attributes":{"delay":1000}}`)
			px.Stop()
			what = "slow close, then cut"
		}
		return fault{what: fmt.Sprintf("partition: %s node %d (leader: %v)", what, id, withLeader), heal: func() {
			px.Toxics.ResetToxics(context.Background())
			if !px.Enabled {
				_ = px.Start()
			}
		}}
	case "middleware":
		h.mw.Kill()
		return fault{what: "kill -9 the middleware (NATS, group service, router)", heal: h.startMiddleware}
	case "powerloss":
		ids, what := n.pick(1, n.rng.Intn(2) == 0), "one node"
		if n.rng.Intn(4) == 0 {
			ids, what = n.pick(2, true), "leader and a follower"
		}
		var cut []string
		for _, id := range ids {
			rep, err := h.powerLoss(id)
			if err != nil {
				h.t.Errorf("power loss of node %d: %v", id, err)
			}
			cut = append(cut, fmt.Sprintf("node %d: %d files cut by %d bytes, %d entries gone", id, rep.FilesCut, rep.BytesCut, rep.EntriesRemoved))
		}
		return fault{what: fmt.Sprintf("power loss of %s (%s)", what, strings.Join(cut, "; ")), heal: func() {
			for _, id := range ids {
				h.startNode(id)
			}
		}}
	}
	panic("unknown fault kind " + kind)
}

func (n *nemesis) toxic(id int, spec string) {
	if _, err := n.h.proxies[id].Toxics.AddToxicJson(strings.NewReader(spec)); err != nil {
		n.h.t.Errorf("toxic %s: %v", spec, err)
	}
}

// round injects one fault of each kind, in a random order.
func (n *nemesis) round(ctx context.Context) error {
	for _, i := range n.rng.Perm(len(kinds)) {
		if ctx.Err() != nil {
			return nil
		}
		kind := kinds[i]
		f := n.inject(kind)
		n.counts[kind]++
		hold := max(f.hold, time.Duration(1000+n.rng.Intn(1500))*time.Millisecond)
		n.logf("fault %s: %s; holding %v", kind, f.what, hold)
		select {
		case <-ctx.Done():
		case <-time.After(hold):
		}
		f.heal()
		start := time.Now()
		if err := n.h.waitHealthy(60 * time.Second); err != nil {
			return fmt.Errorf("after %s: %w", f.what, err)
		}
		st, err := n.h.status(ctx)
		if err != nil {
			return fmt.Errorf("after %s: %w", f.what, err)
		}
		if st.Epoch < n.epoch {
			return fmt.Errorf("after %s the epoch went back from %d to %d", f.what, n.epoch, st.Epoch)
		}
		n.epoch = st.Epoch
		n.logf("healed in %v: epoch %d, leader %d", time.Since(start).Round(time.Millisecond), st.Epoch, st.Leader)
		time.Sleep(time.Duration(200+n.rng.Intn(500)) * time.Millisecond)
	}
	return nil
}

func (n *nemesis) summary() string {
	parts := make([]string, len(kinds))
	for i, k := range kinds {
		parts[i] = fmt.Sprintf("%s:%d", k, n.counts[k])
	}
	return strings.Join(parts, " ")
}
