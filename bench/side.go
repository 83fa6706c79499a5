package bench

import (
	"context"
	"fmt"
	"os/exec"
	"strconv"

	clientv3 "go.etcd.io/etcd/client/v3"

	"memstore/bus"
	"memstore/internal/proc"
)

// target is a running system that W1–W3 measure side by side with the
// others: every repetition of a measurement runs on each system in turn,
// so that a machine whose speed drifts over minutes (a shared VM) moves
// every system's figures alike, not the one measured in a slow minute.
type target struct {
	system  string
	servers []*proc.Proc // their CPU time is counted
	put     func(ctx context.Context, key string, v []byte) error
	gets    []getKind   // W2; none: W1 only
	history []historyOf // W3
	close   func()
}

// getKind is a W2 read: its kind (linearizable, stale, direct…) and the get.
type getKind struct {
	kind string
	get  func(ctx context.Context, key string) error
}

// historyOf is a W3 read of the history of h (how, if not "", says with
// what); read gets the reader's number and returns how many versions.
type historyOf struct {
	how  string
	read func(ctx context.Context, w int) (int, error)
}

// historyReaders is how many read W3's history at once.
const historyReaders = 16

// sideBySide starts every system W1–W3 run on, and runs them: W1 on each,
// W2 and W3 on those that read. The 3-node memstore cluster then carries
// the NATS request-reply limit.
func (r *runner) sideBySide(ctx context.Context) error {
	reads := r.cfg.runs("W2") || r.cfg.runs("W3")
	if !r.cfg.runs("W1") && !reads && !r.cfg.runs("limits") {
		return nil
	}
	var targets []*target
	defer func() {
		for _, t := range targets {
			t.close()
		}
	}()
	fmt.Fprintf(r.cfg.Progress, "starting %s\n", MS3)
	ms3, err := startMemstore(ctx, r.cfg.Bin, r.dir("memstore3"), 3)
	if err != nil {
		return err
	}
	targets = append(targets, memstoreTarget(ms3, MS3, reads))
	if r.cfg.runs("W1") {
		fmt.Fprintf(r.cfg.Progress, "starting %s\n", MS5)
		ms5, err := startMemstore(ctx, r.cfg.Bin, r.dir("memstore5"), 5)
		if err != nil {
			return err
		}
		targets = append(targets, memstoreTarget(ms5, MS5, false))
	}
	for _, syncAlways := range []bool{true, false} {
		system := JSSync
		if !syncAlways {
			system = JSDefault
		}
		if !r.cfg.runs("W1") && (!syncAlways || !reads) {
			continue
		}
		fmt.Fprintf(r.cfg.Progress, "starting %s\n", system)
		js, err := startJetStream(ctx, r.cfg.Bin, r.dir(fmt.Sprintf("jetstream-sync-%v", syncAlways)), syncAlways)
		if err != nil {
			return err
		}
		t, err := jetStreamTarget(js, system, syncAlways && reads)
		if err != nil {
			js.close()
			return err
		}
		targets = append(targets, t)
	}
	if r.cfg.runs("W1") || r.cfg.runs("W2") {
		t, err := r.etcdTarget(ctx)
		if err != nil {
			return err
		}
		if t != nil {
			targets = append(targets, t)
		}
	}
	if err := r.sideBySideWorkloads(ctx, targets); err != nil {
		return err
	}
	if !r.cfg.runs("limits") {
		return nil
	}
	row := r.row("limit", "NATS request-reply, 32 requesters", Limit)
	for rep := range r.cfg.Reps {
		if err := r.once(row, rep, []*proc.Proc{ms3.mw}, func() (sample, error) { // the NATS server that carries it; the nodes idle
			return natsRequestReply(ctx, ms3.url, r.cfg.Duration)
		}); err != nil {
			return err
		}
	}
	return nil
}

// sideBySideWorkloads runs W1, W2 and W3 on the targets.
func (r *runner) sideBySideWorkloads(ctx context.Context, targets []*target) error {
	if r.cfg.runs("W1") {
		for _, n := range r.cfg.Writers {
			if err := r.turns(ctx, targets, "W1", n, func(t *target) []op {
				return []op{{fmt.Sprintf("durable puts, 64 B, %d writers", n), func(ctx context.Context, w, _ int) error {
					return t.put(ctx, "w"+strconv.Itoa(w), value64)
				}}}
			}); err != nil {
				return err
			}
		}
	}
	for _, t := range targets {
		if len(t.gets) > 0 || len(t.history) > 0 {
			if err := prefill(ctx, t.put, max(16, maxOf(r.cfg.Readers))); err != nil {
				return fmt.Errorf("%s: %w", t.system, err)
			}
		}
	}
	if r.cfg.runs("W2") {
		for _, n := range r.cfg.Readers {
			if err := r.turns(ctx, targets, "W2", n, func(t *target) []op {
				var ops []op
				for _, g := range t.gets {
					ops = append(ops, op{fmt.Sprintf("%s get, %d readers", g.kind, n), func(ctx context.Context, w, _ int) error {
						return g.get(ctx, "r"+strconv.Itoa(w))
					}})
				}
				return ops
			}); err != nil {
				return err
			}
		}
	}
	if !r.cfg.runs("W3") {
		return nil
	}
	return r.turns(ctx, targets, "W3", historyReaders, func(t *target) []op {
		var ops []op
		for _, h := range t.history {
			ops = append(ops, op{fmt.Sprintf("history of 64 values, %d readers%s", historyReaders, h.how), func(ctx context.Context, w, _ int) error {
				n, err := h.read(ctx, w)
				if err == nil && n != 64 {
					err = fmt.Errorf("history holds %d values, want 64", n)
				}
				return err
			}})
		}
		return ops
	})
}

