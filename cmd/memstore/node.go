package main

import (
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/sirupsen/logrus"
	"github.com/spf13/cobra"

	"memstore/bus"
	"memstore/client"
	"memstore/replica"
	"memstore/replica/protocol"
	"memstore/replica/storage"
	"memstore/replica/storage/vfs"
)

func nodeCommand(g *globals) *cobra.Command {
	var id uint64
	var data, sync, journal, metricsAddr string
	cmd := &cobra.Command{
		Use:   "node --id N [--server URL] [--data DIR]",
		Short: "Run one replica: joins the cluster the middleware at --server manages",
		Args:  args(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, args []string) error {
			log, stopMetrics, err := g.serverLog(metricsAddr)
			if err != nil {
				return err
			}
			defer stopMetrics()
			if id == 0 {
				return usageError{errors.New("--id is required (1 or more, unique in the cluster)")}
			}
			if data == "" {
				data = filepath.Join("memstore-data", fmt.Sprintf("node%d", id))
			}
			n, closeNode, err := startNode(nodeOptions{url: g.server, id: protocol.NodeID(id), data: data, prefix: g.prefix,
				sync: sync, journal: journal, tlsCA: g.tlsCA}, log)
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
	f.StringVar(&journal, "sync-journal", "", "fault-injection tests only: record every fsync in this file, for simulated power loss")
	_ = f.MarkHidden("sync-journal")
	metricsFlag(cmd, &metricsAddr)
	return cmd
}

// nodeOptions say how to run one node.
type nodeOptions struct {
	url     string
	id      protocol.NodeID
	data    string
	prefix  string
	sync    string // always or none
	journal string // --sync-journal, tests only
	tlsCA   string
}

// startNode connects to NATS and starts a replica; the returned func stops
// both.
func startNode(o nodeOptions, log *logrus.Logger) (*replica.Node, func(), error) {
	cfg := replica.DefaultConfig(o.id, o.data)
	cfg.Prefix = o.prefix
	if o.journal != "" {
		fsys, err := vfs.Journaled(vfs.OS, o.journal)
		if err != nil {
			return nil, nil, err
		}
		cfg.FS = fsys
	}
	switch o.sync {
	case "always":
	case "none":
		cfg.Sync = storage.SyncNone
	default:
		return nil, nil, fmt.Errorf("--sync %q: always or none", o.sync)
	}
	// The node ignores its own messages: echoing its multicasts back would
	// cost a delivery per append and read round.
	extra := append([]nats.Option{nats.NoEcho()}, trustCA(o.tlsCA)...)
	id := o.id
	entry := log.WithField("node", id)
	nc, err := bus.Connect(o.url, fmt.Sprintf("memstore-node-%d", id), entry, extra...)
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

// askToLeave sends the leave request every half second until an answer
// comes or timeout passes: a node just started may not listen yet (the
// group service answers for members only), and asked once it missed the
// request and joined.
func askToLeave(nc *nats.Conn, subject string, timeout time.Duration) (*nats.Msg, error) {
	deadline := time.Now().Add(timeout)
	for {
		rep, err := nc.Request(subject, nil, min(500*time.Millisecond, time.Until(deadline)))
		if err == nil || !errors.Is(err, nats.ErrTimeout) && !errors.Is(err, nats.ErrNoResponders) || time.Until(deadline) <= 0 {
			return rep, err
		}
		if errors.Is(err, nats.ErrNoResponders) {
			time.Sleep(min(500*time.Millisecond, time.Until(deadline)))
		}
	}
}

// whyNoRemoval says, from the last status, why a member was not taken
// out: the view change needs a majority of the members alive, and of the
// members that stay.
func whyNoRemoval(st bus.StatusReply, id uint64) string {
	var old, stay []protocol.NodeID
	upOld, upStay := 0, 0
	for _, n := range st.Nodes {
		if !n.Member {
			continue
		}
		old = append(old, protocol.NodeID(n.ID))
		if n.ID != id {
			stay = append(stay, protocol.NodeID(n.ID))
		}
		if n.State == "down" {
			continue
		}
		upOld++
		if n.ID != id {
			upStay++
		}
	}
	if len(old) == 0 || upOld >= protocol.Quorum(old) && upStay >= protocol.Quorum(stay) {
		return ""
	}
	return fmt.Sprintf(": %d of its %d members are up, %d of the %d that would stay; the change needs a majority of both, and is made once enough are back",
		upOld, len(old), upStay, len(stay))
}

func leaveCommand(g *globals) *cobra.Command {
	var id uint64
	var wait time.Duration
	cmd := &cobra.Command{
		Use:   "leave --id N",
		Short: "Take node N out of the group: a view change removes it, then it stops",
		Long: `leave takes node N out of the group's members by a view change. A running
node stops once out (one still joining stops at once); a member that is
down for good (a dead disk or host) is taken out by the group service all
the same, so the others no longer count it in their majority. Its folder
stays: start it again and it joins as a new member. A node the group does
not know is not_found.`,
		Args: args(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if id == 0 {
				return usageError{errors.New("--id is required")}
			}
			return withClient(g, func(c *client.Client) error {
				nc, err := nats.Connect(g.server, trustCA(g.tlsCA)...)
				if err != nil {
					return bus.Errorf(bus.CodeUnavailable, "%v", err)
				}
				defer nc.Close()
				rep, err := askToLeave(nc, bus.NewSubjects(g.prefix).Leave(protocol.NodeID(id)), g.timeout)
				if err != nil { // not a member, and the node does not run
					if st, serr := c.Status(cmd.Context()); serr == nil && !slices.ContainsFunc(st.Nodes, func(n bus.NodeStatus) bool { return n.ID == id }) {
						return bus.Errorf(bus.CodeNotFound, "node %d is not in the group", id)
					}
					return bus.Errorf(bus.CodeUnavailable, "node %d is not a member and did not answer: %v", id, err)
				}
				var res bus.Result
				if e := bus.Decode(rep.Data, &res); e != nil {
					return e
				}
				if err := res.Err(); err != nil {
					return err
				}
				deadline := time.Now().Add(wait)
				var st bus.StatusReply
				for time.Now().Before(deadline) {
					st, err = c.Status(cmd.Context())
					if err == nil && !slices.Contains(st.Members, id) && st.Leader != 0 {
						fmt.Printf("node %d left: epoch %d, leader %d, members %v\n", id, st.Epoch, st.Leader, st.Members)
						return nil
					}
					time.Sleep(200 * time.Millisecond)
				}
				return bus.Errorf(bus.CodeTimeout, "node %d is still a member after %v%s", id, wait, whyNoRemoval(st, id))
			})
		},
	}
	cmd.Flags().Uint64Var(&id, "id", 0, "the node to take out")
	cmd.Flags().DurationVar(&wait, "wait", 30*time.Second, "how long to wait for the view change")
	return cmd
}
