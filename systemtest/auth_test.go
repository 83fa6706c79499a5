package systemtest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"memstore/bus"
	"memstore/client"
	"memstore/groupsvc"
	"memstore/replica/protocol"
)

func withCreds(url, user, password string) string {
	return strings.Replace(url, "nats://", "nats://"+user+":"+password+"@", 1)
}

// TestAuthenticatedUsers runs a 3-node cluster with authentication on:
// the stored writer is the user the NATS server authenticated, whatever the
// request claims; users cannot reach the internal subjects, so they cannot
// forge replication messages; without credentials nobody connects.
func TestAuthenticatedUsers(t *testing.T) {
	log := quietLogger()
	dir := t.TempDir()
	auth := &bus.Auth{Nodes: map[string]string{"node1": "n1-secret", "node2": "n2-secret", "node3": "n3-secret"},
		Users: map[string]string{"alice": "alice-secret", "bob": "bob-secret"}}
	scfg := bus.DefaultServerConfig(filepath.Join(dir, "mw"))
	scfg.Port, scfg.Auth = -1, auth
	srv, err := bus.StartServer(scfg, log)
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Shutdown()
	url := srv.ClientURL()
	mwConn, err := srv.Connect("mw", log)
	if err != nil {
		t.Fatal(err)
	}
	defer mwConn.Close()
	gcfg := groupsvc.DefaultConfig(1000)
	gcfg.Election.Bootstrap, gcfg.Auth = 3, srv.Auth()
	startGroup(t, mwConn, gcfg, log)
	for id := 1; id <= 3; id++ {
		name := fmt.Sprintf("node%d", id)
		startNodeAt(t, withCreds(url, name, auth.Nodes[name]), id, dir, log)
	}
	// alice connects with her own credentials but claims to be bob.
	alice, err := client.Dial(withCreds(url, "alice", "alice-secret"), client.Options{User: "bob", Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer alice.Close()
	cx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var st bus.StatusReply
	for st.Leader == 0 && cx.Err() == nil {
		st, _ = alice.Status(cx)
		time.Sleep(50 * time.Millisecond)
	}
	if !st.Auth {
		t.Fatalf("status does not say auth is on: %+v", st)
	}
	var rep bus.PutReply
	for cx.Err() == nil { // the first view may still be forming
		if rep, err = alice.Put(cx, "a/x", json.RawMessage(`1`)); err == nil {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if err != nil {
		t.Fatal(err)
	}
	g, err := alice.Get(cx, bus.GetRequest{Path: "a/x"})
	if err != nil || g.User != "alice" || g.Seq != rep.Seq {
		t.Fatalf("alice's write, claiming bob, stored as %q: %+v %v", g.User, g, err)
	}
	g, err = alice.Get(cx, bus.GetRequest{Path: "a/x", Consistency: bus.Stale, MinSeq: rep.Seq}) // ms.api.get.stale crosses to the nodes
	if err != nil || g.User != "alice" || g.Seq != rep.Seq {
		t.Fatalf("a stale get through the USERS account: %+v %v", g, err)
	}
	if err := alice.Ingest("a/y", []byte("2"), time.Time{}); err != nil {
		t.Fatal(err)
	}
	for {
		g, err = alice.Get(cx, bus.GetRequest{Path: "a/y"})
		if err == nil || cx.Err() != nil {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if err != nil || g.User != "alice" {
		t.Fatalf("ms.in from alice stored as %q: %v", g.User, err)
	}

	// A user's raw connection: every touch of ms.sys.> is a permission
	// violation, and nothing forged reaches the nodes.
	var mu sync.Mutex
	var violations []string
	raw, err := nats.Connect(withCreds(url, "bob", "bob-secret"), nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
		mu.Lock()
		defer mu.Unlock()
		violations = append(violations, err.Error())
	}))
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	if _, err := raw.Subscribe("ms.sys.>", func(*nats.Msg) {}); err != nil {
		t.Fatal(err)
	}
	forged, _ := protocol.Message{Type: protocol.MsgAppend, From: protocol.NodeID(st.Leader), To: protocol.Multicast,
		Epoch: st.Epoch + 100, Entries: []protocol.Entry{{Epoch: st.Epoch + 100, Seq: 999, Data: []byte(`{"ts":"2026-01-01T00:00:00Z","user":"x","puts":[{"path":"a/x","value":666}]}`)}}}.MarshalBinary()
	for _, subj := range []string{"ms.sys.all", "ms.sys.group", "ms.sys.fwd.1.put", "ms.sys.to.1"} {
		if err := raw.Publish(subj, forged); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := raw.Request("ms.sys.fwd.1.put", []byte(`{"path":"a/x","value":7}`), 500*time.Millisecond); err == nil {
		t.Fatal("a user's request reached a node's internal subject")
	}
	_ = raw.Flush()
	time.Sleep(300 * time.Millisecond)
	mu.Lock()
	got := strings.Join(violations, "\n")
	mu.Unlock()
	if strings.Count(strings.ToLower(got), "permissions violation") < 5 {
		t.Fatalf("want permission violations for the subscription and 4 publishes, got:\n%s", got)
	}
	g, err = alice.Get(cx, bus.GetRequest{Path: "a/x"})
	if err != nil || string(g.Value) != "1" {
		t.Fatalf("a/x after forged messages: %+v %v", g, err)
	}
	st2, _ := alice.Status(cx)
	if st2.Epoch != st.Epoch {
		t.Fatalf("forged messages changed the epoch: %d → %d", st.Epoch, st2.Epoch)
	}

	// A user's connection holds at most MaxSubscriptions subscriptions.
	for i := 0; i <= bus.MaxSubscriptions; i++ {
		if _, err := raw.Subscribe(fmt.Sprintf("ms.ev.s%d", i), func(*nats.Msg) {}); err != nil {
			break
		}
	}
	_ = raw.Flush()
	time.Sleep(200 * time.Millisecond)
	mu.Lock()
	got = strings.ToLower(strings.Join(violations, "\n"))
	mu.Unlock()
	if !strings.Contains(got, "maximum subscriptions") {
		t.Fatalf("%d subscriptions on one connection were accepted: %s", bus.MaxSubscriptions+1, got)
	}

	// A flood from one user: bob fires 20,000 puts without waiting while
	// alice keeps writing; every one of alice's writes is answered.
	flood, err := nats.Connect(withCreds(url, "bob", "bob-secret"))
	if err != nil {
		t.Fatal(err)
	}
	defer flood.Close()
	inbox := nats.NewInbox()
	if _, err := flood.Subscribe(inbox, func(*nats.Msg) {}); err != nil {
		t.Fatal(err)
	}
	stop := make(chan struct{})
	flooded := make(chan int)
	go func() {
		n := 0
		defer func() { flooded <- n }()
		for ; n < 20_000; n++ {
			select {
			case <-stop:
				return
			default:
			}
			if flood.PublishRequest("ms.api.put", inbox, []byte(fmt.Sprintf(`{"path":"flood/k%d","value":%d}`, n%100, n))) != nil {
				return
			}
		}
	}()
	for i := 0; i < 30; i++ {
		pctx, pcancel := context.WithTimeout(context.Background(), 5*time.Second)
		start := time.Now()
		_, err := alice.Put(pctx, "a/during-flood", json.RawMessage(fmt.Sprint(i)))
		pcancel()
		if err != nil {
			t.Fatalf("alice's put %d during bob's flood: %v (after %v)", i, err, time.Since(start))
		}
	}
	close(stop)
	t.Logf("bob's flood sent %d puts while alice's 30 were answered", <-flooded)

	// No credentials, a wrong password, or a user's password for a node
	// name: refused.
	for _, u := range []string{url, withCreds(url, "alice", "wrong"), withCreds(url, "node1", "alice-secret")} {
		if nc, err := nats.Connect(u, nats.MaxReconnects(0)); err == nil {
			nc.Close()
			t.Errorf("connected to %s", u)
		} else if !errors.Is(err, nats.ErrAuthorization) && !strings.Contains(strings.ToLower(err.Error()), "authorization") {
			t.Errorf("%s: %v", u, err)
		}
	}
}
