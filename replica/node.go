package replica

import (
	"context"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/sirupsen/logrus"

	"memstore/bus"
	"memstore/replica/protocol"
	"memstore/replica/storage"
	"memstore/replica/storage/vfs"
	"memstore/replica/tree"
)

// Config configures a node.
type Config struct {
	// ID of the node: 1 or more, unique in the cluster.
	ID protocol.NodeID
	// DataDir holds wal/, state and tree/.
	DataDir string
	// Prefix of every subject. Default "ms".
	Prefix string
	// Tick is the protocol's clock. Default 100 ms.
	Tick time.Duration
	// Protocol tunes the replication machine (its ID is set from ID).
	Protocol protocol.Config
	// Tree tunes the folder tree.
	Tree tree.Config
	// Sync is the WAL's fsync policy. Default storage.SyncAlways.
	Sync storage.SyncPolicy
	// CheckpointEvery is how often the tree is checkpointed and the log
	// compacted behind it. Default 1 s.
	CheckpointEvery time.Duration
	// KeepLogBytes is how much entry data before the checkpoint stays in
	// the log for followers to catch up from; further behind they get a
	// snapshot, which ships the tree's files and is the faster way to
	// catch up on much. Default 8 MiB.
	KeepLogBytes int
	// MaxValueBytes bounds one value. Default 64 KiB.
	MaxValueBytes int
	// MaxBatch bounds the puts of one batch request. Default 1,000.
	MaxBatch int
	// MaxRequestBytes bounds one put request. Default 1 MiB.
	MaxRequestBytes int
	// FS is the filesystem of the data dir. Default vfs.OS.
	FS vfs.FS
}

// DefaultConfig returns the defaults for node id storing under dataDir.
func DefaultConfig(id protocol.NodeID, dataDir string) Config {
	return Config{ID: id, DataDir: dataDir, Prefix: bus.DefaultPrefix, Tick: 100 * time.Millisecond,
		Protocol: protocol.DefaultConfig(id), Tree: tree.DefaultConfig(), Sync: storage.SyncAlways,
		CheckpointEvery: time.Second, KeepLogBytes: 8 << 20, MaxValueBytes: 64 << 10, MaxBatch: 1000, MaxRequestBytes: 1 << 20, FS: vfs.OS}
}

// Node is a running replica.
type Node struct {
	cfg  Config
	log  logrus.FieldLogger
	nc   *nats.Conn
	sub  bus.Subjects
	fs   vfs.FS
	lock vfs.File // the data folder's LOCK, held while the node runs
	wal  *storage.WAL
	tree *tree.Tree
	pn   *protocol.Node

	in       chan *nats.Msg // protocol messages
	reqs     chan []request // forwarded batches
	leave    chan struct{}
	snapDone chan snapResult
	ckptDone chan checkpointResult // a checkpoint's fsyncs → the loop
	diskq    chan *protocol.Write  // the loop → writeLoop, in order
	diskNote chan struct{}         // writeLoop → the loop: see disk
	disk     struct {
		mu   sync.Mutex
		done uint64 // the last write that is durable
		err  error  // the write that failed; the node stops
	}
	subs   []*nats.Subscription
	snaps  *snapServer
	stale  *nats.Subscription // ms.api.get.stale while a member; owned by the loop
	turned atomic.Int64       // when the loop last took a turn (Unix ns): a stalled loop serves no stale get
	beat   beat               // a busy loop's heartbeat (beat.go)

	reqMu   sync.RWMutex // guards stopped against hand-offs to reqs (toLoop)
	stopped bool         // the loop has ended: nothing handed to it would be answered

	// Owned by the loop.
	nextID        uint64
	puts          map[uint64]pendingPut
	dups          map[uint64]tree.Source // seq of a duplicate entry → the source's original write
	reads         map[uint64]pendingRead
	waits         []pendingRead // min_seq reads waiting for the applied seq
	fetching      bool
	checkpoint    time.Time
	checkpointing bool          // a checkpoint's fsyncs run
	lastTS        time.Time     // latest commit time of any entry this node holds: a leader's next is later
	label         string        // the node's id, as its metrics' label
	aggs          chan struct{} // slots of aggregates running beside the loop

	ctx    context.Context // ends when the node closes
	cancel context.CancelFunc
	wg     sync.WaitGroup // writeLoop, beatLoop, the snapshot fetcher, checkpoints' fsyncs and aggregates
	done   chan struct{}
	errMu  sync.Mutex // guards err
	err    error
}

