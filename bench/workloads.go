package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"memstore/bus"
	"memstore/client"
)

// value64 is the 64-byte value of every W1 put (a JSON string).
var value64 = json.RawMessage(`"` + fmt.Sprintf("%062d", 0) + `"`)

// limits measures the disk: append + fdatasync of 64-byte records, one per
// sync and 64 per sync.
func (r *runner) limits(ctx context.Context) error {
	if !r.cfg.runs("limits") {
		return nil
	}
	for _, batch := range []int{1, 64} {
		var vals []float64
		for i := 0; i < r.cfg.Reps; i++ {
			rate, err := rawAppend(ctx, r.dir("raw"), batch, r.cfg.Duration)
			if err != nil {
				return err
			}
			vals = append(vals, rate)
		}
		r.add("limit", fmt.Sprintf("append 64 B + fdatasync, %d per sync", batch), Limit, "records/s", vals)
	}
	return nil
}

// rawAppend appends batches of 64-byte records to a file, each batch
// followed by fdatasync, for d, and returns records per second.
func rawAppend(ctx context.Context, dir string, batch int, d time.Duration) (float64, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return 0, fmt.Errorf("bench: %w", err)
	}
	f, err := os.CreateTemp(dir, "raw-*.log")
	if err != nil {
		return 0, fmt.Errorf("bench: %w", err)
	}
	defer os.Remove(f.Name())
	defer f.Close()
	buf := make([]byte, 64*batch)
	n := 0
	start := time.Now()
	for time.Since(start) < d {
		if err := ctx.Err(); err != nil {
			return 0, err
		}
		if _, err := f.Write(buf); err != nil {
			return 0, fmt.Errorf("bench: %w", err)
		}
		if err := datasync(f); err != nil {
			return 0, fmt.Errorf("bench: %w", err)
		}
		n += batch
	}
	return float64(n) / time.Since(start).Seconds(), nil
}

// prefill writes r0…r(n-1) and 64 versions of h.
func prefill(ctx context.Context, put func(ctx context.Context, key string, v []byte) error, n int) error {
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	for i := 0; i < n; i++ {
		if err := put(ctx, "r"+strconv.Itoa(i), value64); err != nil {
			return fmt.Errorf("bench: prefill: %w", err)
		}
	}
	for i := 0; i < 64; i++ {
		if err := put(ctx, "h", []byte(strconv.Itoa(i))); err != nil {
			return fmt.Errorf("bench: prefill: %w", err)
		}
	}
	return nil
}

func maxOf(xs []int) int {
	m := 0
	for _, x := range xs {
		m = max(m, x)
	}
	return m
}

// natsRequestReply measures request-reply through a server: a responder
// that echoes, and 32 requesters.
func natsRequestReply(ctx context.Context, url string, d time.Duration) (sample, error) {
	srv, err := nats.Connect(url, nats.Name("bench-echo"))
	if err != nil {
		return sample{}, err
	}
	defer srv.Close()
	sub, err := srv.Subscribe("bench.echo", func(m *nats.Msg) { _ = m.Respond(m.Data) })
	if err != nil {
		return sample{}, err
	}
	defer sub.Unsubscribe()
	if err := srv.Flush(); err != nil {
		return sample{}, err
	}
	nc, err := nats.Connect(url, nats.Name("bench-requester"))
	if err != nil {
		return sample{}, err
	}
	defer nc.Close()
	return measure(ctx, 32, d, func(ctx context.Context, _, _ int) error {
		_, err := nc.RequestWithContext(ctx, "bench.echo", value64)
		return err
	})
}

