package main

import (
	"fmt"
	"path/filepath"

	"github.com/spf13/cobra"

	"memstore/bus"
)

func certsCommand() *cobra.Command {
	var dir string
	var hosts []string
	cmd := &cobra.Command{
		Use:   "certs",
		Short: "Make a development CA and a server certificate for TLS",
		Long: `certs writes a development CA (ca.pem, ca-key.pem) and a server certificate
it signs (server.pem, server-key.pem) for --hosts into --dir, valid for a
year. Run the middleware with --tls-cert and --tls-key, and every node and
client with --tls-ca (or MEMSTORE_TLS_CA). Use your own CA in production.`,
		Example: `  memstore certs --dir certs --hosts 127.0.0.1,localhost,hosta.example
  memstore middleware --auth auth.json --tls-cert certs/server.pem --tls-key certs/server-key.pem --listen 0.0.0.0:4222
  memstore --tls-ca certs/ca.pem --server nats://alice:PASSWORD@hosta.example:4222 status`,
		Args: args(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := bus.MakeDevCerts(dir, hosts); err != nil {
				return err
			}
			fmt.Printf("wrote %s, %s, %s, %s for %v\n", filepath.Join(dir, bus.CAFile), filepath.Join(dir, bus.CAKeyFile),
				filepath.Join(dir, bus.ServerCertFile), filepath.Join(dir, bus.ServerKeyFile), hosts)
			return nil
		},
	}
	cmd.Flags().StringVar(&dir, "dir", "certs", "folder to write the files into")
	cmd.Flags().StringSliceVar(&hosts, "hosts", []string{"127.0.0.1", "localhost"}, "names and addresses the server certificate is valid for")
	return cmd
}