type pendingPut struct {
	rq    request
	ts    string
	keyed bool // by a source: applying it says whether it is a duplicate, which its reply tells
}

type pendingRead struct {
	rq       request
	req      bus.GetRequest
	deadline time.Time
}

type snapResult struct {
	at  protocol.Point
	in  *tree.Installer
	err error
}

// Start opens the node's storage, recovers, connects its subjects and runs
// its loop until Close (node_start_up). The node ignores the messages it
// sends itself on ms.sys.all, so nc is best made with nats.NoEcho.
func Start(nc *nats.Conn, cfg Config, log logrus.FieldLogger) (*Node, error) {
	n := &Node{cfg: cfg, log: log, nc: nc, sub: bus.NewSubjects(cfg.Prefix), fs: cfg.FS,
		in: make(chan *nats.Msg, 8192), reqs: make(chan []request, 1024), leave: make(chan struct{}, 1), snapDone: make(chan snapResult, 1), ckptDone: make(chan checkpointResult, 1),
		diskq: make(chan *protocol.Write, 256), diskNote: make(chan struct{}, 1), aggs: make(chan struct{}, 4),
		puts: map[uint64]pendingPut{}, dups: map[uint64]tree.Source{}, reads: map[uint64]pendingRead{}, done: make(chan struct{})}
	n.label = strconv.FormatUint(uint64(cfg.ID), 10)
	if err := n.probe(); err != nil {
		return nil, err
	}
	if err := n.open(); err != nil {
		return nil, err
	}
	n.snaps = newSnapServer(n.tree, log)
	if err := n.subscribe(); err != nil {
		n.closeStorage()
		return nil, err
	}
	n.ctx, n.cancel = context.WithCancel(context.Background())
	n.turned.Store(time.Now().UnixNano())
	n.wg.Add(2)
	go n.writeLoop()
	go n.beatLoop()
	go n.run(n.ctx)
	return n, nil
}

// probe refuses to start a second node with this id while one runs (on
// another folder or host): two would speak as one member, and one with an
// empty log could answer an election for the other. A running node
// answers an empty forwarded batch at once; no answer (no responders, or
// none within the probe's timeout: NATS may be unreachable yet) lets the
// node start. Two starting at the same moment are not caught.
func (n *Node) probe() error {
	_, err := n.nc.Request(n.sub.Fwd(n.cfg.ID, "probe"), nil, 500*time.Millisecond)
	if err == nil {
		return fmt.Errorf("replica: node %d is running already (it answers on %s): give this one an id of its own", n.cfg.ID, n.sub.Fwd(n.cfg.ID, "*"))
	}
	return nil
}

