package main

import (
	"errors"
	"os"
	"time"

	"github.com/spf13/cobra"

	"memstore/client"
	"memstore/query"
)

func queryCommand(g *globals) *cobra.Command {
	var since, until, format string
	var limit int
	var history bool
	cmd := &cobra.Command{
		Use:   "query [PATH]",
		Short: "Read values out: latest of a path or a whole subtree, or history over a time range",
		Long: `query prints the latest value of PATH, or of every path under it when PATH is
a folder (the root without PATH). With --since, --until or --history it prints
PATH's versions over that range instead, paging through to the end.
Times are RFC 3339 (2026-01-02T15:04:05Z) or a duration before now (15m, 2h).`,
		Example: `  memstore query plant1
  memstore query plant1/line1/temp0 --since 15m --format csv`,
		Args: args(cobra.MaximumNArgs(1)),
		RunE: func(cmd *cobra.Command, a []string) error {
			path := optionalPath(a)
			now := time.Now()
			from, err := query.ParseTime(since, now)
			if err != nil {
				return usageError{err}
			}
			to, err := query.ParseTime(until, now)
			if err != nil {
				return usageError{err}
			}
			ranged := history || !from.IsZero() || !to.IsZero()
			if ranged && path == "" {
				return usageError{errors.New("history needs a PATH")}
			}
			return withClient(g, func(c *client.Client) error {
				var rows []query.Row
				if ranged {
					rows, err = query.History(cmd.Context(), c, path, from, to, limit)
				} else {
					rows, err = query.Latest(cmd.Context(), c, path, limit)
				}
				if err != nil {
					return err
				}
				return query.Print(os.Stdout, format, rows)
			})
		},
	}
	f := cmd.Flags()
	f.StringVar(&since, "since", "", "oldest commit time: RFC 3339 or a duration before now (15m)")
	f.StringVar(&until, "until", "", "newest commit time: RFC 3339 or a duration before now")
	f.BoolVar(&history, "history", false, "print PATH's history (all of it without --since/--until)")
	f.IntVar(&limit, "limit", 0, "most rows (0: all history, or the store's page of paths)")
	f.StringVar(&format, "format", query.Table, "table, jsonl or csv")
	return cmd
}
