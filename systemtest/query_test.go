package systemtest

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"image/png"
	"io"
	"math"
	"net"
	"strconv"
	"sync"
	"testing"
	"time"

	"memstore/bus"
	"memstore/client"
	"memstore/query"
	"memstore/sensor"
)

// acked is what the sensor had acknowledged, per path, in commit order.
type ackedValue struct {
	seq     uint64
	ts      time.Time
	eventTS time.Time
	v       float64
}

func runSensor(t *testing.T, c *cluster, cfg sensor.Config) map[string][]ackedValue {
	t.Helper()
	var mu sync.Mutex
	got := map[string][]ackedValue{}
	cfg.Acked = func(batch []bus.PathValue, rep bus.PutReply) {
		mu.Lock()
		defer mu.Unlock()
		ts, err := time.Parse(time.RFC3339Nano, rep.TS)
		if err != nil {
			t.Errorf("ack ts %q: %v", rep.TS, err)
		}
		for _, pv := range batch {
			var v float64
			if err := json.Unmarshal(pv.Value, &v); err != nil {
				t.Errorf("sensor value %s: %v", pv.Value, err)
			}
			et, _ := time.Parse(time.RFC3339Nano, pv.EventTS)
			got[pv.Path] = append(got[pv.Path], ackedValue{seq: rep.Seq, ts: ts, eventTS: et, v: v})
		}
	}
	st, err := sensor.Run(ctx(t), c.cl, cfg, nil)
	if err != nil || st.Acked == 0 {
		t.Fatalf("sensor: %s %v", st, err)
	}
	return got
}

type expected struct {
	count          int
	min, max, mean float64
	first, last    uint64
}

func summarise(vs []ackedValue) expected {
	e := expected{count: len(vs), min: math.Inf(1), max: math.Inf(-1), first: vs[0].seq, last: vs[len(vs)-1].seq}
	sum := 0.0
	for _, v := range vs {
		e.min, e.max, sum = math.Min(e.min, v.v), math.Max(e.max, v.v), sum+v.v
	}
	e.mean = sum / float64(len(vs))
	return e
}

func checkStats(t *testing.T, what string, got bus.AggStats, want expected) {
	t.Helper()
	if got.Count != want.count || got.Numeric != want.count || got.Min == nil ||
		*got.Min != want.min || *got.Max != want.max || math.Abs(*got.Mean-want.mean) > 1e-9*math.Max(1, math.Abs(want.mean)) ||
		got.First.Seq != want.first || got.Last.Seq != want.last {
		t.Fatalf("%s: store says count=%d numeric=%d min=%v max=%v mean=%v first=%d last=%d; acknowledged %+v", what,
			got.Count, got.Numeric, deref(got.Min), deref(got.Max), deref(got.Mean), got.First.Seq, got.Last.Seq, want)
	}
}

func deref(f *float64) any {
	if f == nil {
		return nil
	}
	return *f
}

