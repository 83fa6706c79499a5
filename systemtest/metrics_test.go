package systemtest

import (
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"memstore/bus"
)

// metricSum adds up a metric family's counters, gauges or histogram
// counts over the series whose labels include want.
func metricSum(t *testing.T, name string, want map[string]string) float64 {
	t.Helper()
	fams, err := prometheus.DefaultGatherer.Gather()
	if err != nil {
		t.Fatal(err)
	}
	total := 0.0
	for _, f := range fams {
		if f.GetName() != name {
			continue
		}
	series:
		for _, m := range f.GetMetric() {
			labels := map[string]string{}
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			for k, v := range want {
				if labels[k] != v {
					continue series
				}
			}
			total += value(m)
		}
	}
	return total
}

func value(m *dto.Metric) float64 {
	switch {
	case m.Counter != nil:
		return m.Counter.GetValue()
	case m.Gauge != nil:
		return m.Gauge.GetValue()
	case m.Histogram != nil:
		return float64(m.Histogram.GetSampleCount())
	}
	return 0
}

// TestMetrics: commits, fsync batches, request latencies by op and code,
// the view and each node's lag are counted as the cluster works.
func TestMetrics(t *testing.T) {
	c := startCluster(t, 3)
	cx := ctx(t)
	leader := fmt.Sprint(c.leader())
	commits0 := metricSum(t, "memstore_commits_total", map[string]string{"node": leader})
	puts0 := metricSum(t, "memstore_request_seconds", map[string]string{"op": "put", "code": "ok"})
	bad0 := metricSum(t, "memstore_request_seconds", map[string]string{"op": "put", "code": "bad_path"})
	fsyncs0 := metricSum(t, "memstore_wal_fsync_seconds", map[string]string{"node": leader})
	var last bus.PutReply
	for i := 0; i < 20; i++ {
		var err error
		if last, err = c.cl.Put(cx, "m/k", json.RawMessage(fmt.Sprint(i))); err != nil {
			t.Fatal(err)
		}
	}
	_, _ = c.cl.Put(cx, "../bad", json.RawMessage(`1`))
	if got := metricSum(t, "memstore_commits_total", map[string]string{"node": leader}) - commits0; got < 20 {
		t.Errorf("leader counted %v commits for 20 puts", got)
	}
	if got := metricSum(t, "memstore_request_seconds", map[string]string{"op": "put", "code": "ok"}) - puts0; got != 20 {
		t.Errorf("%v ok puts timed, want 20", got)
	}
	if got := metricSum(t, "memstore_request_seconds", map[string]string{"op": "put", "code": "bad_path"}) - bad0; got != 1 {
		t.Errorf("%v bad_path puts timed, want 1", got)
	}
	if got := metricSum(t, "memstore_wal_fsync_seconds", map[string]string{"node": leader}) - fsyncs0; got == 0 {
		t.Error("no WAL fsync timed for 20 puts")
	}
	stale0 := metricSum(t, "memstore_stale_gets_total", nil)
	if _, err := c.cl.Get(cx, bus.GetRequest{Path: "m/k", Consistency: bus.Stale, MinSeq: last.Seq}); err != nil {
		t.Fatal(err)
	}
	if got := metricSum(t, "memstore_stale_gets_total", nil) - stale0; got != 1 {
		t.Errorf("%v stale gets counted, want 1", got)
	}
	// The registry is shared with the other tests of this package: gauges
	// are checked against what this cluster says, and for a change.
	st, err := c.cl.Status(cx)
	if err != nil {
		t.Fatal(err)
	}
	if got := metricSum(t, "memstore_view_epoch", nil); got != float64(st.Epoch) {
		t.Errorf("view epoch gauge %v, status says %d", got, st.Epoch)
	}
	follower := 1 + c.leader()%3
	c.stopNode(follower)
	c.waitFor("the stopped node counted down", 5*time.Second, func() error {
		up := metricSum(t, "memstore_node_up", map[string]string{"node": fmt.Sprint(follower)})
		if up != 0 {
			return fmt.Errorf("memstore_node_up{node=%d} = %v", follower, up)
		}
		if up := metricSum(t, "memstore_node_up", map[string]string{"node": leader}); up != 1 {
			return fmt.Errorf("memstore_node_up{node=%s} = %v", leader, up)
		}
		return nil
	})
}
