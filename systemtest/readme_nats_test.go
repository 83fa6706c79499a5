package systemtest

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"memstore/bus"
)

// readmeNATSCommands returns the lines of the README's shell blocks that
// run the nats CLI, verbatim.
func readmeNATSCommands(t *testing.T) []string {
	t.Helper()
	f, err := os.Open("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []string
	inShell := false
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		switch {
		case strings.HasPrefix(line, "```"):
			inShell = strings.HasPrefix(line, "```sh")
		case inShell && strings.HasPrefix(line, "nats "):
			out = append(out, line)
		}
	}
	if len(out) == 0 {
		t.Fatal("the README shows no nats command")
	}
	return out
}

// TestREADMENATSCommands runs every nats CLI command the README shows,
// verbatim, against a cluster, and checks what each did.
func TestREADMENATSCommands(t *testing.T) {
	if _, err := exec.LookPath("nats"); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("the nats CLI is not installed; .ci/run installs it with go install github.com/nats-io/natscli/nats")
		}
		t.Skip("the nats CLI is not installed: go install github.com/nats-io/natscli/nats@v0.5.1")
	}
	c := startCluster(t, 3)
	cx := ctx(t)
	rep, err := c.cl.Put(cx, "plant1/line3/temp", json.RawMessage(`20`))
	if err != nil {
		t.Fatal(err)
	}
	c.waitFor("every node to apply the put", 5*time.Second, func() error { // a stale get may go to any of them
		st, err := c.cl.Status(cx)
		if err != nil {
			return err
		}
		for _, n := range st.Nodes {
			if n.Applied < rep.Seq {
				return fmt.Errorf("node %d applied %d, the put is %d", n.ID, n.Applied, rep.Seq)
			}
		}
		return nil
	})
	env := append(os.Environ(), "NATS_URL="+c.srv.ClientURL())
	for _, line := range readmeNATSCommands(t) {
		t.Run(line, func(t *testing.T) {
			rctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			cmd := exec.CommandContext(rctx, "bash", "-c", line)
			cmd.Env = env
			var out bytes.Buffer
			cmd.Stdout, cmd.Stderr = &out, &out
			if strings.HasPrefix(line, "nats sub ") { // runs until stopped: write while it listens
				if err := cmd.Start(); err != nil {
					t.Fatal(err)
				}
				time.Sleep(500 * time.Millisecond)
				if _, err := c.cl.Put(cx, "plant1/line3/temp", json.RawMessage(`22.5`)); err != nil {
					t.Fatal(err)
				}
				time.Sleep(500 * time.Millisecond)
				cancel()
				_ = cmd.Wait()
				if !strings.Contains(out.String(), `"path":"plant1/line3/temp"`) || !strings.Contains(out.String(), "22.5") {
					t.Fatalf("%s printed no event:\n%s", line, out.String())
				}
				return
			}
			if err := cmd.Run(); err != nil {
				t.Fatalf("%s: %v\n%s", line, err, out.String())
			}
			switch {
			case strings.HasPrefix(line, "nats req ms.api.get"):
				if !strings.Contains(out.String(), `"ok":true`) || !strings.Contains(out.String(), `"path":"plant1/line3/temp"`) {
					t.Fatalf("%s:\n%s", line, out.String())
				}
			case strings.HasPrefix(line, "nats pub ms.in."):
				c.waitFor("the published value", 5*time.Second, func() error {
					g, err := c.cl.Get(cx, bus.GetRequest{Path: "plant1/line3/temp"})
					if err != nil || string(g.Value) != "21.5" {
						return fmt.Errorf("get: %+v %v", g, err)
					}
					return nil
				})
			}
		})
	}
}
