package bench

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"memstore/bus"
	"memstore/client"
	"memstore/internal/proc"
)

// retry calls f every retryPause until it succeeds, fails with
// errExited, or within passes.
func retry(ctx context.Context, within time.Duration, f func() error) error {
	deadline := time.Now().Add(within)
	for {
		err := f()
		if err == nil || errors.Is(err, errExited) || time.Now().After(deadline) {
			return err
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(retryPause):
		}
	}
}

// errExited fails a wait on a process that has exited: no retry helps.
var errExited = errors.New("exited")

// running is nil while p runs; once it has exited, an error wrapping
// errExited that names what it was and its log.
func running(p *proc.Proc, what, log string) error {
	select {
	case <-p.Done():
		return fmt.Errorf("bench: %s %w: see %s", what, errExited, log)
	default:
		return nil
	}
}

// retryPause bounds how precisely W5 times a catch-up (it waits with
// retry): at 100 ms, a 2 s catch-up read on average 2.5% long.
const retryPause = 20 * time.Millisecond

// memstoreCluster is a middleware and n nodes, each a process.
type memstoreCluster struct {
	dir, url string
	mw       *proc.Proc
	nodes    map[int]*proc.Proc
	cl       *client.Client
	bin      string
}

func startMemstore(ctx context.Context, bin, dir string, n int) (*memstoreCluster, error) {
	addr, err := proc.FreeAddr()
	if err != nil {
		return nil, err
	}
	c := &memstoreCluster{dir: dir, url: "nats://" + addr, nodes: map[int]*proc.Proc{}, bin: bin}
	if err := freshDir(dir); err != nil {
		return nil, err
	}
	if c.mw, err = proc.Start(bin, filepath.Join(dir, "middleware.log"), "middleware", "--listen", addr,
		"--data", filepath.Join(dir, "mw"), "--bootstrap", strconv.Itoa(n), "--log-level", "warn"); err != nil {
		return nil, err
	}
	for id := 1; id <= n; id++ {
		if err := c.startNode(id); err != nil {
			c.close()
			return nil, err
		}
	}
	err = retry(ctx, 15*time.Second, func() error {
		c.cl, err = client.Dial(c.url, client.Options{Timeout: 5 * time.Second, Name: "memstore-bench"})
		return err
	})
	if err == nil {
		err = c.waitMembers(ctx, n, 60*time.Second)
	}
	if err != nil {
		c.close()
		return nil, err
	}
	return c, nil
}

func (c *memstoreCluster) nodeLog(id int) string {
	return filepath.Join(c.dir, fmt.Sprintf("node%d.log", id))
}

func (c *memstoreCluster) startNode(id int) error {
	p, err := proc.Start(c.bin, c.nodeLog(id), "node", "--id", strconv.Itoa(id),
		"--server", c.url, "--data", filepath.Join(c.dir, fmt.Sprintf("node%d", id)), "--log-level", "warn")
	if err == nil {
		c.nodes[id] = p
	}
	return err
}

// waitMembers waits for a leader, n members, all live, and a write.
func (c *memstoreCluster) waitMembers(ctx context.Context, n int, within time.Duration) error {
	return retry(ctx, within, func() error {
		ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		defer cancel()
		st, err := c.cl.Status(ctx)
		if err != nil {
			return err
		}
		if err := st.Healthy(n); err != nil {
			return fmt.Errorf("bench: memstore: %w", err)
		}
		_, err = c.cl.Put(ctx, "bench/ready", []byte("1"))
		return err
	})
}

// join starts node id, new to the cluster, and waits until it has applied
// seq (holds) and then until it is a member (serves: only members answer
// stale gets, and a node becomes one in a view change after it caught
// up): the times from its start.
func (c *memstoreCluster) join(ctx context.Context, id int, seq uint64) (holds, serves time.Duration, err error) {
	t0 := time.Now()
	if err := c.startNode(id); err != nil {
		return 0, 0, err
	}
	err = retry(ctx, 30*time.Minute, func() error {
		if err := running(c.nodes[id], fmt.Sprintf("node %d", id), c.nodeLog(id)); err != nil {
			return err
		}
		st, err := c.status()
		if err != nil {
			return err
		}
		for _, n := range st.Nodes {
			if n.ID == uint64(id) && n.Applied >= seq {
				if holds == 0 {
					holds = time.Since(t0)
				}
				if n.Member {
					serves = time.Since(t0)
					return nil
				}
			}
		}
		return fmt.Errorf("bench: node %d has not applied %d as a member", id, seq)
	})
	return holds, serves, err
}