// TestSensorToQueryEndToEnd feeds a cluster with the sensor and checks that
// what query reports (counts, aggregates overall and per bucket, by commit
// and by event time, latest, as-of, history) equals what is computed here
// from what the sensor had acknowledged; and that CSV, JSON lines and the
// PNG chart read back.
func TestSensorToQueryEndToEnd(t *testing.T) {
	c := startCluster(t, 3)
	cx := ctx(t)
	start := time.Now()
	acked := runSensor(t, c, sensor.Config{Prefix: "q", Sensors: 4, Rate: 100, Count: 60, Seed: 3, Mode: sensor.ModeAck})
	if len(acked) != 4 {
		t.Fatalf("acknowledged values of %d paths", len(acked))
	}
	p0 := sensor.Path("q", 0)
	for p, vs := range acked {
		a, err := query.Agg(cx, c.cl, query.AggQuery{Path: p})
		if err != nil {
			t.Fatal(err)
		}
		checkStats(t, p, a.AggStats, summarise(vs))
		// Per 50 ms bucket of commit time, and of event time.
		for _, byEvent := range []bool{false, true} {
			every := 50 * time.Millisecond
			a, err := query.Agg(cx, c.cl, query.AggQuery{Path: p, Every: every, ByEvent: byEvent})
			if err != nil {
				t.Fatal(err)
			}
			buckets := map[string][]ackedValue{}
			for _, v := range vs {
				at := v.ts
				if byEvent {
					at = v.eventTS
				}
				key := time.Unix(0, at.UnixNano()-at.UnixNano()%every.Nanoseconds()).UTC().Format(time.RFC3339Nano)
				buckets[key] = append(buckets[key], v)
			}
			if len(a.Buckets) != len(buckets) {
				t.Fatalf("%s by event=%v: %d buckets, want %d", p, byEvent, len(a.Buckets), len(buckets))
			}
			for _, b := range a.Buckets {
				checkStats(t, fmt.Sprintf("%s bucket %s by event=%v", p, b.Start, byEvent), b.AggStats, summarise(buckets[b.Start]))
			}
		}
	}

	// Latest and as-of reads of the subtree.
	rows, err := query.Latest(cx, c.cl, "q", time.Time{}, 0)
	if err != nil || len(rows) != 4 {
		t.Fatalf("latest of the subtree: %d rows, %v", len(rows), err)
	}
	vs0 := acked[p0]
	mid := vs0[len(vs0)/2]
	asOf, err := query.Latest(cx, c.cl, "q", mid.ts, 0)
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, r := range asOf {
		if r.Path == p0 {
			found = true
			if r.Seq != mid.seq {
				t.Fatalf("as of %v, %s is at seq %d, want %d", mid.ts, p0, r.Seq, mid.seq)
			}
		}
	}
	if !found {
		t.Fatalf("as of %v, %s is missing: %+v", mid.ts, p0, asOf)
	}
	if before, err := query.Latest(cx, c.cl, "q", start.Add(-time.Hour), 0); err != nil || len(before) != 0 {
		t.Fatalf("as of before any write: %v %v", before, err)
	}

	// History, printed as CSV and JSON lines, parses back to the same rows.
	hist, err := query.History(cx, c.cl, p0, time.Time{}, time.Time{}, 0)
	if err != nil || len(hist) != len(vs0) {
		t.Fatalf("history: %d rows (%v), %d acknowledged", len(hist), err, len(vs0))
	}
	var buf bytes.Buffer
	if err := query.Print(&buf, query.CSV, hist); err != nil {
		t.Fatal(err)
	}
	recs, err := csv.NewReader(&buf).ReadAll()
	if err != nil || len(recs) != len(hist)+1 {
		t.Fatalf("csv: %d records, %v", len(recs), err)
	}
	for i, r := range recs[1:] {
		seq, _ := strconv.ParseUint(r[1], 10, 64)
		v, _ := strconv.ParseFloat(r[5], 64)
		if r[0] != p0 || seq != vs0[i].seq || v != vs0[i].v || r[3] == "" {
			t.Fatalf("csv row %d: %v, acknowledged %+v", i, r, vs0[i])
		}
	}
	buf.Reset()
	if err := query.Print(&buf, query.JSONL, hist); err != nil {
		t.Fatal(err)
	}
	dec := json.NewDecoder(&buf)
	for i := 0; ; i++ {
		var r query.Row
		if err := dec.Decode(&r); err == io.EOF {
			if i != len(hist) {
				t.Fatalf("jsonl: %d rows", i)
			}
			break
		} else if err != nil {
			t.Fatal(err)
		}
		var v float64
		if json.Unmarshal(r.Value, &v) != nil || r.Seq != vs0[i].seq || v != vs0[i].v || r.EventTS == "" {
			t.Fatalf("jsonl row %d: %+v, acknowledged %+v", i, r, vs0[i])
		}
	}
	buf.Reset()
	a, _ := query.Agg(cx, c.cl, query.AggQuery{Path: p0, Every: 50 * time.Millisecond})
	if err := query.PrintAgg(&buf, query.CSV, query.AggRows(p0, a)); err != nil {
		t.Fatal(err)
	}
	if recs, err := csv.NewReader(&buf).ReadAll(); err != nil || len(recs) != len(a.Buckets)+2 || recs[len(recs)-1][2] != strconv.Itoa(len(vs0)) {
		t.Fatalf("aggregate csv: %v %v", recs, err)
	}

	// Bad requests are refused with their code.
	for _, bad := range []struct {
		req  bus.AggRequest
		code string
	}{
		{bus.AggRequest{Path: p0, Every: "-1m"}, bus.CodeBadRequest},
		{bus.AggRequest{Path: p0, Every: "soon"}, bus.CodeBadRequest},
		{bus.AggRequest{Path: p0, Time: "wall"}, bus.CodeBadRequest},
		{bus.AggRequest{Path: p0, Since: "yesterday"}, bus.CodeBadRequest},
		{bus.AggRequest{Path: "q/none"}, bus.CodeNotFound},
		{bus.AggRequest{Path: "../q"}, bus.CodeBadPath},
	} {
		if _, err := c.cl.Agg(cx, bad.req); code(err) != bad.code {
			t.Fatalf("agg %+v: %v, want %s", bad.req, err, bad.code)
		}
	}
	if _, err := c.cl.Tree(cx, bus.TreeRequest{Path: "q", At: "noon"}); code(err) != bus.CodeBadRequest {
		t.Fatalf("tree at noon: %v", err)
	}
	if _, err := c.cl.Write(cx, bus.PutRequest{Path: "q/e", Value: json.RawMessage(`1`), EventTS: "noon"}); code(err) != bus.CodeBadRequest {
		t.Fatalf("put with event_ts noon: %v", err)
	}
	if _, err := c.cl.PutBatch(cx, []bus.PathValue{{Path: "q/e", Value: json.RawMessage(`1`)}, {Path: "q/e", Value: json.RawMessage(`2`)}}); code(err) != bus.CodeBadRequest {
		t.Fatalf("batch naming a path twice: %v", err)
	}
	// ms.in carries an event time in a header.
	at := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	if err := c.cl.Ingest("q/e", []byte("7"), at); err != nil {
		t.Fatal(err)
	}
	c.waitFor("the ingested value", 5*time.Second, func() error {
		g, err := c.cl.Get(cx, bus.GetRequest{Path: "q/e"})
		if err != nil || g.EventTS != at.Format(time.RFC3339Nano) || g.User != "tester" {
			return fmt.Errorf("%+v %v", g, err)
		}
		return nil
	})

	// The chart decodes and is not blank: it holds line colour, not only
	// white and greys.
	series, err := query.LoadSeries(cx, c.cl, []string{p0, sensor.Path("q", 1)}, query.AggQuery{})
	if err != nil || len(series) != 2 || len(series[0].Values) != len(vs0) {
		t.Fatalf("series: %+v %v", series, err)
	}
	buf.Reset()
	if err := query.Plot(&buf, "test", series); err != nil {
		t.Fatal(err)
	}
	img, err := png.Decode(&buf)
	if err != nil {
		t.Fatal(err)
	}
	coloured := 0
	b := img.Bounds()
	for y := b.Min.Y; y < b.Max.Y; y++ {
		for x := b.Min.X; x < b.Max.X; x++ {
			r, g, bl, _ := img.At(x, y).RGBA()
			if max(r, g, bl)-min(r, g, bl) > 0x4000 {
				coloured++
			}
		}
	}
	if coloured < 200 {
		t.Fatalf("chart of %dx%d has %d coloured pixels", b.Dx(), b.Dy(), coloured)
	}
}

