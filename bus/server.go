package bus

import (
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/nats-io/nats-server/v2/server"
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
}

// DefaultServerConfig returns the defaults, storing under dir.
func DefaultServerConfig(dir string) ServerConfig {
	return ServerConfig{Host: "127.0.0.1", Port: 4222, StoreDir: dir, Name: "memstore"}
}

// Errors of the embedded server.
var (
	// ErrServerStart means the embedded NATS server did not start.
	ErrServerStart = errors.New("bus: nats server did not start")
)

// Server is the embedded NATS server.
type Server struct {
	ns *server.Server
}

// StartServer starts the embedded NATS server with JetStream on and waits
// until it accepts connections.
func StartServer(cfg ServerConfig, log logrus.FieldLogger) (*Server, error) {
	if cfg.StoreDir == "" {
		return nil, fmt.Errorf("%w: no store dir", ErrServerStart)
	}
	if err := os.MkdirAll(cfg.StoreDir, 0o700); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrServerStart, err)
	}
	opts := &server.Options{
		ServerName: cfg.Name, Host: cfg.Host, Port: cfg.Port,
		JetStream: true, StoreDir: cfg.StoreDir, NoSigs: true,
	}
	ns, err := server.NewServer(opts)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrServerStart, err)
	}
	ns.SetLogger(natsLogger{log.WithField("component", "nats")}, false, false)
	ns.Start()
	if !ns.ReadyForConnections(10 * time.Second) {
		ns.Shutdown()
		return nil, fmt.Errorf("%w: not ready after 10s on %s:%d", ErrServerStart, cfg.Host, cfg.Port)
	}
	return &Server{ns: ns}, nil
}

// ClientURL is the URL clients connect to.
func (s *Server) ClientURL() string { return s.ns.ClientURL() }

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
