package sensor

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"time"

	"memstore/bus"
	"memstore/client"
)

// Modes of feeding values.
const (
	// ModeFire publishes each value on ms.in.<tokens> without waiting: fast,
	// but values in flight when a node or the connection fails are lost.
	ModeFire = "fire"
	// ModeAck writes values in acknowledged batches keyed (source, sequence)
	// and resends a batch until it is acknowledged: nothing acknowledged is
	// lost and nothing is written twice.
	ModeAck = "ack"
)

// Config of a run.
type Config struct {
	Prefix   string        // path prefix, e.g. plant1
	Sensors  int           // number of simulated sensors
	Rate     float64       // readings per second per sensor
	Duration time.Duration // stop after this long (0: no limit)
	Count    int           // stop after this many readings per sensor (0: no limit; with no duration either, run until ctx ends)
	Seed     int64         // seed of every signal: the same seed gives the same values
	Mode     string        // ModeFire or ModeAck
	// Source names this sensor process in the (source, sequence) key of its
	// acknowledged writes: a resent batch is written once. Default
	// "sensor/<prefix>/<host>": the store keeps every source for good, so
	// not one per run. Two processes writing under one source at once take
	// each other's batches for resends (the store keeps a source's last
	// sequence only): a batch refused so counts as an error, not acked.
	Source string
	// Acked, if set, is called with each acknowledged batch and its reply
	// (a duplicate reply names the seq that first stored it).
	Acked func(batch []bus.PathValue, rep bus.PutReply)
}

// Stats counts a run.
type Stats struct {
	Sent, Acked, Errors, Dropouts int
	Elapsed                       time.Duration
	// Refused is the last error that refused values for good (a bad
	// path, a value too large, a source another process writes under):
	// they were not written, and are not sent again.
	Refused error
}

func (s Stats) String() string {
	rate := 0.0
	if s.Elapsed > 0 {
		rate = float64(s.Sent) / s.Elapsed.Seconds()
	}
	return fmt.Sprintf("sent=%d acked=%d errors=%d dropouts=%d rate=%.0f/s elapsed=%v",
		s.Sent, s.Acked, s.Errors, s.Dropouts, rate, s.Elapsed.Round(time.Millisecond))
}

// ErrConfig means a Config failed validation; nothing was sent.
var ErrConfig = errors.New("sensor: invalid config")

func (c Config) validate() error {
	switch {
	case c.Sensors < 1:
		return fmt.Errorf("%w: --sensors must be at least 1", ErrConfig)
	case c.Rate <= 0:
		return fmt.Errorf("%w: --rate must be above 0", ErrConfig)
	case c.Mode != ModeFire && c.Mode != ModeAck:
		return fmt.Errorf("%w: --mode %q: fire or ack", ErrConfig, c.Mode)
	case c.Duration < 0 || c.Count < 0:
		return fmt.Errorf("%w: --duration and --count cannot be negative", ErrConfig)
	}
	return nil
}

