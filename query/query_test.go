package query

import (
	"bytes"
	"encoding/json"
	"errors"
	"math"
	"strings"
	"testing"
	"time"

	"memstore/bus"
)

func TestParseTime(t *testing.T) {
	now := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
	for in, want := range map[string]time.Time{
		"":                     {},
		"15m":                  now.Add(-15 * time.Minute),
		"1h30m":                now.Add(-90 * time.Minute),
		"2026-04-30T10:00:00Z": time.Date(2026, 4, 30, 10, 0, 0, 0, time.UTC),
	} {
		got, err := ParseTime(in, now)
		if err != nil || !got.Equal(want) {
			t.Errorf("ParseTime(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, bad := range []string{"yesterday", "-5m", "2026-13-01"} {
		if _, err := ParseTime(bad, now); !errors.Is(err, ErrBadTime) {
			t.Errorf("ParseTime(%q): %v", bad, err)
		}
	}
}

func TestPrint(t *testing.T) {
	rows := []Row{{Path: "a/b", Version: bus.Version{Seq: 3, TS: "t", User: "u", Value: json.RawMessage(`{"x":1,"y":"q"}`)}}}
	var b bytes.Buffer
	if err := Print(&b, CSV, rows); err != nil || b.String() != "path,seq,ts,event_ts,user,value\na/b,3,t,,u,\"{\"\"x\"\":1,\"\"y\"\":\"\"q\"\"}\"\n" {
		t.Fatalf("csv: %q %v", b.String(), err)
	}
	b.Reset()
	if err := Print(&b, JSONL, rows); err != nil || b.String() != `{"path":"a/b","seq":3,"ts":"t","user":"u","value":{"x":1,"y":"q"}}`+"\n" {
		t.Fatalf("jsonl: %q %v", b.String(), err)
	}
	b.Reset()
	if err := Print(&b, Table, rows); err != nil || !bytes.Contains(b.Bytes(), []byte("a/b   3    t   -         u     {\"x\":1,\"y\":\"q\"}")) {
		t.Fatalf("table: %q %v", b.String(), err)
	}
	if err := Print(&b, "xml", rows); err == nil {
		t.Fatal("unknown format accepted")
	}
}

func TestSparkline(t *testing.T) {
	for _, c := range []struct {
		in   []float64
		want string
	}{
		{[]float64{1, 2, 3, 4, 5, 6, 7, 8}, "▁▂▃▄▅▆▇█"},
		{[]float64{5, 5, 5}, "▅▅▅"},
		{[]float64{0, math.NaN(), 10}, "▁ █"},
		{nil, ""},
	} {
		if got := Sparkline(c.in); got != c.want {
			t.Errorf("Sparkline(%v) = %q, want %q", c.in, got, c.want)
		}
	}
}

func TestPrintAgg(t *testing.T) {
	one, two := 1.0, 2.0
	rep := bus.AggReply{AggStats: bus.AggStats{Count: 3, Numeric: 2, Min: &one, Max: &two, Mean: &one},
		Buckets: []bus.AggBucket{{Start: "b1", AggStats: bus.AggStats{Count: 1, Numeric: 1, Mean: &one}},
			{Start: "b2", AggStats: bus.AggStats{Count: 2, Numeric: 1, Mean: &two}}}}
	var b bytes.Buffer
	if err := PrintAgg(&b, Table, AggRows("p", rep)); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(b.String(), "p     total   3      2        1    2    1") || !strings.HasSuffix(b.String(), "mean per bucket  ▁█\n") {
		t.Fatalf("table:\n%s", b.String())
	}
	b.Reset()
	if err := PrintAgg(&b, JSONL, AggRows("p", rep)); err != nil {
		t.Fatal(err)
	}
	if lines := strings.Split(strings.TrimSpace(b.String()), "\n"); len(lines) != 3 ||
		lines[2] != `{"path":"p","bucket":"total","count":3,"numeric":2,"min":1,"max":2,"mean":1}` {
		t.Fatalf("jsonl:\n%s", b.String())
	}
}

// TestParseRange: both ends read as ParseTime reads them; a range that
// ends before it starts is ErrBadTime, an open end never is.
func TestParseRange(t *testing.T) {
	now := time.Date(2026, 12, 6, 12, 0, 0, 0, time.UTC)
	from, to, err := ParseRange("15m", "2026-12-06T11:50:00Z", now)
	if err != nil || !from.Equal(now.Add(-15*time.Minute)) || !to.Equal(now.Add(-10*time.Minute)) {
		t.Fatalf("15m..11:50: %v %v %v", from, to, err)
	}
	if _, _, err := ParseRange("1m", "2m", now); !errors.Is(err, ErrBadTime) {
		t.Fatalf("a backwards range: %v", err)
	}
	if _, _, err := ParseRange("", "2m", now); err != nil {
		t.Fatalf("an open start: %v", err)
	}
}
