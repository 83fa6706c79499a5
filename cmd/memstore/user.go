package main

import (
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"memstore/bus"
	"memstore/client"
	"memstore/query"
)

// userCommands are the user CLI: user_write_request and user_read_request.
func userCommands(g *globals) []*cobra.Command {
	return []*cobra.Command{putCommand(g), getCommand(g), historyCommand(g), lsCommand(g),
		treeCommand(g), watchCommand(g), statusCommand(g)}
}

// jsonValue takes a value as JSON; anything that is not JSON is stored as a
// string, except what starts like a JSON object, array or string: that is
// JSON mistyped (a missing brace or quote), refused as bad usage rather
// than stored as the string nobody meant.
func jsonValue(s string) (json.RawMessage, error) {
	if json.Valid([]byte(s)) {
		return json.RawMessage(s), nil
	}
	if t := strings.TrimSpace(s); t != "" && strings.ContainsRune(`{["`, rune(t[0])) {
		var v any
		err := json.Unmarshal([]byte(s), &v)
		return nil, usageError{fmt.Errorf("value %s starts like JSON but is not (%v); to store the text as a string, give it as a JSON string: %s", s, err, bus.Encode(s))}
	}
	return bus.Encode(s), nil
}

// optionalPath is the [PATH] argument: the root when absent.
func optionalPath(args []string) string {
	if len(args) == 1 {
		return args[0]
	}
	return ""
}

// args marks argument errors as bad usage.
func args(check cobra.PositionalArgs) cobra.PositionalArgs {
	return func(cmd *cobra.Command, a []string) error {
		if err := check(cmd, a); err != nil {
			return usageError{err}
		}
		return nil
	}
}

func printJSON(v any) error {
	enc := json.NewEncoder(os.Stdout)
	return enc.Encode(v)
}

// orPrint returns err, or prints v as JSON.
func orPrint(v any, err error) error {
	if err != nil {
		return err
	}
	return printJSON(v)
}

func withClient(g *globals, fn func(*client.Client) error) error {
	c, err := g.dial()
	if err != nil {
		return err
	}
	defer c.Close()
	return fn(c)
}

func putCommand(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "put PATH VALUE",
		Short: "Write a value (JSON; anything else is stored as a string); returns once committed",
		Long: `put writes VALUE to PATH and returns once the write is committed (on a
majority of the nodes' disks). VALUE is JSON: 21.5, true, "text",
{"run":true}, [1,2]. Anything that is not JSON is stored as a string
(put x hello stores "hello"), except a value that starts like a JSON
object, array or string ({, [ or ") but is not valid JSON: that is
refused as a typo (exit code 2), with the JSON string to give instead.`,
		Example: `  memstore put plant1/line3/temp 21.5
  memstore put plant1/line3/state '{"run":true}'
  memstore put -- plant1/line3/temp -4.5     # a value starting with - after --`,
		Args: args(cobra.ExactArgs(2)),
		RunE: func(cmd *cobra.Command, args []string) error {
			value, err := jsonValue(args[1])
			if err != nil {
				return err
			}
			return withClient(g, func(c *client.Client) error {
				rep, err := c.Put(cmd.Context(), args[0], value)
				if err != nil || g.json {
					return orPrint(rep, err)
				}
				fmt.Printf("seq=%d ts=%s\n", rep.Seq, rep.TS)
				return nil
			})
		},
	}
}

func getCommand(g *globals) *cobra.Command {
	var stale bool
	var minSeq uint64
	cmd := &cobra.Command{
		Use:   "get PATH",
		Short: "Read the latest version of a path (linearizable unless --stale)",
		Args:  args(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			req := bus.GetRequest{Path: args[0], Consistency: bus.Linearizable, MinSeq: minSeq}
			if stale {
				req.Consistency = bus.Stale
			}
			return withClient(g, func(c *client.Client) error {
				rep, err := c.Get(cmd.Context(), req)
				if err != nil || g.json {
					return orPrint(rep, err)
				}
				fmt.Printf("%s\t(seq %d, %s, by %s)\n", rep.Value, rep.Seq, rep.TS, rep.User)
				return nil
			})
		},
	}
	cmd.Flags().BoolVar(&stale, "stale", false, "read from any node's applied state (faster, may lag)")
	cmd.Flags().Uint64Var(&minSeq, "min-seq", 0, "wait until the answering node has applied this seq (read your writes)")
	return cmd
}