// open locks the data folder, recovers the WAL, state and tree and builds
// the protocol node.
func (n *Node) open() error {
	lock, err := lockDataDir(n.fs, n.cfg.DataDir, n.cfg.ID)
	if err != nil {
		return err
	}
	wcfg := storage.DefaultWALConfig(n.log)
	wcfg.Sync = n.cfg.Sync
	wal, err := storage.OpenWAL(n.fs, filepath.Join(n.cfg.DataDir, "wal"), wcfg)
	if err != nil {
		lock.Close()
		return err
	}
	st, err := storage.LoadState(n.fs, n.cfg.DataDir)
	if err != nil {
		wal.Close()
		lock.Close()
		return err
	}
	tr, err := tree.Open(n.fs, n.cfg.DataDir, n.cfg.Tree)
	if err != nil {
		wal.Close()
		lock.Close()
		return err
	}
	n.lock = lock
	n.wal, n.tree = wal, tr
	applied := tr.AppliedPoint()
	first, last := wal.First(), wal.Last()
	switch {
	case applied.Seq > last.Seq:
		// A snapshot was installed but the log not yet reset: finish it.
		if err := wal.Reset(applied.Epoch, applied.Seq); err != nil {
			n.closeStorage()
			return err
		}
		first = applied
	case applied.Seq < first.Seq:
		n.closeStorage()
		return fmt.Errorf("replica: the tree is at seq %d but the log starts after %d: entries are missing", applied.Seq, first.Seq)
	}
	r := protocol.Restart{State: protocol.HardState{Epoch: st.Epoch}, Start: first, Applied: applied.Seq}
	n.noteTS(tr.AppliedTS())
	err = wal.Replay(first.Seq, func(e protocol.Entry) error {
		e.Data = append([]byte(nil), e.Data...) // Replay's data is only valid during the call
		n.noteTS(commandTS(e.Data))
		r.Entries = append(r.Entries, e)
		return nil
	})
	if err != nil {
		n.closeStorage()
		return err
	}
	pcfg := n.cfg.Protocol
	pcfg.ID = n.cfg.ID
	pn, err := protocol.NewNode(pcfg, r)
	if err != nil {
		n.closeStorage()
		return err
	}
	n.pn = pn
	n.checkpoint = time.Now()
	n.log.WithFields(logrus.Fields{"node": n.cfg.ID, "promised": st.Epoch, "applied": applied.Seq,
		"log_start": first.Seq, "log_end": wal.Last().Seq}).Info("node recovered")
	return nil
}

func (n *Node) closeStorage() {
	n.wal.Close()
	if n.tree != nil {
		n.tree.Close()
	}
	n.lock.Close()
}

// lockDataDir takes the data folder's LOCK file for this process, so no
// two processes run on one folder (they would corrupt it for good), and
// checks the folder is this node's: the file names the node it was first
// used by. A folder of another node would give that node's promises and
// log a second vote.
func lockDataDir(fsys vfs.FS, dir string, id protocol.NodeID) (vfs.File, error) {
	f, err := vfs.LockDir(fsys, dir)
	if err != nil {
		return nil, fmt.Errorf("replica: %w", err)
	}
	owner, err := io.ReadAll(f)
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("replica: read the lock of %s: %w", dir, err)
	}
	want := fmt.Sprintf("node %d\n", id)
	switch {
	case len(owner) == 0:
		if _, err = f.Write([]byte(want)); err == nil {
			err = f.Sync()
		}
		if err != nil {
			f.Close()
			return nil, fmt.Errorf("replica: write the lock of %s: %w", dir, err)
		}
	case string(owner) != want:
		f.Close()
		return nil, fmt.Errorf("replica: data folder %s is the folder of %s, not of node %d: give each node its own", dir, strings.TrimSpace(string(owner)), id)
	}
	return f, nil
}

// subscribe is server_connect: the node's subjects.
func (n *Node) subscribe() error {
	forward := func(m *nats.Msg) {
		if len(m.Data) == 0 { // a node starting with this id asks whether one runs (probe)
			_ = m.Respond(nil)
			return
		}
		reqs, err := bus.DecodeForwarded(m.Data)
		if err != nil || len(reqs) == 0 {
			n.log.WithError(err).Warn("refused a forwarded batch")
			_ = m.Respond(nil) // no replies: the router fails the batch at once
			return
		}
		op := m.Subject[strings.LastIndexByte(m.Subject, '.')+1:]
		replies := newBatchReply(m, len(reqs), int(n.nc.MaxPayload()), op == bus.OpGet, n.log)
		check, _ := strconv.ParseUint(m.Header.Get(bus.HeaderReadCheck), 10, 64) // a batch of gets' read check: 0 if none
		batch := make([]request, len(reqs))
		for i, f := range reqs {
			batch[i] = request{op: op, user: f.User, data: f.Data, check: check, answer: replies.answer(i)}
		}
		n.toLoop(batch) // whole: the loop proposes it in one Ready (one WAL append, one multicast)
	}
	// Protocol messages go straight into the loop's channel, decoded there:
	// one goroutine hand-off fewer per message than a handler's. A full
	// channel drops them (overloaded: the protocol retries what matters).
	for _, subj := range []string{n.sub.All(), n.sub.To(n.cfg.ID)} {
		s, err := n.nc.ChanSubscribe(subj, n.in)
		if err != nil {
			n.unsubscribe()
			return fmt.Errorf("replica: subscribe %s: %w", subj, err)
		}
		n.subs = append(n.subs, s)
	}
	for subj, h := range map[string]nats.MsgHandler{
		n.sub.Fwd(n.cfg.ID, "*"): forward,
		n.sub.Snap(n.cfg.ID):     n.snaps.serve,
		n.sub.Leave(n.cfg.ID): func(m *nats.Msg) {
			// The answer first: a node not yet a member stops as soon as
			// the loop takes the request, and closing the connection
			// flushes what was published before, not what comes after.
			_ = m.Respond(bus.Encode(bus.Result{OK: true}))
			select {
			case n.leave <- struct{}{}:
			default:
			}
		},
	} {
		s, err := n.nc.Subscribe(subj, h)
		if err != nil {
			n.unsubscribe()
			return fmt.Errorf("replica: subscribe %s: %w", subj, err)
		}
		s.SetPendingLimits(-1, -1)
		n.subs = append(n.subs, s)
	}
	return nil
}

