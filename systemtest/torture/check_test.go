package torture

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"sort"
	"time"

	"github.com/anishathalye/porcupine"

	"memstore/bus"
	"memstore/client"
)

// registerInput is a put (of value) or a get of one path.
type registerInput struct {
	put   bool
	path  string
	value string
}

// registerModel is one register per path: a put sets it, a get returns it
// ("" before the first put).
var registerModel = porcupine.Model{
	Partition: func(history []porcupine.Operation) [][]porcupine.Operation {
		byPath := map[string][]porcupine.Operation{}
		var order []string
		for _, o := range history {
			p := o.Input.(registerInput).path
			if byPath[p] == nil {
				order = append(order, p)
			}
			byPath[p] = append(byPath[p], o)
		}
		sort.Strings(order)
		out := make([][]porcupine.Operation, len(order))
		for i, p := range order {
			out[i] = byPath[p]
		}
		return out
	},
	Init: func() any { return "" },
	Step: func(state, input, output any) (bool, any) {
		in := input.(registerInput)
		if in.put {
			return true, in.value
		}
		return output.(string) == state.(string), state
	},
	DescribeOperation: func(input, output any) string {
		in := input.(registerInput)
		if in.put {
			return fmt.Sprintf("put(%s, %q)", in.path, in.value)
		}
		return fmt.Sprintf("get(%s) → %q", in.path, output)
	},
	DescribeState: func(state any) string { return fmt.Sprintf("%q", state) },
}

// porcupineOps turns the record into porcupine's history: acknowledged puts
// and answered gets as they happened, puts without an answer open to the
// end (they may take effect at any later time, or never), refused puts and
// failed gets left out.
func porcupineOps(ops []op) []porcupine.Operation {
	var out []porcupine.Operation
	for _, o := range ops {
		if o.outcome == opRefused || (!o.put && o.outcome != opOK) {
			continue
		}
		ret := o.ret
		if o.outcome == opUnknown {
			ret = math.MaxInt64
		}
		var output any = o.value
		if o.put {
			output = ""
		}
		out = append(out, porcupine.Operation{ClientId: o.client, Input: registerInput{put: o.put, path: o.path, value: o.value},
			Call: o.call, Output: output, Return: ret})
	}
	return out
}

// auditResult is what the history audit found.
type auditResult struct {
	acked, indeterminate, refusedPuts int
	lost, dup, foreign, misplaced     int
	orderViolations                   int
	problems                          []string
}

func (a *auditResult) problem(format string, args ...any) {
	if len(a.problems) < 20 {
		a.problems = append(a.problems, fmt.Sprintf(format, args...))
	}
}

// readAll reads every version of a path, paging to the end.
func readAll(ctx context.Context, cl *client.Client, path string) ([]bus.Version, error) {
	var out []bus.Version
	err := cl.Versions(ctx, bus.HistoryRequest{Path: path}, func(v bus.Version) error {
		out = append(out, v)
		return nil
	})
	if len(out) == 0 && bus.HasCode(err, bus.CodeNotFound) {
		return nil, nil
	}
	return out, err
}

// audit checks the record against the stored histories: every
// acknowledged put appears exactly once, at the seq it was acknowledged
// with; no value appears that no client tried to write, nor one the store
// refused; and a put acknowledged before another was sent has the lower seq.
func audit(ctx context.Context, cl *client.Client, paths []string, ops []op) (auditResult, error) {
	var a auditResult
	type stored struct {
		path  string
		seq   uint64
		count int
	}
	found := map[string]*stored{} // value → where it is
	for _, p := range paths {
		vs, err := readAll(ctx, cl, p)
		if err != nil {
			return a, fmt.Errorf("history of %s: %w", p, err)
		}
		for _, v := range vs {
			var s string
			if err := json.Unmarshal(v.Value, &s); err != nil {
				a.foreign++
				a.problem("%s seq %d holds %s, which no client wrote", p, v.Seq, v.Value)
				continue
			}
			if f := found[s]; f != nil {
				f.count++
				continue
			}
			found[s] = &stored{path: p, seq: v.Seq, count: 1}
		}
	}
	attempted := map[string]op{}
	var acked []op
	for _, o := range ops {
		if !o.put {
			continue
		}
		attempted[o.value] = o
		f := found[o.value]
		switch o.outcome {
		case opOK:
			a.acked++
			acked = append(acked, o)
			switch {
			case f == nil:
				a.lost++
				a.problem("lost: %v", o)
			case f.path != o.path || f.seq != o.seq:
				a.misplaced++
				a.problem("acknowledged at %s seq %d, stored at %s seq %d: %v", o.path, o.seq, f.path, f.seq, o)
			}
		case opUnknown:
			a.indeterminate++
		case opRefused:
			a.refusedPuts++
			if f != nil {
				a.lost++ // a broken promise all the same: "not written" was false
				a.problem("refused as not written, yet stored at seq %d: %v", f.seq, o)
			}
		}
	}
	for s, f := range found {
		if f.count > 1 {
			a.dup += f.count - 1
			a.problem("%q stored %d times", s, f.count)
		}
		if _, ok := attempted[s]; !ok {
			a.foreign++
			a.problem("%s seq %d holds %q, which no client wrote", f.path, f.seq, s)
		}
	}
	// Real-time order: walk puts by send time, keeping the highest seq of
	// those acknowledged before it.
	byRet := append([]op(nil), acked...)
	sort.Slice(byRet, func(i, j int) bool { return byRet[i].ret < byRet[j].ret })
	byCall := append([]op(nil), acked...)
	sort.Slice(byCall, func(i, j int) bool { return byCall[i].call < byCall[j].call })
	var maxSeq uint64
	var maxOp op
	k := 0
	for _, b := range byCall {
		for k < len(byRet) && byRet[k].ret < b.call {
			if byRet[k].seq > maxSeq {
				maxSeq, maxOp = byRet[k].seq, byRet[k]
			}
			k++
		}
		if maxSeq >= b.seq {
			a.orderViolations++
			a.problem("acknowledged %v before %v was sent, yet its seq is not lower", maxOp, b)
		}
	}
	return a, nil
}

// checkLinearizable runs porcupine; on failure it writes the visualization.
func checkLinearizable(ops []op, htmlPath string, timeout time.Duration) (string, error) {
	res, info := porcupine.CheckOperationsVerbose(registerModel, porcupineOps(ops), timeout)
	switch res {
	case porcupine.Ok:
		return "true", nil
	case porcupine.Unknown:
		return "unknown", nil
	}
	if err := porcupine.VisualizePath(registerModel, info, htmlPath); err != nil {
		return "false", fmt.Errorf("write visualization: %w", err)
	}
	return "false", nil
}
