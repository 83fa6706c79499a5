package replica

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/sirupsen/logrus"
	"golang.org/x/sync/errgroup"

	"memstore/bus"
	"memstore/replica/protocol"
	"memstore/replica/tree"
)

// snapRequest asks for chunk Index of a snapshot session ("" starts one).
type snapRequest struct {
	Session string `json:"session"`
	Index   int    `json:"index"`
}

// snapSessionHeader names the session of a chunk reply, whose data is the
// chunk as tree.MarshalChunk encodes it; a reply without it is an error
// reply (bus.Result).
const snapSessionHeader = "Ms-Snap-Session"

// snapIdle is how long an unused snapshot session lives.
const snapIdle = 30 * time.Second

// snapServer serves snapshots of the tree on ms.sys.snap.<id>, one chunk
// per request: the fetcher pulls, which is the flow control. It runs on
// NATS's goroutine; the tree allows reads alongside the loop's applies.
type snapServer struct {
	tree *tree.Tree
	log  logrus.FieldLogger

	mu       sync.Mutex // guards sessions and seq
	sessions map[string]*snapSession
	seq      int
}

type snapSession struct {
	snap *tree.Snapshot
	next int
	used time.Time
}

func newSnapServer(t *tree.Tree, log logrus.FieldLogger) *snapServer {
	return &snapServer{tree: t, log: log, sessions: map[string]*snapSession{}}
}

func (s *snapServer) serve(m *nats.Msg) {
	var req snapRequest
	if e := bus.Decode(m.Data, &req); e != nil {
		_ = m.Respond(bus.ErrorReply(e))
		return
	}
	now := time.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	s.expire(now)
	if req.Session == "" {
		s.seq++
		req.Session = fmt.Sprintf("%d-%d", now.UnixNano(), s.seq)
		s.sessions[req.Session] = &snapSession{snap: s.tree.Snapshot()}
		s.log.WithField("at", s.sessions[req.Session].snap.At()).Info("serving a snapshot")
	}
	ss := s.sessions[req.Session]
	if ss == nil || req.Index != ss.next {
		_ = m.Respond(bus.ErrorReply(bus.Errorf(bus.CodeBadRequest, "no snapshot session %q at chunk %d", req.Session, req.Index)))
		return
	}
	c, err := ss.snap.Next()
	if err != nil || c.Last { // a failed session cannot go on: it would only hold retention back
		ss.snap.Close()
		delete(s.sessions, req.Session)
	}
	if err != nil {
		_ = m.Respond(bus.ErrorReply(bus.Errorf(bus.CodeUnavailable, "snapshot: %v", err)))
		return
	}
	ss.next++
	ss.used = now
	rep := nats.NewMsg(m.Reply)
	rep.Header.Set(snapSessionHeader, req.Session)
	rep.Data = tree.MarshalChunk(c)
	_ = m.RespondMsg(rep)
}

// compact applies the tree's retention rules (Tree.Compact), first
// closing the sessions unused for snapIdle at now: an open snapshot holds
// retention back, and a fetcher that gave up never says so. While serve
// holds the sessions it leaves them (serve closes idle ones itself): the
// node loop calls it, and must not wait for a chunk being read.
func (s *snapServer) compact(now time.Time) error {
	if s.mu.TryLock() {
		s.expire(now)
		s.mu.Unlock()
	}
	return s.tree.Compact()
}

// expire closes the sessions unused for snapIdle at now. Lock should be
// held.
func (s *snapServer) expire(now time.Time) {
	for id, ss := range s.sessions {
		if now.Sub(ss.used) > snapIdle {
			ss.snap.Close()
			delete(s.sessions, id)
		}
	}
}

func (s *snapServer) close() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for id, ss := range s.sessions {
		ss.snap.Close()
		delete(s.sessions, id)
	}
}

// fetchSnapshot pulls a snapshot from the leader into a staging tree
// (get_master_copy_from_leader when the log is compacted away), then hands
// it to the loop to install.
func (n *Node) fetchSnapshot(ctx context.Context, req protocol.SnapshotRequest) {
	res, start := snapResult{}, time.Now()
	res.in, res.err = n.tree.NewInstaller()
	if res.err == nil {
		res.at, res.err = pullSnapshot(ctx, n.nc, n.sub.Snap(req.Leader), res.in)
	}
	if res.err == nil {
		n.log.WithFields(logrus.Fields{"from": req.Leader, "at": res.at.Seq,
			"took": time.Since(start).Round(time.Millisecond)}).Info("snapshot received")
	}
	select {
	case n.snapDone <- res:
	case <-ctx.Done():
	}
}

// snapWindow is how many chunk requests a fetcher keeps in flight: the
// leader reads and sends the next chunks while this node decodes and
// writes the last (one request at a time left both sides idle half the
// time: issue 7's W5).
const snapWindow = 4

// pullSnapshot writes the chunks of a snapshot served on subject into in
// while a goroutine requests and decodes the next ones, so the network,
// the decoding and the disk work side by side. It returns the snapshot's
// point once the last chunk is written.
func pullSnapshot(ctx context.Context, nc *nats.Conn, subject string, in *tree.Installer) (protocol.Point, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	chunks := make(chan tree.Chunk, 1)
	var g errgroup.Group
	g.Go(func() error {
		defer close(chunks)
		return fetchChunks(ctx, nc, subject, func(c tree.Chunk) error {
			select {
			case chunks <- c:
				return nil
			case <-ctx.Done():
				return ctx.Err()
			}
		})
	})
	var at protocol.Point
	var err error
	for c := range chunks {
		if err != nil {
			continue // the fetcher stops at cancel; drain what it sent
		}
		if err = in.Add(c); err != nil {
			cancel()
			continue
		}
		at = protocol.Point{Epoch: c.Epoch, Seq: c.Seq}
	}
	if gerr := g.Wait(); err == nil {
		err = gerr
	}
	return at, err
}

