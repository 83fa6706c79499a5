package bus

import (
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/sirupsen/logrus"
)

// ServerConfig configures the embedded NATS server.
type ServerConfig struct {
	// Host to listen on. Default 127.0.0.1.
	Host string
	// Port to listen on; -1 picks a free one. Default 4222.
	Port int
	// StoreDir holds JetStream's files (the view bucket). Required.
	StoreDir string
	// Name of the server. Default "memstore".
	Name string
	// ConfigFile, if set, is a nats-server configuration file that gives
	// every option instead (clusters, accounts, TLS, JetStream settings).
	ConfigFile string
	// Auth, if set, turns authentication on (see Auth).
	Auth *Auth
	// TLSCert and TLSKey, if set, make the server require TLS of every
	// client (plaintext is refused); clients trust it through the CA that
	// signed the certificate.
	TLSCert, TLSKey string
	// Prefix of the subjects users may use with Auth. Default "ms".
	Prefix string
}

// DefaultServerConfig returns the defaults, storing under dir.
func DefaultServerConfig(dir string) ServerConfig {
	return ServerConfig{Host: "127.0.0.1", Port: 4222, StoreDir: dir, Name: "memstore"}
}

// MaxPayload is the embedded server's largest message: room for a put of
// the largest request (1 MiB) in a replication message, with room to spare.
const MaxPayload = 8 << 20

// Errors of the embedded server.
var (
	// ErrServerStart means the embedded NATS server did not start.
	ErrServerStart = errors.New("bus: nats server did not start")
)

// Server is the embedded NATS server.
type Server struct {
	ns         *server.Server
	mwPassword string // the middleware's own password when Auth is on
	tls        bool   // clients must use TLS
}

// StartServer starts the embedded NATS server with JetStream on and waits
// until it accepts connections.
func StartServer(cfg ServerConfig, log logrus.FieldLogger) (*Server, error) {
	var opts *server.Options
	var mwPassword string
	if cfg.Auth != nil { // the accounts are easiest said in the server's own config language
		if err := os.MkdirAll(cfg.StoreDir, 0o700); err != nil {
			return nil, fmt.Errorf("%w: %w", ErrServerStart, err)
		}
		var conf string
		conf, mwPassword = cfg.Auth.serverConfig(cfg)
		cfg.ConfigFile = filepath.Join(cfg.StoreDir, "auth.conf")
		if err := os.WriteFile(cfg.ConfigFile, []byte(conf), 0o600); err != nil {
			return nil, fmt.Errorf("%w: %w", ErrServerStart, err)
		}
	}
	if cfg.ConfigFile != "" {
		var err error
		if opts, err = server.ProcessConfigFile(cfg.ConfigFile); err != nil {
			return nil, fmt.Errorf("%w: %w", ErrServerStart, err)
		}
	} else {
		if cfg.StoreDir == "" {
			return nil, fmt.Errorf("%w: no store dir", ErrServerStart)
		}
		if err := os.MkdirAll(cfg.StoreDir, 0o700); err != nil {
			return nil, fmt.Errorf("%w: %w", ErrServerStart, err)
		}
		opts = &server.Options{
			ServerName: cfg.Name, Host: cfg.Host, Port: cfg.Port,
			JetStream: true, StoreDir: cfg.StoreDir, MaxPayload: MaxPayload,
		}
	}
	opts.NoSigs = true
	if cfg.TLSCert != "" || cfg.TLSKey != "" {
		tc, err := server.GenTLSConfig(&server.TLSConfigOpts{CertFile: cfg.TLSCert, KeyFile: cfg.TLSKey})
		if err != nil {
			return nil, fmt.Errorf("%w: tls: %w", ErrServerStart, err)
		}
		opts.TLSConfig, opts.TLS, opts.TLSTimeout = tc, true, 2
	}
	if opts.Port > 0 { // a port taken fails here at once: the server would only log it, and not be ready
		ln, err := net.Listen("tcp", net.JoinHostPort(opts.Host, strconv.Itoa(opts.Port)))
		if err != nil {
			return nil, fmt.Errorf("%w: %w", ErrServerStart, err)
		}
		ln.Close()
	}
	ns, err := server.NewServer(opts)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrServerStart, err)
	}
	ns.SetLogger(natsLogger{log.WithField("component", "nats")}, false, false)
	ns.Start()
	if !ns.ReadyForConnections(10 * time.Second) {
		ns.Shutdown()
		return nil, fmt.Errorf("%w: not ready after 10s on %s:%d", ErrServerStart, opts.Host, opts.Port)
	}
	return &Server{ns: ns, mwPassword: mwPassword, tls: opts.TLSConfig != nil}, nil
}

// ClientURL is the URL clients connect to.
func (s *Server) ClientURL() string { return s.ns.ClientURL() }

// Connect opens the middleware's own connection, in process (no socket,
// no TLS needed), as its own user in the MEMSTORE account with Auth.
func (s *Server) Connect(name string, log logrus.FieldLogger) (*nats.Conn, error) {
	opts := []nats.Option{nats.InProcessServer(s.ns)}
	if s.tls {
		// The client still offers TLS in process; over an in-memory pipe
		// to our own server there is no one to verify.
		opts = append(opts, nats.Secure(&tls.Config{InsecureSkipVerify: true, MinVersion: tls.VersionTLS12}))
	}
	if s.mwPassword != "" {
		opts = append(opts, nats.UserInfo(MiddlewareUser, s.mwPassword))
	}
	return Connect(s.ClientURL(), name, log, opts...)
}

// Auth reports whether authentication is on.
func (s *Server) Auth() bool { return s.mwPassword != "" }

// Shutdown stops the server and waits until it is down.
func (s *Server) Shutdown() {
	s.ns.Shutdown()
	s.ns.WaitForShutdown()
}

// natsLogger routes the NATS server's log to logrus, one level quieter:
// its notices are debug lines for us.
type natsLogger struct{ log logrus.FieldLogger }

func (l natsLogger) Noticef(format string, v ...any) { l.log.Debugf(format, v...) }
func (l natsLogger) Warnf(format string, v ...any)   { l.log.Warnf(format, v...) }
func (l natsLogger) Fatalf(format string, v ...any)  { l.log.Errorf(format, v...) }
func (l natsLogger) Errorf(format string, v ...any)  { l.log.Errorf(format, v...) }
func (l natsLogger) Debugf(format string, v ...any)  { l.log.Debugf(format, v...) }
func (l natsLogger) Tracef(format string, v ...any)  { l.log.Debugf(format, v...) }
