package replica

import (
	"testing"
	"time"

	"github.com/sirupsen/logrus"
	"github.com/sirupsen/logrus/hooks/test"

	"memstore/bus"
	"memstore/internal/proc"
)

// TestNotConnectedIsNotWarnedPerMessage: a node started before its NATS
// server is up cannot send its heartbeats; each one dropped is logged at
// debug, not warned (a lost connection is logged once, when it goes).
func TestNotConnectedIsNotWarnedPerMessage(t *testing.T) {
	addr, err := proc.FreeAddr() // no server listens there
	if err != nil {
		t.Fatal(err)
	}
	log, hook := test.NewNullLogger()
	log.SetLevel(logrus.DebugLevel)
	nc, err := bus.Connect("nats://"+addr, "node-1", log)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	n, err := Start(nc, DefaultConfig(1, t.TempDir()), log)
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	dropped := func() bool {
		for _, e := range hook.AllEntries() {
			if e.Message == "protocol message not sent" {
				return true
			}
		}
		return false
	}
	for deadline := time.Now().Add(10 * time.Second); !dropped(); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("no heartbeat dropped in 10 s")
		}
	}
	for _, e := range hook.AllEntries() {
		if e.Level <= logrus.WarnLevel {
			t.Errorf("%s: %s %v", e.Level, e.Message, e.Data)
		}
	}
}
