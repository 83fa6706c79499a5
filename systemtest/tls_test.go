package systemtest

import (
	"bufio"
	"context"
	"encoding/json"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"memstore/bus"
	"memstore/client"
	"memstore/groupsvc"
)

// TestTLS: a middleware that requires TLS serves nodes and clients that
// trust its CA end to end; a client without the CA is refused, and a
// plaintext connection gets nowhere.
func TestTLS(t *testing.T) {
	log := quietLogger()
	dir := t.TempDir()
	certs := filepath.Join(dir, "certs")
	if err := bus.MakeDevCerts(certs, []string{"127.0.0.1"}); err != nil {
		t.Fatal(err)
	}
	scfg := bus.DefaultServerConfig(filepath.Join(dir, "mw"))
	scfg.Port = -1
	scfg.TLSCert, scfg.TLSKey = filepath.Join(certs, bus.ServerCertFile), filepath.Join(certs, bus.ServerKeyFile)
	srv, err := bus.StartServer(scfg, log)
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Shutdown()
	mwConn, err := srv.Connect("mw", log) // in process: no TLS needed
	if err != nil {
		t.Fatal(err)
	}
	defer mwConn.Close()
	gcfg := groupsvc.DefaultConfig(1000)
	gcfg.Election.Bootstrap = 1
	startGroup(t, mwConn, gcfg, log)
	ca := filepath.Join(certs, bus.CAFile)
	startNodeAt(t, srv.ClientURL(), 1, dir, log, nats.RootCAs(ca))
	cl, err := client.Dial(srv.ClientURL(), client.Options{TLSCA: ca, Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	cx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	for {
		if _, err = cl.Put(cx, "tls/x", json.RawMessage(`1`)); err == nil || cx.Err() != nil {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if err != nil {
		t.Fatal(err)
	}
	if g, err := cl.Get(cx, bus.GetRequest{Path: "tls/x"}); err != nil || string(g.Value) != "1" {
		t.Fatalf("get over TLS: %+v %v", g, err)
	}
	if _, err := client.Dial(srv.ClientURL(), client.Options{}); err == nil {
		t.Fatal("a client that does not trust the CA connected")
	}
	// Plaintext: the server announces TLS and answers a plaintext CONNECT
	// with no PONG.
	_, addr, _ := strings.Cut(srv.ClientURL(), "://")
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	r := bufio.NewReader(conn)
	info, _ := r.ReadString('\n')
	if !strings.Contains(info, `"tls_required":true`) {
		t.Fatalf("server INFO does not require TLS: %s", info)
	}
	_, _ = conn.Write([]byte("CONNECT {\"verbose\":false}\r\nPING\r\n"))
	_ = conn.SetReadDeadline(time.Now().Add(3 * time.Second))
	rest, _ := r.ReadString('\n')
	if strings.HasPrefix(rest, "PONG") {
		t.Fatalf("plaintext connection answered: %q", rest)
	}
}
