// Package bench measures memstore side by side with NATS JetStream KV on
// this machine, in one run: the same client workloads over NATS against a
// memstore cluster (3 and 5 nodes) and a 3-server JetStream KV cluster (a
// bucket with 3 replicas on file storage) with sync_interval always, the
// promise memstore makes, and with its default; every server and node a
// separate process; and, if an etcd binary is on the PATH, a 3-server etcd
// cluster. It measures the physical limits of the disk and of NATS in the
// same run and reports one table with ratios.
package bench

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"memstore/internal/proc"
)

// Config of a run.
type Config struct {
	Bin      string        // the memstore binary: it runs every node, middleware and NATS server
	Dir      string        // work folder: data and logs of every process
	Reps     int           // repetitions of each measurement (median, min–max). Default 3.
	Duration time.Duration // length of one measurement. Default 3 s.
	Writers  []int         // W1 concurrent writers. Default 1, 16, 64.
	Readers  []int         // W2 concurrent readers. Default 1, 16.
	CatchUp  int           // W5 versions a joining node catches up on (0 skips W5)
	Only     []string      // workloads to run (W1…W5, limits); empty: all
	Progress io.Writer     // a line per measurement
}

func (c *Config) defaults() {
	if c.Reps <= 0 {
		c.Reps = 3
	}
	if c.Duration <= 0 {
		c.Duration = 3 * time.Second
	}
	if len(c.Writers) == 0 {
		c.Writers = []int{1, 16, 64}
	}
	if len(c.Readers) == 0 {
		c.Readers = []int{1, 16}
	}
	if c.Progress == nil {
		c.Progress = io.Discard
	}
}

func (c Config) runs(w string) bool {
	if len(c.Only) == 0 {
		return true
	}
	for _, o := range c.Only {
		if o == w {
			return true
		}
	}
	return false
}

// Systems compared.
const (
	MS3       = "memstore 3 nodes"
	MS5       = "memstore 5 nodes"
	JSSync    = "JetStream KV sync=always"
	JSDefault = "JetStream KV default sync"
	Etcd      = "etcd 3 servers"
	Limit     = "physical limit"
)

// Row is one measurement, repeated: Values (in Unit) and, for request
// workloads, latency percentiles in ms and the CPU time the system's
// servers used per operation, in µs, one per repetition.
type Row struct {
	Workload string
	Params   string
	System   string
	Unit     string
	Values   []float64
	P50, P99 []float64
	CPU      []float64
}

// sample is one repetition of a request workload: the rate and latencies
// after the warm-up, and every operation done, warm-up included.
type sample struct {
	ops, p50, p99 float64
	done          int
}

// measure runs op from workers goroutines for a warm-up and then d, and
// returns the rate and latency percentiles of the operations started
// after the warm-up. The first error stops the measurement.
func measure(ctx context.Context, workers int, d time.Duration, op func(ctx context.Context, w, i int) error) (sample, error) {
	const warm = 300 * time.Millisecond
	start := time.Now()
	from, end := start.Add(warm), start.Add(warm+d)
	lat := make([][]time.Duration, workers)
	count := make([]int, workers) // operations done, warm-up included
	var mu sync.Mutex
	var firstErr error
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				t0 := time.Now()
				if !t0.Before(end) || ctx.Err() != nil {
					return
				}
				if err := op(ctx, w, i); err != nil {
					mu.Lock()
					if firstErr == nil {
						firstErr = err
					}
					mu.Unlock()
					return
				}
				count[w]++
				if t0.After(from) {
					lat[w] = append(lat[w], time.Since(t0))
				}
			}
		}()
	}
	wg.Wait()
	if firstErr == nil {
		firstErr = ctx.Err() // interrupted: a cut measurement is no figure
	}
	if firstErr != nil {
		return sample{}, firstErr
	}
	var all []time.Duration
	done := 0
	for _, l := range lat {
		all = append(all, l...)
	}
	for _, n := range count {
		done += n
	}
	if len(all) == 0 {
		return sample{}, fmt.Errorf("bench: no operation completed in %v", d)
	}
	sort.Slice(all, func(i, j int) bool { return all[i] < all[j] })
	ms := func(q float64) float64 { return float64(all[int(q*float64(len(all)-1))].Microseconds()) / 1000 }
	return sample{ops: float64(len(all)) / d.Seconds(), p50: ms(0.50), p99: ms(0.99), done: done}, nil
}

// runner carries a run's rows.
type runner struct {
	cfg  Config
	rows []Row
}

// cpuTime is the CPU time servers have used so far; false if it is not
// known (not on Linux) or there are none.
func cpuTime(servers []*proc.Proc) (time.Duration, bool) {
	var total time.Duration
	for _, p := range servers {
		d, ok := p.CPUTime()
		if !ok {
			return 0, false
		}
		total += d
	}
	return total, len(servers) > 0
}