// leave takes node id out of the group (memstore leave) and waits
// for its process to end.
func (c *memstoreCluster) leave(ctx context.Context, id int) error {
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, c.bin, "leave", "--id", strconv.Itoa(id), "--server", c.url).CombinedOutput()
	if err != nil {
		return fmt.Errorf("bench: node %d leave: %w: %s", id, err, out)
	}
	select {
	case <-c.nodes[id].Done():
	case <-ctx.Done():
		return fmt.Errorf("bench: node %d still running after it left", id)
	}
	delete(c.nodes, id)
	return nil
}

func (c *memstoreCluster) status() (bus.StatusReply, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	return c.cl.Status(ctx)
}

// procs are the middleware's and the nodes' processes.
func (c *memstoreCluster) procs() []*proc.Proc {
	ps := []*proc.Proc{c.mw}
	for _, p := range c.nodes {
		ps = append(ps, p)
	}
	return ps
}

func (c *memstoreCluster) close() {
	if c.cl != nil {
		c.cl.Close()
	}
	for _, p := range c.nodes {
		p.Stop()
	}
	c.mw.Stop()
}

// freshDir empties a system's folder, or creates it: every system starts
// on no data (a --dir used before would hold the last run's).
func freshDir(dir string) error {
	if err := os.RemoveAll(dir); err != nil {
		return fmt.Errorf("bench: %w", err)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("bench: %w", err)
	}
	return nil
}

// freeAddrs returns n free loopback addresses, for the servers of a
// baseline cluster.
func freeAddrs(n int) ([]string, error) {
	addrs := make([]string, n)
	for i := range addrs {
		var err error
		if addrs[i], err = proc.FreeAddr(); err != nil {
			return nil, err
		}
	}
	return addrs, nil
}

// jetStreamCluster is 3 NATS servers with JetStream, each a process, and
// a KV bucket with 3 replicas on file storage.
type jetStreamCluster struct {
	servers  []*proc.Proc
	nc       *nats.Conn
	kv       jetstream.KeyValue
	urls     []string // server jsN listens on urls[N-1]
	monitors []string // and serves its monitoring on monitors[N-1]
	leader   int      // N of the server leading the bucket's stream
	bin, dir string
}

func (c *jetStreamCluster) confFile(n int) string {
	return filepath.Join(c.dir, fmt.Sprintf("js%d.conf", n))
}
func (c *jetStreamCluster) storeDir(n int) string {
	return filepath.Join(c.dir, fmt.Sprintf("js%d", n))
}

func (c *jetStreamCluster) serverLog(n int) string {
	return filepath.Join(c.dir, fmt.Sprintf("js%d.log", n))
}

// startServer starts server jsN from its configuration file.
func (c *jetStreamCluster) startServer(n int) (*proc.Proc, error) {
	return proc.Start(c.bin, c.serverLog(n), "nats", "--config", c.confFile(n), "--log-level", "warn")
}

func startJetStream(ctx context.Context, bin, dir string, syncAlways bool) (*jetStreamCluster, error) {
	const n = 3
	clientAddrs, err := freeAddrs(n)
	if err != nil {
		return nil, err
	}
	routeAddrs, err := freeAddrs(n)
	if err != nil {
		return nil, err
	}
	monitors, err := freeAddrs(n)
	if err != nil {
		return nil, err
	}
	if err := freshDir(dir); err != nil {
		return nil, err
	}
	var routes []string
	for _, a := range routeAddrs {
		routes = append(routes, "nats://"+a)
	}
	sync := ""
	if syncAlways {
		sync = "\n  sync_interval: always"
	}
	c := &jetStreamCluster{bin: bin, dir: dir, monitors: monitors}
	var urls []string
	for i := 1; i <= n; i++ {
		conf := fmt.Sprintf(`server_name: js%d
listen: %s
http: %s
jetstream {
  store_dir: %q%s
}
cluster {
  name: bench
  listen: %s
  routes: [%s]
}
`, i, clientAddrs[i-1], monitors[i-1], c.storeDir(i), sync, routeAddrs[i-1], strings.Join(routes, ", "))
		if err := os.WriteFile(c.confFile(i), []byte(conf), 0o600); err != nil {
			c.close()
			return nil, fmt.Errorf("bench: %w", err)
		}
		p, err := c.startServer(i)
		if err != nil {
			c.close()
			return nil, err
		}
		c.servers = append(c.servers, p)
		urls = append(urls, "nats://"+clientAddrs[i-1])
	}
	err = retry(ctx, 60*time.Second, func() error { // a server recovering on a busy disk took over 15 s to greet a client
		var err error
		c.nc, err = nats.Connect(strings.Join(urls, ","), nats.Name("memstore-bench-jetstream"))
		return err
	})
	if err == nil {
		js, jerr := jetstream.New(c.nc)
		err = jerr
		if err == nil {
			err = retry(ctx, 60*time.Second, func() error {
				ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
				defer cancel()
				var err error
				c.kv, err = js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: "bench", Replicas: 3,
					Storage: jetstream.FileStorage, History: 64})
				if err == nil {
					_, err = c.kv.Put(ctx, "ready", []byte("1"))
				}
				return err
			})
		}
	}
	if err == nil {
		c.urls = urls
		err = c.connectToLeader(ctx)
	}
	if err != nil {
		c.close()
		return nil, fmt.Errorf("bench: jetstream cluster: %w", err)
	}
	return c, nil
}

