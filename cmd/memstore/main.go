// Command memstore is every memstore process in one binary: the middleware,
// a node, a local dev cluster, and the user CLI. This package holds flags,
// signals and wiring only.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/sirupsen/logrus"
	"github.com/spf13/cobra"

	"memstore/bus"
	"memstore/client"
)

// globals are the flags every command shares.
type globals struct {
	json     bool
	server   string
	timeout  time.Duration
	user     string
	prefix   string
	logLevel string
	tlsCA    string
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	root := newRoot()
	err := root.ExecuteContext(ctx)
	stop()
	if err != nil {
		asJSON, _ := root.PersistentFlags().GetBool("json")
		printError(os.Stdout, os.Stderr, err, asJSON)
		os.Exit(exitCode(err))
	}
}

// printError reports err: on stderr, or with --json as a failed reply
// on stdout, {"ok":false,"error":{"code","message"}}, where code is the
// store's, bad_request for bad usage, timeout for a request the client
// gave up on, and "error" for anything else (a local failure).
func printError(stdout, stderr io.Writer, err error, asJSON bool) {
	if !asJSON {
		fmt.Fprintf(stderr, "memstore: %v\n", err)
		return
	}
	var be *bus.Error
	if !errors.As(err, &be) {
		code := "error"
		switch exitCode(err) {
		case 2:
			code = bus.CodeBadRequest
		case 4:
			code = bus.CodeTimeout
		}
		be = &bus.Error{Code: code, Message: err.Error()}
	}
	fmt.Fprintf(stdout, "%s\n", bus.ErrorReply(be))
}

// usageError marks a bad command line.
type usageError struct{ error }

// exitCode maps an error to the exit code scripts can test.
func exitCode(err error) int {
	var ue usageError
	switch {
	case errors.As(err, &ue),
		strings.HasPrefix(err.Error(), "unknown command "): // cobra's, untyped
		return 2
	case bus.HasCode(err, bus.CodeNotFound):
		return 3
	case errors.Is(err, client.ErrTimeout), bus.HasCode(err, bus.CodeUnavailable), bus.HasCode(err, bus.CodeTimeout):
		return 4
	}
	return 1
}

func newRoot() *cobra.Command {
	g := &globals{}
	root := &cobra.Command{
		Use:   "memstore",
		Short: "A replicated, persistent store of values indexed by folder-like paths",
		Long: `memstore keeps values under folder-like paths (plant1/line3/temp), replicated
over NATS and stored on disk, with history and subtree reads.

Start a local cluster with 'memstore dev', then use put/get/history/ls/tree/watch.

Exit codes: 0 success, 1 error, 2 bad usage, 3 not found (not_found),
4 try again later (unavailable, timeout: the cluster has no leader now, or
a write's outcome is unknown).`,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return usageError{err} })
	pf := root.PersistentFlags()
	pf.StringVar(&g.server, "server", envOr("MEMSTORE_SERVER", "nats://"+defaultListen), "NATS URL of the cluster (env MEMSTORE_SERVER)")
	pf.DurationVar(&g.timeout, "timeout", 5*time.Second, "how long a request may take")
	pf.StringVar(&g.user, "user", envOr("MEMSTORE_USER", ""), "writer name recorded with each version when auth is off (env MEMSTORE_USER)")
	pf.StringVar(&g.prefix, "prefix", bus.DefaultPrefix, "first token of every memstore subject")
	pf.StringVar(&g.tlsCA, "tls-ca", envOr("MEMSTORE_TLS_CA", ""), "CA certificate that signed the server's (env MEMSTORE_TLS_CA): connect with TLS")
	pf.StringVar(&g.logLevel, "log-level", "info", "log level of server processes: debug, info, warn, error")
	pf.BoolVar(&g.json, "json", false, "print replies as JSON (one object per line), errors too (ok false, on stdout)")
	root.AddCommand(userCommands(g)...)
	root.AddCommand(middlewareCommand(g), nodeCommand(g), devCommand(g), leaveCommand(g), sensorCommand(g), queryCommand(g), natsCommand(g), benchCommand(), certsCommand())
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
	if g.timeout <= 0 {
		return nil, usageError{fmt.Errorf("--timeout %v: above 0", g.timeout)}
	}
	c, err := client.Dial(g.server, client.Options{Prefix: g.prefix, Timeout: g.timeout, User: g.user, TLSCA: g.tlsCA})
	switch {
	case errors.Is(err, nats.ErrAuthorization):
		return nil, bus.Errorf(bus.CodeForbidden, "%v (the cluster wants a user and password: --server nats://USER:PASSWORD@HOST:PORT)", err)
	case err != nil && strings.Contains(err.Error(), "x509:"):
		return nil, bus.Errorf(bus.CodeForbidden, "%v (the server uses TLS: trust its CA with --tls-ca FILE)", err)
	case err != nil:
		return nil, bus.Errorf(bus.CodeUnavailable, "%v (is the cluster running? --server)", err)
	}
	return c, nil
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
	// Milliseconds: a failover or a catch-up is over within a second or two,
	// and the order of its steps across processes is what a reader looks for.
	log.SetFormatter(&logrus.TextFormatter{FullTimestamp: true, TimestampFormat: "2006-01-02T15:04:05.000Z07:00"})
	return log, nil
}

// trustCA is the NATS option that trusts the CA certificate file ca
// (--tls-ca), none if ca is "".
func trustCA(ca string) []nats.Option {
	if ca == "" {
		return nil
	}
	return []nats.Option{nats.RootCAs(ca)}
}
