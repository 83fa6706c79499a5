package main

import (
	"errors"

	"github.com/spf13/cobra"

	"memstore/bus"
)

func natsCommand(g *globals) *cobra.Command {
	var config string
	cmd := &cobra.Command{
		Use:   "nats --config FILE",
		Short: "Run a plain NATS server from a nats-server configuration file (clusters, JetStream)",
		Long: `nats runs the NATS server memstore embeds, configured by a nats-server
configuration file: the same syntax and options as the nats-server program
(listen, server_name, cluster routes, jetstream, accounts, tls). It serves
deploy/nats setups and the JetStream side of memstore bench without
installing nats-server.`,
		Example: `  memstore nats --config deploy/nats/single.conf`,
		Args:    args(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if config == "" {
				return usageError{errors.New("--config FILE is required")}
			}
			log, err := g.logger()
			if err != nil {
				return err
			}
			srv, err := bus.StartServer(bus.ServerConfig{ConfigFile: config}, log)
			if err != nil {
				return err
			}
			log.WithField("url", srv.ClientURL()).Info("nats server ready")
			<-cmd.Context().Done()
			srv.Shutdown()
			return nil
		},
	}
	cmd.Flags().StringVar(&config, "config", "", "nats-server configuration file")
	return cmd
}
