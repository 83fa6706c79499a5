package tree

import (
	"encoding/json"
	"errors"
	"math"
	"math/rand"
	"testing"
	"time"

	"memstore/replica/storage/vfs"
)

// bruteAgg computes an aggregate from every version, the slow obvious way.
func bruteAgg(vs []Version, q AggQuery) Agg {
	type item struct {
		v  Version
		at int64
	}
	var in []item
	for _, v := range vs {
		ts := v.TS
		if q.ByEvent && v.EventTS != "" {
			ts = v.EventTS
		}
		at, _ := time.Parse(time.RFC3339Nano, ts)
		if !q.Since.IsZero() && at.Before(q.Since) || !q.Until.IsZero() && at.After(q.Until) {
			continue
		}
		in = append(in, item{v, at.UnixNano()})
	}
	summarise := func(items []item) Stats {
		var s Stats
		for _, it := range items {
			n, ok := number(it.v.Value)
			line, _ := json.Marshal(it.v)
			s.add(it.v.Seq, it.at, line, n, ok)
		}
		if err := s.finish(); err != nil {
			panic(err)
		}
		return s
	}
	out := Agg{Stats: summarise(in)}
	if q.Every == 0 {
		return out
	}
	groups := map[int64][]item{}
	var starts []int64
	for _, it := range in {
		start := it.at - it.at%q.Every.Nanoseconds() // times here are after 1970
		if groups[start] == nil {
			starts = append(starts, start)
		}
		groups[start] = append(groups[start], it)
	}
	for i := range starts { // insertion sort: few buckets
		for j := i; j > 0 && starts[j] < starts[j-1]; j-- {
			starts[j], starts[j-1] = starts[j-1], starts[j]
		}
	}
	for _, s := range starts {
		out.Buckets = append(out.Buckets, Bucket{Start: time.Unix(0, s).UTC(), Stats: summarise(groups[s])})
	}
	return out
}

func sameStats(a, b Stats) bool {
	near := func(x, y float64) bool { return math.Abs(x-y) <= 1e-9*math.Max(1, math.Abs(x)) }
	return a.Count == b.Count && a.Numeric == b.Numeric && near(a.Min, b.Min) && near(a.Max, b.Max) &&
		near(a.Sum, b.Sum) && a.First.Seq == b.First.Seq && a.Last.Seq == b.Last.Seq
}

func allVersions(t *testing.T, tr *Tree, p string) []Version {
	t.Helper()
	var out []Version
	after := uint64(0)
	for {
		vs, more, err := tr.History(p, HistoryQuery{AfterSeq: after})
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, vs...)
		if !more {
			return out
		}
		after = vs[len(vs)-1].Seq
	}
}

// TestAggregateMatchesBruteForce compares Aggregate with a computation over
// every version, for random ranges and widths, by commit and by event time,
// with versions both in the file and in memory, numbers and non-numbers,
// and event times out of order.
func TestAggregateMatchesBruteForce(t *testing.T) {
	cfg := DefaultConfig()
	cfg.RecentVersions, cfg.MaxPage = 7, 50
	tr := openTree(t, vfs.OS, t.TempDir(), cfg)
	rng := rand.New(rand.NewSource(1))
	for seq := uint64(1); seq <= 300; seq++ {
		var v any = math.Round(rng.NormFloat64()*1000) / 100
		if rng.Intn(10) == 0 {
			v = "dropout"
		}
		b, _ := json.Marshal(v)
		p := Put{Path: "a/temp", Value: b}
		if rng.Intn(3) > 0 { // event time up to a minute before or after commit, out of order
			p.EventTS = epoch0.Add(time.Duration(seq)*time.Second + time.Duration(rng.Intn(120)-60)*time.Second).Format(time.RFC3339Nano)
		}
		apply(t, tr, seq, p)
	}
	all := allVersions(t, tr, "a/temp")
	if len(all) != 300 {
		t.Fatalf("%d versions", len(all))
	}
	for i := 0; i < 300; i++ {
		q := AggQuery{ByEvent: i%2 == 1}
		if rng.Intn(4) > 0 {
			q.Since = epoch0.Add(time.Duration(rng.Intn(360)-30) * time.Second)
		}
		if rng.Intn(4) > 0 {
			q.Until = epoch0.Add(time.Duration(rng.Intn(360)-30) * time.Second)
		}
		if rng.Intn(4) > 0 {
			q.Every = []time.Duration{time.Second, 7 * time.Second, time.Minute, time.Hour}[rng.Intn(4)]
		}
		got, err := tr.Aggregate("a/temp", q)
		if err != nil {
			t.Fatal(err)
		}
		want := bruteAgg(all, q)
		if !sameStats(got.Stats, want.Stats) || len(got.Buckets) != len(want.Buckets) {
			t.Fatalf("query %+v:\ngot  %+v (%d buckets)\nwant %+v (%d buckets)", q, got.Stats, len(got.Buckets), want.Stats, len(want.Buckets))
		}
		for k := range got.Buckets {
			if !got.Buckets[k].Start.Equal(want.Buckets[k].Start) || !sameStats(got.Buckets[k].Stats, want.Buckets[k].Stats) {
				t.Fatalf("query %+v bucket %d:\ngot  %+v\nwant %+v", q, k, got.Buckets[k], want.Buckets[k])
			}
		}
	}
}