// proxy is a loopback TCP proxy to the NATS server that a test can cut.
type proxy struct {
	ln       net.Listener
	upstream string
	mu       sync.Mutex
	conns    []net.Conn
	down     bool
	wg       sync.WaitGroup
}

func startProxy(t *testing.T, upstream string) *proxy {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &proxy{ln: ln, upstream: upstream}
	p.wg.Add(1)
	go p.accept()
	t.Cleanup(func() {
		ln.Close()
		p.cut(true)
		p.wg.Wait()
	})
	return p
}

func (p *proxy) accept() {
	defer p.wg.Done()
	for {
		in, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.mu.Lock()
		if p.down {
			p.mu.Unlock()
			in.Close()
			continue
		}
		out, err := net.Dial("tcp", p.upstream)
		if err != nil {
			p.mu.Unlock()
			in.Close()
			continue
		}
		p.conns = append(p.conns, in, out)
		p.wg.Add(2)
		go p.pipe(in, out)
		go p.pipe(out, in)
		p.mu.Unlock()
	}
}

func (p *proxy) pipe(dst, src net.Conn) {
	defer p.wg.Done()
	_, _ = io.Copy(dst, src)
	dst.Close()
	src.Close()
}

// cut closes every connection and refuses new ones while down.
func (p *proxy) cut(down bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.down = down
	for _, c := range p.conns {
		c.Close()
	}
	p.conns = nil
}

