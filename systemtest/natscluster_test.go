package systemtest

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"memstore/bus"
	"memstore/client"
	"memstore/groupsvc"
	"memstore/replica/protocol"
)

// startDeployCluster starts the 3-server NATS cluster of deploy/nats (its
// accounts and settings, on free ports and temporary folders) and returns
// the servers.
func startDeployCluster(t *testing.T, dir, certs string) []*bus.Server {
	t.Helper()
	accounts, err := os.ReadFile("../deploy/nats/accounts.conf")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "accounts.conf"), accounts, 0o600); err != nil {
		t.Fatal(err)
	}
	var client, route []string
	for i := 0; i < 3; i++ {
		client, route = append(client, freeAddr(t)), append(route, freeAddr(t))
	}
	var servers []*bus.Server
	for i := 1; i <= 3; i++ {
		conf, err := os.ReadFile(fmt.Sprintf("../deploy/nats/nats-%d.conf", i))
		if err != nil {
			t.Fatal(err)
		}
		s := string(conf)
		for k := 0; k < 3; k++ {
			s = strings.ReplaceAll(s, fmt.Sprintf("127.0.0.1:%d", 4222+k), client[k])
			s = strings.ReplaceAll(s, fmt.Sprintf("127.0.0.1:%d", 6222+k), route[k])
		}
		s = strings.Replace(s, fmt.Sprintf(`"data/nats-%d"`, i), fmt.Sprintf("%q", filepath.Join(dir, fmt.Sprintf("js%d", i))), 1)
		if certs != "" { // the configs' own TLS lines, for clients and routes
			s = strings.ReplaceAll(s, "  # tls {", "  tls {")
			s = strings.ReplaceAll(s, "\n# tls {", "\ntls {")
			s = strings.ReplaceAll(s, `"certs/`, `"`+certs+`/`)
			if !strings.Contains(s, "\ntls {") || !strings.Contains(s, "  tls {") {
				t.Fatalf("nats-%d.conf lacks the TLS lines to uncomment", i)
			}
		}
		file := filepath.Join(dir, fmt.Sprintf("nats-%d.conf", i))
		if err := os.WriteFile(file, []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
		srv, err := bus.StartServer(bus.ServerConfig{ConfigFile: file}, quietLogger())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(srv.Shutdown)
		servers = append(servers, srv)
	}
	return servers
}

// TestExternalNATSCluster runs memstore on the 3-server NATS cluster of
// deploy/nats: two middleware instances (group service and router) at
// once, the view in a bucket with 3 replicas, nodes and users on different
// servers, a user authenticated by the cluster's accounts. Then the NATS
// server holding a middleware and a node fails: they reconnect to the
// others, writes go on and nothing acknowledged is lost.
func TestExternalNATSCluster(t *testing.T) { testExternalNATSCluster(t, false) }

// TestExternalNATSClusterTLS is the same with the configs' TLS lines on:
// clients and routes between the servers use TLS.
func TestExternalNATSClusterTLS(t *testing.T) { testExternalNATSCluster(t, true) }

func testExternalNATSCluster(t *testing.T, withTLS bool) {
	dir := t.TempDir()
	certs := ""
	var trust []nats.Option
	if withTLS {
		certs = filepath.Join(dir, "certs")
		if err := bus.MakeDevCerts(certs, []string{"127.0.0.1", "localhost"}); err != nil {
			t.Fatal(err)
		}
		trust = append(trust, nats.RootCAs(filepath.Join(certs, bus.CAFile)))
	}
	servers := startDeployCluster(t, dir, certs)
	log := quietLogger()
	url := func(i int, user, pw string) string {
		scheme, addr, _ := strings.Cut(servers[i].ClientURL(), "://")
		return scheme + "://" + user + ":" + pw + "@" + addr
	}
	for i, mw := range []struct{ user, pw string }{{"middleware1", "change-me-mw1"}, {"middleware2", "change-me-mw2"}} {
		nc, err := bus.Connect(url(i, mw.user, mw.pw), mw.user, log, trust...)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(nc.Close)
		cfg := groupsvc.DefaultConfig(protocol.NodeID(1000 + i))
		cfg.Election.Bootstrap, cfg.Replicas, cfg.Auth = 3, 3, true
		startGroup(t, nc, cfg, log) // retries while the cluster elects its JetStream leader
	}
	for id := 1; id <= 3; id++ {
		startNodeAt(t, url(id-1, fmt.Sprintf("node%d", id), fmt.Sprintf("change-me-node%d", id)), id, dir, log, trust...)
	}
	aopts := client.Options{Timeout: 10 * time.Second}
	if withTLS {
		aopts.TLSCA = filepath.Join(certs, bus.CAFile)
	}
	alice, err := client.Dial(url(2, "alice", "change-me-alice"), aopts)
	if err != nil {
		t.Fatal(err)
	}
	defer alice.Close()
	cx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	acked := map[int]uint64{}
	put := func(i int) error {
		pctx, pcancel := context.WithTimeout(cx, 5*time.Second)
		defer pcancel()
		rep, err := alice.Write(pctx, bus.PutRequest{Path: fmt.Sprintf("x/k%d", i%5), Value: json.RawMessage(fmt.Sprint(i)), Source: "alice-test", SourceSeq: uint64(i + 1)})
		if err == nil {
			acked[i] = rep.Seq
		}
		return err
	}
	for i := 0; put(i) != nil; { // until the first view is in place
		if cx.Err() != nil {
			t.Fatal("no write went through")
		}
		time.Sleep(100 * time.Millisecond)
	}
	for i := 1; i < 20; i++ {
		if err := put(i); err != nil {
			t.Fatal(err)
		}
	}
	servers[0].Shutdown() // middleware1 and node1 lose their server and reconnect to the others
	// NATS delivers at most once: a request published while the cluster
	// drops the failed server's interest can be lost and go unanswered
	// (seen for the first request after the failure in about one run in
	// three). The keyed write is resent after its timeout, as a careful
	// client does; every later one must go through at once.
	for attempt := 1; put(20) != nil; attempt++ {
		if attempt == 3 {
			t.Fatalf("put 20 after NATS server 1 failed: %d attempts unanswered", attempt)
		}
	}
	for i := 21; i < 40; i++ {
		if err := put(i); err != nil {
			t.Fatalf("put %d after NATS server 1 failed: %v", i, err)
		}
	}
	g, err := alice.Get(cx, bus.GetRequest{Path: "x/k4"})
	if err != nil || g.User != "alice" || g.Seq != acked[39] {
		t.Fatalf("latest x/k4: %+v %v (acked seq %d)", g, err, acked[39])
	}
	for i, seq := range acked {
		h, err := alice.History(cx, bus.HistoryRequest{Path: fmt.Sprintf("x/k%d", i%5), AfterSeq: seq - 1, Limit: 1})
		if err != nil || len(h.Values) != 1 || h.Values[0].Seq != seq || string(h.Values[0].Value) != fmt.Sprint(i) {
			t.Fatalf("acknowledged put %d at seq %d: %+v %v", i, seq, h, err)
		}
	}
	st, err := alice.Status(cx)
	if err != nil || !st.Auth || len(st.Members) != 3 {
		t.Fatalf("status: %+v %v", st, err)
	}
}
