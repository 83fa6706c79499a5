package groupsvc

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/sirupsen/logrus"

	"memstore/bus"
	"memstore/groupsvc/election"
	"memstore/replica/protocol"
)

// Config configures the group service and router.
type Config struct {
	// Prefix of every subject. Default "ms".
	Prefix string
	// Tick is the clock of the election machine. Default 100 ms.
	Tick time.Duration
	// Election tunes the coordinator; its ID must differ from every node's.
	Election election.Config
	// Bucket is the JetStream KV bucket of the view. Default "memstore_view".
	Bucket string
	// Replicas of the bucket: 1 on one server, 3 on a NATS cluster. Default 1.
	Replicas int
	// RequestTimeout bounds a routed request, retries included. Default 4 s.
	RequestTimeout time.Duration
	// Auth says the NATS server authenticates users (status reports it).
	Auth bool
	// MaxInflightPerUser bounds the requests of one writer being answered
	// at once; more are refused as unavailable. Default 1,024.
	MaxInflightPerUser int
}

// DefaultConfig returns the defaults for a coordinator with id.
func DefaultConfig(id protocol.NodeID) Config {
	return Config{Prefix: bus.DefaultPrefix, Tick: 100 * time.Millisecond,
		Election: election.DefaultConfig(id), Bucket: "memstore_view", Replicas: 1,
		RequestTimeout: bus.RouterWait, MaxInflightPerUser: 1024}
}

// Service is the group service: one goroutine owns the coordinator.
type Service struct {
	cfg   Config
	log   logrus.FieldLogger
	nc    *nats.Conn
	sub   bus.Subjects
	store *viewStore
	watch jetstream.KeyWatcher // views other coordinators write
	in    chan protocol.Message
	leave chan protocol.NodeID // members the operator takes out (memstore leave)
	subs  []*nats.Subscription

	mu    sync.Mutex // guards state
	state snapshot   // what Status and the router read

	cancel context.CancelFunc
	done   chan struct{}
}

// snapshot is the coordinator's state as the router sees it.
type snapshot struct {
	view  protocol.View
	nodes []election.NodeInfo
	// changed is cancelled when a view of a later epoch replaces view:
	// the router cuts a request to the old leader short with it.
	changed context.Context
	cancel  context.CancelFunc
}

