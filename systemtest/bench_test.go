package systemtest

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"sync"
	"testing"
	"time"

	"memstore/bus"
	"memstore/replica"
	"memstore/sensor"
)

// BenchmarkCluster measures a 5-node in-process cluster (fsync on) with 16
// concurrent users: acknowledged puts/s, linearizable gets/s, and stale
// gets/s (with min_seq of the first write, so a lagging node waits rather
// than answer not_found), with p50 and p99 latencies.
func BenchmarkCluster(b *testing.B) {
	for _, op := range []string{"put", "get-linearizable", "get-stale"} {
		b.Run(op, func(b *testing.B) {
			c := startCluster(b, 5)
			cx := ctx(b)
			first, err := c.cl.Put(cx, "bench/k0", json.RawMessage(`1`))
			if err != nil {
				b.Fatal(err)
			}
			const users = 16
			per := max(1, b.N/users)
			lat := make([][]time.Duration, users)
			var wg sync.WaitGroup
			b.ResetTimer()
			start := time.Now()
			for u := 0; u < users; u++ {
				wg.Add(1)
				go func(u int) {
					defer wg.Done()
					for i := 0; i < per; i++ {
						t0 := time.Now()
						var err error
						switch op {
						case "put":
							_, err = c.cl.Put(cx, fmt.Sprintf("bench/k%d", u), json.RawMessage(`{"v":12345678}`))
						case "get-linearizable":
							_, err = c.cl.Get(cx, bus.GetRequest{Path: "bench/k0"})
						default:
							_, err = c.cl.Get(cx, bus.GetRequest{Path: "bench/k0", Consistency: bus.Stale, MinSeq: first.Seq})
						}
						if err != nil {
							b.Error(err)
							return
						}
						lat[u] = append(lat[u], time.Since(t0))
					}
				}(u)
			}
			wg.Wait()
			el := time.Since(start)
			var all []time.Duration
			for _, l := range lat {
				all = append(all, l...)
			}
			sort.Slice(all, func(i, j int) bool { return all[i] < all[j] })
			b.ReportMetric(float64(len(all))/el.Seconds(), "ops/s")
			b.ReportMetric(float64(all[len(all)/2].Microseconds())/1000, "p50-ms")
			b.ReportMetric(float64(all[len(all)*99/100].Microseconds())/1000, "p99-ms")
		})
	}
}

// BenchmarkCatchUp measures a fresh node joining a 3-node cluster that
// holds 50,000 versions over 5,000 paths and has compacted its log: time
// until the new node has applied everything (snapshot, then the tail), as
// versions/s and MB/s of versions-file lines.
func BenchmarkCatchUp(b *testing.B) {
	const total, batch = 50_000, 1000
	for i := 0; i < b.N; i++ {
		c := startCluster(b, 3)
		cx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		value := json.RawMessage(`{"temp":21.5,"unit":"C","pad":"0123456789abcdef"}`)
		var last uint64
		for k := 0; k < total/batch; k++ {
			vals := make([]bus.PathValue, batch)
			for j := range vals {
				vals[j] = bus.PathValue{Path: fmt.Sprintf("site%d/dev%d/temp", (k*batch+j)%50, (k*batch+j)/50%100), Value: value}
			}
			rep, err := c.cl.PutBatch(cx, vals)
			if err != nil {
				b.Fatal(err)
			}
			last = rep.Seq
		}
		for id := range c.nodes { // compact: the newcomer must take a snapshot
			c.stopNode(id)
			c.startNodeWith(id, func(cfg *replica.Config) { cfg.KeepLogBytes = 1 })
		}
		c.waitFor("leader", 15*time.Second, func() error { _, err := c.cl.Put(cx, "x/y", value); return err })
		time.Sleep(300 * time.Millisecond)
		b.ResetTimer()
		start := time.Now()
		c.startNode(4)
		c.waitFor("catch-up", 120*time.Second, func() error {
			st, err := c.cl.Status(cx)
			if err != nil {
				return err
			}
			for _, n := range st.Nodes {
				if n.ID == 4 && n.Applied >= last {
					return nil
				}
			}
			return fmt.Errorf("not yet")
		})
		el := time.Since(start)
		b.StopTimer()
		line := len(`{"seq":123456,"ts":"2026-11-24T17:32:26.546729207Z","user":"tester","value":}`) + len(value) + 1
		b.ReportMetric(float64(total)/el.Seconds(), "versions/s")
		b.ReportMetric(float64(total*line)/el.Seconds()/1e6, "MB/s")
		c.stop()
	}
}

// BenchmarkIngest compares the two ways the sensor feeds a 3-node cluster:
// fire-and-forget on ms.in (one write per value) against acknowledged
// batches (one keyed write per round of 100 sensors). Both report values
// committed per second, from the first send until the last is committed.
func BenchmarkIngest(b *testing.B) {
	const sensors, rounds = 100, 50
	for _, mode := range []string{sensor.ModeFire, sensor.ModeAck} {
		b.Run(mode, func(b *testing.B) {
			var committed int
			var elapsed time.Duration
			for i := 0; i < b.N; i++ {
				c := startCluster(b, 3)
				cx := ctx(b)
				base, err := c.cl.Put(cx, "warm/up", json.RawMessage(`1`))
				if err != nil {
					b.Fatal(err)
				}
				start := time.Now()
				st, err := sensor.Run(cx, c.cl, sensor.Config{Prefix: "in", Sensors: sensors, Rate: 1000, Count: rounds, Seed: 1, Mode: mode}, nil)
				if err != nil {
					b.Fatal(err)
				}
				n := st.Acked
				if mode == sensor.ModeFire { // each value is one entry: wait for the commit to pass them all
					deadline := time.Now().Add(30 * time.Second)
					for {
						s, err := c.cl.Status(cx)
						var commit uint64
						for _, ns := range s.Nodes {
							if ns.ID == s.Leader {
								commit = ns.Commit
							}
						}
						n = int(commit - base.Seq)
						if err == nil && n >= st.Sent || time.Now().After(deadline) {
							break
						}
						time.Sleep(5 * time.Millisecond)
					}
				}
				elapsed += time.Since(start)
				committed += n
				c.stop()
			}
			b.ReportMetric(float64(committed)/elapsed.Seconds(), "values/s")
		})
	}
}
