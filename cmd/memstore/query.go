package main

import (
	"errors"
	"fmt"
	"math"
	"os"
	"time"

	"github.com/spf13/cobra"

	"memstore/client"
	"memstore/query"
)

func queryCommand(g *globals) *cobra.Command {
	var since, until, at, format, every, timeBase string
	var limit int
	var afterSeq uint64
	var history, agg, follow bool
	cmd := &cobra.Command{
		Use:   "query [PATH]",
		Short: "Read values out: latest, as-of, history, aggregates, or follow new ones",
		Long: `query prints the latest value of PATH, or of every path under it when PATH is
a folder (the root without PATH); with --at, the latest as of that time.
With --since, --until or --history it prints PATH's versions over that range,
paging through to the end; a table ends with a sparkline of the numbers.
With --agg or --every the store summarises the range instead (count, numbers,
min, max, mean, first, last), overall and per --every bucket, by commit time
or, with --time event, by the time the writer gave each value.
With --follow it prints new versions as they commit, each exactly once, also
across reconnects and leader changes; --after-seq resumes after a seq. A
path not written yet is followed all the same (a mistyped one waits
silently).
Times are RFC 3339 (2026-01-02T15:04:05Z) or a duration before now (15m, 2h).`,
		Example: `  memstore query plant1
  memstore query plant1 --at 1h
  memstore query plant1/line1/temp0 --since 15m --format csv
  memstore query plant1/line1/temp0 --since 1h --every 5m
  memstore query plant1 --follow --format jsonl`,
		Args: args(cobra.MaximumNArgs(1)),
		RunE: func(cmd *cobra.Command, a []string) error {
			path := optionalPath(a)
			now := time.Now()
			from, to, err := query.ParseRange(since, until, now)
			if err != nil {
				return usageError{err}
			}
			asOf, err := query.ParseTime(at, now)
			if err != nil {
				return usageError{err}
			}
			width, byEvent, err := aggFlags(every, timeBase)
			if err != nil {
				return usageError{err}
			}
			agg = agg || width > 0
			ranged := history || agg || !from.IsZero() || !to.IsZero()
			modes := 0
			for _, on := range []bool{ranged, follow, !asOf.IsZero()} {
				if on {
					modes++
				}
			}
			switch {
			case modes > 1:
				return usageError{errors.New("choose one of: a range (--since/--until/--history/--agg/--every), --at, --follow")}
			case ranged && path == "":
				return usageError{errors.New("history and aggregates need a PATH")}
			case afterSeq > 0 && !follow:
				return usageError{errors.New("--after-seq goes with --follow")}
			}
			out, err := query.NewWriter(os.Stdout, format)
			if err != nil {
				return usageError{err}
			}
			return withClient(g, func(c *client.Client) error {
				ctx := cmd.Context()
				switch {
				case follow:
					return query.Follow(ctx, c, path, query.FollowConfig{AfterSeq: afterSeq}, func(r query.Row) error {
						if err := out.Write(r); err != nil {
							return err
						}
						return out.Flush()
					})
				case agg:
					rep, err := query.Agg(ctx, c, query.AggQuery{Path: path, Since: from, Until: to, Every: width, ByEvent: byEvent})
					if err != nil {
						return err
					}
					return query.PrintAgg(os.Stdout, format, query.AggRows(path, rep))
				}
				var rows []query.Row
				if ranged {
					rows, err = query.History(ctx, c, path, from, to, limit)
				} else {
					rows, err = query.Latest(ctx, c, path, asOf, limit)
				}
				if err != nil {
					return err
				}
				for _, r := range rows {
					if err := out.Write(r); err != nil {
						return err
					}
				}
				if err := out.Flush(); err != nil {
					return err
				}
				if nums := query.Numbers(rows); ranged && format == query.Table && countNumbers(nums) > 1 {
					fmt.Println(query.Sparkline(nums))
				}
				return nil
			})
		},
	}
	f := cmd.Flags()
	f.StringVar(&since, "since", "", "oldest time: RFC 3339 or a duration before now (15m)")
	f.StringVar(&until, "until", "", "newest time: RFC 3339 or a duration before now")
	f.StringVar(&at, "at", "", "as-of read: the latest of each path committed by this time")
	f.BoolVar(&history, "history", false, "print PATH's history (all of it without --since/--until)")
	f.BoolVar(&agg, "agg", false, "summarise the range in the store: count, min, max, mean, first, last")
	f.StringVar(&every, "every", "", "summarise per bucket of this width (1m, 15s); implies --agg")
	f.StringVar(&timeBase, "time", "commit", "time of --agg/--every ranges and buckets: commit or event (the writer's own)")
	f.BoolVar(&follow, "follow", false, "keep printing new versions until interrupted")
	f.Uint64Var(&afterSeq, "after-seq", 0, "with --follow: resume after this seq (print every later version)")
	f.IntVar(&limit, "limit", 0, "most rows (0: all)")
	f.StringVar(&format, "format", query.Table, "table, jsonl or csv")
	cmd.AddCommand(plotCommand(g))
	return cmd
}