func (n *Node) unsubscribe() {
	for _, s := range n.subs {
		_ = s.Unsubscribe()
	}
}

// run is the loop that owns the protocol node and storage.
func (n *Node) run(ctx context.Context) {
	defer close(n.done)
	defer close(n.diskq) // writeLoop finishes what it was given, then ends
	defer n.stopStaleGets()
	defer n.refuseWaiting()
	t := time.NewTicker(n.cfg.Tick)
	defer t.Stop()
	if err := n.process(); err != nil { // the status NewNode queued: the group hears of the node at once
		n.fail(err)
		return
	}
	for {
		n.turned.Store(time.Now().UnixNano())
		select {
		case <-ctx.Done():
			return
		case m := <-n.in:
			n.step(m)
		case batch := <-n.reqs:
			n.handleRequests(batch)
		case <-t.C:
			n.pn.Tick()
			n.expireWaits()
			lead := 0.0 // on every tick: a deposed leader applies nothing, yet must stop saying it leads
			if n.pn.Status().Leading {
				lead = 1
			}
			leadingGauge.WithLabelValues(n.label).Set(lead)
		case <-n.leave:
			n.log.Info("leaving the group")
			n.pn.Leave()
		case <-n.diskNote:
			n.disk.mu.Lock()
			done, err := n.disk.done, n.disk.err
			n.disk.mu.Unlock()
			if err != nil {
				n.fail(err)
				return
			}
			n.pn.DiskDone(done)
		case s := <-n.snapDone:
			if err := n.installSnapshot(s); err != nil {
				n.fail(err)
				return
			}
		case r := <-n.ckptDone:
			if err := n.checkpointed(r); err != nil {
				n.fail(err)
				return
			}
		}
		n.drain()
		if err := n.process(); err != nil {
			n.fail(err)
			return
		}
		if n.pn.Left() {
			n.log.Info("left the group: stopping")
			return
		}
		if member, known := n.pn.Membership(); known {
			n.offerStaleGets(member)
		}
	}
}

// offerStaleGets puts the node in the queue group of ms.api.get.stale
// (serve) or takes it out: a member serves stale gets as any node may
// (DESIGN.md rule 6), a node not yet or no longer a member does not, as
// the router picks only members for them. Between views the loop leaves
// it as it was, so an election does not stop stale gets.
func (n *Node) offerStaleGets(serve bool) {
	switch {
	case serve == (n.stale != nil):
	case serve:
		s, err := n.nc.QueueSubscribe(n.sub.StaleGet(), bus.NodeQueue, n.serveStaleGet)
		if err != nil {
			n.log.WithError(err).Warn("cannot serve stale gets (tried again on the next turn of the loop)")
			return
		}
		n.stale = s // the client library's pending limits: a flood of gets is dropped (its askers time out), not queued without end
	default:
		_ = n.stale.Drain() // answers what the server sent before it heard
		n.stale = nil
	}
}

