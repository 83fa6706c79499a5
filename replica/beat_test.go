package replica

import (
	"os"
	"sync/atomic"
	"testing"
	"time"

	"memstore/bus"
	"memstore/replica/protocol"
	"memstore/replica/storage/vfs"
)

// slowMkdirFS makes each Mkdir take delay while slow is set: a disk busy
// enough that applying a new path holds the node's loop.
type slowMkdirFS struct {
	vfs.FS
	slow  atomic.Bool
	delay time.Duration
}

func (f *slowMkdirFS) Mkdir(name string, perm os.FileMode) error {
	if f.slow.Load() {
		time.Sleep(f.delay)
	}
	return f.FS.Mkdir(name, perm)
}

// TestBusyLoopKeepsBeating: while the node's loop is held for 4 s (a
// new path's folder on a slow disk), its heartbeat keeps going: no gap
// between two comes near the group's failure timeout (1 s), which would
// have the group elect another leader although none failed. A loop held
// longer than busyBeat (played by moving its last turn back) is let go
// silent, so the group counts the node down.
func TestBusyLoopKeepsBeating(t *testing.T) {
	fsys := &slowMkdirFS{FS: vfs.OS, delay: 4 * time.Second}
	s := startStaleNodeWith(t, func(c *Config) { c.FS = fsys })
	s.view(protocol.View{Epoch: 1, Leader: 1, Members: []protocol.NodeID{1}})
	fsys.slow.Store(true)
	put := bus.EncodeForwarded([]bus.Forwarded{{User: "u", Data: []byte(`{"path":"fresh","value":1}`)}})
	start := time.Now()
	done := make(chan error, 1)
	go func() {
		_, err := s.nc.Request(s.sub.Fwd(1, bus.OpPut), put, 10*time.Second)
		done <- err
	}()
	status := func(wait time.Duration) bool { // a heartbeat of node 1 within wait
		for deadline := time.Now().Add(wait); time.Now().Before(deadline); {
			m, err := s.hbs.NextMsg(time.Until(deadline))
			if err != nil {
				return false
			}
			var hb protocol.Message
			if hb.UnmarshalBinary(m.Data) == nil && hb.Type == protocol.MsgStatus && hb.From == 1 {
				return true
			}
		}
		return false
	}
	last, longest := time.Now(), time.Duration(0)
	for time.Since(start) < 1200*time.Millisecond {
		if !status(2 * time.Second) {
			t.Fatal("no heartbeat for 2 s while the loop is busy")
		}
		longest, last = max(longest, time.Since(last)), time.Now()
	}
	s.n.turned.Store(time.Now().Add(-2 * busyBeat).UnixNano()) // held that long: the loop is blocked, so it stays
	for range 3 {                                              // what was sent before
		if !status(200 * time.Millisecond) {
			break
		}
	}
	if status(600 * time.Millisecond) {
		t.Error("a heartbeat came for a loop held longer than busyBeat")
	}
	fsys.slow.Store(false)
	if err := <-done; err != nil {
		t.Fatalf("the put: %v", err)
	}
	// The put is answered before it is applied; a get after it waits for the loop.
	get := bus.EncodeForwarded([]bus.Forwarded{{User: "u", Data: []byte(`{"path":"fresh"}`)}})
	if _, err := s.nc.Request(s.sub.Fwd(1, bus.OpGet), get, 10*time.Second); err != nil {
		t.Fatalf("the get: %v", err)
	}
	if elapsed := time.Since(start); elapsed < 3*time.Second {
		t.Fatalf("the put and a get after it took %v: the loop was not held", elapsed)
	}
	if longest > 500*time.Millisecond {
		t.Errorf("heartbeats %v apart while the loop was busy, want them on every tick", longest)
	}
}
