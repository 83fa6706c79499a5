package systemtest

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"memstore/bus"
)

// TestMembersServeReadsWithoutTheRouter: the nodes of the view join the
// router's queue group on ms.api.get. With the router gone, every read is
// answered by a node: a stale one from its applied state, a linearizable
// one at a follower with a read index from the leader, and a read asked
// after a write acknowledged by the leader sees it.
func TestMembersServeReadsWithoutTheRouter(t *testing.T) {
	c := startCluster(t, 3)
	cx := ctx(t)
	rep, err := c.cl.Put(cx, "r/x", json.RawMessage(`1`))
	if err != nil {
		t.Fatal(err)
	}
	c.waitFor("all nodes applied", 5*time.Second, func() error {
		st, _ := c.cl.Status(cx)
		for _, n := range st.Nodes {
			if n.Applied < rep.Seq {
				return fmt.Errorf("node %d applied %d", n.ID, n.Applied)
			}
		}
		return nil
	})
	time.Sleep(300 * time.Millisecond) // every node joined on a tick
	c.router.Close()

	short := func() context.Context {
		ctx, cancel := context.WithTimeout(cx, 2*time.Second)
		t.Cleanup(cancel)
		return ctx
	}
	for i := 0; i < 30; i++ {
		g, err := c.cl.Get(short(), bus.GetRequest{Path: "r/x", Consistency: bus.Stale})
		if err != nil || string(g.Value) != "1" || g.AppliedSeq < rep.Seq {
			t.Fatalf("stale read %d without the router: %+v %v", i, g, err)
		}
		g, err = c.cl.Get(short(), bus.GetRequest{Path: "r/x"})
		if err != nil || string(g.Value) != "1" || g.Seq != rep.Seq {
			t.Fatalf("linearizable read %d without the router: %+v %v", i, g, err)
		}
	}
}
