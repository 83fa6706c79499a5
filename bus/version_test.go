package bus

import (
	"encoding/json"
	"fmt"
	"reflect"
	"strings"
	"testing"
)

// historyVersions are versions of every shape a history reply carries,
// escapes and values that spell a version's keys and its split included.
var historyVersions = []Version{
	{Seq: 1, TS: "2026-12-06T16:27:49.123456789Z", User: "anonymous", Value: json.RawMessage(`21.5`)},
	{Seq: 2, TS: "2026-12-06T16:27:49Z", EventTS: "2026-12-06T16:27:48Z", User: "sensor", Value: json.RawMessage(`{"value":{"seq":9},"x":"\"}"}`)},
	{Seq: 18446744073709551615, TS: "2026-12-06T16:27:50Z", User: `we"ird\user`, Value: json.RawMessage(`null`)},
	{Seq: 4, TS: "2026-12-06T16:27:51Z", User: "<bob> & é\u2028", Value: json.RawMessage(`"a},{\"seq\":5"`)},
	{Seq: 5, TS: "2026-12-06T16:27:52Z", User: "u", Value: json.RawMessage(`[true,false,-1.5e3,"\u003c"]`)},
}

// fastDecoder is a reply type bus.Decode reads directly.
type fastDecoder[T any] interface {
	*T
	decodeFast([]byte) bool
}

