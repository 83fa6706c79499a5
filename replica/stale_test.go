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

// TestStaleGetsOnlyFromMembers: a node serves ms.api.get.stale itself
// once a view names it a member, and stops when a view leaves it out; a
// node no view names (one joining) does not, so a stale get never reads
// the half-copied state of a joiner.
func TestStaleGetsOnlyFromMembers(t *testing.T) {
	_, nc, log := natstest.Start(t)
	n, err := Start(nc, DefaultConfig(1, t.TempDir()), log)
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	sub := bus.NewSubjects("")
	get := func(body string) (string, error) {
		m, err := nc.Request(sub.StaleGet(), []byte(body), 2*time.Second)
		if err != nil {
			return "", err
		}
		return string(m.Data), nil
	}
	view := func(v protocol.View) {
		b, _ := protocol.Message{Type: protocol.MsgView, From: protocol.Group, To: protocol.Multicast, View: &v}.MarshalBinary()
		if err := nc.Publish(sub.All(), b); err != nil {
			t.Fatal(err)
		}
	}
	// Waits for the node to (not) serve: it takes a view in its loop.
	serves := func(want bool) {
		t.Helper()
		for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(10 * time.Millisecond) {
			rep, err := get(`{"path":"no/such"}`)
			got := err == nil
			if got == want {
				if got && !strings.Contains(rep, `"code":"not_found"`) {
					t.Fatalf("a stale get of a path never written: %s", rep)
				}
				if !got && !errors.Is(err, nats.ErrNoResponders) {
					t.Fatalf("a stale get with no member up: %v", err)
				}
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("serves stale gets: %v, want %v (%s %v)", got, want, rep, err)
			}
		}
	}
	serves(false) // no view yet
	view(protocol.View{Epoch: 1, Leader: 2, Members: []protocol.NodeID{2, 3}})
	time.Sleep(100 * time.Millisecond) // the node has taken the view (the next one is later)
	serves(false)
	view(protocol.View{Epoch: 2, Leader: 2, Members: []protocol.NodeID{1, 2, 3}})
	serves(true)
	for _, tc := range []struct{ body, code string }{
		{`{"path":"a/b","consistency":"linearizable"}`, bus.CodeBadRequest},
		{`{"path":"a//b"}`, bus.CodeBadPath},
		{`not json`, bus.CodeBadRequest},
	} {
		if rep, err := get(tc.body); err != nil || !strings.Contains(rep, `"code":"`+tc.code+`"`) {
			t.Errorf("%s: want %s, got %s %v", tc.body, tc.code, rep, err)
		}
	}
	view(protocol.View{Epoch: 3, Leader: 2, Members: []protocol.NodeID{2, 3}})
	serves(false)
}