// directHistory reads the versions of h with one batched direct get of
// the bucket's stream, JetStream's fastest history read, outside the KV
// API (whose History makes and deletes a consumer per call): a request
// {"next_by_subj","batch"} on $JS.API.DIRECT.GET.KV_bench is answered by
// the messages, then an end-of-batch status (204). Each reader waits on
// an inbox of its own; stop drops them.
func directHistory(nc *nats.Conn) (read func(ctx context.Context, w int) (int, error), stop func(), err error) {
	subs := make([]*nats.Subscription, historyReaders)
	stop = func() {
		for _, s := range subs {
			if s != nil {
				_ = s.Unsubscribe()
			}
		}
	}
	for w := range subs {
		if subs[w], err = nc.SubscribeSync(nc.NewInbox()); err != nil {
			stop()
			return nil, nil, err
		}
	}
	req := []byte(`{"next_by_subj":"$KV.bench.h","batch":64}`)
	read = func(ctx context.Context, w int) (int, error) {
		if err := nc.PublishRequest("$JS.API.DIRECT.GET.KV_bench", subs[w].Subject, req); err != nil {
			return 0, err
		}
		for n := 0; ; n++ {
			m, err := subs[w].NextMsgWithContext(ctx)
			if err != nil {
				return n, err
			}
			switch status := m.Header.Get("Status"); status { // nats.go puts a status line in these headers
			case "":
			case "204": // end of the batch
				return n, nil
			default:
				return n, fmt.Errorf("bench: direct get: status %s %s", status, m.Header.Get("Description"))
			}
		}
	}
	return read, stop, nil
}

// failover is W4: 32 writers put continuously to a 3-node cluster while
// the leader's process is SIGKILLed, on memstore and on JetStream
// sync=always (the server leading the bucket's stream) in turn; it reports
// the longest gap between acknowledgements and the acknowledged puts
// missing afterwards. Each repetition starts a fresh cluster.
func (r *runner) failover(ctx context.Context) error {
	if !r.cfg.runs("W4") {
		return nil
	}
	systems := []struct {
		name  string
		start func(dir string) (failoverTarget, func(), error)
	}{
		{MS3, func(dir string) (failoverTarget, func(), error) {
			c, err := startMemstore(ctx, r.cfg.Bin, dir, 3)
			if err != nil {
				return failoverTarget{}, nil, err
			}
			t, err := c.failoverTarget()
			return t, c.close, err
		}},
		{JSSync, func(dir string) (failoverTarget, func(), error) {
			js, err := startJetStream(ctx, r.cfg.Bin, dir, true)
			if err != nil {
				return failoverTarget{}, nil, err
			}
			t, stop, err := js.failoverTarget()
			if err != nil {
				js.close()
				return failoverTarget{}, nil, err
			}
			return t, func() { stop(); js.close() }, nil
		}},
	}
	gaps, lost := make([][]float64, len(systems)), make([][]float64, len(systems))
	for rep := 0; rep < r.cfg.Reps; rep++ { // each repetition on both systems, the first in turn, as W1–W3
		for j := range systems {
			i := (j + rep) % len(systems)
			sys := systems[i]
			t, stop, err := sys.start(r.dir(fmt.Sprintf("failover-%s-%d", strings.Fields(sys.name)[0], rep)))
			if err != nil {
				if stop != nil {
					stop()
				}
				return err
			}
			gap, missing, acked, err := failoverOnce(ctx, t, max(r.cfg.Duration, 4*time.Second))
			stop()
			if err != nil {
				return fmt.Errorf("W4 %s: %w", sys.name, err)
			}
			gaps[i], lost[i] = append(gaps[i], gap.Seconds()), append(lost[i], float64(missing))
			fmt.Fprintf(r.cfg.Progress, "W4     %-26s rep %d/%d: longest gap %v, %d of %d acknowledged puts lost\n", sys.name, rep+1, r.cfg.Reps, gap.Round(time.Millisecond), missing, acked)
		}
	}
	for i, sys := range systems {
		r.add("W4", failoverGap, sys.name, "s", gaps[i])
		r.add("W4", "acknowledged puts lost", sys.name, "puts", lost[i])
	}
	return nil
}

const failoverGap = "leader SIGKILLed under 32 writers: longest gap between acks"

// failoverTarget is a cluster W4 kills the leader of.
type failoverTarget struct {
	put    func(ctx context.Context, w, i int) error          // writer w's value number i (from 1)
	kill   func()                                             // SIGKILLs the leader's process
	stored func(ctx context.Context) (map[[2]int]bool, error) // every (w, i) stored afterwards
}

// failoverPause is how long a writer waits after a failed put, as a
// client would, instead of spinning on the machine electing a leader.
const failoverPause = 10 * time.Millisecond

