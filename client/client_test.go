package client

import (
	"context"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"memstore/bus"
	"memstore/internal/natstest"

	"github.com/nats-io/nats.go"

	toxiproxy "github.com/Shopify/toxiproxy/v2"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"
)

// TestDialNoticesAFrozenLink: a link that stops carrying bytes but keeps
// its socket open (a cut network) is noticed within seconds, not after the
// default two minutes of unanswered pings, so a sensor or a follower
// reconnects.
func TestDialNoticesAFrozenLink(t *testing.T) {
	srv, _, _ := natstest.Start(t)
	tox := toxiproxy.NewServer(toxiproxy.NewMetricsContainer(prometheus.NewRegistry()), zerolog.Nop())
	p := toxiproxy.NewProxy(tox, "nats", "127.0.0.1:0", strings.TrimPrefix(srv.ClientURL(), "nats://"))
	if err := p.Start(); err != nil {
		t.Fatal(err)
	}
	defer p.Stop()
	c, err := Dial("nats://"+p.Listen, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if !c.nc.IsConnected() {
		t.Fatal("not connected through the proxy")
	}
	// timeout 0: nothing gets through, and the sockets stay open.
	for _, stream := range []string{"upstream", "downstream"} {
		spec := `{"name":"freeze_` + stream + `","type":"timeout","stream":"` + stream + `","attributes":{"timeout":0}}`
		if _, err := p.Toxics.AddToxicJson(strings.NewReader(spec)); err != nil {
			t.Fatal(err)
		}
	}
	deadline := time.Now().Add(20 * time.Second)
	for c.nc.IsConnected() {
		if time.Now().After(deadline) {
			t.Fatal("the client still thinks it is connected 20 s after its link froze")
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestDialErrorHidesPassword: a failed connection's error names the
// server without its password.
func TestDialErrorHidesPassword(t *testing.T) {
	_, err := Dial("nats://alice:secret@127.0.0.1:1,nats://bob:hunter2@127.0.0.1:2", Options{})
	if err == nil || strings.Contains(err.Error(), "secret") || strings.Contains(err.Error(), "hunter2") || !strings.Contains(err.Error(), "alice:xxxxx@127.0.0.1:1") {
		t.Fatalf("error %v", err)
	}
}

// TestDeadlineHeaderOnlyWhenSooner: a request whose caller waits less
// than the router would tells the router its deadline; one that waits
// longer carries no header, which the router would not use.
func TestDeadlineHeaderOnlyWhenSooner(t *testing.T) {
	_, nc, _ := natstest.Start(t)
	c := New(nc, Options{})
	seen := make(chan string, 2)
	sub, err := nc.Subscribe(bus.NewSubjects("").API(bus.OpGet), func(m *nats.Msg) {
		seen <- m.Header.Get(bus.HeaderDeadline)
		_ = m.Respond([]byte(`{"ok":true,"path":"a","seq":1,"ts":"t","user":"u","value":1}`))
	})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Unsubscribe()
	for _, c2 := range []struct {
		wait  time.Duration
		short bool
	}{{10 * time.Second, false}, {5 * time.Second, false}, {time.Second, true}} { // 5 s: the default timeout
		ctx, cancel := context.WithTimeout(context.Background(), c2.wait)
		_, err := c.Get(ctx, bus.GetRequest{Path: "a"})
		cancel()
		if err != nil {
			t.Fatal(err)
		}
		h := <-seen
		ms, perr := strconv.Atoi(h)
		if c2.short && (perr != nil || ms <= 0 || ms > 900) || !c2.short && h != "" {
			t.Errorf("caller waiting %v: header %q", c2.wait, h)
		}
	}
}

// TestStaleGetAsksAgainOrFallsBack: a stale get refused as unavailable by
// a node (stuck, stopping) is asked again, 3 times in all; with no node on
// ms.api.get.stale (none up, or nodes older than it) it goes to
// ms.api.get, which the router serves.
func TestStaleGetAsksAgainOrFallsBack(t *testing.T) {
	_, nc, _ := natstest.Start(t)
	c := New(nc, Options{})
	sub := bus.NewSubjects("")
	stale := bus.GetRequest{Path: "a", Consistency: bus.Stale}
	const ok = `{"ok":true,"path":"a","seq":1,"ts":"t","user":"u","value":1}`
	router, err := nc.Subscribe(sub.API(bus.OpGet), func(m *nats.Msg) { _ = m.Respond([]byte(ok)) })
	if err != nil {
		t.Fatal(err)
	}
	defer router.Unsubscribe()
	if g, err := c.Get(context.Background(), stale); err != nil || g.Seq != 1 {
		t.Fatalf("a stale get with no node on %s: %+v %v", sub.StaleGet(), g, err)
	}
	asked := 0
	refusals := 0 // how many asks the node refuses before it answers
	node, err := nc.Subscribe(sub.StaleGet(), func(m *nats.Msg) {
		if asked++; asked <= refusals {
			_ = m.Respond([]byte(`{"ok":false,"error":{"code":"unavailable","message":"stuck"}}`))
			return
		}
		_ = m.Respond([]byte(ok))
	})
	if err != nil {
		t.Fatal(err)
	}
	defer node.Unsubscribe()
	for _, tc := range []struct {
		refusals, asks int
		ok             bool
	}{{0, 1, true}, {2, 3, true}, {3, 3, false}} {
		asked, refusals = 0, tc.refusals
		g, err := c.Get(context.Background(), stale)
		if asked != tc.asks || (err == nil) != tc.ok || tc.ok && g.Seq != 1 || !tc.ok && !bus.HasCode(err, bus.CodeUnavailable) {
			t.Errorf("node refusing %d times: asked %d times (want %d), %+v %v", tc.refusals, asked, tc.asks, g, err)
		}
	}
}

// TestStaleGetAsksAgainAfterSilence: a stale get that no member answers
// (one killed with it in hand) is asked again after its share of the
// time, and the next member's answer comes back before the deadline; a
// get waiting for its min_seq is given the whole time by the first.
func TestStaleGetAsksAgainAfterSilence(t *testing.T) {
	_, nc, _ := natstest.Start(t)
	c := New(nc, Options{})
	sub := bus.NewSubjects("")
	const ok = `{"ok":true,"path":"a","seq":1,"ts":"t","user":"u","value":1}`
	var mu sync.Mutex
	asked := 0
	node, err := nc.Subscribe(sub.StaleGet(), func(m *nats.Msg) {
		mu.Lock()
		asked++
		first := asked == 1
		mu.Unlock()
		var req bus.GetRequest
		_ = bus.Decode(m.Data, &req)
		switch {
		case req.MinSeq > 0:
			go func() { // waits for its seq, then answers
				time.Sleep(1500 * time.Millisecond)
				_ = m.Respond([]byte(ok))
			}()
		case !first:
			_ = m.Respond([]byte(ok))
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	defer node.Unsubscribe()
	for _, tc := range []struct {
		minSeq uint64
		asks   int
	}{{0, 2}, {1, 1}} {
		mu.Lock()
		asked = 0
		mu.Unlock()
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		g, err := c.Get(ctx, bus.GetRequest{Path: "a", Consistency: bus.Stale, MinSeq: tc.minSeq})
		cancel()
		mu.Lock()
		n := asked
		mu.Unlock()
		if err != nil || g.Seq != 1 || n != tc.asks {
			t.Errorf("min_seq %d: %+v %v after %d asks, want the answer after %d", tc.minSeq, g, err, n, tc.asks)
		}
	}
}