// stopStaleGets, as the loop ends, leaves the queue group of stale gets
// and waits, up to a second, until the server sends none here and those
// it sent are answered: the node's connection may close next, and a get
// on its way to it would be lost, its asker left to its own timeout.
func (n *Node) stopStaleGets() {
	s := n.stale
	n.offerStaleGets(false)
	// Disconnected, the drain cannot end (it waits for the server), and
	// nothing can come.
	for deadline := time.Now().Add(time.Second); s != nil && s.IsValid() && n.nc.IsConnected() && time.Now().Before(deadline); {
		time.Sleep(5 * time.Millisecond)
	}
}

// toLoop hands a batch of requests to the loop, or refuses it at once
// (unavailable) when the loop has ended, where it would wait forever, or
// its queue is full.
func (n *Node) toLoop(batch []request) {
	n.reqMu.RLock()
	defer n.reqMu.RUnlock()
	why := "has stopped"
	if !n.stopped {
		select {
		case n.reqs <- batch:
			return
		default:
			why = "is overloaded"
		}
	}
	for _, rq := range batch {
		respondErr(rq, bus.Errorf(bus.CodeUnavailable, "node %d %s", n.cfg.ID, why))
	}
}

// refuseWaiting answers, as the loop ends, the requests that would
// otherwise wait for ever: queued for the loop, gets held for their
// min_seq, linearizable gets waiting for their read index. Puts waiting for
// their commit are left to their askers' timeouts: they may be committed.
func (n *Node) refuseWaiting() {
	n.reqMu.Lock()
	n.stopped = true
	n.reqMu.Unlock()
	e := bus.Errorf(bus.CodeUnavailable, "node %d has stopped", n.cfg.ID)
	for _, w := range n.waits {
		respondErr(w.rq, e)
	}
	for _, r := range n.reads {
		respondErr(r.rq, e)
	}
	n.waits, n.reads = nil, nil
	for {
		select {
		case batch := <-n.reqs:
			for _, rq := range batch {
				respondErr(rq, e)
			}
		default:
			return
		}
	}
}

// drain takes in whatever else is waiting, so one Ready batches it all.
func (n *Node) drain() {
	for i := 0; i < 4096; i++ {
		select {
		case m := <-n.in:
			n.step(m)
		case batch := <-n.reqs:
			n.handleRequests(batch)
		default:
			return
		}
	}
}

// step feeds a protocol message to the protocol; one that does not decode
// is dropped.
func (n *Node) step(m *nats.Msg) {
	var msg protocol.Message
	if msg.UnmarshalBinary(m.Data) == nil {
		n.pn.Step(msg)
	}
}

func (n *Node) fail(err error) {
	n.log.WithError(err).Error("node stopped: storage failed")
	n.errMu.Lock()
	n.err = err
	n.errMu.Unlock()
}

// Err returns the error that stopped the node, if any.
func (n *Node) Err() error {
	n.errMu.Lock()
	defer n.errMu.Unlock()
	return n.err
}

// Done is closed when the node's loop ends.
func (n *Node) Done() <-chan struct{} { return n.done }

