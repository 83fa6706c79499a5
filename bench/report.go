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

// indexOf is the index of the row of a workload, system and parameters,
// or -1.
func indexOf(rows []Row, workload, system, params string) int {
	return slices.IndexFunc(rows, func(r Row) bool {
		return r.Workload == workload && r.System == system && r.Params == params
	})
}

// find returns the row of a workload, system and parameters.
func find(rows []Row, workload, system, params string) (Row, bool) {
	if i := indexOf(rows, workload, system, params); i >= 0 {
		return rows[i], true
	}
	return Row{}, false
}

// baseline returns the JetStream sync=always row a row compares with:
// the same parameters, direct gets for gets, and JetStream's fastest
// history read for W3.
func baseline(rows []Row, r Row) (Row, bool) {
	switch {
	case r.System == JSSync || r.System == Limit:
		return Row{}, false
	case r.Workload == "W1" || r.Workload == "W4" || r.Workload == "W5":
		return find(rows, r.Workload, JSSync, r.Params)
	case r.Workload == "W3":
		var best Row
		for _, o := range rows {
			if o.Workload == "W3" && o.System == JSSync && median(o.Values) > median(best.Values) {
				best = o
			}
		}
		return best, best.System != ""
	case r.Workload == "W2":
		_, readers, _ := strings.Cut(r.Params, " get, ")
		return find(rows, "W2", JSSync, "direct get, "+readers)
	}
	return Row{}, false
}