// op is one measurement on a target: its parameters, and what each of
// its workers does, again and again.
type op struct {
	params string
	run    func(ctx context.Context, w, i int) error
}

// turns measures the ops of every target with workers each, --reps
// times: each repetition goes through the targets in turn, starting one
// further along each time (so no system is always measured first).
func (r *runner) turns(ctx context.Context, targets []*target, workload string, workers int, ops func(t *target) []op) error {
	for rep := range r.cfg.Reps {
		for j := range targets {
			t := targets[(j+rep)%len(targets)]
			for _, o := range ops(t) {
				row := r.row(workload, o.params, t.system)
				if err := r.once(row, rep, t.servers, func() (sample, error) {
					return measure(ctx, workers, r.cfg.Duration, o.run)
				}); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

// memstoreTarget measures a memstore cluster: puts, and with reads its
// linearizable and stale gets and history.
func memstoreTarget(c *memstoreCluster, system string, reads bool) *target {
	cl := c.cl
	t := &target{system: system, servers: c.procs(), close: c.close,
		put: func(ctx context.Context, key string, v []byte) error {
			_, err := cl.Put(ctx, "bench/"+key, v)
			return err
		}}
	if !reads {
		return t
	}
	for _, kind := range []string{bus.Linearizable, bus.Stale} {
		t.gets = append(t.gets, getKind{kind, func(ctx context.Context, key string) error {
			_, err := cl.Get(ctx, bus.GetRequest{Path: "bench/" + key, Consistency: kind})
			return err
		}})
	}
	t.history = []historyOf{{"", func(ctx context.Context, _ int) (int, error) {
		h, err := cl.History(ctx, bus.HistoryRequest{Path: "bench/h"})
		return len(h.Values), err
	}}}
	return t
}

// jetStreamTarget measures a JetStream KV bucket: puts, and with reads
// its direct gets, its KV History and one batched direct get of the
// history.
func jetStreamTarget(js *jetStreamCluster, system string, reads bool) (*target, error) {
	kv := js.kv
	t := &target{system: system, servers: js.servers, close: js.close,
		put: func(ctx context.Context, key string, v []byte) error {
			_, err := kv.Put(ctx, key, v)
			return err
		}}
	if !reads {
		return t, nil
	}
	read, stop, err := directHistory(js.nc)
	if err != nil {
		return nil, err
	}
	t.close = func() { stop(); js.close() }
	t.gets = []getKind{{"direct", func(ctx context.Context, key string) error {
		_, err := kv.Get(ctx, key)
		return err
	}}}
	t.history = []historyOf{
		{", KV History", func(ctx context.Context, _ int) (int, error) {
			h, err := kv.History(ctx, "h")
			return len(h), err
		}},
		{", one batched direct get", read},
	}
	return t, nil
}

// etcdTarget starts a 3-server etcd cluster, if an etcd binary is on the
// PATH (Debian: apt install etcd-server), for W1 and W2 (nil, nil: not
// there, or it did not start). etcd fsyncs its log before it
// acknowledges a put, the promise memstore makes; its linearizable reads
// confirm leadership with a read index, as memstore's do, and its
// serializable reads are answered by any server, as memstore's stale ones.
func (r *runner) etcdTarget(ctx context.Context) (*target, error) {
	bin, err := exec.LookPath("etcd")
	if err != nil {
		fmt.Fprintf(r.cfg.Progress, "etcd is not on the PATH (Debian: apt install etcd-server): no etcd rows\n")
		return nil, nil
	}
	fmt.Fprintf(r.cfg.Progress, "starting %s (%s)\n", Etcd, bin)
	c, err := startEtcd(ctx, bin, r.dir("etcd"))
	if err != nil {
		if ctx.Err() != nil {
			return nil, err
		}
		fmt.Fprintf(r.cfg.Progress, "%v: no etcd rows\n", err) // a baseline that will not start stops no measurement of memstore's
		return nil, nil
	}
	t := &target{system: Etcd, servers: c.servers, close: c.close,
		put: func(ctx context.Context, key string, v []byte) error {
			_, err := c.cl.Put(ctx, key, string(v))
			return err
		}}
	if !r.cfg.runs("W2") {
		return t, nil
	}
	get := func(opts ...clientv3.OpOption) func(ctx context.Context, key string) error {
		return func(ctx context.Context, key string) error {
			rep, err := c.cl.Get(ctx, key, opts...)
			if err == nil && len(rep.Kvs) != 1 {
				err = fmt.Errorf("bench: etcd has no %s", key)
			}
			return err
		}
	}
	t.gets = []getKind{{"linearizable", get()}, {"serializable", get(clientv3.WithSerializable())}}
	return t, nil
}