// failoverOnce runs 32 writers, kills the leader after d/3, and lets the
// writers go on for the rest of d, and at least until a second after the
// first acknowledgement since the kill (at most 30 s: no acknowledgement
// by then fails the run). It returns the longest gap between
// acknowledgements, how many acknowledged puts are missing, and how many
// were acknowledged.
func failoverOnce(ctx context.Context, t failoverTarget, d time.Duration) (gap time.Duration, missing, acknowledged int, err error) {
	const writers, longest = 32, 30 * time.Second
	var mu sync.Mutex
	var acks []time.Time
	acked := map[[2]int]bool{}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for w := 0; w < writers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 1; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
				err := t.put(ctx, w, i)
				cancel()
				if err != nil { // unacknowledged: may or may not be stored
					time.Sleep(failoverPause)
					continue
				}
				mu.Lock()
				acks, acked[[2]int{w, i}] = append(acks, time.Now()), true // under the lock: in order
				mu.Unlock()
			}
		}()
	}
	halt := sync.OnceFunc(func() {
		close(stop)
		wg.Wait()
	})
	defer halt()
	select {
	case <-ctx.Done():
		return 0, 0, 0, ctx.Err()
	case <-time.After(d / 3):
	}
	t.kill()
	killed := time.Now()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return 0, 0, 0, ctx.Err()
		case <-tick.C:
		}
		mu.Lock()
		var first time.Time // the first acknowledgement after the kill
		if i := sort.Search(len(acks), func(i int) bool { return acks[i].After(killed) }); i < len(acks) {
			first = acks[i]
		}
		mu.Unlock()
		since := time.Since(killed)
		if !first.IsZero() && since >= d*2/3 && time.Since(first) >= time.Second {
			break
		}
		if since > longest {
			return 0, 0, 0, fmt.Errorf("bench: W4: no put was acknowledged in the %v after the leader was killed", longest)
		}
	}
	halt()
	for i := 1; i < len(acks); i++ {
		gap = max(gap, acks[i].Sub(acks[i-1]))
	}
	stored, err := t.stored(ctx)
	for k := range acked {
		if !stored[k] {
			missing++
		}
	}
	return gap, missing, len(acked), err
}

// failoverTarget puts writer w's values to path failover/w<w>, keyed (a
// put resent by the router is written once), and finds them in the
// paths' histories.
func (c *memstoreCluster) failoverTarget() (failoverTarget, error) {
	st, err := c.status()
	if err != nil {
		return failoverTarget{}, err
	}
	leader := int(st.Leader)
	return failoverTarget{
		put: func(ctx context.Context, w, i int) error {
			_, err := c.cl.Write(ctx, bus.PutRequest{Path: fmt.Sprintf("failover/w%d", w), Value: bus.Encode(fmt.Sprintf("%d-%d", w, i)),
				Source: "w" + strconv.Itoa(w), SourceSeq: uint64(i)})
			return err
		},
		kill: func() { c.nodes[leader].Kill() },
		stored: func(ctx context.Context) (map[[2]int]bool, error) {
			stored := map[[2]int]bool{}
			for w := 0; w < 32; w++ {
				if err := readHistory(ctx, c.cl, fmt.Sprintf("failover/w%d", w), func(v bus.Version) {
					var s string
					var k [2]int
					if json.Unmarshal(v.Value, &s) == nil {
						if _, err := fmt.Sscanf(s, "%d-%d", &k[0], &k[1]); err == nil {
							stored[k] = true
						}
					}
				}); err != nil {
					return nil, err
				}
			}
			return stored, nil
		},
	}, nil
}

// readHistory calls fn for every version of a path.
func readHistory(ctx context.Context, cl *client.Client, path string, fn func(bus.Version)) error {
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	err := cl.Versions(ctx, bus.HistoryRequest{Path: path}, func(v bus.Version) error {
		fn(v)
		return nil
	})
	if err != nil {
		return fmt.Errorf("bench: history of %s: %w", path, err)
	}
	return nil
}

// catchUp is W5, on memstore and then on JetStream sync=always.
func (r *runner) catchUp(ctx context.Context) error {
	if !r.cfg.runs("W5") || r.cfg.CatchUp <= 0 {
		return nil
	}
	if err := r.catchUpMemstore(ctx); err != nil {
		return err
	}
	return r.catchUpJetStream(ctx)
}