// Run feeds values until the duration or count is reached or ctx ends,
// calling progress about once a second, and returns the totals.
func Run(ctx context.Context, cl *client.Client, cfg Config, progress func(Stats)) (Stats, error) {
	if err := cfg.validate(); err != nil {
		return Stats{}, err
	}
	// The duration stops new readings; a batch in flight still completes
	// (only ctx, the caller's, cancels requests).
	stop := ctx
	if cfg.Duration > 0 {
		var cancel context.CancelFunc
		stop, cancel = context.WithTimeout(ctx, cfg.Duration)
		defer cancel()
	}
	signals := make([]*Signal, cfg.Sensors)
	paths := make([]string, cfg.Sensors)
	for i := range signals {
		signals[i] = NewSignal(Kind(i%int(numKinds)), cfg.Seed*1_000_003+int64(i))
		paths[i] = Path(cfg.Prefix, i)
	}
	if cfg.Source == "" {
		host, _ := os.Hostname()
		cfg.Source = "sensor/" + cfg.Prefix + "/" + host
	}
	w := &writer{cl: cl, source: cfg.Source, acked: cfg.Acked}
	var st Stats
	start := time.Now()
	tick := time.NewTicker(time.Duration(float64(time.Second) / cfg.Rate))
	defer tick.Stop()
	report := time.NewTicker(time.Second)
	defer report.Stop()
	for round := 0; cfg.Count == 0 || round < cfg.Count; round++ {
		now := time.Now()
		var batch []bus.PathValue
		for i, s := range signals {
			v, ok := s.Next(now)
			if !ok {
				st.Dropouts++
				continue
			}
			val := json.RawMessage(strconv.FormatFloat(v, 'f', -1, 64))
			if cfg.Mode == ModeFire {
				st.Sent++
				if err := cl.Ingest(paths[i], val, now); err != nil {
					st.Errors++
				}
				continue
			}
			batch = append(batch, bus.PathValue{Path: paths[i], Value: val, EventTS: now.UTC().Format(time.RFC3339Nano)})
		}
		if len(batch) > 0 {
			st.Sent += len(batch)
			st.Acked += w.put(ctx, batch, &st)
		}
		st.Elapsed = time.Since(start)
		select {
		case <-stop.Done():
			return finish(ctx, cl, st, start)
		case <-report.C:
			if progress != nil {
				progress(st)
			}
			<-tick.C
		case <-tick.C:
		}
	}
	return finish(ctx, cl, st, start)
}

// writer sends acknowledged batches keyed (source, sequence): the
// sequence is the batch's send time in nanoseconds, increasing across
// restarts, so a resent batch is never written twice. A batch the store
// calls a duplicate of another source_seq than its own was not written:
// another process writes under the same source.
type writer struct {
	cl     *client.Client
	source string
	seq    uint64
	acked  func([]bus.PathValue, bus.PutReply)
}

// put writes one batch (up to 1,000 values a request), resending it with
// the same key on unavailable or timeout until ctx ends; it returns how
// many were acknowledged.
func (w *writer) put(ctx context.Context, batch []bus.PathValue, st *Stats) int {
	acked := 0
	for len(batch) > 0 {
		n := min(len(batch), 1000)
		w.seq = max(w.seq+1, uint64(time.Now().UnixNano()))
		req := bus.PutRequest{Values: batch[:n], Source: w.source, SourceSeq: w.seq}
		for backoff := 50 * time.Millisecond; ; backoff = min(2*backoff, time.Second) {
			rep, err := w.cl.Write(ctx, req)
			if err == nil && rep.Duplicate && rep.SourceSeq != 0 && rep.SourceSeq != w.seq { // 0: a node too old to say
				err = bus.Errorf(bus.CodeBadRequest, "source %q, sequence %d was already written by another process: %d values not written; give each sensor process its own --source", w.source, w.seq, n)
			}
			if err == nil {
				acked += n
				if w.acked != nil {
					w.acked(batch[:n], rep)
				}
				break
			}
			st.Errors++
			retry := errors.Is(err, client.ErrTimeout) || bus.HasCode(err, bus.CodeUnavailable) || bus.HasCode(err, bus.CodeTimeout)
			if ctx.Err() != nil {
				break
			}
			if !retry {
				st.Refused = err
				break
			}
			select {
			case <-ctx.Done():
				return acked
			case <-time.After(backoff):
			}
		}
		batch = batch[n:]
	}
	return acked
}

func finish(ctx context.Context, cl *client.Client, st Stats, start time.Time) (Stats, error) {
	fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	err := cl.Flush(fctx)
	st.Elapsed = time.Since(start)
	return st, err
}

// LineWriter prints progress: rewriting one line on a terminal, a plain
// log line otherwise.
func LineWriter(w io.Writer, terminal bool) func(Stats) {
	return func(s Stats) {
		if terminal {
			fmt.Fprintf(w, "\r%s   ", s)
			return
		}
		fmt.Fprintln(w, s)
	}
}