// defaultBaseline returns the JetStream default sync row a memstore W1
// row compares with (issue 7 sets a W1 target against it too).
func defaultBaseline(rows []Row, r Row) (Row, bool) {
	if r.Workload != "W1" || r.System != MS3 && r.System != MS5 {
		return Row{}, false
	}
	return find(rows, "W1", JSDefault, r.Params)
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

// limitOf returns the physical limit a row compares with: fdatasync of
// one record per sync for one writer and of 64 for more (a bound for
// 16: they can share no more than 16), NATS request-reply for reads over
// NATS. JetStream's default sync does not fsync, and etcd's reads do not
// cross NATS: no limit applies to them.
func limitOf(rows []Row, r Row) (Row, bool) {
	switch {
	case r.System == JSDefault || r.System == Etcd && r.Workload != "W1":
		return Row{}, false
	case r.Workload == "W1" && strings.HasSuffix(r.Params, ", 1 writers"):
		return find(rows, "limit", Limit, "append 64 B + fdatasync, 1 per sync")
	case r.Workload == "W1":
		return find(rows, "limit", Limit, "append 64 B + fdatasync, 64 per sync")
	case r.Workload == "W2" || r.Workload == "W3":
		return find(rows, "limit", Limit, "NATS request-reply, 32 requesters")
	}
	return Row{}, false
}

// legend says what the table's rows compare, below it.
const legend = `
- Every system runs with its servers as processes on this machine, on the same disk; the client is the bench process. W1–W3 run with every system up, each repetition on every system in turn (W4 too, each repetition on fresh clusters), so drift in the machine's speed moves every system alike. JetStream's client connects to the server leading the bucket's stream (its best case); memstore's connects to the middleware, whose router forwards to the leader (stale gets skip the router: the NATS server hands them to a member node on ms.api.get.stale).
- W1 puts wait for their acknowledgement: memstore and JetStream sync=always fsync before it (every memstore replica; every JetStream replica's log), etcd too; JetStream's default sync does not. Each system's writers share one client: memstore's Go client sends the puts made while one of its requests is out as one batch request (one seq for them, committed together), JetStream's KV client and etcd's send a request per put.
- W2: memstore linearizable gets confirm the leader's leadership; JetStream direct gets are answered by any replica from its state, and may be stale, like memstore's stale gets, which any member node answers (etcd: serializable). memstore's readers share one client, which sends the gets of one kind made while one of its requests of that kind is out as one batch (stale gets to a member node, linearizable ones to the router); JetStream's and etcd's clients send a request per get.
- W3: "KV History" is the KV API's, which makes and deletes a consumer per call; "one batched direct get" is the stream API's fastest read of a history. memstore's ratio is against the faster of the two.
- W4: JetStream's stream leader is killed as memstore's leader node is; its client connects to the other two servers, as memstore's to the middleware, and puts a key per value (its bucket keeps 64 versions of a key). A gap ratio below 1× is memstore's shorter outage.
- W5: memstore's replica is a new node joining; JetStream's, a server that does not lead the stream, killed and restarted with its store removed, until its own replica (its monitoring, /jsz) holds every version, written to a stream (a KV bucket keeps at most 64 versions of a key). A time ratio below 1× is memstore's faster catch-up. memstore's node serves reads once it is a member, which a view change makes it after its catch-up: its own row gives that time too.
- ÷ JetStream default: memstore's W1 against JetStream's default sync, which does not fsync before its acknowledgement (memstore does, on every replica).
- Ratios against JetStream and etcd in W1–W4 are the median of each round's ratio (the systems measured in turn, seconds apart); W5 and the physical limits (not measured in rounds) divide medians.
- ÷ physical limit: W1 against fdatasync of one record per sync for one writer, 64 per sync for more (each put is fsynced on 3 or 5 replicas, all on this one disk); reads against NATS request-reply with 32 requesters.
`

// Table writes the rows as a Markdown table: medians with min–max of the
// repetitions, and ratios against JetStream sync=always, JetStream's
// default sync (memstore's W1), etcd and the physical limit.
func Table(w io.Writer, rows []Row) error {
	var b strings.Builder
	b.WriteString("| workload | parameters | system | result: median (min–max) | p50 ms | p99 ms | servers' CPU µs/op | ÷ JetStream sync=always | ÷ JetStream default | ÷ etcd | ÷ physical limit |\n")
	b.WriteString("|---|---|---|---|---|---|---|---|---|---|---|\n")
	for _, r := range rows {
		// W1–W4 run in rounds, every system in turn (sideBySide, failover):
		// against another system the ratio is the median of each round's,
		// of figures measured seconds apart. W5 and the limits (not
		// measured in the rounds) divide medians.
		ratio := func(o Row, ok, rounds bool) string {
			switch {
			case !ok || median(o.Values) == 0:
				return ""
			case rounds && len(o.Values) == len(r.Values) && !slices.Contains(o.Values, 0):
				each := make([]float64, len(r.Values))
				for i := range each {
					each[i] = r.Values[i] / o.Values[i]
				}
				return fmt.Sprintf("%.2f×", median(each))
			}
			return fmt.Sprintf("%.2f×", median(r.Values)/median(o.Values))
		}
		rounds := r.Workload != "W5"
		js, jsOK := baseline(rows, r)
		def, defOK := defaultBaseline(rows, r)
		etcd, etcdOK := etcdBaseline(rows, r)
		limit, limitOK := limitOf(rows, r)
		format := "%.0f"
		if r.Unit == "s" || r.Unit == "MB/s" {
			format = "%.2f"
		}
		fmt.Fprintf(&b, "| %s | %s | %s | %s %s | %s | %s | %s | %s | %s | %s | %s |\n", r.Workload, r.Params, r.System,
			spread(r.Values, format), r.Unit, spread(r.P50, "%.2f"), spread(r.P99, "%.2f"), spread(r.CPU, "%.0f"),
			ratio(js, jsOK, rounds), ratio(def, defOK, rounds), ratio(etcd, etcdOK, rounds), ratio(limit, limitOK, false))
	}
	b.WriteString(legend)
	if ranWithoutEtcd(rows) {
		b.WriteString(noEtcd)
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// noEtcd ends the legend of a table of W1 or W2 without etcd: the W2
// target is set against etcd, and an empty column says nothing of why.
const noEtcd = "- No etcd rows: etcd was not on the PATH or did not start (the run's progress lines say which; Debian: apt install etcd-server), so the ÷ etcd column is empty.\n"

// ranWithoutEtcd reports whether W1 or W2 rows are there but none of etcd.
func ranWithoutEtcd(rows []Row) bool {
	ran := false
	for _, r := range rows {
		if r.System == Etcd {
			return false
		}
		ran = ran || r.Workload == "W1" || r.Workload == "W2"
	}
	return ran
}
