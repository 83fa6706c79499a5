// Package query reads values back out of memstore for people and scripts:
// the latest value of a path or of every path under a folder, and history
// over a time range (RFC 3339 or relative, like 15m), paged through to the
// end, printed as an aligned table, JSON lines or CSV.
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

// Row is one printed line: a path's version.
type Row struct {
	Path string `json:"path"`
	bus.Version
}

// Latest returns the latest version of path if it holds values, else of
// every path under it (up to limit, 0 for the store's page).
func Latest(ctx context.Context, cl *client.Client, path string, limit int) ([]Row, error) {
	if path != "" {
		g, err := cl.Get(ctx, bus.GetRequest{Path: path})
		if err == nil {
			return []Row{{Path: path, Version: g.Version}}, nil
		}
		var be *bus.Error
		if !errors.As(err, &be) || be.Code != bus.CodeNotFound {
			return nil, err
		}
	}
	t, err := cl.Tree(ctx, path, limit)
	if err != nil {
		return nil, err
	}
	rows := make([]Row, len(t.Values))
	for i, pv := range t.Values {
		rows[i] = Row{Path: pv.Path, Version: pv.Version}
	}
	return rows, nil
}

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
	var rows []Row
	for {
		if limit > 0 {
			req.Limit = limit - len(rows)
		}
		h, err := cl.History(ctx, req)
		if err != nil {
			return nil, err
		}
		for _, v := range h.Values {
			rows = append(rows, Row{Path: path, Version: v})
		}
		if !h.More || len(h.Values) == 0 || (limit > 0 && len(rows) >= limit) {
			return rows, nil
		}
		req.AfterSeq = h.Values[len(h.Values)-1].Seq
	}
}

// Print writes rows in a format.
func Print(w io.Writer, format string, rows []Row) error {
	switch format {
	case Table:
		tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "PATH\tSEQ\tTS\tUSER\tVALUE")
		for _, r := range rows {
			fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%s\n", r.Path, r.Seq, r.TS, r.User, r.Value)
		}
		return tw.Flush()
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
		_ = cw.Write([]string{"path", "seq", "ts", "user", "value"})
		for _, r := range rows {
			_ = cw.Write([]string{r.Path, strconv.FormatUint(r.Seq, 10), r.TS, r.User, strings.TrimSpace(string(r.Value))})
		}
		cw.Flush()
		return cw.Error()
	}
	return fmt.Errorf("query: format %q: table, jsonl or csv", format)
}
