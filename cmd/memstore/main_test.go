package main

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/sirupsen/logrus"

	"memstore/bus"
	"memstore/client"
)

func TestExitCodes(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want int
	}{
		{usageError{errors.New("accepts 1 arg")}, 2},
		{errors.New(`unknown command "frobnicate" for "memstore"`), 2},
		{bus.Errorf(bus.CodeNotFound, "x"), 3},
		{fmt.Errorf("wrapped: %w", bus.Errorf(bus.CodeUnavailable, "x")), 4},
		{bus.Errorf(bus.CodeTimeout, "x"), 4},
		{fmt.Errorf("%w (get)", client.ErrTimeout), 4},
		{bus.Errorf(bus.CodeBadPath, "x"), 1},
		{errors.New("other"), 1},
	} {
		if got := exitCode(tc.err); got != tc.want {
			t.Errorf("exitCode(%v) = %d, want %d", tc.err, got, tc.want)
		}
	}
}

func TestEveryCommandHasHelp(t *testing.T) {
	root := newRoot()
	for _, c := range root.Commands() {
		if c.Short == "" {
			t.Errorf("%s has no help", c.Name())
		}
	}
	root.SetArgs([]string{"get"})
	if err := root.Execute(); exitCode(err) != 2 {
		t.Fatalf("get without a path: %v", err)
	}
}

// TestMiddlewareRefusesOpenListen: without auth the middleware listens
// beyond loopback only with --insecure, and says why.
func TestMiddlewareRefusesOpenListen(t *testing.T) {
	for _, listen := range []string{"0.0.0.0:0", "192.0.2.1:4222", "[::]:0", "example.com:4222"} {
		_, err := startMiddleware(&middlewareOptions{listen: listen, data: t.TempDir(), replicas: 1}, "ms", "", logrus.New())
		var ue usageError
		if !errors.As(err, &ue) || !strings.Contains(err.Error(), "--insecure") {
			t.Errorf("--listen %s: %v", listen, err)
		}
	}
}

func TestServeMetrics(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	stop, err := serveMetrics(addr, logrus.New())
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	stop()
	if resp.StatusCode != 200 || !strings.Contains(string(body), "go_goroutines") {
		t.Fatalf("GET /metrics: %d %.200s", resp.StatusCode, body)
	}
	if _, err := serveMetrics("256.0.0.1:1", logrus.New()); err == nil {
		t.Fatal("a bad address was accepted")
	}
}

// TestMiddlewareLocksItsFolder: a second middleware on the same data
// folder is refused while the first holds it, and may start once it is
// gone.
func TestMiddlewareLocksItsFolder(t *testing.T) {
	dir := t.TempDir()
	first, err := lockFolder(dir)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := lockFolder(dir); err == nil || !strings.Contains(err.Error(), "in use") {
		t.Fatalf("a second middleware on %s: %v, want in use", dir, err)
	}
	first.Close()
	again, err := lockFolder(dir)
	if err != nil {
		t.Fatal(err)
	}
	again.Close()
}

// TestAbsoluteRange: history's --since and --until take what query's do
// (RFC 3339 or a duration ago), and a backwards range is bad usage.
func TestAbsoluteRange(t *testing.T) {
	now := time.Date(2026, 12, 6, 12, 0, 0, 0, time.UTC)
	since, until := "15m", "2026-12-06T11:50:00Z"
	if err := absoluteRange(&since, &until, now); err != nil || since != "2026-12-06T11:45:00Z" || until != "2026-12-06T11:50:00Z" {
		t.Fatalf("since %s until %s: %v", since, until, err)
	}
	since, until = "1m", "2m"
	var ue usageError
	if err := absoluteRange(&since, &until, now); !errors.As(err, &ue) {
		t.Fatalf("a backwards range: %v", err)
	}
	since, until = "yesterday", ""
	if err := absoluteRange(&since, &until, now); !errors.As(err, &ue) {
		t.Fatalf("a bad time: %v", err)
	}
}