// process handles the protocol's Ready until there is nothing left.
func (n *Node) process() error {
	for {
		rd := n.pn.Ready()
		if rd.Empty() {
			break
		}
		for _, m := range rd.Messages {
			b, _ := m.MarshalBinary()
			publish := n.nc.Publish
			if m.Type == protocol.MsgStatus {
				publish = n.publishStatus
			}
			if err := publish(n.sub.Address(m), b); err != nil {
				level := logrus.WarnLevel
				if errors.Is(err, nats.ErrReconnectBufExceeded) {
					// Not connected (yet, or again): the protocol resends what
					// matters, and a lost connection is logged once, not per message.
					level = logrus.DebugLevel
				}
				n.log.WithError(err).WithFields(logrus.Fields{"type": m.Type.String(), "to": m.To, "entries": len(m.Entries)}).
					Log(level, "protocol message not sent")
			}
		}
		if w := rd.Write; w != nil {
			for i := len(w.Entries) - 1; i >= 0; i-- { // commit times only go up: the last put's is the one
				if len(w.Entries[i].Data) > 0 {
					n.noteTS(commandTS(w.Entries[i].Data))
					break
				}
			}
			n.diskq <- w
		}
		// A put is answered once committed, before its entry is applied:
		// committed, it is durable on a majority and will be applied before
		// the loop takes another request, so a linearizable get sees it
		// (a stale get, served beside the loop, may not yet: it promises
		// only its applied_seq). Applying 64 puts and publishing their
		// events held the replies: answering first gave 5-9% more puts/s
		// at 64 writers (issue 7). A keyed put waits: applying it decides
		// whether it is a duplicate.
		var keyed []protocol.Reply
		for _, r := range rd.Replies {
			if r.Err == nil && n.puts[r.ID].keyed {
				keyed = append(keyed, r)
			} else {
				n.answerPut(r)
			}
		}
		leading := len(rd.Apply) > 0 && n.pn.Status().Leading
		for _, e := range rd.Apply {
			if err := n.apply(e, leading); err != nil {
				return err
			}
		}
		if len(rd.Apply) > 0 {
			commits.WithLabelValues(n.label).Add(float64(len(rd.Apply)))
			appliedSeq.WithLabelValues(n.label).Set(float64(rd.Apply[len(rd.Apply)-1].Seq))
		}
		for _, r := range keyed {
			n.answerPut(r)
		}
		for _, r := range rd.Reads {
			n.answerRead(r)
		}
		if rd.Snapshot != nil && !n.fetching {
			n.fetching = true
			n.wg.Add(1)
			go func(req protocol.SnapshotRequest) {
				defer n.wg.Done()
				n.fetchSnapshot(n.ctx, req)
			}(*rd.Snapshot)
		}
	}
	n.serveWaits()
	return n.maybeCheckpoint()
}

// writeLoop carries out the protocol's disk writes in order, beside the
// loop, and reports how far they are durable: while the WAL fsyncs one
// batch the loop goes on taking writes, acks and reads, and cuts the next
// batch (DESIGN.md rule 7: several batches in flight). Nothing is acked,
// promised or applied before its write is durable: only DiskDone lets the
// protocol do that.
func (n *Node) writeLoop() {
	defer n.wg.Done()
	failed := false
	for w := range n.diskq {
		if failed {
			continue // the loop stops on the error: drain until it closes diskq
		}
		err := n.persist(w)
		n.disk.mu.Lock()
		if err != nil {
			n.disk.err, failed = err, true
		} else {
			n.disk.done = w.ID
		}
		n.disk.mu.Unlock()
		select {
		case n.diskNote <- struct{}{}:
		default: // a note is pending: the loop will read the latest
		}
	}
}

// persist carries out one Write: state, reset, truncate, append, fsync.
func (n *Node) persist(w *protocol.Write) error {
	if w.State != nil {
		if err := storage.SaveState(n.fs, n.cfg.DataDir, storage.State{Epoch: w.State.Epoch}); err != nil {
			return err
		}
	}
	if w.Reset != nil {
		if err := n.wal.Reset(w.Reset.Epoch, w.Reset.Seq); err != nil {
			return err
		}
	}
	if len(w.Entries) == 0 {
		return nil
	}
	if first := w.Entries[0].Seq; first <= n.wal.Last().Seq {
		if err := n.wal.TruncateAfter(first - 1); err != nil {
			return err
		}
	}
	start := time.Now()
	if err := n.wal.Append(w.Entries); err != nil {
		return err
	}
	walSync.WithLabelValues(n.label).Observe(time.Since(start).Seconds())
	walBatch.WithLabelValues(n.label).Observe(float64(len(w.Entries)))
	return nil
}

// noteTS raises lastTS to t. A new leader holds every committed entry, so
// the commit times it gives stay above every committed one, whatever the
// clocks of the hosts: time ranges can rely on commit time never going back.
func (n *Node) noteTS(t time.Time) {
	if t.After(n.lastTS) {
		n.lastTS = t
	}
}

// Close stops the node and waits for its loop; storage is closed.
func (n *Node) Close() {
	n.unsubscribe()
	n.cancel()
	<-n.done
	n.wg.Wait()
	n.snaps.close()
	n.closeStorage()
}