func historyCommand(g *globals) *cobra.Command {
	var req bus.HistoryRequest
	cmd := &cobra.Command{
		Use:   "history PATH",
		Short: "List a path's versions, oldest first",
		Args:  args(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			req.Path = args[0]
			if err := absoluteRange(&req.Since, &req.Until, time.Now()); err != nil {
				return err
			}
			return withClient(g, func(c *client.Client) error {
				rep, err := c.History(cmd.Context(), req)
				if err != nil || g.json {
					return orPrint(rep, err)
				}
				w := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
				fmt.Fprintln(w, "SEQ\tTS\tUSER\tVALUE")
				for _, v := range rep.Values {
					fmt.Fprintf(w, "%d\t%s\t%s\t%s\n", v.Seq, v.TS, v.User, v.Value)
				}
				if rep.More && len(rep.Values) > 0 {
					fmt.Fprintf(w, "… more: --after-seq %d\n", rep.Values[len(rep.Values)-1].Seq)
				}
				return w.Flush()
			})
		},
	}
	f := cmd.Flags()
	f.StringVar(&req.Since, "since", "", "oldest commit time: RFC 3339, or a duration ago (15m)")
	f.StringVar(&req.Until, "until", "", "newest commit time: RFC 3339, or a duration ago (5m)")
	f.Uint64Var(&req.AfterSeq, "after-seq", 0, "start after this seq (paging)")
	f.IntVar(&req.Limit, "limit", 0, "most versions in the page (0: the store's page size)")
	return cmd
}

func lsCommand(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "ls [PATH]",
		Short: "List the children of a folder (the root without PATH)",
		Args:  args(cobra.MaximumNArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			path := optionalPath(args)
			return withClient(g, func(c *client.Client) error {
				children, err := c.Ls(cmd.Context(), path)
				if err != nil || g.json {
					return orPrint(bus.LsReply{Result: bus.Result{OK: true}, Children: children}, err)
				}
				for _, ch := range children {
					fmt.Println(ch)
				}
				return err
			})
		},
	}
}

func treeCommand(g *globals) *cobra.Command {
	var limit int
	var after string
	cmd := &cobra.Command{
		Use:   "tree [PATH]",
		Short: "Show the latest value of every path under PATH",
		Args:  args(cobra.MaximumNArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			path := optionalPath(args)
			return withClient(g, func(c *client.Client) error {
				rep, err := c.Tree(cmd.Context(), bus.TreeRequest{Path: path, After: after, Limit: limit})
				if err != nil || g.json {
					return orPrint(rep, err)
				}
				w := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
				fmt.Fprintln(w, "PATH\tSEQ\tTS\tVALUE")
				for _, v := range rep.Values {
					fmt.Fprintf(w, "%s\t%d\t%s\t%s\n", v.Path, v.Seq, v.TS, v.Value)
				}
				if rep.More && len(rep.Values) > 0 {
					fmt.Fprintf(w, "… more: --after %s\n", rep.Values[len(rep.Values)-1].Path)
				}
				return w.Flush()
			})
		},
	}
	cmd.Flags().IntVar(&limit, "limit", 0, "most paths (0: the store's page size)")
	cmd.Flags().StringVar(&after, "after", "", "page on: only the paths after this one (the last path of the previous page)")
	return cmd
}

func watchCommand(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "watch PATTERN",
		Short: "Print every committed version under PATTERN (e.g. 'plant1/>') until interrupted",
		Args:  args(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			return withClient(g, func(c *client.Client) error {
				return c.Watch(cmd.Context(), args[0], func(ev bus.Event) {
					_ = printJSON(ev)
				})
			})
		},
	}
}

func statusCommand(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "status",
		Short: "Show the view (epoch, leader, members) and every node's state",
		Args:  args(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, args []string) error {
			return withClient(g, func(c *client.Client) error {
				rep, err := c.Status(cmd.Context())
				if err != nil || g.json {
					return orPrint(rep, err)
				}
				auth := "off: writers name themselves (--user)"
				if rep.Auth {
					auth = "on: writers are the users the NATS server authenticated"
				}
				fmt.Printf("epoch %d, leader %d, members %v; auth %s\n", rep.Epoch, rep.Leader, rep.Members, auth)
				w := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
				fmt.Fprintln(w, "NODE\tSTATE\tMEMBER\tLAST\tCOMMIT\tAPPLIED\tLAG")
				for _, n := range rep.Nodes {
					fmt.Fprintf(w, "%d\t%s\t%v\t%d\t%d\t%d\t%d\n", n.ID, n.State, n.Member, n.LastSeq, n.Commit, n.Applied, n.Lag)
				}
				return w.Flush()
			})
		},
	}
}

// absoluteRange turns --since and --until, each RFC 3339 or a duration
// before now (as query reads them), into the RFC 3339 times the store
// takes, and refuses a range that ends before it starts (it would find
// nothing, silently).
func absoluteRange(since, until *string, now time.Time) error {
	from, to, err := query.ParseRange(*since, *until, now)
	if err != nil {
		return usageError{err}
	}
	if !from.IsZero() {
		*since = from.UTC().Format(time.RFC3339Nano)
	}
	if !to.IsZero() {
		*until = to.UTC().Format(time.RFC3339Nano)
	}
	return nil
}