// fetchChunks requests the chunks of a new snapshot session on subject,
// snapWindow at a time once the first reply names the session, and hands
// each to deliver in order until the last. The server answers one
// session's requests in the order they arrive, so replies come in order;
// requests sent past the last chunk are answered with errors nobody reads.
func fetchChunks(ctx context.Context, nc *nats.Conn, subject string, deliver func(tree.Chunk) error) error {
	inbox := nats.NewInbox()
	sub, err := nc.SubscribeSync(inbox)
	if err != nil {
		return fmt.Errorf("replica: snapshot from %s: %w", subject, err)
	}
	defer sub.Unsubscribe()
	session, sent := "", 0
	ask := func(upTo int) error {
		for ; sent < upTo; sent++ {
			if err := nc.PublishRequest(subject, inbox, bus.Encode(snapRequest{Session: session, Index: sent})); err != nil {
				return fmt.Errorf("replica: snapshot chunk %d from %s: %w", sent, subject, err)
			}
		}
		return nil
	}
	if err := ask(1); err != nil {
		return err
	}
	for idx := 0; ; idx++ {
		c, s, err := nextChunk(ctx, sub)
		if err == nil && (c.Index != idx || (session != "" && s != session)) {
			err = fmt.Errorf("%w: chunk %d of session %s, want %d of %s", tree.ErrCorrupt, c.Index, s, idx, session)
		}
		if err != nil {
			return fmt.Errorf("replica: snapshot chunk %d from %s: %w", idx, subject, err)
		}
		session = s
		if !c.Last {
			if err := ask(idx + 1 + snapWindow); err != nil {
				return err
			}
		}
		if err := deliver(c); err != nil || c.Last {
			return err
		}
	}
}

// nextChunk waits up to 10 s for the next reply on sub and decodes it as a
// chunk, with its session.
func nextChunk(ctx context.Context, sub *nats.Subscription) (tree.Chunk, string, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	m, err := sub.NextMsgWithContext(ctx)
	if err != nil {
		return tree.Chunk{}, "", err
	}
	session := m.Header.Get(snapSessionHeader)
	if session == "" {
		if len(m.Data) == 0 && m.Header.Get("Status") == "503" { // NATS: no responders
			return tree.Chunk{}, "", nats.ErrNoResponders
		}
		var rep bus.Result
		if err := bus.Decode(m.Data, &rep); err != nil {
			return tree.Chunk{}, "", err
		}
		if err := rep.Err(); err != nil {
			return tree.Chunk{}, "", err
		}
		return tree.Chunk{}, "", errors.New("a reply with neither chunk nor error")
	}
	c, err := tree.UnmarshalChunk(m.Data)
	return c, session, err
}

// installSnapshot swaps a received snapshot in and tells the protocol.
func (n *Node) installSnapshot(s snapResult) error {
	n.fetching = false
	if s.err != nil {
		n.log.WithError(s.err).Warn("snapshot fetch failed; catch-up starts over")
		n.pn.SnapshotDone(protocol.Point{}, s.err)
		return nil
	}
	if s.at.Seq > n.tree.AppliedPoint().Seq {
		if n.checkpointing { // Install must not swap the tree under a checkpoint's fsyncs
			if err := n.checkpointed(<-n.ckptDone); err != nil {
				return err
			}
		}
		if err := n.tree.Install(s.in); err != nil {
			return err
		}
		n.noteTS(n.tree.AppliedTS())
	}
	n.pn.SnapshotDone(s.at, nil)
	return nil
}

// maybeCheckpoint starts a checkpoint of the tree now and then: the loop
// writes the pending lines and takes the point, a goroutine does the
// fsyncs (Checkpointing.Finish), and checkpointed finishes the work when it
// reports back.
func (n *Node) maybeCheckpoint() error {
	if n.checkpointing || time.Since(n.checkpoint) < n.cfg.CheckpointEvery {
		return nil
	}
	n.checkpoint = time.Now()
	c, err := n.tree.StartCheckpoint()
	if err != nil || c == nil { // nil: nothing applied since the last one
		return err
	}
	n.checkpointing = true
	n.wg.Add(1)
	go func() {
		defer n.wg.Done()
		var r checkpointResult
		r.at, r.err = c.Finish()
		n.ckptDone <- r // buffered: never blocks
	}()
	return nil
}

type checkpointResult struct {
	at  tree.Point
	err error
}

// checkpointed takes a finished checkpoint: it applies retention, and
// compacts the log behind the checkpoint, keeping KeepLogBytes of entries
// for followers that lag.
func (n *Node) checkpointed(r checkpointResult) error {
	n.checkpointing = false
	if r.err != nil {
		return r.err
	}
	if err := n.snaps.compact(time.Now()); err != nil {
		return err
	}
	return n.wal.DropThrough(n.pn.Compact(r.at.Seq, n.cfg.KeepLogBytes))
}