// TestErrorsAsJSON: with --json an error is a failed reply on stdout,
// with the store's code, or one for bad usage and local failures.
func TestErrorsAsJSON(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want string
	}{
		{fmt.Errorf("get: %w", bus.Errorf(bus.CodeNotFound, "no a/b")), `{"ok":false,"error":{"code":"not_found","message":"no a/b"}}`},
		{usageError{errors.New("accepts 1 arg")}, `{"ok":false,"error":{"code":"bad_request","message":"accepts 1 arg"}}`},
		{errors.New("disk full"), `{"ok":false,"error":{"code":"error","message":"disk full"}}`},
	} {
		var out, errOut strings.Builder
		printError(&out, &errOut, tc.err, true)
		if strings.TrimSpace(out.String()) != tc.want || errOut.Len() != 0 {
			t.Errorf("%v: stdout %q stderr %q, want %s", tc.err, out.String(), errOut.String(), tc.want)
		}
	}
	var out, errOut strings.Builder
	printError(&out, &errOut, errors.New("boom"), false)
	if out.Len() != 0 || errOut.String() != "memstore: boom\n" {
		t.Errorf("without --json: stdout %q stderr %q", out.String(), errOut.String())
	}
}

// TestJSONValue: JSON is taken as is, other text as a string, and text that
// starts like JSON but is not is refused as bad usage, nothing stored.
func TestJSONValue(t *testing.T) {
	for in, want := range map[string]string{`21.5`: `21.5`, `{"run":true}`: `{"run":true}`, `hello`: `"hello"`,
		`-4.5`: `-4.5`, `a{b`: `"a{b"`, `""`: `""`, ` [1, 2] `: ` [1, 2] `, ``: `""`} {
		got, err := jsonValue(in)
		if err != nil || string(got) != want {
			t.Errorf("jsonValue(%q) = %s, %v; want %s", in, got, err, want)
		}
	}
	for _, in := range []string{`{"a":1`, `[1,2`, `"abc`, ` {x}`} {
		got, err := jsonValue(in)
		if exitCode(err) != 2 || got != nil || !strings.Contains(err.Error(), "starts like JSON") {
			t.Errorf("jsonValue(%q) = %s, %v; want bad usage", in, got, err)
		}
	}
}

// TestWhyNoRemoval: a leave that timed out says why when too few members
// are up to change the view, and nothing more when enough are.
func TestWhyNoRemoval(t *testing.T) {
	node := func(id uint64, state string) bus.NodeStatus {
		return bus.NodeStatus{ID: id, State: state, Member: true}
	}
	down := bus.StatusReply{Nodes: []bus.NodeStatus{node(1, "leader"), node(2, "down"), node(3, "down"), {ID: 4, State: "follower"}}}
	if why := whyNoRemoval(down, 3); !strings.Contains(why, "1 of its 3 members are up, 1 of the 2 that would stay") {
		t.Fatalf("two of three down: %q", why)
	}
	up := bus.StatusReply{Nodes: []bus.NodeStatus{node(1, "leader"), node(2, "follower"), node(3, "down")}}
	if why := whyNoRemoval(up, 3); why != "" {
		t.Fatalf("a majority up: %q", why)
	}
}

// TestBenchRepetitions: no repetitions is bad usage, and a table of fewer
// than 3 says it is no measure.
func TestBenchRepetitions(t *testing.T) {
	root := newRoot()
	root.SetArgs([]string{"bench", "--reps", "0"})
	if err := root.Execute(); exitCode(err) != 2 {
		t.Fatalf("bench --reps 0: %v", err)
	}
	if got := repetitions(2); !strings.Contains(got, "fewer than 3") {
		t.Fatalf("2 repetitions: %q", got)
	}
	if got := repetitions(3); got != "3 repetitions" {
		t.Fatalf("3 repetitions: %q", got)
	}
}
