package bench

import (
	"context"
	"fmt"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"memstore/internal/proc"
)

// etcd runs W1 and W2 on a 3-server etcd cluster, if an etcd binary is on
// the PATH (Debian: apt install etcd-server). etcd fsyncs its log before
// it acknowledges a put, the promise memstore makes; its linearizable
// reads confirm leadership with a read index, as memstore's do, and its
// serializable reads are answered by any server, as memstore's stale ones.
func (r *runner) etcd(ctx context.Context) error {
	if !r.cfg.runs("W1") && !r.cfg.runs("W2") {
		return nil
	}
	bin, err := exec.LookPath("etcd")
	if err != nil {
		fmt.Fprintf(r.cfg.Progress, "etcd is not on the PATH (Debian: apt install etcd-server): no etcd rows\n")
		return nil
	}
	fmt.Fprintf(r.cfg.Progress, "starting %s (%s)\n", Etcd, bin)
	c, err := startEtcd(ctx, bin, r.dir("etcd"))
	if err != nil {
		if ctx.Err() != nil {
			return err
		}
		fmt.Fprintf(r.cfg.Progress, "%v: no etcd rows\n", err) // a baseline that will not start stops no measurement of memstore's
		return nil
	}
	defer c.close()
	r.servers = c.servers
	defer func() { r.servers = nil }()
	put := func(ctx context.Context, key string, v []byte) error {
		_, err := c.cl.Put(ctx, key, string(v))
		return err
	}
	if err := r.writes(ctx, Etcd, func(ctx context.Context, key string) error { return put(ctx, key, value64) }); err != nil {
		return err
	}
	if !r.cfg.runs("W2") {
		return nil
	}
	if err := prefill(ctx, put, max(16, maxOf(r.cfg.Readers))); err != nil {
		return err
	}
	get := func(opts ...clientv3.OpOption) func(ctx context.Context, key string) error {
		return func(ctx context.Context, key string) error {
			rep, err := c.cl.Get(ctx, key, opts...)
			if err == nil && len(rep.Kvs) != 1 {
				err = fmt.Errorf("bench: etcd has no %s", key)
			}
			return err
		}
	}
	if err := r.reads(ctx, "linearizable", Etcd, get()); err != nil {
		return err
	}
	return r.reads(ctx, "serializable", Etcd, get(clientv3.WithSerializable()))
}

// etcdCluster is 3 etcd servers, each a process, and a client of all.
type etcdCluster struct {
	servers []*proc.Proc
	cl      *clientv3.Client
}

func startEtcd(ctx context.Context, bin, dir string) (*etcdCluster, error) {
	const n = 3
	clientURLs, err := freeAddrs(n)
	if err != nil {
		return nil, err
	}
	peerURLs, err := freeAddrs(n)
	if err != nil {
		return nil, err
	}
	cluster := make([]string, n)
	for i := range n {
		clientURLs[i], peerURLs[i] = "http://"+clientURLs[i], "http://"+peerURLs[i]
		cluster[i] = fmt.Sprintf("e%d=%s", i+1, peerURLs[i])
	}
	// A folder of an earlier run holds its cluster, whose peers listened
	// on other ports: start afresh.
	if err := freshDir(dir); err != nil {
		return nil, err
	}
	c := &etcdCluster{}
	for i := range n {
		p, err := proc.Start(bin, filepath.Join(dir, fmt.Sprintf("e%d.log", i+1)),
			"--name", fmt.Sprintf("e%d", i+1), "--data-dir", filepath.Join(dir, fmt.Sprintf("e%d", i+1)),
			"--listen-client-urls", clientURLs[i], "--advertise-client-urls", clientURLs[i],
			"--listen-peer-urls", peerURLs[i], "--initial-advertise-peer-urls", peerURLs[i],
			"--initial-cluster", strings.Join(cluster, ","), "--initial-cluster-state", "new",
			"--initial-cluster-token", "memstore-bench", "--logger", "zap", "--log-level", "warn")
		if err != nil {
			c.close()
			return nil, err
		}
		c.servers = append(c.servers, p)
	}
	c.cl, err = clientv3.New(clientv3.Config{Endpoints: clientURLs, DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
	if err == nil {
		err = retry(ctx, 30*time.Second, func() error {
			for i, p := range c.servers {
				select {
				case <-p.Done():
					return fmt.Errorf("etcd server e%d exited", i+1)
				default:
				}
			}
			ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
			defer cancel()
			_, err := c.cl.Put(ctx, "ready", "1")
			return err
		})
	}
	if err != nil {
		c.close()
		return nil, fmt.Errorf("bench: etcd cluster (logs in %s): %w", dir, err)
	}
	return c, nil
}

func (c *etcdCluster) close() {
	if c.cl != nil {
		_ = c.cl.Close()
	}
	for _, p := range c.servers {
		p.Stop()
	}
}
