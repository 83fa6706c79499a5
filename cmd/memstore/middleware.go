package main

import (
	"fmt"
	"net"
	"path/filepath"
	"strconv"

	"github.com/sirupsen/logrus"
	"github.com/spf13/cobra"

	"memstore/bus"
	"memstore/groupsvc"
	"memstore/replica/protocol"
)

// middlewareOptions are the flags of the middleware.
type middlewareOptions struct {
	listen    string
	data      string
	id        uint64
	bootstrap int
}

func (o *middlewareOptions) flags(cmd *cobra.Command) {
	f := cmd.Flags()
	f.StringVar(&o.listen, "listen", "127.0.0.1:4222", "address of the embedded NATS server")
	f.StringVar(&o.data, "data", "memstore-data/middleware", "data folder (the middleware's JetStream store: the view)")
	f.Uint64Var(&o.id, "id", 1000, "group service id; must differ from every node id")
	f.IntVar(&o.bootstrap, "bootstrap", 3, "nodes to wait for before the first view")
}

func middlewareCommand(g *globals) *cobra.Command {
	o := &middlewareOptions{}
	cmd := &cobra.Command{
		Use:   "middleware",
		Short: "Run the middleware: embedded NATS server, group service and request router",
		Args:  args(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, args []string) error {
			log, err := g.logger()
			if err != nil {
				return err
			}
			mw, err := startMiddleware(o, g.prefix, log)
			if err != nil {
				return err
			}
			log.WithField("url", mw.url()).Info("middleware ready")
			<-cmd.Context().Done()
			mw.close()
			return nil
		},
	}
	o.flags(cmd)
	return cmd
}

// middleware is a running middleware: server, group service, router.
type middleware struct {
	srv    *bus.Server
	svc    *groupsvc.Service
	router *groupsvc.Router
	closer func()
}

func (m *middleware) url() string { return m.srv.ClientURL() }

func startMiddleware(o *middlewareOptions, prefix string, log *logrus.Logger) (*middleware, error) {
	host, portStr, err := net.SplitHostPort(o.listen)
	if err != nil {
		return nil, fmt.Errorf("--listen %q: %w", o.listen, err)
	}
	port, err := strconv.Atoi(portStr)
	if err != nil {
		return nil, fmt.Errorf("--listen %q: bad port", o.listen)
	}
	scfg := bus.DefaultServerConfig(filepath.Join(o.data, "nats"))
	scfg.Host, scfg.Port = host, port
	srv, err := bus.StartServer(scfg, log)
	if err != nil {
		return nil, err
	}
	nc, err := bus.Connect(srv.ClientURL(), "memstore-middleware", log)
	if err != nil {
		srv.Shutdown()
		return nil, err
	}
	cfg := groupsvc.DefaultConfig(protocol.NodeID(o.id))
	cfg.Prefix = prefix
	cfg.Election.Bootstrap = o.bootstrap
	svc, err := groupsvc.Start(nc, cfg, log.WithField("component", "group"))
	if err != nil {
		nc.Close()
		srv.Shutdown()
		return nil, err
	}
	router, err := groupsvc.StartRouter(svc)
	if err != nil {
		svc.Close()
		nc.Close()
		srv.Shutdown()
		return nil, err
	}
	m := &middleware{srv: srv, svc: svc, router: router}
	m.closer = func() {
		router.Close()
		svc.Close()
		nc.Close()
		srv.Shutdown()
	}
	return m, nil
}

func (m *middleware) close() { m.closer() }