// catchUpMemstore: a 3-node cluster is loaded with CatchUp versions in
// batches of 1,000 over 10,000 paths, then a fresh node joins, Reps times;
// the time until it has applied them all, and the rate over the size of
// node 1's versions files (every replica holds the same).
func (r *runner) catchUpMemstore(ctx context.Context) error {
	c, err := startMemstore(ctx, r.cfg.Bin, r.dir("catchup"), 3)
	if err != nil {
		return err
	}
	defer c.close()
	const batch = 1000
	var last uint64
	start := time.Now()
	for k := 0; k*batch < r.cfg.CatchUp; k++ {
		vals := make([]bus.PathValue, batch)
		for j := range vals {
			i := k*batch + j
			vals[j] = bus.PathValue{Path: fmt.Sprintf("site%d/dev%d/temp", i%100, (i/100)%100), Value: json.RawMessage(`{"temp":21.5,"unit":"C"}`)}
		}
		var rep bus.PutReply
		err := retry(ctx, time.Minute, func() error { // keyed: a batch resent after a timeout is written once
			ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
			defer cancel()
			var err error
			rep, err = c.cl.Write(ctx, bus.PutRequest{Values: vals, Source: "bench-w5", SourceSeq: uint64(k + 1)})
			return err
		})
		if err != nil {
			return fmt.Errorf("bench: W5 load: %w", err)
		}
		last = rep.Seq
		if k%100 == 99 {
			fmt.Fprintf(r.cfg.Progress, "W5     loaded %d versions in %v\n", (k+1)*batch, time.Since(start).Round(time.Second))
		}
	}
	bytes, err := dirSize(filepath.Join(c.dir, "node1", "tree"))
	if err != nil {
		return err
	}
	fmt.Fprintf(r.cfg.Progress, "W5     memstore: %d versions, %.0f MB of versions files\n", r.cfg.CatchUp, float64(bytes)/1e6)
	var secs, rates, serving []float64
	for rep := 0; rep < r.cfg.Reps; rep++ {
		// A fresh node each time; the last one leaves first, so every join
		// is into the same 3-node cluster. Its folders stay until the end:
		// removing 30,000 files would slow the next join's creates (ext4
		// skips recently freed inodes).
		id := 4 + rep
		holds, serves, err := c.join(ctx, id, last)
		if err != nil {
			return err
		}
		fmt.Fprintf(r.cfg.Progress, "W5     %-26s rep %d/%d: node %d applied %d versions in %v, a member after %v\n", MS3, rep+1, r.cfg.Reps, id, r.cfg.CatchUp,
			holds.Round(time.Millisecond), serves.Round(time.Millisecond))
		secs, rates = append(secs, holds.Seconds()), append(rates, float64(bytes)/1e6/holds.Seconds())
		serving = append(serving, serves.Seconds())
		if err := c.leave(ctx, id); err != nil {
			return err
		}
	}
	r.add("W5", fmt.Sprintf(catchUpTime, r.cfg.CatchUp), MS3, "s", secs)
	r.add("W5", catchUpRate, MS3, "MB/s", rates)
	r.add("W5", fmt.Sprintf(catchUpServe, r.cfg.CatchUp), MS3, "s", serving)
	return nil
}

// W5's rows: the parameters name no sizes, so that memstore's and
// JetStream's rows pair up; the progress lines give them.
const (
	catchUpTime = "a replica starts empty in a cluster holding %d versions: time until it holds them"
	catchUpRate = "catch-up rate over the versions' bytes on disk"
	// catchUpServe is memstore's alone: its node serves reads once it is a
	// member, in a view change that follows its catch-up.
	catchUpServe = "a replica starts empty in a cluster holding %d versions: time until it is a member, serving stale gets"
)

