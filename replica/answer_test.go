package replica

import (
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

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
	forward := func(op, body string) <-chan *nats.Msg {
		out := make(chan *nats.Msg, 1)
		go func() {
			m, err := s.nc.Request(s.sub.Fwd(1, op), bus.EncodeForwarded([]bus.Forwarded{{User: "u", Data: []byte(body)}}), 10*time.Second)
			if err != nil {
				t.Errorf("%s %s: %v", op, body, err)
			}
			out <- m
		}()
		return out
	}
	reply := func(m *nats.Msg) string {
		if m == nil {
			return ""
		}
		reps, err := bus.DecodeReplies(m.Data, 1)
		if err != nil {
			t.Fatal(err)
		}
		return string(reps[0])
	}

	fsys.hold.Store(true)
	put := forward(bus.OpPut, `{"path":"fresh","value":1}`)
	var got string
	select {
	case m := <-put:
		got = reply(m)
	case <-time.After(5 * time.Second):
		t.Fatal("the put was not answered while its apply was held")
	}
	if !strings.Contains(got, `"ok":true`) {
		t.Fatalf("put: %s", got)
	}
	get := forward(bus.OpGet, `{"path":"fresh"}`)
	select {
	case m := <-get:
		t.Fatalf("a get after the put was answered before the put was applied: %s", reply(m))
	case <-time.After(200 * time.Millisecond):
	}
	fsys.gate <- struct{}{}
	if got := reply(<-get); !strings.Contains(got, `"value":1`) {
		t.Fatalf("get after the put: %s", got)
	}

	keyed := forward(bus.OpPut, `{"path":"fresh2","value":2,"source":"s","source_seq":1}`)
	select {
	case m := <-keyed:
		t.Fatalf("a keyed put was answered before it was applied: %s", reply(m))
	case <-time.After(200 * time.Millisecond):
	}
	fsys.gate <- struct{}{}
	if got := reply(<-keyed); !strings.Contains(got, `"ok":true`) || strings.Contains(got, "duplicate") {
		t.Fatalf("keyed put: %s", got)
	}
	fsys.hold.Store(false)
	if got := reply(<-forward(bus.OpPut, `{"path":"fresh2","value":2,"source":"s","source_seq":1}`)); !strings.Contains(got, `"duplicate":true`) {
		t.Fatalf("keyed put sent again: %s", got)
	}
}
