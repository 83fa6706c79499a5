package main

import (
	"context"
	"fmt"
	"path/filepath"
	"sync"

	"github.com/spf13/cobra"

	"memstore/client"
	"memstore/replica/protocol"
	"memstore/sensor"
)

func devCommand(g *globals) *cobra.Command {
	var listen, data, metricsAddr string
	var nodes, sensors int
	cmd := &cobra.Command{
		Use:   "dev",
		Short: "Run a whole local cluster in one process: middleware, N nodes and simulated sensors, data under one folder",
		Long: `dev runs the middleware (embedded NATS on --listen) and --nodes replicas in one
process, with every data dir under --data, for a first try and for demos.
Stop it with Ctrl-C; start it again and everything written is still there.`,
		Args: args(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, args []string) error {
			log, stopMetrics, err := g.serverLog(metricsAddr)
			if err != nil {
				return err
			}
			defer stopMetrics()
			if nodes < 1 {
				return usageError{fmt.Errorf("--nodes %d: at least 1", nodes)}
			}
			mw, err := startMiddleware(&middlewareOptions{listen: listen, data: filepath.Join(data, "middleware"),
				id: 1000, bootstrap: nodes, replicas: 1}, g.prefix, "", log)
			if err != nil {
				return err
			}
			defer mw.close()
			type stopped struct {
				id    int
				err   error
				close func() // releases its folder and id, so it can start again
			}
			ended := make(chan stopped, nodes)
			for id := 1; id <= nodes; id++ {
				n, closeNode, err := startNode(nodeOptions{url: mw.url(), id: protocol.NodeID(id),
					data: filepath.Join(data, fmt.Sprintf("node%d", id)), prefix: g.prefix, sync: "always"}, log)
				if err != nil {
					return err
				}
				closeNode = sync.OnceFunc(closeNode)
				defer closeNode()
				go func() { <-n.Done(); ended <- stopped{id, n.Err(), closeNode} }() // ends when the node stops
			}
			fmt.Printf("memstore dev: middleware on %s, %d nodes, data in %s\n", mw.url(), nodes, data)
			if sensors > 0 {
				cl, err := client.Dial(mw.url(), client.Options{Prefix: g.prefix, User: "sensor"})
				if err != nil {
					return err
				}
				defer cl.Close()
				sctx, stopSensors := context.WithCancel(cmd.Context())
				sensorsDone := make(chan struct{})
				defer func() { stopSensors(); <-sensorsDone }()
				go func() { // owned: stopped and waited for on return
					defer close(sensorsDone)
					_, _ = sensor.Run(sctx, cl, sensor.Config{Prefix: "plant1", Sensors: sensors, Rate: 1,
						Seed: 1, Mode: sensor.ModeAck, Source: "sensor/plant1/dev"}, nil) // not the host's: memstore sensor may run beside it
				}()
				fmt.Printf("memstore dev: %d simulated sensors write under plant1/ once a second (--sensors 0 to stop them)\n", sensors)
			}
			m := "memstore"
			if listen != defaultListen {
				m += " --server " + mw.url()
			}
			fmt.Printf("try: %[1]s tree plant1; %[1]s history plant1/line1/temp0; %[1]s watch 'plant1/>'; %[1]s status\n", m)
			for {
				select {
				case <-cmd.Context().Done():
					fmt.Println("memstore dev: stopping")
					return nil
				case s := <-ended:
					if s.err != nil {
						return fmt.Errorf("node %d stopped: %w", s.id, s.err)
					}
					s.close()
					fmt.Printf("memstore dev: node %d left the group (memstore leave); the others go on\n", s.id)
				}
			}
		},
	}
	f := cmd.Flags()
	f.StringVar(&listen, "listen", defaultListen, "address of the embedded NATS server")
	f.StringVar(&data, "data", "memstore-data", "folder holding the middleware's and every node's data")
	f.IntVar(&nodes, "nodes", 5, "number of nodes")
	f.IntVar(&sensors, "sensors", 10, "simulated sensors feeding the cluster (0: none)")
	metricsFlag(cmd, &metricsAddr)
	return cmd
}
