package replica

import (
	"context"
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
	s.mu.Lock()
	defer s.mu.Unlock()
	now := time.Now()
	for id, ss := range s.sessions {
		if now.Sub(ss.used) > snapIdle {
			ss.snap.Close()
			delete(s.sessions, id)
		}
	}
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
	if err != nil {
		_ = m.Respond(bus.ErrorReply(bus.Errorf(bus.CodeUnavailable, "snapshot: %v", err)))
		return
	}
	ss.next++
	ss.used = now
	if c.Last {
		ss.snap.Close()
		delete(s.sessions, req.Session)
	}
	rep := nats.NewMsg(m.Reply)
	rep.Header.Set(snapSessionHeader, req.Session)
	rep.Data = tree.MarshalChunk(c)
	_ = m.RespondMsg(rep)
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
		res.at, res.err = n.pullSnapshot(ctx, req, res.in)
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

// pullSnapshot writes the chunks of a snapshot into in while a goroutine
// requests and decodes the next one, so the network, the decoding and the
// disk work side by side. It returns the snapshot's point once the last
// chunk is written.
func (n *Node) pullSnapshot(ctx context.Context, req protocol.SnapshotRequest, in *tree.Installer) (protocol.Point, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	chunks := make(chan tree.Chunk, 1)
	var g errgroup.Group
	g.Go(func() error {
		defer close(chunks)
		session := ""
		for idx := 0; ; idx++ {
			c, s, err := n.snapChunk(ctx, req.Leader, session, idx)
			if err != nil {
				return err
			}
			session = s
			select {
			case chunks <- c:
			case <-ctx.Done():
				return ctx.Err()
			}
			if c.Last {
				return nil
			}
		}
	})
	var at protocol.Point
	var err error
	for c := range chunks {
		if err != nil {
			continue // the puller stops at cancel; drain what it sent
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

// snapChunk requests and decodes chunk idx of a snapshot session ("" starts
// one) and returns it with its session.
func (n *Node) snapChunk(ctx context.Context, leader protocol.NodeID, session string, idx int) (tree.Chunk, string, error) {
	rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	m, err := n.nc.RequestWithContext(rctx, n.sub.Snap(leader), bus.Encode(snapRequest{Session: session, Index: idx}))
	if err != nil {
		return tree.Chunk{}, "", fmt.Errorf("replica: snapshot chunk %d from node %d: %w", idx, leader, err)
	}
	session = m.Header.Get(snapSessionHeader)
	if session == "" {
		var rep bus.Result
		if err := bus.Decode(m.Data, &rep); err != nil {
			return tree.Chunk{}, "", err
		}
		if err := rep.Err(); err != nil {
			return tree.Chunk{}, "", fmt.Errorf("replica: snapshot chunk %d from node %d: %w", idx, leader, err)
		}
		return tree.Chunk{}, "", fmt.Errorf("replica: snapshot chunk %d from node %d: a reply with neither chunk nor error", idx, leader)
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
		if err := n.tree.Install(s.in); err != nil {
			return err
		}
		n.noteTS(n.tree.AppliedTS())
	}
	n.pn.SnapshotDone(s.at, nil)
	return nil
}

// maybeCheckpoint checkpoints the tree now and then, applies retention, and
// compacts the log behind the checkpoint, keeping KeepLogBytes of entries
// for followers that lag.
func (n *Node) maybeCheckpoint() error {
	if time.Since(n.checkpoint) < n.cfg.CheckpointEvery {
		return nil
	}
	n.checkpoint = time.Now()
	p, err := n.tree.Checkpoint()
	if err != nil {
		return err
	}
	if err := n.tree.Compact(); err != nil {
		return err
	}
	return n.wal.DropThrough(n.pn.Compact(p.Seq, n.cfg.KeepLogBytes))
}
