package replica

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"memstore/bus"
	"memstore/internal/natstest"
	"memstore/replica/protocol"
)

// staleNode is node 1 alone on a NATS server, with no group service: the
// test plays the coordinator's views.
type staleNode struct {
	t   *testing.T
	n   *Node
	nc  *nats.Conn
	sub bus.Subjects
	hbs *nats.Subscription // the node's heartbeats
}

func startStaleNode(t *testing.T) *staleNode {
	return startStaleNodeWith(t, func(*Config) {})
}

// startStaleNodeWith starts it with its config changed by set.
func startStaleNodeWith(t *testing.T, set func(*Config)) *staleNode {
	_, nc, log := natstest.Start(t)
	s := &staleNode{t: t, nc: nc, sub: bus.NewSubjects("")}
	var err error
	if s.hbs, err = nc.SubscribeSync(s.sub.Group()); err != nil {
		t.Fatal(err)
	}
	cfg := DefaultConfig(1, t.TempDir())
	set(&cfg)
	if s.n, err = Start(nc, cfg, log); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.n.Close)
	return s
}

func (s *staleNode) get(body string, timeout time.Duration) (string, error) {
	m, err := s.nc.Request(s.sub.StaleGet(), []byte(body), timeout)
	if err != nil {
		return "", err
	}
	return string(m.Data), nil
}

// view publishes a view as the coordinator would, and waits for a
// heartbeat of its epoch: the loop has taken it, and set its stale gets.
func (s *staleNode) view(v protocol.View) {
	s.t.Helper()
	b, _ := protocol.Message{Type: protocol.MsgView, From: protocol.Group, To: protocol.Multicast, View: &v}.MarshalBinary()
	if err := s.nc.Publish(s.sub.All(), b); err != nil {
		s.t.Fatal(err)
	}
	s.heartbeat(v.Epoch)
}

// heartbeat waits for a heartbeat of node 1 of at least epoch.
func (s *staleNode) heartbeat(epoch uint64) {
	s.t.Helper()
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); {
		m, err := s.hbs.NextMsg(time.Until(deadline))
		if err != nil {
			break
		}
		var hb protocol.Message
		if hb.UnmarshalBinary(m.Data) == nil && hb.Type == protocol.MsgStatus && hb.From == 1 && hb.Epoch >= epoch {
			return
		}
	}
	s.t.Fatalf("no heartbeat of epoch %d from node 1", epoch)
}

// serves reports whether a stale get is answered (a path never written:
// not_found), failing on any other outcome.
func (s *staleNode) serves() bool {
	s.t.Helper()
	rep, err := s.get(`{"path":"no/such"}`, 2*time.Second)
	switch {
	case errors.Is(err, nats.ErrNoResponders):
		return false
	case err != nil || !strings.Contains(rep, `"code":"not_found"`):
		s.t.Fatalf("a stale get of a path never written: %s %v", rep, err)
	}
	return true
}

// TestStaleGetsOnlyFromMembers: a node serves ms.api.get.stale itself
// once a view names it a member, and stops when a view leaves it out; a
// node no view names (one joining) does not, so a stale get never reads
// the half-copied state of a joiner.
func TestStaleGetsOnlyFromMembers(t *testing.T) {
	s := startStaleNode(t)
	s.heartbeat(0) // the loop runs
	if s.serves() {
		t.Fatal("served a stale get before any view")
	}
	s.view(protocol.View{Epoch: 1, Leader: 2, Members: []protocol.NodeID{2, 3}})
	if s.serves() {
		t.Fatal("served a stale get while a view leaves it out")
	}
	s.view(protocol.View{Epoch: 2, Leader: 2, Members: []protocol.NodeID{1, 2, 3}})
	if !s.serves() {
		t.Fatal("a member does not serve stale gets")
	}
	for _, tc := range []struct{ body, code string }{
		{`{"path":"a/b","consistency":"linearizable"}`, bus.CodeBadRequest},
		{`{"path":"a//b"}`, bus.CodeBadPath},
		{`not json`, bus.CodeBadRequest},
	} {
		if rep, err := s.get(tc.body, 2*time.Second); err != nil || !strings.Contains(rep, `"code":"`+tc.code+`"`) {
			t.Errorf("%s: want %s, got %s %v", tc.body, tc.code, rep, err)
		}
	}
	s.view(protocol.View{Epoch: 3, Leader: 2, Members: []protocol.NodeID{2, 3}})
	if s.serves() {
		t.Fatal("served a stale get after a view left it out")
	}
}