// readsDirectly reports whether T's direct decoder reads data, and fails
// t unless encoding/json then reads data the same.
func readsDirectly[T any, P fastDecoder[T]](t *testing.T, data []byte) bool {
	t.Helper()
	var got T
	if !P(&got).decodeFast(data) {
		return false
	}
	var want T
	if err := json.Unmarshal(data, &want); err != nil {
		t.Fatalf("%q read directly, refused by encoding/json: %v", data, err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("%q: direct %+v, encoding/json %+v", data, got, want)
	}
	return true
}

// decodesAsEncodingJSON checks that data, a reply as the nodes spell it,
// is read directly or not as direct says, and that bus.Decode reads it as
// encoding/json does either way.
func decodesAsEncodingJSON[T any, P fastDecoder[T]](t *testing.T, data []byte, direct bool) {
	t.Helper()
	if got := readsDirectly[T, P](t, data); got != direct {
		t.Errorf("read directly %v, want %v: %s", got, direct, data)
	}
	var want, got T
	if err := json.Unmarshal(data, &want); err != nil {
		t.Fatal(err)
	}
	if err := Decode(data, P(&got)); err != nil || !reflect.DeepEqual(got, want) {
		t.Errorf("%s\ndecoded %+v (%v)\nwant    %+v", data, got, err, want)
	}
}

// TestHistoryReplyDecodesAsEncodingJSON: a history reply as the nodes
// spell it reads the same through the direct decoder as through
// encoding/json, and goes direct unless a seq has 20 digits or a value
// holds where one version ends and the next starts.
func TestHistoryReplyDecodesAsEncodingJSON(t *testing.T) {
	split := Version{Seq: 6, TS: "2026-12-06T16:27:53Z", User: "u", Value: json.RawMessage(`[{"a":1},{"seq":2}]`)}
	for _, c := range []struct {
		values []Version
		more   bool
		direct bool
	}{
		{[]Version{}, false, true},
		{nil, false, false}, // "values":null, which the nodes never send
		{historyVersions[:1], true, true},
		{historyVersions[:2], false, true},
		{historyVersions[3:], true, true},
		{historyVersions, false, false}, // a seq of 20 digits
		{[]Version{historyVersions[0], split, historyVersions[1]}, false, false},
	} {
		decodesAsEncodingJSON[HistoryReply](t, Encode(HistoryReply{Result: Result{OK: true}, Values: c.values, More: c.more}), c.direct)
	}
	for _, data := range []string{
		`{"ok":true,"values":[],"more":false} `,
		`{"ok":true, "values":[],"more":false}`,
		`{"ok":true,"values":[{"seq":1,"ts":"t","user":"u","value": 1}],"more":false}`,
		`{"ok":true,"values":[{"seq":1,"ts":"t","user":"u","value":1}],"more":false,"more":true}`,
		`{"ok":true,"values":[{"seq":1,"ts":"t","user":"u","value":1},],"more":false}`,
		`{"ok":true,"values":[{"seq":1,"ts":"t","user":"u","value":1}{"seq":2,"ts":"t","user":"u","value":1}],"more":false}`,
		`{"ok":true,"values":[{"seq":1,"ts":"t","user":"u","value":1,"seq":2}],"more":false}`,
		`{"ok":true,"values":[{"seq":1,"ts":"t","user":"u\x01","value":1}],"more":false}`,
	} {
		if readsDirectly[HistoryReply](t, []byte(data)) {
			t.Errorf("%s: read directly", data)
		}
	}
}

// FuzzHistoryReply: whatever the direct decoder reads, encoding/json reads
// the same.
func FuzzHistoryReply(f *testing.F) {
	for _, v := range historyVersions {
		f.Add(Encode(HistoryReply{Result: Result{OK: true}, Values: []Version{v, historyVersions[0]}, More: true}))
	}
	f.Fuzz(func(t *testing.T, data []byte) { readsDirectly[HistoryReply](t, data) })
}

// TestGetReplyDecodesAsEncodingJSON: a get reply as the nodes spell it
// reads the same through the direct decoder as through encoding/json, a
// value that spells applied_seq included.
func TestGetReplyDecodesAsEncodingJSON(t *testing.T) {
	tricky := Version{Seq: 3, TS: "2026-12-06T16:27:53Z", User: "u", Value: json.RawMessage(`{"x":1,"applied_seq":5}`)}
	for _, c := range []struct {
		v       Version
		path    string
		applied uint64
		direct  bool
	}{
		{historyVersions[0], "plant1/line3/temp", 7, true},
		{historyVersions[1], "a", 0, true},
		{historyVersions[2], "a", 1, false}, // a seq of 20 digits
		{historyVersions[3], "a-b/c_d", 18446744073709551615, false},
		{historyVersions[3], "a-b/c_d", 9223372036854775807, true},
		{historyVersions[4], "x", 12, true},
		{tricky, "x", 0, true},
		{tricky, "x", 9, true},
		{historyVersions[0], "é", 1, false},
	} {
		decodesAsEncodingJSON[GetReply](t, Encode(GetReply{Result: Result{OK: true}, Path: c.path, Version: c.v, AppliedSeq: c.applied}), c.direct)
	}
	for _, data := range []string{
		`{"ok":true,"path":"a","seq":1,"ts":"t","user":"u","value":1,"applied_seq":05}`,
		`{"ok":true,"path":"a","seq":1,"ts":"t","user":"u","value":1,"applied_seq":5,"seq":2}`,
		`{"ok":true,"path":"a","seq":1,"ts":"t","user":"u","value":1,"path":"b"}`,
		`{"ok":true,"path":"","seq":1,"ts":"t","user":"u","value":1}`,
		`{"ok":false,"error":{"code":"not_found","message":"a"}}`,
	} {
		if readsDirectly[GetReply](t, []byte(data)) {
			t.Errorf("%s: read directly", data)
		}
	}
}

// FuzzGetReply: whatever the direct decoder reads, encoding/json reads the
// same.
func FuzzGetReply(f *testing.F) {
	for i, v := range historyVersions {
		f.Add(Encode(GetReply{Result: Result{OK: true}, Path: "a/b", Version: v, AppliedSeq: uint64(i)}))
	}
	f.Fuzz(func(t *testing.T, data []byte) { readsDirectly[GetReply](t, data) })
}

// BenchmarkGetReply decodes a get reply of a 64-byte value, as W2 reads
// it: directly, and with encoding/json for comparison.
func BenchmarkGetReply(b *testing.B) {
	data := Encode(GetReply{Result: Result{OK: true}, Path: "bench/r/p0", AppliedSeq: 1000064,
		Version: Version{Seq: 1000000, TS: "2026-12-06T16:27:49.123456789Z", User: "anonymous", Value: json.RawMessage(fmt.Sprintf("%q", strings.Repeat("v", 62)))}})
	b.Run("direct", func(b *testing.B) {
		for b.Loop() {
			var r GetReply
			if Decode(data, &r) != nil || r.Seq != 1000000 {
				b.Fatal("not decoded")
			}
		}
	})
	b.Run("encoding-json", func(b *testing.B) {
		for b.Loop() {
			var r GetReply
			if json.Unmarshal(data, &r) != nil || r.Seq != 1000000 {
				b.Fatal("not decoded")
			}
		}
	})
}

// BenchmarkHistoryReply decodes a page of 64 versions of 64-byte values,
// as W3 reads them: directly, and with encoding/json for comparison.
func BenchmarkHistoryReply(b *testing.B) {
	values := make([]Version, 64)
	for i := range values {
		values[i] = Version{Seq: uint64(1e6 + i), TS: "2026-12-06T16:27:49.123456789Z", User: "anonymous",
			Value: json.RawMessage(fmt.Sprintf("%q", strings.Repeat("v", 62)))}
	}
	data := Encode(HistoryReply{Result: Result{OK: true}, Values: values})
	b.Run("direct", func(b *testing.B) {
		b.SetBytes(int64(len(data)))
		for b.Loop() {
			var r HistoryReply
			if Decode(data, &r) != nil || len(r.Values) != 64 {
				b.Fatal("not decoded")
			}
		}
	})
	b.Run("encoding-json", func(b *testing.B) {
		b.SetBytes(int64(len(data)))
		for b.Loop() {
			var r HistoryReply
			if json.Unmarshal(data, &r) != nil || len(r.Values) != 64 {
				b.Fatal("not decoded")
			}
		}
	})
}
