package main

import (
	"errors"
	"fmt"
	"path/filepath"

	"github.com/sirupsen/logrus"
	"github.com/spf13/cobra"

	"memstore/bus"
	"memstore/replica"
	"memstore/replica/protocol"
	"memstore/replica/storage"
)

func nodeCommand(g *globals) *cobra.Command {
	var id uint64
	var data, sync string
	cmd := &cobra.Command{
		Use:   "node --id N [--server URL] [--data DIR]",
		Short: "Run one replica: joins the cluster the middleware at --server manages",
		Args:  args(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, args []string) error {
			log, err := g.logger()
			if err != nil {
				return err
			}
			if id == 0 {
				return errors.New("--id is required (1 or more, unique in the cluster)")
			}
			if data == "" {
				data = filepath.Join("memstore-data", fmt.Sprintf("node%d", id))
			}
			n, closeNode, err := startNode(g.server, protocol.NodeID(id), data, g.prefix, sync, log)
			if err != nil {
				return err
			}
			log.WithFields(logrus.Fields{"id": id, "data": data, "server": g.server}).Info("node running")
			select {
			case <-cmd.Context().Done():
			case <-n.Done():
			}
			closeNode()
			return n.Err()
		},
	}
	f := cmd.Flags()
	f.Uint64Var(&id, "id", 0, "node id: 1 or more, unique in the cluster")
	f.StringVar(&data, "data", "", "data folder (default memstore-data/node<ID>)")
	f.StringVar(&sync, "sync", "always", "WAL fsync policy: always, or none (benchmarks only: loses acknowledged writes on a crash)")
	return cmd
}

// startNode connects to NATS and starts a replica; the returned func stops
// both.
func startNode(url string, id protocol.NodeID, data, prefix, sync string, log *logrus.Logger) (*replica.Node, func(), error) {
	cfg := replica.DefaultConfig(id, data)
	cfg.Prefix = prefix
	switch sync {
	case "always":
	case "none":
		cfg.Sync = storage.SyncNone
	default:
		return nil, nil, fmt.Errorf("--sync %q: always or none", sync)
	}
	entry := log.WithField("node", id)
	nc, err := bus.Connect(url, fmt.Sprintf("memstore-node-%d", id), entry)
	if err != nil {
		return nil, nil, err
	}
	n, err := replica.Start(nc, cfg, entry)
	if err != nil {
		nc.Close()
		return nil, nil, fmt.Errorf("node %d: %w", id, err)
	}
	return n, func() { n.Close(); nc.Close() }, nil
}