// TestFollowNeverMissesOrRepeats follows a subtree through a connection
// that is cut for a while, and across a leader that is stopped, while
// writers run: every acknowledged version is printed exactly once, in seq
// order per path.
func TestFollowNeverMissesOrRepeats(t *testing.T) {
	c := startCluster(t, 5)
	cx := ctx(t)
	if _, err := c.cl.Put(cx, "f/before", json.RawMessage(`0`)); err != nil {
		t.Fatal(err)
	}
	px := startProxy(t, c.srv.ClientURL()[len("nats://"):])
	fcl, err := client.Dial("nats://"+px.ln.Addr().String(), client.Options{Timeout: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer fcl.Close()
	var mu sync.Mutex
	printed := map[string][]uint64{}
	fctx, stopFollow := context.WithCancel(context.Background())
	followDone := make(chan error, 1)
	go func() {
		followDone <- query.Follow(fctx, fcl, "f", query.FollowConfig{Resync: 300 * time.Millisecond}, func(r query.Row) error {
			mu.Lock()
			defer mu.Unlock()
			printed[r.Path] = append(printed[r.Path], r.Seq)
			return nil
		})
	}()
	defer func() {
		stopFollow()
		if err := <-followDone; err != nil {
			t.Errorf("follow: %v", err)
		}
	}()

	var wmu sync.Mutex
	written := map[string][]uint64{}
	var wg sync.WaitGroup
	for w := 0; w < 3; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 60; i++ {
				p := fmt.Sprintf("f/w%d/p%d", w, i%4)
				rep, err := c.cl.Write(cx, bus.PutRequest{Path: p, Value: json.RawMessage(strconv.Itoa(i)),
					Source: fmt.Sprintf("w%d", w), SourceSeq: uint64(i + 1)})
				if err != nil {
					t.Errorf("put %s: %v", p, err)
					return
				}
				wmu.Lock() // a duplicate (the first answer was lost) names the seq that stored it
				written[p] = append(written[p], rep.Seq)
				wmu.Unlock()
				time.Sleep(5 * time.Millisecond)
			}
		}()
	}
	time.Sleep(150 * time.Millisecond)
	px.cut(true) // the follower's connection drops and cannot come back for a while
	time.Sleep(400 * time.Millisecond)
	px.cut(false)
	time.Sleep(150 * time.Millisecond)
	c.stopNode(c.leader()) // events of entries the old leader committed can be lost
	wg.Wait()
	if t.Failed() {
		return
	}
	written["f/before"] = []uint64{0} // printed first as the latest value; seq checked below
	c.waitFor("every version followed", 10*time.Second, func() error {
		mu.Lock()
		defer mu.Unlock()
		for p, seqs := range written {
			if len(printed[p]) < len(seqs) {
				return fmt.Errorf("%s: %d of %d versions printed", p, len(printed[p]), len(seqs))
			}
		}
		return nil
	})
	time.Sleep(700 * time.Millisecond) // two more resyncs: nothing may be repeated
	mu.Lock()
	defer mu.Unlock()
	for p, seqs := range written {
		if p == "f/before" {
			if len(printed[p]) != 1 {
				t.Errorf("%s printed %v", p, printed[p])
			}
			continue
		}
		if fmt.Sprint(printed[p]) != fmt.Sprint(seqs) {
			t.Errorf("%s: printed %v, written %v", p, printed[p], seqs)
		}
	}
	if len(printed) != len(written) {
		t.Errorf("printed paths %d, written %d", len(printed), len(written))
	}
}

// TestMissingPathAndFollowBeforeWrites: the latest values under a path
// nobody wrote are not_found (as ls and get say), yet following it waits
// for its first versions and prints them.
func TestMissingPathAndFollowBeforeWrites(t *testing.T) {
	c := startCluster(t, 3)
	cx := ctx(t)
	if rows, err := query.Latest(cx, c.cl, "later", time.Time{}, 0); !bus.HasCode(err, bus.CodeNotFound) {
		t.Fatalf("latest of a path never written: %v %v, want not_found", rows, err)
	}
	fctx, stop := context.WithCancel(cx)
	defer stop()
	rows := make(chan query.Row, 8)
	done := make(chan error, 1)
	go func() {
		done <- query.Follow(fctx, c.cl, "later", query.FollowConfig{Resync: 100 * time.Millisecond}, func(r query.Row) error {
			rows <- r
			return nil
		})
	}()
	time.Sleep(300 * time.Millisecond) // resyncs of a path still missing
	rep, err := c.cl.Put(cx, "later/x", json.RawMessage(`7`))
	if err != nil {
		t.Fatal(err)
	}
	select {
	case r := <-rows:
		if r.Path != "later/x" || r.Seq != rep.Seq {
			t.Errorf("followed %s seq %d, want later/x seq %d", r.Path, r.Seq, rep.Seq)
		}
	case err := <-done:
		t.Fatalf("follow stopped: %v", err)
	case <-cx.Done():
		t.Fatal("the first version was not followed")
	}
	stop()
	if err := <-done; err != nil {
		t.Errorf("follow: %v", err)
	}
}

// TestFollowStopsOnError: a follow whose fn fails (say, its output was
// closed) returns the error at once, not when its caller's context ends.
func TestFollowStopsOnError(t *testing.T) {
	c := startCluster(t, 3)
	cx := ctx(t)
	if _, err := c.cl.Put(cx, "stop/x", json.RawMessage(`1`)); err != nil {
		t.Fatal(err)
	}
	enough := errors.New("enough")
	done := make(chan error, 1)
	go func() {
		done <- query.Follow(cx, c.cl, "stop", query.FollowConfig{}, func(query.Row) error { return enough })
	}()
	select {
	case err := <-done:
		if !errors.Is(err, enough) {
			t.Fatalf("follow: %v, want fn's error", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("follow still running 5 s after its fn failed")
	}
}
