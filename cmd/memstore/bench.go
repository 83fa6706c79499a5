package main

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"memstore/bench"
)

func benchCommand() *cobra.Command {
	cfg := bench.Config{}
	var out, dir string
	var keep bool
	cmd := &cobra.Command{
		Use:   "bench",
		Short: "Benchmark memstore side by side with NATS JetStream KV and etcd on this machine",
		Long: `bench starts on this machine a memstore cluster of 3 and of 5 nodes and
a 3-server NATS JetStream KV cluster (bucket with 3 replicas, file
storage) with sync_interval always (fsync before ack, the promise memstore
makes) and with its default; every node and server is a separate process.
The same workloads run against each over NATS, side by side: W1-W3 with
every system up, each repetition measured on every system in turn (so a
machine whose speed drifts moves every system's figures alike, and a
ratio is the median of each round's), W4 and W5 on fresh clusters, again
in turn for W4:
  W1 durable puts of 64 B values, 1/16/64 writers waiting for each ack
  W2 reads of the latest value: memstore linearizable and stale, JetStream direct get
  W3 history of a path holding 64 values (JetStream: its KV History, and
     one batched direct get of the stream)
  W4 a 3-node cluster whose leader is SIGKILLed under 32 writers (memstore's
     leader node; JetStream sync=always's stream leader): longest gap
     between acknowledgements, acknowledged puts lost
  W5 a replica starting empty in a cluster holding --catchup versions
     (memstore: a new node; JetStream sync=always: a server that does not
     lead the stream restarted with its store removed)
and the physical limits in the same run: append + fdatasync of 64 B
records one and 64 per sync, NATS request-reply with 32 requesters.
If an etcd binary is on the PATH (Debian: apt install etcd-server), W1 and
W2 (linearizable and serializable gets) also run on a 3-server etcd cluster.
It prints one table (medians of --reps repetitions, min–max, the CPU time
the system's server processes used per operation on Linux, ratios against
JetStream sync=always, JetStream's default (memstore's W1), etcd and the
limits, and a legend of what each
row compares) and writes it as Markdown. A part that fails (limits,
W1-W3, W4, W5) is left out and the rest still runs; the last lines and the
Markdown name what failed, and the command exits 1. The work folder
(--dir, else a temporary one) must be on a disk: tmpfs, where fsync costs
nothing, is refused.`,
		Example: `  memstore bench                          # everything, about 10 minutes
  memstore bench --only W1,limits --reps 3 --duration 3s
  memstore bench --catchup 0 --out results.md`,
		Args: args(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if cfg.Reps < 1 || cfg.Duration <= 0 {
				return usageError{fmt.Errorf("--reps %d, --duration %v: both must be above 0", cfg.Reps, cfg.Duration)}
			}
			bin, err := os.Executable()
			if err != nil {
				return err
			}
			cfg.Bin, cfg.Progress = bin, os.Stderr
			if dir == "" {
				if dir, err = os.MkdirTemp("", "memstore-bench-"); err != nil {
					return err
				}
				if !keep {
					defer os.RemoveAll(dir)
				}
			}
			cfg.Dir = dir
			start := time.Now()
			rows, err := bench.Run(cmd.Context(), cfg)
			var failed bench.Failed
			errors.As(err, &failed)
			if len(rows) > 0 || len(failed) > 0 {
				fmt.Printf("\nmemstore bench, %s, %s of %v each, total %v\n\n", time.Now().Format(time.RFC3339),
					repetitions(cfg.Reps), cfg.Duration, time.Since(start).Round(time.Second))
				if terr := bench.Table(os.Stdout, rows); terr != nil {
					return terr
				}
				f, ferr := os.Create(out)
				if ferr != nil {
					return ferr
				}
				fmt.Fprintf(f, "# memstore bench\n\n%s, this machine, %s of %v each.\n\n", time.Now().Format(time.RFC3339), repetitions(cfg.Reps), cfg.Duration)
				terr := bench.Table(f, rows)
				if len(failed) > 0 {
					fmt.Fprintf(f, "\nFailed (a failed part's rows hold what it measured before it failed):\n\n")
					for _, e := range failed {
						fmt.Fprintf(f, "- %s\n", strings.ReplaceAll(e.Error(), "\n", " "))
					}
				}
				if cerr := f.Close(); terr == nil {
					terr = cerr
				}
				if terr != nil {
					return terr
				}
				fmt.Fprintf(os.Stderr, "wrote %s\n", out)
			}
			if cmd.Context().Err() != nil {
				return errors.Join(fmt.Errorf("bench interrupted: the table holds the %d rows measured before", len(rows)), err)
			}
			return err
		},
	}
	f := cmd.Flags()
	f.IntVar(&cfg.Reps, "reps", 3, "repetitions of each measurement (3 or more for a median with its spread)")
	f.DurationVar(&cfg.Duration, "duration", 3*time.Second, "length of one measurement")
	f.IntSliceVar(&cfg.Writers, "writers", []int{1, 16, 64}, "W1 concurrent writers")
	f.IntSliceVar(&cfg.Readers, "readers", []int{1, 16}, "W2 concurrent readers")
	f.IntVar(&cfg.CatchUp, "catchup", 1_000_000, "W5: versions the joining node catches up on (0 skips W5)")
	f.StringSliceVar(&cfg.Only, "only", nil, "run only these: W1, W2, W3, W4, W5, limits")
	f.StringVar(&out, "out", "bench-results.md", "Markdown file for the table")
	f.StringVar(&dir, "dir", "", "work folder for data and logs (default: a temporary one, removed after)")
	f.BoolVar(&keep, "keep", false, "keep the temporary work folder")
	return cmd
}

// repetitions says how many repetitions each figure is the median of,
// and that fewer than 3 make no measure.
func repetitions(n int) string {
	if n < 3 {
		return fmt.Sprintf("%d repetition(s) (fewer than 3: a quick look, not a median to compare)", n)
	}
	return fmt.Sprintf("%d repetitions", n)
}
