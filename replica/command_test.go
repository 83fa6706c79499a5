package replica

import (
	"encoding/json"
	"errors"
	"reflect"
	"slices"
	"testing"
	"time"

	"memstore/bus"
	"memstore/replica/storage/vfs"
	"memstore/replica/tree"
)

// TestCommandTS: the fast read of an entry's commit time agrees with the
// encoding handlePut writes, reads the JSON of older logs, and gives zero
// for anything else.
func TestCommandTS(t *testing.T) {
	at := time.Date(2026, 11, 24, 18, 0, 0, 123456789, time.UTC)
	c := command{TS: at.Format(time.RFC3339Nano), User: "u",
		Puts: []bus.PathValue{{Path: "a", Value: json.RawMessage(`1`)}}, Src: "s", SrcSeq: 1}
	legacy, _ := json.Marshal(c)
	reordered := []byte(`{"user":"u","ts":"` + at.Format(time.RFC3339Nano) + `","puts":[]}`)
	for _, data := range [][]byte{c.encode(), legacy, reordered} {
		if got := commandTS(data); !got.Equal(at) {
			t.Fatalf("commandTS(%q) = %v", data, got)
		}
	}
	for _, bad := range [][]byte{nil, []byte(`{"ts":"noon"}`), []byte(`garbage`), {commandBinary}, {commandBinary, 40, 'x'}} {
		if got := commandTS(bad); !got.IsZero() {
			t.Fatalf("commandTS(%q) = %v", bad, got)
		}
	}
}

// TestCommandRoundTrip: a command decodes to what was encoded, in the
// binary encoding and in the JSON of older logs; a malformed one is an
// error, never a partial command.
func TestCommandRoundTrip(t *testing.T) {
	for _, c := range []command{
		{TS: "2026-11-24T18:00:00.5Z", User: "al\"ice", Puts: []bus.PathValue{
			{Path: "a/b", Value: json.RawMessage(`{"x":[1,"\u003c"]}`), EventTS: "2026-11-24T17:59:59Z"},
			{Path: "c", Value: json.RawMessage(`null`)}}},
		{TS: "2026-11-24T18:00:01Z", User: "u", Puts: []bus.PathValue{{Path: "d", Value: json.RawMessage(`"v"`)}}, Src: "sensor-1", SrcSeq: 1 << 40},
	} {
		legacy, _ := json.Marshal(c)
		for _, data := range [][]byte{c.encode(), legacy} {
			got, err := decodeCommand(data)
			if err != nil {
				t.Fatalf("decode %q: %v", data, err)
			}
			if !reflect.DeepEqual(got, c) {
				t.Fatalf("decode %q = %+v, want %+v", data, got, c)
			}
		}
		enc := c.encode()
		for _, bad := range [][]byte{nil, enc[1:], enc[:len(enc)-1], append(slices.Clone(enc), 0), []byte(`{"puts":`)} {
			if got, err := decodeCommand(bad); !errors.Is(err, errCommand) {
				t.Fatalf("decode %q = %+v, %v; want errCommand", bad, got, err)
			}
		}
	}
}

// TestStoredLineIsWireVersion: history replies splice the stored lines as
// the wire's versions, so both must encode alike.
func TestStoredLineIsWireVersion(t *testing.T) {
	for _, ets := range []string{"", "2026-01-02T03:04:05Z"} {
		stored, _ := json.Marshal(tree.Version{Seq: 7, TS: "2026-01-02T03:04:06Z", EventTS: ets, User: "alice", Value: json.RawMessage(`{"x":1}`)})
		wire, _ := json.Marshal(bus.Version{Seq: 7, TS: "2026-01-02T03:04:06Z", EventTS: ets, User: "alice", Value: json.RawMessage(`{"x":1}`)})
		if string(stored) != string(wire) {
			t.Fatalf("stored %s, wire %s", stored, wire)
		}
	}
}

// TestSplicedGetReply: serveGet's spliced reply decodes to the GetReply the
// encoder would have made.
func TestSplicedGetReply(t *testing.T) {
	line, _ := json.Marshal(tree.Version{Seq: 9, TS: "2026-01-02T03:04:06Z", User: "u", Value: json.RawMessage(`[1,"a"]`)})
	b := spliceVersion(`{"ok":true,`, "a/b", line, "applied_seq", 12)
	want := bus.Encode(bus.GetReply{Result: bus.Result{OK: true}, Path: "a/b", AppliedSeq: 12,
		Version: bus.Version{Seq: 9, TS: "2026-01-02T03:04:06Z", User: "u", Value: json.RawMessage(`[1,"a"]`)}})
	if string(b) != string(want) {
		t.Fatalf("spliced %s\nencoded %s", b, want)
	}
}

