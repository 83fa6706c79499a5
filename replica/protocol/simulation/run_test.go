package simulation

import (
	"flag"
	"fmt"
	"runtime/debug"
	"slices"
	"strings"
	"testing"
	"time"

	"memstore/groupsvc/election"
	"memstore/replica/protocol"
)

var (
	flagSchedules = flag.Int("schedules", 2000, "random schedules TestSimulation runs")
	flagSeed      = flag.Int64("seed", 0, "run only this seed (replay a failure)")
	flagTrace     = flag.Bool("simtrace", false, "print the trace of a replayed seed (go test keeps -trace for itself)")
)

// configFor derives a schedule's shape from its seed: 3 or 5 nodes, one or
// two coordinators.
func configFor(seed int64) simConfig {
	cfg := simConfig{nodes: 3, coords: 1, chaosSteps: 1500, healSteps: 4000}
	if seed%2 == 1 {
		cfg.nodes = 5
	}
	if seed%3 == 2 {
		cfg.coords = 2
	}
	return cfg
}

// run plays one random schedule: a chaos phase with faults, then healing
// (every node and coordinator up, no partition, no loss) until the cluster
// converges; checks run after every step.
func run(seed int64, cfg simConfig) (s *sim) {
	s = newSim(seed, cfg)
	defer func() {
		if r := recover(); r != nil {
			s.fail("panic: %v\n%s", r, debug.Stack())
		}
	}()
	for s.step = 0; s.step < cfg.chaosSteps && s.err == nil; s.step++ {
		s.chaosStep()
	}
	s.heal()
	for i := 0; i < cfg.healSteps && s.err == nil; i++ {
		s.step++
		s.calmStep(i < cfg.healSteps/4)
		if i > cfg.healSteps/4 && len(s.net) == 0 && s.pendingWrites() == 0 && s.converged() {
			s.chk.final()
			return s
		}
	}
	if s.err == nil {
		s.fail("no convergence %d steps after healing:\n%s", cfg.healSteps, s)
	}
	return s
}

func (s *sim) chaosStep() {
	r := s.rng.Intn(1000)
	switch {
	case r < 600:
		s.deliverOne(true)
	case r < 640:
		if len(s.net) < 30 {
			s.tickAll()
		}
	case r < 800:
		s.diskStep()
	case r < 860:
		s.propose()
	case r < 890:
		s.read()
	case r < 900:
		s.checkpoint(s.nodes[s.rng.Intn(len(s.nodes))])
	case r < 905:
		s.crashSome()
	case r < 915:
		s.restartSome()
	case r < 918:
		s.partition()
	case r < 922:
		s.side = map[protocol.NodeID]int{}
	case r < 924:
		s.coordFault()
	case r < 940:
		s.fetchStep()
	case r < 970:
		s.askCommit()
	default:
		s.deliverOne(true)
	}
}

// askCommit: a reader waits on a random node for a seq a little above
// the commit it knows (a min_seq get), as replica.handleGet has it ask.
func (s *sim) askCommit() {
	sn := s.nodes[s.rng.Intn(len(s.nodes))]
	if !sn.up {
		return
	}
	sn.n.AskCommit(sn.n.Status().Commit + 1 + uint64(s.rng.Intn(4)))
	s.flushNode(sn)
}

// calmStep runs the healed cluster: messages and disks keep up, time
// advances when the network is quiet; clients go on for a while.
func (s *sim) calmStep(clients bool) {
	r := s.rng.Intn(100)
	switch {
	case r < 60 && len(s.net) > 0:
		s.deliverOne(false)
	case r < 80 && s.pendingWrites() > 0:
		s.diskStep()
	case r < 84 && clients:
		s.propose()
	case r < 86 && clients:
		s.read()
	case r < 87 && clients:
		s.askCommit()
	case r < 88:
		s.fetchStep()
	case r < 90:
		s.checkpoint(s.nodes[s.rng.Intn(len(s.nodes))])
	case len(s.net) == 0 && s.pendingWrites() == 0:
		s.tickAll()
	}
}

func (s *sim) pendingWrites() int {
	n := 0
	for _, sn := range s.nodes {
		n += len(sn.disk.pending)
	}
	return n
}

// deliverOne delivers a message picked among the oldest few (reordering),
// sometimes from anywhere (long delay); with faults it may drop or
// duplicate it.
func (s *sim) deliverOne(faults bool) {
	if len(s.net) == 0 {
		return
	}
	i := s.rng.Intn(min(len(s.net), 6))
	if faults && s.rng.Intn(20) == 0 {
		i = s.rng.Intn(len(s.net))
	}
	e := s.net[i]
	if faults && e.stored == nil { // the driver always learns a CAS outcome (it re-reads on error)
		switch s.rng.Intn(25) {
		case 0: // dropped
			s.net = slices.Delete(s.net, i, i+1)
			return
		case 1: // duplicated: deliver, keep a copy
			s.deliver(e)
			return
		}
	}
	s.net = slices.Delete(s.net, i, i+1)
	s.deliver(e)
}

func (s *sim) diskStep() {
	sn := s.nodes[s.rng.Intn(len(s.nodes))]
	if sn.up {
		s.diskDone(sn, 1+s.rng.Intn(3))
	}
}

func (s *sim) fetchStep() {
	for _, sn := range s.nodes {
		if sn.up && sn.fetch != nil {
			s.fetchSnapshot(sn)
			return
		}
	}
}

