package systemtest

import (
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/sirupsen/logrus"

	"memstore/bus"
	"memstore/groupsvc"
	"memstore/replica"
	"memstore/replica/protocol"
)

// startGroup starts a group service and router on nc, retrying while the
// NATS server (or cluster) is not ready for the view bucket; both stop at
// the test's end.
func startGroup(t *testing.T, nc *nats.Conn, cfg groupsvc.Config, log logrus.FieldLogger) {
	t.Helper()
	var svc *groupsvc.Service
	var err error
	for start := time.Now(); ; time.Sleep(200 * time.Millisecond) {
		if svc, err = groupsvc.Start(nc, cfg, log); err == nil || time.Since(start) > 20*time.Second {
			break
		}
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(svc.Close)
	r, err := groupsvc.StartRouter(svc)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(r.Close)
}

// startNodeAt connects node id to url and starts it on a folder under dir;
// it stops at the test's end.
func startNodeAt(t *testing.T, url string, id int, dir string, log logrus.FieldLogger, opts ...nats.Option) {
	t.Helper()
	name := fmt.Sprintf("node%d", id)
	nc, err := bus.Connect(url, name, log, opts...)
	if err != nil {
		t.Fatal(err)
	}
	n, err := replica.Start(nc, replica.DefaultConfig(protocol.NodeID(id), filepath.Join(dir, name)), log)
	if err != nil {
		nc.Close()
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Close(); nc.Close() })
}
