// Command memstore is every memstore process in one binary: the middleware,
// a node, a local dev cluster, and the user CLI. This package holds flags,
// signals and wiring only.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/sirupsen/logrus"
	"github.com/spf13/cobra"

	"memstore/bus"
	"memstore/client"
)

// globals are the flags every command shares.
type globals struct {
	server   string
	timeout  time.Duration
	user     string
	prefix   string
	logLevel string
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := newRoot().ExecuteContext(ctx)
	stop()
	if err != nil {
		var be *bus.Error
		if errors.As(err, &be) {
			fmt.Fprintf(os.Stderr, "memstore: %s: %s\n", be.Code, be.Message)
		} else {
			fmt.Fprintf(os.Stderr, "memstore: %v\n", err)
		}
		os.Exit(1)
	}
}

func newRoot() *cobra.Command {
	g := &globals{}
	root := &cobra.Command{
		Use:   "memstore",
		Short: "A replicated, persistent store of values indexed by folder-like paths",
		Long: `memstore keeps values under folder-like paths (plant1/line3/temp), replicated
over NATS and stored on disk, with history and subtree reads.

Start a local cluster with 'memstore dev', then use put/get/history/ls/tree/watch.`,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	pf := root.PersistentFlags()
	pf.StringVar(&g.server, "server", envOr("MEMSTORE_SERVER", "nats://127.0.0.1:4222"), "NATS URL of the cluster (env MEMSTORE_SERVER)")
	pf.DurationVar(&g.timeout, "timeout", 5*time.Second, "how long a request may take")
	pf.StringVar(&g.user, "user", envOr("MEMSTORE_USER", ""), "writer name recorded with each version when auth is off (env MEMSTORE_USER)")
	pf.StringVar(&g.prefix, "prefix", bus.DefaultPrefix, "first token of every memstore subject")
	pf.StringVar(&g.logLevel, "log-level", "info", "log level of server processes: debug, info, warn, error")
	root.AddCommand(userCommands(g)...)
	root.AddCommand(middlewareCommand(g), nodeCommand(g), devCommand(g))
	return root
}

func envOr(key, def string) string {
	if v := os.Getenv(key); v != "" {
		return v
	}
	return def
}

// dial opens a client with the global flags.
func (g *globals) dial() (*client.Client, error) {
	return client.Dial(g.server, client.Options{Prefix: g.prefix, Timeout: g.timeout, User: g.user})
}

// logger builds the logger of a server process.
func (g *globals) logger() (*logrus.Logger, error) {
	lvl, err := logrus.ParseLevel(g.logLevel)
	if err != nil {
		return nil, fmt.Errorf("--log-level: %w", err)
	}
	log := logrus.New()
	log.SetLevel(lvl)
	log.SetOutput(os.Stderr)
	return log, nil
}
