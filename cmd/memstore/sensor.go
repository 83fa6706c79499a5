package main

import (
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/spf13/cobra"

	"memstore/client"
	"memstore/sensor"
)

func sensorCommand(g *globals) *cobra.Command {
	cfg := sensor.Config{}
	cmd := &cobra.Command{
		Use:   "sensor",
		Short: "Simulate sensors and feed their values to the store at --server",
		Long: `sensor simulates --sensors sensors under --prefix (prefix/line<N>/<kind><i>):
temperature, humidity, pressure, a power counter and vibration, with daily
cycles, bounded random walks, noise, spikes and dropouts; --seed repeats a run.

Modes:
  ack   (default) acknowledged batch puts keyed (--source, send time) and
        resent until acknowledged: nothing acknowledged is lost, nothing is
        written twice, also across a restart with the same --source. Two
        processes must not share a --source: values of one would be taken
        for resends of the other's (they are counted as errors, not acked).
  fire  publish each value on ms.in.<path> without waiting: fastest, but
        values in flight when a node or the connection fails are lost.`,
		Args: args(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			return withClient(g, func(c *client.Client) error {
				fi, _ := os.Stderr.Stat()
				term := fi != nil && fi.Mode()&os.ModeCharDevice != 0
				st, err := sensor.Run(cmd.Context(), c, cfg, sensor.LineWriter(os.Stderr, term))
				if term && st.Elapsed > time.Second {
					fmt.Fprintln(os.Stderr)
				}
				if st.Sent > 0 {
					fmt.Printf("done: %s\n", st)
				}
				if errors.Is(err, sensor.ErrConfig) {
					return usageError{err}
				}
				if err == nil && st.Refused != nil {
					err = fmt.Errorf("%d values were not written: %w", st.Sent-st.Acked, st.Refused)
				}
				return err
			})
		},
	}
	f := cmd.Flags()
	f.StringVar(&cfg.Prefix, "prefix", "plant1", "path prefix of the sensors")
	f.IntVar(&cfg.Sensors, "sensors", 10, "number of simulated sensors")
	f.Float64Var(&cfg.Rate, "rate", 1, "readings per second per sensor")
	f.DurationVar(&cfg.Duration, "duration", 0, "stop after this long, e.g. 30s (default: until Ctrl-C)")
	f.IntVar(&cfg.Count, "count", 0, "stop after this many readings per sensor (default: no limit)")
	f.Int64Var(&cfg.Seed, "seed", time.Now().UnixNano()%1_000_000, "seed: the same seed gives the same values")
	f.StringVar(&cfg.Mode, "mode", sensor.ModeAck, "ack (acknowledged, retried) or fire (ms.in, may lose in-flight values)")
	f.StringVar(&cfg.Source, "source", "", "name of this sensor process in the dedup key, one writer's at a time (default sensor/<prefix>/<host>)")
	return cmd
}