// aggFlags reads --every and --time.
func aggFlags(every, timeBase string) (time.Duration, bool, error) {
	var width time.Duration
	if every != "" {
		d, err := time.ParseDuration(every)
		if err != nil || d <= 0 {
			return 0, false, fmt.Errorf("--every %q: a positive duration like 1m or 15s", every)
		}
		width = d
	}
	switch timeBase {
	case "commit":
		return width, false, nil
	case "event":
		return width, true, nil
	}
	return 0, false, fmt.Errorf("--time %q: commit or event", timeBase)
}

func countNumbers(vs []float64) int {
	n := 0
	for _, v := range vs {
		if !math.IsNaN(v) {
			n++
		}
	}
	return n
}

func plotCommand(g *globals) *cobra.Command {
	var since, until, every, timeBase, outFile, title string
	cmd := &cobra.Command{
		Use:   "plot PATH...",
		Short: "Draw a line chart (PNG) of the numeric values of one or more paths",
		Long: `plot draws the numbers of each PATH over --since/--until as lines of one
chart and writes it as PNG. With --every it draws the mean of each bucket,
computed in the store, which suits long ranges.`,
		Example: `  memstore query plot plant1/line1/temp0 --since 1h -o temp.png
  memstore query plot plant1/line1/temp0 plant1/line1/hum1 --since 24h --every 10m -o day.png`,
		Args: args(cobra.MinimumNArgs(1)),
		RunE: func(cmd *cobra.Command, paths []string) error {
			now := time.Now()
			from, to, err := query.ParseRange(since, until, now)
			if err != nil {
				return usageError{err}
			}
			width, byEvent, err := aggFlags(every, timeBase)
			if err != nil {
				return usageError{err}
			}
			if outFile == "" {
				return usageError{errors.New("-o FILE.png is required")}
			}
			return withClient(g, func(c *client.Client) error {
				series, err := query.LoadSeries(cmd.Context(), c, paths, query.AggQuery{Since: from, Until: to, Every: width, ByEvent: byEvent})
				if err != nil {
					return err
				}
				f, err := os.Create(outFile)
				if err != nil {
					return err
				}
				if err := query.Plot(f, title, series); err != nil {
					f.Close()
					os.Remove(outFile)
					return err
				}
				if err := f.Close(); err != nil {
					return err
				}
				points := 0
				for _, s := range series {
					points += len(s.Values)
				}
				fmt.Fprintf(os.Stderr, "wrote %s: %d paths, %d points\n", outFile, len(series), points)
				return nil
			})
		},
	}
	f := cmd.Flags()
	f.StringVar(&since, "since", "1h", "oldest time: RFC 3339 or a duration before now")
	f.StringVar(&until, "until", "", "newest time: RFC 3339 or a duration before now")
	f.StringVar(&every, "every", "", "plot the mean per bucket of this width (1m), computed in the store")
	f.StringVar(&timeBase, "time", "commit", "time axis: commit or event (the writer's own)")
	f.StringVarP(&outFile, "output", "o", "", "PNG file to write")
	f.StringVar(&title, "title", "", "chart title")
	return cmd
}
