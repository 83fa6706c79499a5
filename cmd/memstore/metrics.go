package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/pprof"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/sirupsen/logrus"
	"github.com/spf13/cobra"
)

// serverLog is the start of every server command: the logger, and the
// metrics endpoint (stop it when done).
func (g *globals) serverLog(metricsAddr string) (*logrus.Logger, func(), error) {
	log, err := g.logger()
	if err != nil {
		return nil, nil, err
	}
	stop, err := serveMetrics(metricsAddr, log)
	if err != nil {
		return nil, nil, usageError{err}
	}
	return log, stop, nil
}

// metricsFlag adds --metrics to a server command.
func metricsFlag(cmd *cobra.Command, addr *string) {
	cmd.Flags().StringVar(addr, "metrics", "", "serve Prometheus metrics on this address at /metrics, and Go profiles at /debug/pprof/ (e.g. 127.0.0.1:9100)")
}

// serveMetrics serves Prometheus metrics on addr at /metrics, and the Go
// profiles at /debug/pprof/, until the returned func is called; "" serves
// nothing.
func serveMetrics(addr string, log logrus.FieldLogger) (func(), error) {
	if addr == "" {
		return func() {}, nil
	}
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("--metrics %s: %w", addr, err)
	}
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.Handler())
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := srv.Serve(l); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.WithError(err).Warn("metrics endpoint stopped")
		}
	}()
	log.WithField("url", "http://"+l.Addr().String()+"/metrics").Info("metrics endpoint ready")
	return func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
		<-done
	}, nil
}