// connectToLeader waits until every replica of the bucket's stream is
// current, then connects the client to the server that leads the stream,
// JetStream's best case: through another server, each put takes a hop
// more (memstore's client always goes through the middleware).
func (c *jetStreamCluster) connectToLeader(ctx context.Context) error {
	js, err := jetstream.New(c.nc)
	if err != nil {
		return err
	}
	var leader string
	err = retry(ctx, 60*time.Second, func() error {
		ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		s, err := js.Stream(ctx, "KV_bench")
		if err != nil {
			return err
		}
		info, err := s.Info(ctx)
		if err != nil {
			return err
		}
		cl := info.Cluster
		if cl == nil || cl.Leader == "" || len(cl.Replicas) != 2 {
			return errors.New("the stream has no leader and 2 replicas yet")
		}
		for _, p := range cl.Replicas {
			if !p.Current {
				return fmt.Errorf("replica %s is not current", p.Name)
			}
		}
		leader = cl.Leader
		return nil
	})
	if err != nil {
		return err
	}
	n, err := strconv.Atoi(strings.TrimPrefix(leader, "js"))
	if err != nil || n < 1 || n > len(c.urls) {
		return fmt.Errorf("the stream leader %q is none of js1…js%d", leader, len(c.urls))
	}
	c.leader = n
	c.nc.Close()
	if c.nc, err = nats.Connect(c.urls[n-1], nats.Name("memstore-bench-jetstream")); err != nil {
		return err
	}
	if js, err = jetstream.New(c.nc); err != nil {
		return err
	}
	c.kv, err = js.KeyValue(ctx, "bench")
	return err
}

// failoverTarget puts writer w's value i to key failover.w<w>.<i> (the
// bucket keeps 64 versions of a key; a key per put keeps them all),
// kills the server leading the stream, and lists the keys afterwards. Its
// client connects to the other two servers, so its link outlives the
// kill, as memstore's through the middleware does; stop closes it.
func (c *jetStreamCluster) failoverTarget() (failoverTarget, func(), error) {
	var others []string
	for i, u := range c.urls {
		if i+1 != c.leader {
			others = append(others, u)
		}
	}
	nc, err := nats.Connect(strings.Join(others, ","), nats.Name("memstore-bench-failover"), nats.MaxReconnects(-1))
	if err != nil {
		return failoverTarget{}, nil, fmt.Errorf("bench: jetstream: %w", err)
	}
	js, err := jetstream.New(nc)
	var kv jetstream.KeyValue
	if err == nil {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		kv, err = js.KeyValue(ctx, "bench")
		cancel()
	}
	if err != nil {
		nc.Close()
		return failoverTarget{}, nil, fmt.Errorf("bench: jetstream: %w", err)
	}
	return failoverTarget{
		put: func(ctx context.Context, w, i int) error {
			_, err := kv.Put(ctx, fmt.Sprintf("failover.w%d.%d", w, i), []byte(strconv.Itoa(i)))
			return err
		},
		kill: func() { c.servers[c.leader-1].Kill() },
		stored: func(ctx context.Context) (map[[2]int]bool, error) {
			ctx, cancel := context.WithTimeout(ctx, time.Minute)
			defer cancel()
			stored := map[[2]int]bool{}
			err := retry(ctx, 30*time.Second, func() error { // the new leader may still be settling
				// Each attempt on its own deadline: one listing that hung
				// (once in a full run) took the whole minute.
				actx, cancel := context.WithTimeout(ctx, 10*time.Second)
				defer cancel()
				l, err := kv.ListKeys(actx)
				if err != nil {
					return err
				}
				for key := range l.Keys() {
					var k [2]int
					if _, err := fmt.Sscanf(key, "failover.w%d.%d", &k[0], &k[1]); err == nil {
						stored[k] = true
					}
				}
				return actx.Err() // the keys stop at the deadline too: a listing cut short would report puts lost
			})
			if err != nil {
				return nil, fmt.Errorf("bench: jetstream: list keys: %w", err)
			}
			return stored, nil
		},
	}, nc.Close, nil
}

func (c *jetStreamCluster) close() {
	if c.nc != nil {
		c.nc.Close()
	}
	for _, p := range c.servers {
		p.Stop()
	}
}
