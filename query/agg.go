package query

import (
	"context"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"memstore/bus"
	"memstore/client"
)

// AggQuery asks for a summary of a path's versions, computed in the store.
type AggQuery struct {
	Path         string
	Since, Until time.Time     // zero: open ends
	Every        time.Duration // bucket width, 0 for the summary only
	ByEvent      bool          // select and bucket by event time
}

// Agg asks the store for an aggregate (ms.api.agg).
func Agg(ctx context.Context, cl *client.Client, q AggQuery) (bus.AggReply, error) {
	req := bus.AggRequest{Path: q.Path, Time: bus.CommitTime}
	if q.ByEvent {
		req.Time = bus.EventTime
	}
	if !q.Since.IsZero() {
		req.Since = q.Since.UTC().Format(time.RFC3339Nano)
	}
	if !q.Until.IsZero() {
		req.Until = q.Until.UTC().Format(time.RFC3339Nano)
	}
	if q.Every > 0 {
		req.Every = q.Every.String()
	}
	return cl.Agg(ctx, req)
}

// AggRow is one printed line of an aggregate: a bucket, or the total
// (Bucket "total").
type AggRow struct {
	Path   string `json:"path"`
	Bucket string `json:"bucket"`
	bus.AggStats
}

// AggRows lists the buckets of an aggregate, then its total.
func AggRows(path string, rep bus.AggReply) []AggRow {
	rows := make([]AggRow, 0, len(rep.Buckets)+1)
	for _, b := range rep.Buckets {
		rows = append(rows, AggRow{Path: path, Bucket: b.Start, AggStats: b.AggStats})
	}
	return append(rows, AggRow{Path: path, Bucket: "total", AggStats: rep.AggStats})
}

// PrintAgg writes an aggregate's rows in a format; a table ends with a
// sparkline of the bucket means.
func PrintAgg(w io.Writer, format string, rows []AggRow) error {
	num := func(f *float64) string {
		if f == nil {
			return ""
		}
		return strconv.FormatFloat(*f, 'g', 6, 64)
	}
	val := func(v *bus.Version) string {
		if v == nil {
			return ""
		}
		return string(v.Value)
	}
	cells := func(r AggRow) []string {
		return []string{r.Path, r.Bucket, strconv.Itoa(r.Count), strconv.Itoa(r.Numeric), num(r.Min), num(r.Max),
			num(r.Mean), val(r.First), val(r.Last)}
	}
	header := []string{"path", "bucket", "count", "numeric", "min", "max", "mean", "first", "last"}
	switch format {
	case Table:
		tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		for i, h := range header {
			fmt.Fprint(tw, strings.ToUpper(h), tab(i, len(header)))
		}
		var means []float64
		for _, r := range rows {
			for i, c := range cells(r) {
				fmt.Fprint(tw, c, tab(i, len(header)))
			}
			if r.Bucket != "total" {
				means = append(means, orNaN(r.Mean))
			}
		}
		if err := tw.Flush(); err != nil {
			return err
		}
		if len(means) > 1 {
			_, err := fmt.Fprintf(w, "mean per bucket  %s\n", Sparkline(means))
			return err
		}
		return nil
	case JSONL:
		enc := json.NewEncoder(w)
		for _, r := range rows {
			if err := enc.Encode(r); err != nil {
				return err
			}
		}
		return nil
	case CSV:
		cw := csv.NewWriter(w)
		_ = cw.Write(header)
		for _, r := range rows {
			_ = cw.Write(cells(r))
		}
		cw.Flush()
		return cw.Error()
	}
	return fmt.Errorf("%w: %q: table, jsonl or csv", ErrFormat, format)
}

func tab(i, n int) string {
	if i == n-1 {
		return "\n"
	}
	return "\t"
}

func orNaN(f *float64) float64 {
	if f == nil {
		return math.NaN()
	}
	return *f
}

// Sparkline draws values as one line of block characters, lowest to
// highest; a NaN (no number) is a space.
func Sparkline(values []float64) string {
	const blocks = "▁▂▃▄▅▆▇█"
	lo, hi := math.Inf(1), math.Inf(-1)
	for _, v := range values {
		if !math.IsNaN(v) {
			lo, hi = math.Min(lo, v), math.Max(hi, v)
		}
	}
	levels := []rune(blocks)
	out := make([]rune, len(values))
	for i, v := range values {
		switch {
		case math.IsNaN(v):
			out[i] = ' '
		case hi == lo:
			out[i] = levels[len(levels)/2]
		default:
			out[i] = levels[int((v-lo)/(hi-lo)*float64(len(levels)-1)+0.5)]
		}
	}
	return string(out)
}

// Numbers returns the values of rows that are JSON numbers, NaN for the
// others.
func Numbers(rows []Row) []float64 {
	out := make([]float64, len(rows))
	for i, r := range rows {
		if err := json.Unmarshal(r.Value, &out[i]); err != nil {
			out[i] = math.NaN()
		}
	}
	return out
}
