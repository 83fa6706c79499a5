package bench

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"memstore/internal/proc"
)

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