// TestSplicedEvent: the event spliced from a written line is byte for byte
// the bus.Event the encoder would make, with and without prev_seq and
// event_ts, and with a path and value JSON escapes.
func TestSplicedEvent(t *testing.T) {
	for _, c := range []struct {
		v    tree.Version
		prev uint64
	}{
		{tree.Version{Seq: 9, TS: "2026-01-02T03:04:06Z", User: "u", Value: json.RawMessage(`[1,"a<b>&"]`)}, 7},
		{tree.Version{Seq: 1, TS: "2026-01-02T03:04:06.5Z", EventTS: "2026-01-02T03:04:05Z", User: "al\"ice", Value: json.RawMessage(`{"x":1}`)}, 0},
	} {
		line, _ := json.Marshal(c.v)
		got := eventJSON("plant-1/line_3/t", tree.Written{Line: line, Prev: c.prev})
		want := bus.Encode(bus.Event{PathVersion: bus.PathVersion{Path: "plant-1/line_3/t", Version: bus.Version{Seq: c.v.Seq, TS: c.v.TS,
			EventTS: c.v.EventTS, User: c.v.User, Value: c.v.Value}}, PrevSeq: c.prev})
		if string(got) != string(want) {
			t.Fatalf("spliced %s\nencoded %s", got, want)
		}
	}
}

// TestPutReplyJSON: the hand-spelt reply to a committed put is byte for
// byte what the encoder makes of bus.PutReply.
func TestPutReplyJSON(t *testing.T) {
	for _, seq := range []uint64{1, 18446744073709551615} {
		ts := "2026-11-25T05:00:00.123456789Z"
		want := bus.Encode(bus.PutReply{Result: bus.Result{OK: true}, Seq: seq, TS: ts})
		if got := putReplyJSON(seq, ts); string(got) != string(want) {
			t.Fatalf("spelt %s, encoded %s", got, want)
		}
	}
}

// TestStoredValueIsCanonical: a value as a writer may spell it (spaces,
// HTML characters) is stored, once handlePut has compacted it, on the
// line json.Marshal would write for the version.
func TestStoredValueIsCanonical(t *testing.T) {
	value := json.RawMessage(`{"a" : "<b>&" ,"c":[1, 2]}`)
	compact, _ := json.Marshal(value) // as handlePut stores it
	tr, err := tree.Open(vfs.NewMem(), "/d", tree.DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	ts := "2026-11-25T06:00:00Z"
	w, err := tr.Apply(1, 1, ts, "u", []tree.Put{{Path: "a", Value: compact}})
	if err != nil {
		t.Fatal(err)
	}
	want, _ := json.Marshal(tree.Version{Seq: 1, TS: ts, User: "u", Value: value})
	if string(w[0].Line) != string(want) {
		t.Fatalf("stored %s, json.Marshal %s", w[0].Line, want)
	}
}

// TestHistoryReply: the stored lines spliced into a history reply decode
// as its versions, and the reply is allocated once, at its size (it was
// two bytes short, and grew by a copy of the whole page to end).
func TestHistoryReply(t *testing.T) {
	lines := []json.RawMessage{
		json.RawMessage(`{"seq":1,"ts":"2026-12-06T00:00:00Z","user":"u","value":1}`),
		json.RawMessage(`{"seq":2,"ts":"2026-12-06T00:00:01Z","user":"u","value":"two"}`),
	}
	for _, more := range []bool{false, true} {
		for _, ls := range [][]json.RawMessage{nil, lines[:1], lines} {
			b := historyReply(ls, more)
			var rep bus.HistoryReply
			if err := json.Unmarshal(b, &rep); err != nil || !rep.OK || rep.More != more || len(rep.Values) != len(ls) {
				t.Fatalf("%s: %+v %v", b, rep, err)
			}
			if slack := cap(b) - len(b); slack < 0 || slack > 1 || (slack == 1) != more { // "true" is a byte shorter
				t.Errorf("%d lines, more %v: %d bytes in %d", len(ls), more, len(b), cap(b))
			}
		}
	}
}
