// Package versionjson reads a stored version as json.Marshal spells it,
// {"seq":N,"ts":"T"[,"event_ts":"E"],"user":"U","value":V}, without
// encoding/json: the nodes store every version so (tree/<path>/
// versions.jsonl) and send them so (get and history replies splice the
// stored lines), so the tree reading its files and the client reading
// replies share this one reader. Anything spelt otherwise is refused, for
// the caller to read with encoding/json.
package versionjson

import (
	"bytes"
	"encoding/json"
)

// Spans are the fields of one version as they stand in its JSON,
// aliasing it: TS, EventTS and User with their quotes (EventTS nil when
// absent), Value as written.
type Spans struct {
	Seq               uint64
	TS, EventTS, User []byte
	Value             []byte
}

// Scan reads one version, all of b, spelt as json.Marshal spells
// a Version: {"seq":N,"ts":"T"[,"event_ts":"E"],"user":"U","value":V}
// with N digits (no leading zero, at most 19) and no space (in V, none
// before or after it). It checks the JSON piece by piece in one pass:
// strings by jsonString, V by json.Valid (a plain string by jsonString);
// ok is false for any other spelling, which the caller reads with
// encoding/json (at several times the cost: reflection, and a scan of
// the whole input before it).
func Scan(b []byte) (Spans, bool) {
	if len(b) < 2 || b[0] != '{' || b[len(b)-1] != '}' {
		return Spans{}, false
	}
	return ScanFields(b[1 : len(b)-1])
}

// ScanFields is Scan of a version's fields without their braces,
// all of b: V runs to its end, so no key follows it (a repeated "seq"
// there would win in encoding/json).
func ScanFields(b []byte) (v Spans, ok bool) {
	rest, ok := bytes.CutPrefix(b, []byte(`"seq":`))
	if !ok {
		return Spans{}, false
	}
	var n int
	if v.Seq, n = Digits(rest); v.Seq == 0 {
		return Spans{}, false
	}
	if v.TS, rest = cutString(rest[n:], `,"ts":`); v.TS == nil {
		return Spans{}, false
	}
	if bytes.HasPrefix(rest, []byte(`,"event_ts":`)) {
		if v.EventTS, rest = cutString(rest, `,"event_ts":`); v.EventTS == nil {
			return Spans{}, false
		}
	}
	if v.User, rest = cutString(rest, `,"user":`); v.User == nil {
		return Spans{}, false
	}
	v.Value, ok = bytes.CutPrefix(rest, []byte(`,"value":`))
	if !ok || len(v.Value) == 0 || jsonSpace(v.Value[0]) || jsonSpace(v.Value[len(v.Value)-1]) { // encoding/json trims spaces off a raw value
		return Spans{}, false
	}
	if v.Value[0] == '"' && jsonString(v.Value) == len(v.Value) || json.Valid(v.Value) {
		v.Value = v.Value[:len(v.Value):len(v.Value)] // an append to it must not write over what follows
		return v, true
	}
	return Spans{}, false
}

// Digits reads the number b starts with as JSON spells an unsigned
// integer, at most 19 digits (never overflowing), and how many bytes it
// took; 0 digits or a leading zero read as 0, 0.
func Digits(b []byte) (uint64, int) {
	if len(b) == 0 || b[0] == '0' {
		return 0, 0
	}
	var n uint64
	i := 0
	for ; i < len(b) && b[i] >= '0' && b[i] <= '9' && i < 19; i++ {
		n = n*10 + uint64(b[i]-'0')
	}
	return n, i
}

// cutString cuts key and then a JSON string off the start of b: the
// string (nil if b does not start so) and what follows.
func cutString(b []byte, key string) (s, rest []byte) {
	r, ok := bytes.CutPrefix(b, []byte(key))
	if !ok {
		return nil, b
	}
	n := jsonString(r)
	if n < 0 {
		return nil, b
	}
	return r[:n], r[n:]
}

// jsonString is the length of the JSON string b starts with, or -1 if b
// does not start with a valid one.
func jsonString(b []byte) int {
	if len(b) == 0 || b[0] != '"' {
		return -1
	}
	end := bytes.IndexByte(b[1:], '"') + 1
	if end == 0 {
		return -1
	}
	if bytes.IndexByte(b[1:end], '\\') >= 0 { // that quote may be escaped
		return escapedString(b)
	}
	for _, c := range b[1:end] {
		if c < 0x20 {
			return -1
		}
	}
	return end + 1
}

// escapedString is jsonString of a string that holds an escape.
func escapedString(b []byte) int {
	for i := 1; i < len(b); i++ {
		switch c := b[i]; {
		case c == '"':
			if !json.Valid(b[:i+1]) {
				return -1
			}
			return i + 1
		case c == '\\':
			i++ // the escaped character cannot end the string
		case c < 0x20:
			return -1
		}
	}
	return -1
}

// jsonSpace reports whether c is JSON whitespace.
func jsonSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' }
