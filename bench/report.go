package bench

import (
	"fmt"
	"io"
	"slices"
	"strings"
)

// median of values (the middle one, or the mean of the two middle ones).
func median(v []float64) float64 {
	s := slices.Clone(v)
	slices.Sort(s)
	n := len(s)
	if n == 0 {
		return 0
	}
	if n%2 == 1 {
		return s[n/2]
	}
	return (s[n/2-1] + s[n/2]) / 2
}

func spread(v []float64, format string) string {
	if len(v) == 0 {
		return ""
	}
	m := median(v)
	if len(v) == 1 {
		return fmt.Sprintf(format, m)
	}
	return fmt.Sprintf(format+" ("+format+"–"+format+")", m, slices.Min(v), slices.Max(v))
}

// find returns the row of a workload, system and parameters.
func find(rows []Row, workload, system, params string) (Row, bool) {
	for _, r := range rows {
		if r.Workload == workload && r.System == system && r.Params == params {
			return r, true
		}
	}
	return Row{}, false
}

// baseline returns the JetStream sync=always row a row compares with.
func baseline(rows []Row, r Row) (Row, bool) {
	switch {
	case r.System == JSSync || r.System == Limit:
		return Row{}, false
	case r.Workload == "W1" || r.Workload == "W3":
		return find(rows, r.Workload, JSSync, r.Params)
	case r.Workload == "W2":
		_, readers, _ := strings.Cut(r.Params, " get, ")
		return find(rows, "W2", JSSync, "direct get, "+readers)
	}
	return Row{}, false
}

// etcdBaseline returns the etcd row a memstore row compares with: the
// same puts, linearizable gets, and serializable gets for stale ones.
func etcdBaseline(rows []Row, r Row) (Row, bool) {
	switch {
	case r.System != MS3 && r.System != MS5:
		return Row{}, false
	case r.Workload == "W1":
		return find(rows, "W1", Etcd, r.Params)
	case r.Workload == "W2":
		kind, readers, _ := strings.Cut(r.Params, " get, ")
		if kind == "stale" {
			kind = "serializable"
		}
		return find(rows, "W2", Etcd, kind+" get, "+readers)
	}
	return Row{}, false
}

// limitOf returns the physical limit a row compares with: group-committed
// fdatasync for writes, NATS request-reply for reads.
func limitOf(rows []Row, r Row) (Row, bool) {
	switch r.Workload {
	case "W1":
		return find(rows, "limit", Limit, "append 64 B + fdatasync, 64 per sync")
	case "W2", "W3":
		return find(rows, "limit", Limit, "NATS request-reply, 32 requesters")
	}
	return Row{}, false
}

// Table writes the rows as a Markdown table: medians with min–max of the
// repetitions, and ratios of medians against JetStream sync=always, etcd
// and the physical limit.
func Table(w io.Writer, rows []Row) error {
	var b strings.Builder
	b.WriteString("| workload | parameters | system | result: median (min–max) | p50 ms | p99 ms | servers' CPU µs/op | ÷ JetStream sync=always | ÷ etcd | ÷ physical limit |\n")
	b.WriteString("|---|---|---|---|---|---|---|---|---|---|\n")
	for _, r := range rows {
		ratio := func(o Row, ok bool) string {
			if !ok || median(o.Values) == 0 {
				return ""
			}
			return fmt.Sprintf("%.2f×", median(r.Values)/median(o.Values))
		}
		format := "%.0f"
		if r.Unit == "s" || r.Unit == "MB/s" {
			format = "%.2f"
		}
		fmt.Fprintf(&b, "| %s | %s | %s | %s %s | %s | %s | %s | %s | %s | %s |\n", r.Workload, r.Params, r.System,
			spread(r.Values, format), r.Unit, spread(r.P50, "%.2f"), spread(r.P99, "%.2f"), spread(r.CPU, "%.0f"),
			ratio(baseline(rows, r)), ratio(etcdBaseline(rows, r)), ratio(limitOf(rows, r)))
	}
	_, err := io.WriteString(w, b.String())
	return err
}