// row is the index of the row of a request workload, added if new.
func (r *runner) row(workload, params, system string) int {
	if i := indexOf(r.rows, workload, system, params); i >= 0 {
		return i
	}
	r.rows = append(r.rows, Row{Workload: workload, Params: params, System: system, Unit: "ops/s"})
	return len(r.rows) - 1
}

// once measures repetition rep of row i, with the CPU time the servers
// used per operation where it is known: a figure that depends far less
// on what else the machine does than the rate, and says what each
// operation costs. It then waits for the servers to settle (below a
// tenth of a core, for at most 2 s), so that work they left behind
// (a checkpoint, a replica catching up) is not counted against the
// system measured next.
func (r *runner) once(i, rep int, servers []*proc.Proc, run func() (sample, error)) error {
	row := &r.rows[i]
	cpu0, known := cpuTime(servers)
	s, err := run()
	if err != nil {
		return fmt.Errorf("%s %s %s: %w", row.Workload, row.System, row.Params, err)
	}
	cpu := ""
	if cpu1, ok := cpuTime(servers); known && ok && s.done > 0 {
		us := float64((cpu1 - cpu0).Microseconds()) / float64(s.done)
		row.CPU = append(row.CPU, us)
		cpu = fmt.Sprintf("  servers' CPU %5.0f µs/op", us)
	}
	row.Values, row.P50, row.P99 = append(row.Values, s.ops), append(row.P50, s.p50), append(row.P99, s.p99)
	fmt.Fprintf(r.cfg.Progress, "%-6s %-26s %-28s rep %d/%d: %9.0f ops/s  p50 %6.2f ms  p99 %6.2f ms%s\n",
		row.Workload, row.System, row.Params, rep+1, r.cfg.Reps, s.ops, s.p50, s.p99, cpu)
	settle(servers, 2*time.Second)
	return nil
}

// settle waits until servers use less than a tenth of a core over 100
// ms, or for at most within; at once if their CPU time is not known.
func settle(servers []*proc.Proc, within time.Duration) {
	const tick = 100 * time.Millisecond
	for end := time.Now().Add(within); time.Now().Before(end); {
		cpu0, ok := cpuTime(servers)
		if !ok {
			return
		}
		time.Sleep(tick)
		if cpu1, ok := cpuTime(servers); !ok || cpu1-cpu0 < tick/10 {
			return
		}
	}
}

// add records a row of plain values.
func (r *runner) add(workload, params, system, unit string, values []float64) {
	r.rows = append(r.rows, Row{Workload: workload, Params: params, System: system, Unit: unit, Values: values})
	fmt.Fprintf(r.cfg.Progress, "%-6s %-26s %-28s %v %s\n", workload, system, params, values, unit)
}

// Run runs the benchmark and returns its rows.
func Run(ctx context.Context, cfg Config) ([]Row, error) {
	cfg.defaults()
	if err := os.MkdirAll(cfg.Dir, 0o700); err != nil {
		return nil, fmt.Errorf("bench: %w", err)
	}
	if inMemory(cfg.Dir) {
		return nil, fmt.Errorf("bench: %s is on a filesystem in memory (tmpfs), where fsync costs nothing: durable writes would not be measured; give --dir a folder on a disk", cfg.Dir)
	}
	r := &runner{cfg: cfg}
	err := r.steps(ctx, []step{
		{"limits", r.limits},
		{"W1-W3", r.sideBySide},
		{"W4", r.failover},
		{"W5", r.catchUp},
	})
	return r.rows, err
}

// Failed is the error of a run whose parts (limits, W1-W3, W4, W5) did
// not all finish: one error per part that failed. The rows hold what the
// others measured, and what a failed part measured before it failed.
type Failed []error

func (f Failed) Error() string {
	msgs := make([]string, len(f))
	for i, err := range f {
		msgs[i] = err.Error()
	}
	return strings.Join(msgs, "; ")
}

func (f Failed) Unwrap() []error { return f }

// step is one part of a run.
type step struct {
	name string
	run  func(context.Context) error
}

// steps runs steps in order. A step that fails is reported and the next
// ones still run (a baseline that stumbles in W4 costs W4, not W5): the
// error is a Failed naming each. An interrupt (ctx ends) stops the run,
// and the step it cut short is not counted as failed: the caller knows
// its context ended.
func (r *runner) steps(ctx context.Context, steps []step) error {
	var failed Failed
	for _, s := range steps {
		if ctx.Err() != nil {
			break
		}
		if err := s.run(ctx); err != nil && ctx.Err() == nil {
			fmt.Fprintf(r.cfg.Progress, "%-6s failed: %v\n", s.name, err)
			failed = append(failed, fmt.Errorf("%s failed: %w", s.name, err))
		}
	}
	if len(failed) == 0 {
		return nil
	}
	return failed
}

func (r *runner) dir(name string) string { return filepath.Join(r.cfg.Dir, name) }
