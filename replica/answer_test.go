package replica

import (
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"memstore/bus"
	"memstore/replica/protocol"
	"memstore/replica/storage/vfs"
)

// gateFS holds each Mkdir, while hold is set, until the test sends on
// gate: applying a new path's put holds the node's loop for as long as
// the test likes.
type gateFS struct {
	vfs.FS
	hold atomic.Bool
	gate chan struct{}
	open chan struct{} // closed at the test's end: nothing is held any more
}

func (f *gateFS) Mkdir(name string, perm os.FileMode) error {
	if f.hold.Load() {
		select {
		case <-f.gate:
		case <-f.open:
		}
	}
	return f.FS.Mkdir(name, perm)
}

// TestPutAnsweredBeforeApplied: a committed put is answered before its
// entry is applied (here: while applying it waits on a folder), but a get
// after it waits for the apply and sees it. A put keyed by a source is
// answered only once applied, since applying it decides whether it was a
// duplicate.
func TestPutAnsweredBeforeApplied(t *testing.T) {
	fsys := &gateFS{FS: vfs.OS, gate: make(chan struct{}), open: make(chan struct{})}
	s := startStaleNodeWith(t, func(c *Config) { c.FS = fsys })
	t.Cleanup(func() { close(fsys.open) }) // before the node closes
	s.view(protocol.View{Epoch: 1, Leader: 1, Members: []protocol.NodeID{1}})
	fsys.hold.Store(true)
	put := s.forward(bus.OpPut, `{"path":"fresh","value":1}`)
	var got string
	select {
	case got = <-put:
	case <-time.After(5 * time.Second):
		t.Fatal("the put was not answered while its apply was held")
	}
	if !strings.Contains(got, `"ok":true`) {
		t.Fatalf("put: %s", got)
	}
	get := s.forward(bus.OpGet, `{"path":"fresh"}`)
	select {
	case got := <-get:
		t.Fatalf("a get after the put was answered before the put was applied: %s", got)
	case <-time.After(200 * time.Millisecond):
	}
	fsys.gate <- struct{}{}
	if got := <-get; !strings.Contains(got, `"value":1`) {
		t.Fatalf("get after the put: %s", got)
	}

	keyed := s.forward(bus.OpPut, `{"path":"fresh2","value":2,"source":"s","source_seq":1}`)
	select {
	case got := <-keyed:
		t.Fatalf("a keyed put was answered before it was applied: %s", got)
	case <-time.After(200 * time.Millisecond):
	}
	fsys.gate <- struct{}{}
	if got := <-keyed; !strings.Contains(got, `"ok":true`) || strings.Contains(got, "duplicate") {
		t.Fatalf("keyed put: %s", got)
	}
	fsys.hold.Store(false)
	if got := <-s.forward(bus.OpPut, `{"path":"fresh2","value":2,"source":"s","source_seq":1}`); !strings.Contains(got, `"duplicate":true`) {
		t.Fatalf("keyed put sent again: %s", got)
	}
}

// forward sends the node a forwarded request of op, as the router does,
// and hands over its reply ("" if none came in 10 s).
func (s *staleNode) forward(op, body string) <-chan string {
	out := make(chan string, 1)
	go func() {
		defer close(out)
		m, err := s.nc.Request(s.sub.Fwd(1, op), bus.EncodeForwarded([]bus.Forwarded{{User: "u", Data: []byte(body)}}), 10*time.Second)
		if err != nil {
			s.t.Errorf("%s %s: %v", op, body, err)
			return
		}
		reps, err := bus.DecodeReplies(m.Data, 1)
		if err != nil {
			s.t.Errorf("%s %s: %v", op, body, err)
			return
		}
		out <- string(reps[0])
	}()
	return out
}
