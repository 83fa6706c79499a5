package replica

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/sirupsen/logrus"

	"memstore/bus"
	"memstore/replica/protocol"
	"memstore/replica/tree"
)

// snapRequest asks for chunk Index of a snapshot session ("" starts one).
type snapRequest struct {
	Session string `json:"session"`
	Index   int    `json:"index"`
}

// snapReply carries one chunk (tree.Chunk, encoded) of a session.
type snapReply struct {
	bus.Result
	Session string          `json:"session,omitempty"`
	Chunk   json.RawMessage `json:"chunk,omitempty"`
}

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
	_ = m.Respond(bus.Encode(snapReply{Result: bus.Result{OK: true}, Session: req.Session, Chunk: tree.MarshalChunk(c)}))
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
	res := snapResult{}
	res.in, res.err = n.tree.NewInstaller()
	session, start := "", time.Now()
	for idx := 0; res.err == nil; idx++ {
		rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		m, err := n.nc.RequestWithContext(rctx, n.sub.Snap(req.Leader), bus.Encode(snapRequest{Session: session, Index: idx}))
		cancel()
		if err != nil {
			res.err = fmt.Errorf("replica: snapshot chunk %d from node %d: %w", idx, req.Leader, err)
			break
		}
		var rep snapReply
		if e := bus.Decode(m.Data, &rep); e != nil {
			res.err = e
			break
		}
		if err := rep.Err(); err != nil {
			res.err = err
			break
		}
		c, err := tree.UnmarshalChunk(rep.Chunk)
		if err == nil {
			err = res.in.Add(c)
		}
		if err != nil {
			res.err = err
			break
		}
		session = rep.Session
		res.at = protocol.Point{Epoch: c.Epoch, Seq: c.Seq}
		if c.Last {
			n.log.WithFields(logrus.Fields{"from": req.Leader, "at": c.Seq, "chunks": idx + 1,
				"took": time.Since(start).Round(time.Millisecond)}).Info("snapshot received")
			break
		}
	}
	select {
	case n.snapDone <- res:
	case <-ctx.Done():
	}
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
// compacts the log behind the checkpoint, keeping KeepLog entries for
// followers that lag.
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
	if p.Seq <= n.cfg.KeepLog {
		return nil
	}
	c := p.Seq - n.cfg.KeepLog
	n.pn.Compact(c)
	return n.wal.DropThrough(c)
}
