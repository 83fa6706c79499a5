package bus

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/sirupsen/logrus"
)

// startTestServer runs the embedded server on a random loopback port.
func startTestServer(t *testing.T) *Server {
	t.Helper()
	cfg := DefaultServerConfig(t.TempDir())
	cfg.Port = -1
	s, err := StartServer(cfg, logrus.New())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Shutdown)
	return s
}

func TestEmbeddedServerServesRequestsAndKV(t *testing.T) {
	s := startTestServer(t)
	nc, err := Connect(s.ClientURL(), "test", logrus.New())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	sub := NewSubjects("")
	if _, err := nc.Subscribe(sub.API(OpLs), func(m *nats.Msg) {
		var req LsRequest
		if e := Decode(m.Data, &req); e != nil {
			m.Respond(ErrorReply(e))
			return
		}
		m.Respond(Encode(LsReply{Result: Result{OK: true}, Children: []string{req.Path + "-child"}}))
	}); err != nil {
		t.Fatal(err)
	}
	msg, err := nc.Request(sub.API(OpLs), []byte(`{"path":"p"}`), 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	var rep LsReply
	if e := Decode(msg.Data, &rep); e != nil || rep.Err() != nil || len(rep.Children) != 1 || rep.Children[0] != "p-child" {
		t.Fatalf("reply %s: %v", msg.Data, e)
	}
	// JetStream is on: a KV bucket with compare-and-set works.
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	kv, err := js.CreateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: "t", Storage: jetstream.FileStorage})
	if err != nil {
		t.Fatal(err)
	}
	rev, err := kv.Create(ctx, "view", []byte("1"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := kv.Update(ctx, "view", []byte("2"), rev+5); err == nil {
		t.Fatal("update at a wrong revision succeeded")
	}
	if _, err := kv.Update(ctx, "view", []byte("2"), rev); err != nil {
		t.Fatal(err)
	}
}

func TestWireShapes(t *testing.T) {
	got := string(Encode(GetReply{Result: Result{OK: true}, Path: "a/b", Version: Version{Seq: 3, TS: "t", User: "u", Value: json.RawMessage(`1`)}}))
	want := `{"ok":true,"path":"a/b","seq":3,"ts":"t","user":"u","value":1}`
	if got != want {
		t.Fatalf("get reply\n got %s\nwant %s", got, want)
	}
	got = string(ErrorReply(Errorf(CodeBadPath, "x")))
	if want := `{"ok":false,"error":{"code":"bad_path","message":"x"}}`; got != want {
		t.Fatalf("error reply\n got %s\nwant %s", got, want)
	}
	var r PutReply
	if e := Decode([]byte(`{"ok":false,"error":{"code":"unavailable","message":"m"}}`), &r); e != nil || r.Err() == nil {
		t.Fatalf("decode error reply: %v %+v", e, r)
	}
	if e := Decode([]byte(`{"ok":`), &r); e == nil || e.Code != CodeBadRequest {
		t.Fatalf("malformed payload: %v", e)
	}
	sub := NewSubjects("")
	if got := sub.In("plant1/line3/temp"); got != "ms.in.plant1.line3.temp" {
		t.Fatal(got)
	}
	if p, ok := sub.PathFromIn("ms.in.plant1.line3.temp"); !ok || p != "plant1/line3/temp" {
		t.Fatal(p, ok)
	}
}

// TestRepliesStartWithOK: the router reads a reply's outcome from its
// first bytes, so every successful reply must begin {"ok":true.
func TestRepliesStartWithOK(t *testing.T) {
	ok := Result{OK: true}
	for _, rep := range []any{PutReply{Result: ok, Seq: 1}, GetReply{Result: ok, Path: "a"}, HistoryReply{Result: ok},
		LsReply{Result: ok}, TreeReply{Result: ok}, AggReply{Result: ok}, StatusReply{Result: ok}} {
		if b := Encode(rep); !bytes.HasPrefix(b, []byte(`{"ok":true`)) {
			t.Errorf("%T encodes as %s", rep, b)
		}
	}
	if b := ErrorReply(Errorf(CodeNotFound, "x")); bytes.HasPrefix(b, []byte(`{"ok":true`)) {
		t.Errorf("an error reply starts ok: %s", b)
	}
}

func TestStatusHealthy(t *testing.T) {
	whole := StatusReply{Leader: 1, Members: []uint64{1, 2, 3}, Nodes: []NodeStatus{{ID: 1, State: "leader"}, {ID: 2, State: "follower"}, {ID: 3, State: "follower"}}}
	if err := whole.Healthy(3); err != nil {
		t.Fatal(err)
	}
	for _, bad := range []StatusReply{
		{Members: whole.Members, Nodes: whole.Nodes},                                                            // no leader
		{Leader: 1, Members: []uint64{1, 2}, Nodes: whole.Nodes},                                                // a member missing
		{Leader: 1, Members: whole.Members, Nodes: append(whole.Nodes[:2:2], NodeStatus{ID: 3, State: "down"})}, // one down
	} {
		if bad.Healthy(3) == nil {
			t.Errorf("%+v counted healthy", bad)
		}
	}
}

// TestDecodeRequestRefusesDataAfterIt: one JSON object, then at most white
// space; anything after it is a bad_request, a stray } or ] included.
func TestDecodeRequestRefusesDataAfterIt(t *testing.T) {
	for data, ok := range map[string]bool{
		`{"path":"a","value":1}`:          true,
		"{\"path\":\"a\",\"value\":1} \n": true,
		`{"path":"a","value":1}}`:         false,
		`{"path":"a","value":1}]`:         false,
		`{"path":"a","value":1} {}`:       false,
		`{"path":"a","value":1}x`:         false,
	} {
		_, e := DecodePutRequest([]byte(data))
		if (e == nil) != ok {
			t.Errorf("%q: error %v, want accepted %v", data, e, ok)
		}
		if ok {
			continue
		}
		if e.Code != CodeBadRequest {
			t.Errorf("%q: code %s, want %s", data, e.Code, CodeBadRequest)
		}
	}
}

// TestStartServerOnATakenPort fails at once, saying why: the server alone
// only logs it, and the start waited 10 s for a readiness never coming.
func TestStartServerOnATakenPort(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	cfg := DefaultServerConfig(t.TempDir())
	cfg.Host, cfg.Port = "127.0.0.1", ln.Addr().(*net.TCPAddr).Port
	start := time.Now()
	srv, err := StartServer(cfg, logrus.New())
	if err == nil {
		srv.Shutdown()
		t.Fatal("started on a taken port")
	}
	if !errors.Is(err, ErrServerStart) || !strings.Contains(err.Error(), "address already in use") || time.Since(start) > 2*time.Second {
		t.Fatalf("after %v: %v", time.Since(start), err)
	}
}

// TestDeadline: a request's Ms-Deadline-Ms is how long its sender still
// waits; absent, malformed or not above 0, it says nothing.
func TestDeadline(t *testing.T) {
	for v, want := range map[string]time.Duration{"": 0, "1500": 1500 * time.Millisecond, "0": 0, "-3": 0, "soon": 0} {
		h := nats.Header{}
		if v != "" {
			h.Set(HeaderDeadline, v)
		}
		if got := Deadline(h); got != want {
			t.Errorf("%s %q: %v, want %v", HeaderDeadline, v, got, want)
		}
	}
}

// BenchmarkPutBatchRequest decodes a batch of 64 puts of 64-byte values
// as the Go client spells it (its coalesced Puts, W1): the fast decoder,
// and the strict one for comparison.
func BenchmarkPutBatchRequest(b *testing.B) {
	values := make([]PathValue, 64)
	for i := range values {
		values[i] = PathValue{Path: fmt.Sprintf("bench/w%d", i), Value: json.RawMessage(fmt.Sprintf("%q", strings.Repeat("0", 62)))}
	}
	data := Encode(PutRequest{Values: values})
	for _, d := range []struct {
		name   string
		decode func() (PutRequest, *Error)
	}{
		{"fast", func() (PutRequest, *Error) { return DecodePutRequest(data) }},
		{"strict", func() (PutRequest, *Error) {
			var req PutRequest
			return req, DecodeRequest(data, &req)
		}},
	} {
		b.Run(d.name, func(b *testing.B) {
			b.SetBytes(int64(len(data)))
			for b.Loop() {
				if req, e := d.decode(); e != nil || len(req.Values) != 64 {
					b.Fatal("not decoded")
				}
			}
		})
	}
}