// crashSome crashes one node; usually it keeps a majority up, sometimes not.
func (s *sim) crashSome() {
	up := 0
	for _, sn := range s.nodes {
		if sn.up {
			up++
		}
	}
	if up-1 <= len(s.nodes)/2 && s.rng.Intn(4) > 0 {
		return
	}
	if sn := s.nodes[s.rng.Intn(len(s.nodes))]; sn.up {
		s.crashNode(sn)
	}
}

func (s *sim) restartSome() {
	if sn := s.nodes[s.rng.Intn(len(s.nodes))]; !sn.up {
		s.startNode(sn)
	}
}

// partition splits the nodes and coordinators into two sides at random.
func (s *sim) partition() {
	s.side = map[protocol.NodeID]int{}
	for _, sn := range s.nodes {
		s.side[sn.id] = s.rng.Intn(2)
	}
	for _, sc := range s.coord {
		s.side[sc.id] = s.rng.Intn(2)
	}
	s.logf("partition %v", s.side)
}

func (s *sim) coordFault() {
	sc := s.coord[s.rng.Intn(len(s.coord))]
	if sc.up {
		s.crashCoord(sc)
	} else {
		s.startCoord(sc)
	}
}

func (s *sim) heal() {
	s.side = map[protocol.NodeID]int{}
	for _, sn := range s.nodes {
		if !sn.up {
			s.startNode(sn)
		}
	}
	for _, sc := range s.coord {
		if !sc.up {
			s.startCoord(sc)
		}
	}
	s.logf("healed")
}

// converged reports whether a leader leads the stored view, every node has
// applied the same last entry of it, the nodes' states are equal, and
// every read taken by a node that has not crashed since is answered.
func (s *sim) converged() bool {
	l := s.node(s.kv.view.Leader)
	if l == nil || !l.up || !l.n.Status().Leading {
		return false
	}
	last := l.n.Status().Last
	if l.applied != last {
		return false
	}
	for _, sn := range s.nodes {
		if sn.applied != last || len(sn.disk.pending) > 0 {
			return false
		}
	}
	for _, o := range s.ops { // every read a live node took is answered
		if !o.write && !o.done && o.registered && s.node(o.at).crashes == o.crashes {
			return false
		}
	}
	for _, sn := range s.nodes {
		if fmt.Sprint(sn.kv) != fmt.Sprint(l.kv) {
			s.fail("node %d state %v differs from leader %d state %v at the same seq %v", sn.id, sn.kv, l.id, l.kv, last)
		}
	}
	return true
}

func replayCommand(seed int64) string {
	return fmt.Sprintf("go test ./replica/protocol/simulation -run 'TestSimulation$' -seed=%d -simtrace -v", seed)
}

func TestSimulation(t *testing.T) {
	seeds := make([]int64, 0, *flagSchedules)
	if *flagSeed != 0 {
		seeds = append(seeds, *flagSeed)
	} else {
		for i := 1; i <= *flagSchedules; i++ {
			seeds = append(seeds, int64(i))
		}
	}
	start := time.Now()
	var steps, acked, reads int
	for _, seed := range seeds {
		s := run(seed, configFor(seed))
		if *flagTrace && *flagSeed != 0 {
			t.Log("trace:\n" + strings.Join(s.trace, "\n"))
		}
		if s.err != nil {
			t.Fatalf("seed %d (%d nodes, %d coordinators): %v\nlast steps:\n%s\nreplay: %s",
				seed, s.cfg.nodes, s.cfg.coords, s.err, strings.Join(s.trace[max(0, len(s.trace)-40):], "\n"), replayCommand(seed))
		}
		steps += s.step
		for _, o := range s.ops {
			if o.done && o.err == nil {
				if o.write {
					acked++
				} else {
					reads++
				}
			}
		}
	}
	t.Logf("%d schedules, %d steps, %d acknowledged writes, %d linearizable reads in %v",
		len(seeds), steps, acked, reads, time.Since(start).Round(time.Millisecond))
	if acked == 0 || reads == 0 {
		t.Fatalf("schedules made no progress: %d writes, %d reads acknowledged", acked, reads)
	}
}

// TestRuleBreaksAreCaught proves the checks can fail: with each deliberate
// rule break switched on, some random schedule must fail. (Counting acks for
// old-epoch entries needs the precise "figure 8" schedule: see
// TestFigure8.)
func TestRuleBreaksAreCaught(t *testing.T) {
	breaks := []struct {
		name  string
		node  protocol.TestingKnobs
		coord election.TestingKnobs
	}{
		{name: "ack before fsync", node: protocol.TestingKnobs{AckBeforeDurable: true}},
		{name: "skip the prev check", node: protocol.TestingKnobs{SkipPrevCheck: true}},
		{name: "skip the prepare round", coord: election.TestingKnobs{SkipPrepare: true}},
		{name: "leader after the first promise", coord: election.TestingKnobs{FirstPromise: true}},
	}
	for _, b := range breaks {
		t.Run(b.name, func(t *testing.T) {
			for seed := int64(1); seed <= 3000; seed++ {
				cfg := configFor(seed)
				cfg.node, cfg.coord = b.node, b.coord
				if s := run(seed, cfg); s.err != nil {
					t.Logf("caught at seed %d: %v", seed, s.err)
					return
				}
			}
			t.Fatalf("no schedule caught %q", b.name)
		})
	}
}
