package groupsvc

import (
	"context"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"memstore/internal/natstest"
	"memstore/replica/protocol"
)

// TestServiceLearnsAnotherCoordinatorsView: a view written by another
// group-service instance reaches this one through the bucket's watch,
// without it losing a CAS first, also after the watch ended and was started
// again. Two middlewares on one NATS cluster must not prepare an epoch
// above a view they have not heard of: that disrupts the leader the other
// one just named.
func TestServiceLearnsAnotherCoordinatorsView(t *testing.T) {
	_, nc, log := natstest.Start(t)
	svc, err := Start(nc, DefaultConfig(protocol.Group-1), log)
	if err != nil {
		t.Fatal(err)
	}
	defer svc.Close()

	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	other, err := openViewStore(ctx, js, svc.cfg.Bucket, 1)
	if err != nil {
		t.Fatal(err)
	}
	want := protocol.View{Epoch: 4, Leader: 2, Members: []protocol.NodeID{1, 2, 3}}
	if _, _, err := other.cas(ctx, want, 0); err != nil {
		t.Fatal(err)
	}
	waitView := func(want protocol.View) {
		t.Helper()
		for ctx.Err() == nil {
			if v, _ := svc.View(); v.Epoch == want.Epoch && v.Leader == want.Leader {
				return
			}
			time.Sleep(10 * time.Millisecond)
		}
		v, _ := svc.View()
		t.Fatalf("the service still holds view %+v, not the stored %+v", v, want)
	}
	waitView(want)

	// A watch that ends (its consumer gone) is started again, and a view
	// written meanwhile is learned.
	_ = svc.watch.Stop()
	next := protocol.View{Epoch: 5, Leader: 3, Members: []protocol.NodeID{1, 2, 3}}
	if _, _, err := other.cas(ctx, next, 1); err != nil {
		t.Fatal(err)
	}
	waitView(next)
}