func TestAggregateEdges(t *testing.T) {
	tr := openTree(t, vfs.OS, t.TempDir(), DefaultConfig())
	// Versions at 0 s, 59.999999999 s, 60 s and 120 s past the minute.
	offsets := []time.Duration{0, time.Minute - time.Nanosecond, time.Minute, 2 * time.Minute}
	for i, off := range offsets {
		ts := epoch0.Add(off).Format(time.RFC3339Nano)
		if _, err := tr.Apply(1, uint64(i+1), ts, "u", []Put{put("p", float64(i+1))}); err != nil {
			t.Fatal(err)
		}
	}
	t.Run("empty range", func(t *testing.T) {
		a, err := tr.Aggregate("p", AggQuery{Since: epoch0.Add(time.Hour), Every: time.Minute})
		if err != nil || a.Count != 0 || a.Numeric != 0 || len(a.Buckets) != 0 {
			t.Fatalf("%+v %v", a, err)
		}
		a, err = tr.Aggregate("p", AggQuery{Since: epoch0.Add(time.Minute), Until: epoch0})
		if err != nil || a.Count != 0 {
			t.Fatalf("since after until: %+v %v", a, err)
		}
	})
	t.Run("bucket boundaries", func(t *testing.T) {
		a, err := tr.Aggregate("p", AggQuery{Every: time.Minute})
		if err != nil {
			t.Fatal(err)
		}
		counts := []int{}
		for _, b := range a.Buckets {
			counts = append(counts, b.Count)
		}
		if len(a.Buckets) != 3 || counts[0] != 2 || counts[1] != 1 || counts[2] != 1 ||
			!a.Buckets[1].Start.Equal(epoch0.Add(time.Minute)) || a.Buckets[0].Max != 2 || a.Buckets[0].Min != 1 {
			t.Fatalf("buckets %+v", a.Buckets)
		}
	})
	t.Run("range ends included", func(t *testing.T) {
		a, err := tr.Aggregate("p", AggQuery{Since: epoch0.Add(time.Minute - time.Nanosecond), Until: epoch0.Add(time.Minute)})
		if err != nil || a.Count != 2 || a.Sum != 5 || a.First.Seq != 2 || a.Last.Seq != 3 {
			t.Fatalf("%+v %v", a, err)
		}
	})
	t.Run("too many buckets", func(t *testing.T) {
		if _, err := tr.Aggregate("p", AggQuery{Every: time.Nanosecond}); err != nil {
			t.Fatalf("4 buckets: %v", err)
		}
		for i := 5; i <= MaxBuckets+5; i++ {
			ts := epoch0.Add(time.Duration(i) * time.Hour).Format(time.RFC3339Nano)
			if _, err := tr.Apply(1, uint64(i), ts, "u", []Put{put("many", i)}); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := tr.Aggregate("many", AggQuery{Every: time.Minute}); !errors.Is(err, ErrTooLarge) {
			t.Fatalf("%d buckets: %v", MaxBuckets+1, err)
		}
	})
	t.Run("not found and bad path", func(t *testing.T) {
		if _, err := tr.Aggregate("nope", AggQuery{}); !errors.Is(err, ErrNotFound) {
			t.Fatal(err)
		}
		if _, err := tr.Aggregate("../p", AggQuery{}); !errors.Is(err, ErrBadPath) {
			t.Fatal(err)
		}
	})
}

func TestAggregateByEventTimeOutOfOrder(t *testing.T) {
	tr := openTree(t, vfs.OS, t.TempDir(), DefaultConfig())
	// Committed in seq order; the sensor's own times run backwards.
	for i, v := range []float64{10, 20, 30} {
		p := put("s", v)
		p.EventTS = epoch0.Add(time.Duration(2-i) * time.Minute).Format(time.RFC3339Nano)
		apply(t, tr, uint64(i+1), p)
	}
	a, err := tr.Aggregate("s", AggQuery{ByEvent: true, Every: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	if a.First.Seq != 3 || a.Last.Seq != 1 || len(a.Buckets) != 3 || a.Buckets[0].Sum != 30 || a.Buckets[2].Sum != 10 {
		t.Fatalf("by event time: %+v", a)
	}
	c, err := tr.Aggregate("s", AggQuery{})
	if err != nil || c.First.Seq != 1 || c.Last.Seq != 3 {
		t.Fatalf("by commit time: %+v %v", c, err)
	}
	if a, _ := tr.Aggregate("s", AggQuery{ByEvent: true, Until: epoch0}); a.Count != 1 || a.Sum != 30 {
		t.Fatalf("event range: %+v", a)
	}
}

// TestAggregateBesideWrites aggregates while versions are applied and old
// ones dropped by retention (run with -race).
func TestAggregateBesideWrites(t *testing.T) {
	cfg := DefaultConfig()
	cfg.RecentVersions = 3
	cfg.Retention = []Rule{{MaxVersions: 50}}
	tr := openTree(t, vfs.OS, t.TempDir(), cfg)
	apply(t, tr, 1, put("p", 1))
	done := make(chan error)
	go func() {
		for seq := uint64(2); seq <= 400; seq++ {
			if _, err := tr.Apply(1, seq, tsOf(seq), "u", []Put{put("p", 1)}); err != nil {
				done <- err
				return
			}
			if seq%25 == 0 {
				if err := tr.Compact(); err != nil {
					done <- err
					return
				}
			}
		}
		done <- nil
	}()
	for running := true; running; {
		select {
		case err := <-done:
			if err != nil {
				t.Fatal(err)
			}
			running = false
		default:
		}
		a, err := tr.Aggregate("p", AggQuery{})
		if err != nil || a.Count == 0 || a.Sum != float64(a.Count) || a.Last.Seq-a.First.Seq+1 != uint64(a.Count) {
			t.Fatalf("%+v %v", a.Stats, err)
		}
	}
}

func TestSubtreeAsOf(t *testing.T) {
	cfg := DefaultConfig()
	cfg.RecentVersions = 1 // older versions come from the files
	tr := openTree(t, vfs.OS, t.TempDir(), cfg)
	apply(t, tr, 1, put("f/a", "a1"))
	apply(t, tr, 2, put("f/b", "b2"))
	apply(t, tr, 3, put("f/a", "a3"), put("g", "g3"))
	apply(t, tr, 4, put("f/b", "b4"))
	cases := []struct {
		at   time.Time
		want map[string]string
	}{
		{epoch0, map[string]string{}},
		{epoch0.Add(1500 * time.Millisecond), map[string]string{"f/a": `"a1"`}},
		{epoch0.Add(2 * time.Second), map[string]string{"f/a": `"a1"`, "f/b": `"b2"`}},
		{epoch0.Add(3 * time.Second), map[string]string{"f/a": `"a3"`, "f/b": `"b2"`}},
		{epoch0.Add(time.Hour), map[string]string{"f/a": `"a3"`, "f/b": `"b4"`}},
	}
	for _, c := range cases {
		got, _, err := tr.Subtree("f", c.at, "", 0)
		if err != nil {
			t.Fatal(err)
		}
		m := map[string]string{}
		for _, pv := range got {
			m[pv.Path] = string(pv.Value)
		}
		if len(m) != len(c.want) {
			t.Fatalf("at %v: %v, want %v", c.at, m, c.want)
		}
		for p, v := range c.want {
			if m[p] != v {
				t.Fatalf("at %v: %v, want %v", c.at, m, c.want)
			}
		}
	}
}
