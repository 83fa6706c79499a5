package systemtest

import (
	"encoding/json"
	"fmt"
	"sort"
	"sync"
	"testing"
	"time"

	"memstore/bus"
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
