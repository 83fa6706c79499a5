// Package natstest starts memstore's embedded NATS server for a test: a
// random loopback port, JetStream in the test's temporary folder, shut
// down (with the connection it opens) when the test ends.
package natstest

import (
	"testing"

	"github.com/nats-io/nats.go"
	"github.com/sirupsen/logrus"

	"memstore/bus"
)

// Start starts the server and opens the middleware's own in-process
// connection to it; the logger prints warnings and worse.
func Start(t testing.TB) (*bus.Server, *nats.Conn, logrus.FieldLogger) {
	t.Helper()
	log := logrus.New()
	log.SetLevel(logrus.WarnLevel)
	cfg := bus.DefaultServerConfig(t.TempDir())
	cfg.Port = -1
	srv, err := bus.StartServer(cfg, log)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Shutdown)
	nc, err := srv.Connect("test", log)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	return srv, nc, log
}