// Start opens the view bucket, subscribes, and runs the coordinator until
// Close.
func Start(nc *nats.Conn, cfg Config, log logrus.FieldLogger) (_ *Service, err error) {
	js, err := jetstream.New(nc)
	if err != nil {
		return nil, fmt.Errorf("groupsvc: jetstream: %w", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	store, err := openViewStore(ctx, js, cfg.Bucket, cfg.Replicas)
	if err != nil {
		return nil, err
	}
	// Watch before loading, so no view written in between is missed.
	watch, err := store.watch()
	if err != nil {
		return nil, err
	}
	s := &Service{cfg: cfg, log: log, nc: nc, sub: bus.NewSubjects(cfg.Prefix), store: store, watch: watch,
		in: make(chan protocol.Message, 4096), leave: make(chan protocol.NodeID, 16), done: make(chan struct{})}
	defer func() {
		if err != nil {
			s.unsubscribe()
			_ = watch.Stop()
		}
	}()
	view, rev, err := store.load(ctx)
	if err != nil {
		return nil, err
	}
	coord, err := election.New(cfg.Election, view, rev)
	if err != nil {
		return nil, err
	}
	s.state.view = view
	s.state.changed, s.state.cancel = context.WithCancel(context.Background())
	for subj, h := range map[string]nats.MsgHandler{s.sub.Group(): s.receive, s.sub.To(cfg.Election.ID): s.receive, s.sub.LeaveAll(): s.takeOut} {
		sub, err := nc.Subscribe(subj, h)
		if err != nil {
			return nil, fmt.Errorf("groupsvc: subscribe %s: %w", subj, err)
		}
		s.subs = append(s.subs, sub)
	}
	loopCtx, loopCancel := context.WithCancel(context.Background())
	s.cancel = loopCancel
	log.WithFields(logrus.Fields{"epoch": view.Epoch, "leader": view.Leader, "revision": rev}).Info("group service started")
	go s.run(loopCtx, coord)
	return s, nil
}

func (s *Service) receive(m *nats.Msg) {
	var msg protocol.Message
	if err := msg.UnmarshalBinary(m.Data); err != nil {
		s.log.WithError(err).Debug("dropping malformed group message")
		return
	}
	select {
	case s.in <- msg:
	default:
		s.log.Warn("group service overloaded: dropping a message")
	}
}

// takeOut answers memstore leave for a member: the coordinator takes it
// out of the group, as it would a member that asks to leave, even if it is
// down for good and cannot ask (the node, if alive, answers too, and
// stops once out). A non-member is the node's to answer: one just started
// may not be known here yet.
func (s *Service) takeOut(m *nats.Msg) {
	id, ok := s.sub.LeaveID(m.Subject)
	if !ok {
		return
	}
	if view, _ := s.View(); !view.IsMember(id) {
		return
	}
	select {
	case s.leave <- id:
		_ = m.Respond(bus.Encode(bus.Result{OK: true}))
	default:
		_ = m.Respond(bus.ErrorReply(bus.Errorf(bus.CodeUnavailable, "the group service is busy: ask again")))
	}
}

// run is the coordinator's owner loop.
func (s *Service) run(ctx context.Context, c *election.Coordinator) {
	defer close(s.done)
	t := time.NewTicker(s.cfg.Tick)
	defer t.Stop()
	updates := s.watch.Updates()
	var ended time.Time // when the watch ended, if it did
	for {
		select {
		case <-ctx.Done():
			return
		case m := <-s.in:
			c.Step(m)
		case id := <-s.leave:
			c.Remove(id)
		case <-t.C:
			c.Tick()
			if updates == nil && time.Since(ended) >= time.Second {
				updates, ended = s.rewatch(ctx, c), time.Now()
			}
		case e, ok := <-updates:
			if !ok { // its consumer is gone: watch again on a tick
				s.log.Warn("view watch ended: watching again")
				updates, ended = nil, time.Now()
				break
			}
			if e == nil {
				break
			}
			v, rev, err := decodeView(e)
			if err != nil {
				s.log.WithError(err).Warn("ignoring a view update")
				break
			}
			c.Stored(v, rev)
		}
		s.handle(ctx, c)
	}
}

// rewatch starts a new watch of the view bucket and reports the view stored
// meanwhile; nil if the bucket cannot be reached (tried again later).
func (s *Service) rewatch(ctx context.Context, c *election.Coordinator) <-chan jetstream.KeyValueEntry {
	w, err := s.store.watch()
	if err != nil {
		s.log.WithError(err).Warn("view watch")
		return nil
	}
	_ = s.watch.Stop()
	s.watch = w
	lctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	if v, rev, err := s.store.load(lctx); err == nil {
		c.Stored(v, rev)
	}
	return w.Updates()
}

// handle carries out the coordinator's Ready: messages, then the CAS.
func (s *Service) handle(ctx context.Context, c *election.Coordinator) {
	for {
		rd := c.Ready()
		for _, m := range rd.Messages {
			b, _ := m.MarshalBinary()
			if err := s.nc.Publish(s.sub.Address(m), b); err != nil {
				s.log.WithError(err).Debug("publish failed")
			}
		}
		if rd.CAS == nil {
			break
		}
		cctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		v, rev, err := s.store.cas(cctx, rd.CAS.View, rd.CAS.Rev)
		cancel()
		if err != nil {
			if errors.Is(err, context.Canceled) {
				return
			}
			s.log.WithError(err).Warn("view store unreachable")
			v, rev = c.View() // nothing learned: the attempt is given up
		}
		if v.Epoch == rd.CAS.View.Epoch && v.Leader == rd.CAS.View.Leader {
			s.log.WithFields(logrus.Fields{"epoch": v.Epoch, "leader": v.Leader, "members": v.Members}).Info("new view")
			viewChanges.Inc()
		}
		c.Stored(v, rev)
	}
	view, _ := c.View()
	nodes := c.Nodes()
	s.setState(view, nodes)
	viewEpoch.Set(float64(view.Epoch))
	viewLeader.Set(float64(view.Leader))
	var commit uint64
	for _, n := range nodes {
		if n.ID == view.Leader {
			commit = n.Commit
		}
	}
	for _, n := range nodes {
		id := strconv.FormatUint(uint64(n.ID), 10)
		up := 0.0
		if n.Alive {
			up = 1
		}
		nodeUp.WithLabelValues(id).Set(up)
		nodeLag.WithLabelValues(id).Set(float64(commit - min(commit, n.Applied)))
	}
}

// View returns the current view and node states.
func (s *Service) View() (protocol.View, []election.NodeInfo) {
	cur := s.current()
	return cur.view, cur.nodes
}

// setState publishes the coordinator's view and node states to the router
// and Status; a view of a new epoch cancels the old one's context.
func (s *Service) setState(view protocol.View, nodes []election.NodeInfo) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if view.Epoch != s.state.view.Epoch {
		s.state.cancel()
		s.state.changed, s.state.cancel = context.WithCancel(context.Background())
	}
	s.state.view, s.state.nodes = view, nodes
}

// current returns the view, the node states and a context cancelled when
// the view changes.
func (s *Service) current() snapshot {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.state
}

func (s *Service) unsubscribe() {
	for _, sub := range s.subs {
		_ = sub.Unsubscribe()
	}
}

// Close stops the service and waits for its loop.
func (s *Service) Close() {
	s.unsubscribe()
	s.cancel()
	<-s.done
	_ = s.watch.Stop()
}