// TestStaleGetsRefusedWhenStuckOrStopped: a member whose loop has not
// turned for stallAfter (a hung disk) refuses stale gets as unavailable,
// so the client asks another; a get held for its min_seq is answered
// unavailable when the node stops, not left to its asker's timeout.
func TestStaleGetsRefusedWhenStuckOrStopped(t *testing.T) {
	s := startStaleNode(t)
	s.view(protocol.View{Epoch: 1, Leader: 2, Members: []protocol.NodeID{1, 2, 3}})
	if !s.serves() {
		t.Fatal("a member does not serve stale gets")
	}
	// The loop marks a turn at least every tick: mark one long ago and ask
	// at once, a few times in case a tick came between.
	refused := false
	for i := 0; i < 5 && !refused; i++ {
		s.n.turned.Store(time.Now().Add(-2 * stallAfter).UnixNano())
		rep, err := s.get(`{"path":"no/such"}`, 2*time.Second)
		refused = err == nil && strings.Contains(rep, `"code":"unavailable"`) && strings.Contains(rep, "stuck")
	}
	if !refused {
		t.Fatal("a node whose loop is stuck still serves stale gets")
	}
	for deadline := time.Now().Add(2 * time.Second); ; time.Sleep(10 * time.Millisecond) { // the next tick's turn
		if rep, err := s.get(`{"path":"no/such"}`, 2*time.Second); err == nil && strings.Contains(rep, `"code":"not_found"`) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no stale get served once the loop turns again")
		}
	}
	held := make(chan error, 1)
	start := time.Now()
	go func() {
		rep, err := s.get(`{"path":"no/such","min_seq":99}`, 4*time.Second)
		if err == nil && !strings.Contains(rep, `"code":"unavailable"`) {
			err = errors.New(rep)
		}
		held <- err
	}()
	time.Sleep(200 * time.Millisecond) // the get is held in the loop
	s.n.Close()
	if err := <-held; err != nil {
		t.Fatalf("a get held for its min_seq as the node stopped: %v", err)
	}
	if waited := time.Since(start); waited > 2*time.Second {
		t.Fatalf("answered after %v: the node left it to time out", waited)
	}
}

// TestStaleGetsInBatches: a member answers a batch of stale gets
// (bus.HeaderBatch) with one frame per get, in its order, each the reply
// the get alone would have had; a get waiting for its min_seq holds the
// batch up to the batch's deadline; a batch that is not frames, or of more
// than bus.MaxBatchGets gets, is refused.
func TestStaleGetsInBatches(t *testing.T) {
	s := startStaleNode(t)
	s.view(protocol.View{Epoch: 1, Leader: 2, Members: []protocol.NodeID{1, 2, 3}})
	ask := func(data []byte) (*nats.Msg, error) {
		m := nats.NewMsg(s.sub.StaleGet())
		m.Header.Set(bus.HeaderBatch, "4")
		m.Header.Set(bus.HeaderDeadline, "300")
		m.Data = data
		return s.nc.RequestMsg(m, 3*time.Second)
	}
	var batch []byte
	gets := []string{`{"path":"no/such"}`, `{"path":"a//b"}`, `{"path":"no/such","min_seq":99}`, `{"path":"a","consistency":"linearizable"}`}
	for _, g := range gets {
		batch = bus.AppendFrame(batch, g)
	}
	start := time.Now()
	m, err := ask(batch)
	if err != nil {
		t.Fatal(err)
	}
	if waited := time.Since(start); waited < 250*time.Millisecond {
		t.Errorf("answered after %v: the get waiting for its min_seq did not hold the batch", waited)
	}
	reps, err := bus.DecodeReplies(m.Data, len(gets))
	if err != nil {
		t.Fatalf("reply %q: %v", m.Data, err)
	}
	for i, code := range []string{bus.CodeNotFound, bus.CodeBadPath, bus.CodeTimeout, bus.CodeBadRequest} {
		if !strings.Contains(string(reps[i]), `"code":"`+code+`"`) {
			t.Errorf("%s in a batch: want %s, got %s", gets[i], code, reps[i])
		}
	}
	var tooMany []byte
	for range bus.MaxBatchGets + 1 {
		tooMany = bus.AppendFrame(tooMany, gets[0])
	}
	for what, data := range map[string][]byte{"not frames": {0xff}, "of too many gets": tooMany} {
		if m, err := ask(data); err != nil || !strings.HasPrefix(string(m.Data), `{"ok":false,"error":{"code":"bad_request"`) {
			t.Errorf("a batch %s: %v %v", what, m, err)
		}
	}
}
