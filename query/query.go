// Package query reads values back out of memstore for people and scripts:
// the latest value of a path or of every path under a folder (now or as of
// a time), history over a time range (RFC 3339 or relative, like 15m)
// paged through to the end, aggregates and downsampling computed in the
// store (ms.api.agg), following new versions exactly once across
// reconnects and leader changes, and charts (PNG) and sparklines; output as
// an aligned table, JSON lines or CSV.
package query

import (
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"memstore/bus"
	"memstore/client"
)

// Output formats.
const (
	Table = "table"
	JSONL = "jsonl"
	CSV   = "csv"
)

// ErrBadTime means a time was neither RFC 3339 nor a relative duration.
var ErrBadTime = errors.New("query: bad time")

// ParseTime reads an RFC 3339 time or a duration before now ("15m", "2h",
// "1h30m"); "" is the zero time (an open end).
func ParseTime(s string, now time.Time) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t, nil
	}
	if d, err := time.ParseDuration(s); err == nil && d >= 0 {
		return now.Add(-d), nil
	}
	return time.Time{}, fmt.Errorf("%w: %q is neither RFC 3339 (2026-01-02T15:04:05Z) nor a duration (15m)", ErrBadTime, s)
}

// ParseRange reads --since and --until as ParseTime does, and refuses a
// range that ends before it starts: it would find nothing, silently.
func ParseRange(since, until string, now time.Time) (from, to time.Time, err error) {
	if from, err = ParseTime(since, now); err != nil {
		return
	}
	if to, err = ParseTime(until, now); err != nil {
		return
	}
	if !from.IsZero() && !to.IsZero() && to.Before(from) {
		err = fmt.Errorf("%w: --until %s is before --since %s", ErrBadTime, until, since)
	}
	return
}

// Row is one printed line: a path's version.
type Row struct {
	Path string `json:"path"`
	bus.Version
}

// Latest returns the latest version of path if it holds values, else of
// every path under it (at most limit, 0 for all), paging through the
// store's pages. A non-zero at makes it an as-of read: each path's latest
// version committed by then.
func Latest(ctx context.Context, cl *client.Client, path string, at time.Time, limit int) ([]Row, error) {
	if path != "" && at.IsZero() {
		g, err := cl.Get(ctx, bus.GetRequest{Path: path})
		if err == nil {
			return []Row{{Path: path, Version: g.Version}}, nil
		}
		if !bus.HasCode(err, bus.CodeNotFound) {
			return nil, err
		}
	}
	req := bus.TreeRequest{Path: path, Limit: limit} // a page of at most what is wanted (0: the store's page)
	if !at.IsZero() {
		req.At = at.UTC().Format(time.RFC3339Nano)
	}
	return collect(limit, func(add func(Row) error) error {
		return cl.Subtree(ctx, req, func(pv bus.PathVersion) error { return add(Row{Path: pv.Path, Version: pv.Version}) })
	})
}

// collect gathers the rows a walk of the store's pages yields, at most
// limit (0: all); the walk stops as soon as it has them.
func collect(limit int, walk func(add func(Row) error) error) ([]Row, error) {
	var rows []Row
	err := walk(func(r Row) error {
		rows = append(rows, r)
		if len(rows) == limit {
			return errEnough
		}
		return nil
	})
	if err != nil && !errors.Is(err, errEnough) {
		return nil, err
	}
	return rows, nil
}

// errEnough stops a walk that has what it needs.
var errEnough = errors.New("query: enough rows")

// History returns a path's versions in [since, until], oldest first,
// paging through the store's pages, at most limit (0: all).
func History(ctx context.Context, cl *client.Client, path string, since, until time.Time, limit int) ([]Row, error) {
	req := bus.HistoryRequest{Path: path}
	if !since.IsZero() {
		req.Since = since.UTC().Format(time.RFC3339Nano)
	}
	if !until.IsZero() {
		req.Until = until.UTC().Format(time.RFC3339Nano)
	}
	req.Limit = limit // a page of at most what is wanted (0: the store's page)
	return collect(limit, func(add func(Row) error) error {
		return cl.Versions(ctx, req, func(v bus.Version) error { return add(Row{Path: path, Version: v}) })
	})
}

// Writer prints rows one by one in a format; a table is aligned when
// flushed.
type Writer struct {
	format string
	tw     *tabwriter.Writer
	enc    *json.Encoder
	cw     *csv.Writer
}

// NewWriter starts an output in a format (Table, JSONL or CSV) with its
// header.
func NewWriter(w io.Writer, format string) (*Writer, error) {
	out := &Writer{format: format}
	switch format {
	case Table:
		out.tw = tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		fmt.Fprintln(out.tw, "PATH\tSEQ\tTS\tEVENT_TS\tUSER\tVALUE")
	case JSONL:
		out.enc = json.NewEncoder(w)
	case CSV:
		out.cw = csv.NewWriter(w)
		_ = out.cw.Write([]string{"path", "seq", "ts", "event_ts", "user", "value"})
	default:
		return nil, fmt.Errorf("%w: %q: table, jsonl or csv", ErrFormat, format)
	}
	return out, nil
}

// ErrFormat means an output format is not one of Table, JSONL or CSV.
var ErrFormat = errors.New("query: unknown format")

// Write prints one row.
func (w *Writer) Write(r Row) error {
	switch w.format {
	case Table:
		ets := r.EventTS
		if ets == "" {
			ets = "-"
		}
		_, err := fmt.Fprintf(w.tw, "%s\t%d\t%s\t%s\t%s\t%s\n", r.Path, r.Seq, r.TS, ets, r.User, r.Value)
		return err
	case JSONL:
		return w.enc.Encode(r)
	}
	return w.cw.Write([]string{r.Path, strconv.FormatUint(r.Seq, 10), r.TS, r.EventTS, r.User, strings.TrimSpace(string(r.Value))})
}

// Flush writes out what is buffered.
func (w *Writer) Flush() error {
	switch w.format {
	case Table:
		return w.tw.Flush()
	case CSV:
		w.cw.Flush()
		return w.cw.Error()
	}
	return nil
}

// Print writes rows in a format.
func Print(w io.Writer, format string, rows []Row) error {
	out, err := NewWriter(w, format)
	if err != nil {
		return err
	}
	for _, r := range rows {
		if err := out.Write(r); err != nil {
			return err
		}
	}
	return out.Flush()
}