// catchUpJetStream is W5's baseline: a JetStream sync=always cluster
// holds the same versions in a stream (R3, file storage, no limit per
// subject: a KV bucket keeps at most 64 versions of a key); a server that
// does not lead the stream is killed, loses its store and restarts, Reps
// times; the time until its replica holds them all, read off the
// server's own monitoring (/jsz), and the rate over the stream's bytes.
func (r *runner) catchUpJetStream(ctx context.Context) error {
	js, err := startJetStream(ctx, r.cfg.Bin, r.dir("catchup-jetstream"), true)
	if err != nil {
		return err
	}
	defer js.close()
	jsc, err := jetstream.New(js.nc)
	if err != nil {
		return err
	}
	if _, err := jsc.CreateStream(ctx, jetstream.StreamConfig{Name: "W5", Subjects: []string{"w5.>"}, Replicas: 3, Storage: jetstream.FileStorage}); err != nil {
		return fmt.Errorf("bench: W5 jetstream: %w", err)
	}
	start := time.Now()
	const batch = 10000
	for k := 0; k*batch < r.cfg.CatchUp; k++ {
		acks := make([]jetstream.PubAckFuture, 0, batch)
		for j := 0; j < batch; j++ {
			i := k*batch + j
			f, err := jsc.PublishAsync(fmt.Sprintf("w5.site%d.dev%d.temp", i%100, (i/100)%100), []byte(`{"temp":21.5,"unit":"C"}`))
			if err != nil {
				return fmt.Errorf("bench: W5 jetstream load: %w", err)
			}
			acks = append(acks, f)
		}
		for _, f := range acks {
			select {
			case <-f.Ok():
			case err := <-f.Err():
				return fmt.Errorf("bench: W5 jetstream load: %w", err)
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		if k%10 == 9 {
			fmt.Fprintf(r.cfg.Progress, "W5     JetStream: loaded %d versions in %v\n", (k+1)*batch, time.Since(start).Round(time.Second))
		}
	}
	stream, err := jsc.Stream(ctx, "W5")
	if err != nil {
		return fmt.Errorf("bench: W5 jetstream: %w", err)
	}
	info, err := stream.Info(ctx)
	if err != nil || info.Cluster == nil {
		return fmt.Errorf("bench: W5 jetstream: stream info: %v", err)
	}
	victim := 1
	if info.Cluster.Leader == "js1" {
		victim = 2
	}
	want, bytes := info.State.Msgs, info.State.Bytes
	var secs, rates []float64
	for rep := 0; rep < r.cfg.Reps; rep++ {
		js.servers[victim-1].Kill()
		<-js.servers[victim-1].Done()
		if err := os.RemoveAll(js.storeDir(victim)); err != nil {
			return fmt.Errorf("bench: %w", err)
		}
		t0 := time.Now()
		p, err := js.startServer(victim)
		if err != nil {
			return err
		}
		js.servers[victim-1] = p
		err = retry(ctx, 30*time.Minute, func() error {
			if err := running(p, fmt.Sprintf("server js%d", victim), js.serverLog(victim)); err != nil {
				return err
			}
			n, err := streamMsgs(ctx, js.monitors[victim-1], "W5")
			if err == nil && n < want {
				err = fmt.Errorf("js%d holds %d of %d", victim, n, want)
			}
			return err
		})
		if err != nil {
			return fmt.Errorf("bench: W5 jetstream: %w", err)
		}
		el := time.Since(t0)
		fmt.Fprintf(r.cfg.Progress, "W5     %-26s rep %d/%d: server js%d holds %d versions (%.0f MB) after %v\n", JSSync, rep+1, r.cfg.Reps, victim, want, float64(bytes)/1e6, el.Round(time.Millisecond))
		secs, rates = append(secs, el.Seconds()), append(rates, float64(bytes)/1e6/el.Seconds())
	}
	r.add("W5", fmt.Sprintf(catchUpTime, r.cfg.CatchUp), JSSync, "s", secs)
	r.add("W5", catchUpRate, JSSync, "MB/s", rates)
	return nil
}

// streamMsgs asks a NATS server's monitoring (/jsz) how many messages its
// own replica of a stream holds.
func streamMsgs(ctx context.Context, monitor, stream string) (uint64, error) {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+monitor+"/jsz?accounts=true&streams=true", nil)
	if err != nil {
		return 0, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	var jsz struct {
		Accounts []struct {
			Streams []struct {
				Name  string `json:"name"`
				State struct {
					Msgs uint64 `json:"messages"`
				} `json:"state"`
			} `json:"stream_detail"`
		} `json:"account_details"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&jsz); err != nil {
		return 0, fmt.Errorf("%s/jsz: %w", monitor, err)
	}
	for _, a := range jsz.Accounts {
		for _, s := range a.Streams {
			if s.Name == stream {
				return s.State.Msgs, nil
			}
		}
	}
	return 0, fmt.Errorf("%s holds no stream %s yet", monitor, stream)
}

func dirSize(dir string) (int64, error) {
	var total int64
	err := filepath.Walk(dir, func(_ string, info os.FileInfo, err error) error {
		if err == nil && !info.IsDir() {
			total += info.Size()
		}
		return err
	})
	return total, err
}
