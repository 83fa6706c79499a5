package query

import (
	"bytes"
	"encoding/json"
	"errors"
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
	if err := Print(&b, CSV, rows); err != nil || b.String() != "path,seq,ts,user,value\na/b,3,t,u,\"{\"\"x\"\":1,\"\"y\"\":\"\"q\"\"}\"\n" {
		t.Fatalf("csv: %q %v", b.String(), err)
	}
	b.Reset()
	if err := Print(&b, JSONL, rows); err != nil || b.String() != `{"path":"a/b","seq":3,"ts":"t","user":"u","value":{"x":1,"y":"q"}}`+"\n" {
		t.Fatalf("jsonl: %q %v", b.String(), err)
	}
	b.Reset()
	if err := Print(&b, Table, rows); err != nil || !bytes.Contains(b.Bytes(), []byte("a/b   3    t   u     {\"x\":1,\"y\":\"q\"}")) {
		t.Fatalf("table: %q %v", b.String(), err)
	}
	if err := Print(&b, "xml", rows); err == nil {
		t.Fatal("unknown format accepted")
	}
}
