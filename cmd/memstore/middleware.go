package main

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"path/filepath"
	"strconv"

	"github.com/nats-io/nats.go"
	"github.com/sirupsen/logrus"
	"github.com/spf13/cobra"

	"memstore/bus"
	"memstore/groupsvc"
	"memstore/replica/protocol"
	"memstore/replica/storage/vfs"
)

// middlewareOptions are the flags of the middleware.
type middlewareOptions struct {
	listen    string
	data      string
	id        uint64
	bootstrap int
	insecure  bool
	auth      string
	tlsCert   string
	tlsKey    string
	natsURL   string
	replicas  int
}

func (o *middlewareOptions) flags(cmd *cobra.Command) {
	f := cmd.Flags()
	f.StringVar(&o.listen, "listen", defaultListen, "address of the embedded NATS server")
	f.StringVar(&o.data, "data", "memstore-data/middleware", "data folder (the middleware's JetStream store: the view)")
	f.Uint64Var(&o.id, "id", 1000, "group service id; must differ from every node id")
	f.IntVar(&o.bootstrap, "bootstrap", 3, "nodes to wait for before the first view")
	f.StringVar(&o.auth, "auth", "", `turn authentication on: a JSON file {"nodes":{"node1":"password",…},"users":{"alice":"password",…}}; `+
		"nodes connect as nats://node1:password@host:port, users likewise, and each version records the authenticated user")
	f.StringVar(&o.natsURL, "nats-url", "", "join this external NATS server or cluster (deploy/nats) instead of embedding one; several middlewares may join it (give each its own --id)")
	f.IntVar(&o.replicas, "replicas", 1, "replicas of the view's JetStream bucket: 3 on a 3-server NATS cluster")
	f.StringVar(&o.tlsCert, "tls-cert", "", "server certificate (PEM): require TLS of every client; see memstore certs")
	f.StringVar(&o.tlsKey, "tls-key", "", "the certificate's private key (PEM)")
	f.BoolVar(&o.insecure, "insecure", false, "listen beyond loopback without authentication or TLS (anyone who reaches the port can read, write and impersonate nodes)")
}

func middlewareCommand(g *globals) *cobra.Command {
	o := &middlewareOptions{}
	var metricsAddr string
	cmd := &cobra.Command{
		Use:   "middleware",
		Short: "Run the middleware: embedded NATS server, group service and request router",
		Args:  args(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, args []string) error {
			log, stopMetrics, err := g.serverLog(metricsAddr)
			if err != nil {
				return err
			}
			defer stopMetrics()
			mw, err := startMiddleware(o, g.prefix, g.tlsCA, log)
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
	metricsFlag(cmd, &metricsAddr)
	return cmd
}

// middleware is a running middleware: server, group service, router.
type middleware struct {
	srv     *bus.Server // the embedded server; nil with --nats-url
	natsURL string      // --nats-url without its password
	closer  func()
}

// url is where the middleware's NATS is (credentials left out).
func (m *middleware) url() string {
	if m.srv == nil {
		return m.natsURL
	}
	return m.srv.ClientURL()
}

func startMiddleware(o *middlewareOptions, prefix, tlsCA string, log *logrus.Logger) (_ *middleware, err error) {
	m := &middleware{}
	var stops []func() // undone in reverse on failure or close
	m.closer = func() {
		for i := len(stops) - 1; i >= 0; i-- {
			stops[i]()
		}
	}
	defer func() {
		if err != nil {
			m.closer()
		}
	}()
	var nc *nats.Conn
	auth := false
	if o.natsURL != "" { // join an external NATS server or cluster
		if o.auth != "" || o.tlsCert != "" {
			return nil, usageError{errors.New("--nats-url joins a NATS server configured on its own (see deploy/nats): --auth and --tls-cert do not apply")}
		}
		u, perr := url.Parse(o.natsURL)
		if perr != nil || u.Host == "" {
			return nil, usageError{fmt.Errorf("--nats-url %q: not a URL like nats://user:password@host:4222", o.natsURL)}
		}
		if nc, err = bus.Connect(o.natsURL, "memstore-middleware", log, trustCA(tlsCA)...); err != nil {
			return nil, err
		}
		m.natsURL, auth = u.Redacted(), u.User != nil
	} else {
		var lock io.Closer
		if lock, err = lockFolder(o.data); err != nil {
			return nil, err
		}
		stops = append(stops, func() { lock.Close() })
		if m.srv, err = startEmbedded(o, prefix, log); err != nil {
			return nil, err
		}
		stops = append(stops, m.srv.Shutdown)
		if nc, err = m.srv.Connect("memstore-middleware", log); err != nil {
			return nil, err
		}
		auth = m.srv.Auth()
	}
	stops = append(stops, nc.Close)
	cfg := groupsvc.DefaultConfig(protocol.NodeID(o.id))
	cfg.Prefix, cfg.Election.Bootstrap, cfg.Auth, cfg.Replicas = prefix, o.bootstrap, auth, o.replicas
	svc, err := groupsvc.Start(nc, cfg, log.WithField("component", "group"))
	if err != nil {
		return nil, err
	}
	stops = append(stops, svc.Close)
	router, err := groupsvc.StartRouter(svc)
	if err != nil {
		return nil, err
	}
	stops = append(stops, router.Close)
	return m, nil
}

// defaultListen is where the embedded NATS server listens by default, and
// where clients look for it (--server's default).
const defaultListen = "127.0.0.1:4222"

// lockFolder takes the LOCK file of the middleware's data folder for this
// process: two embedded servers on one JetStream store would corrupt it.
func lockFolder(dir string) (io.Closer, error) {
	f, err := vfs.LockDir(vfs.OS, dir)
	if err != nil {
		return nil, fmt.Errorf("middleware: %w", err)
	}
	return f, nil
}

// startEmbedded starts the embedded NATS server the flags describe.
func startEmbedded(o *middlewareOptions, prefix string, log *logrus.Logger) (*bus.Server, error) {
	host, portStr, err := net.SplitHostPort(o.listen)
	if err != nil {
		return nil, usageError{fmt.Errorf("--listen %q: %w", o.listen, err)}
	}
	port, err := strconv.Atoi(portStr)
	if err != nil {
		return nil, usageError{fmt.Errorf("--listen %q: bad port", o.listen)}
	}
	scfg := bus.DefaultServerConfig(filepath.Join(o.data, "nats"))
	scfg.Host, scfg.Port, scfg.Prefix, scfg.TLSCert, scfg.TLSKey = host, port, prefix, o.tlsCert, o.tlsKey
	if (o.tlsCert == "") != (o.tlsKey == "") {
		return nil, usageError{errors.New("--tls-cert and --tls-key go together")}
	}
	if o.auth != "" {
		if scfg.Auth, err = bus.LoadAuth(o.auth); err != nil {
			return nil, usageError{err}
		}
	}
	if ip := net.ParseIP(host); !o.insecure && scfg.Auth == nil && (ip == nil || !ip.IsLoopback()) && host != "localhost" {
		return nil, usageError{fmt.Errorf("--listen %s is reachable beyond this machine, and this middleware has no authentication: "+
			"anyone who reaches it could read and write every value and impersonate nodes. Listen on 127.0.0.1, give --auth FILE, "+
			"or pass --insecure on a network you trust", o.listen)}
	}
	return bus.StartServer(scfg, log)
}

func (m *middleware) close() { m.closer() }
