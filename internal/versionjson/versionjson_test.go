package versionjson

import (
	"bytes"
	"encoding/json"
	"testing"
)

type version struct {
	Seq     uint64          `json:"seq"`
	TS      string          `json:"ts"`
	EventTS string          `json:"event_ts,omitempty"`
	User    string          `json:"user"`
	Value   json.RawMessage `json:"value"`
}

// TestScanReadsMarshalSpelling: Scan reads what json.Marshal writes, each
// field as it stands, and refuses what it must leave to encoding/json.
func TestScanReadsMarshalSpelling(t *testing.T) {
	for _, v := range []version{
		{Seq: 1, TS: "2026-12-06T16:27:49.123456789Z", User: "u", Value: json.RawMessage(`1`)},
		{Seq: 1234567890123456789, TS: "t", EventTS: "e", User: `a"b\c`, Value: json.RawMessage(`{"seq":2,"value":[1]}`)},
		{Seq: 3, TS: "t", User: "", Value: json.RawMessage(`"x"`)},
	} {
		line, _ := json.Marshal(v)
		s, ok := Scan(line)
		wantEvent := ""
		if v.EventTS != "" {
			wantEvent = `"` + v.EventTS + `"`
		}
		user, _ := json.Marshal(v.User)
		if !ok || s.Seq != v.Seq || string(s.TS) != `"`+v.TS+`"` || string(s.EventTS) != wantEvent ||
			string(s.User) != string(user) || string(s.Value) != string(v.Value) {
			t.Errorf("%s: %+v %v", line, s, ok)
		}
	}
	for _, line := range []string{
		`{"seq":12345678901234567890,"ts":"t","user":"u","value":1}`, // 20 digits
		`{"seq":0,"ts":"t","user":"u","value":1}`,
		`{"seq":1,"ts":"t","user":"u","value": 1}`,
		`{"seq":1,"ts":"t","user":"u","value":1,"seq":2}`,
		`{"seq":1,"user":"u","ts":"t","value":1}`,
		`{"seq":1,"ts":"t","user":"u\x01","value":1}`,
		`{"seq":1,"ts":"t","user":"u","value":[1,]}`,
		`{"seq":1,"ts":"t","user":"u","value":1`,
	} {
		if s, ok := Scan([]byte(line)); ok {
			t.Errorf("%s: read as %+v", line, s)
		}
	}
}

// TestValueHasNoSpareCapacity: a value read from a buffer holding more
// after it cannot be appended to over what follows.
func TestValueHasNoSpareCapacity(t *testing.T) {
	buf := []byte(`{"seq":1,"ts":"t","user":"u","value":1}{"seq":2,"ts":"t","user":"u","value":2}`)
	end := bytes.IndexByte(buf, '}') + 1
	s, ok := Scan(buf[:end])
	if !ok {
		t.Fatal("not read")
	}
	_ = append(s.Value, "99999"...)
	if string(buf[end:]) != `{"seq":2,"ts":"t","user":"u","value":2}` {
		t.Fatalf("an append to the value wrote over the next version: %s", buf[end:])
	}
}
