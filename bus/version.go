package bus

import (
	"bytes"
	"encoding/json"
	"unicode/utf8"
)

// VersionSpans are the fields of one version as they stand in its JSON,
// aliasing it: TS, EventTS and User with their quotes (EventTS nil when
// absent), Value as written.
type VersionSpans struct {
	Seq               uint64
	TS, EventTS, User []byte
	Value             []byte
}

// ScanVersion reads one version, all of b, spelt as json.Marshal spells
// a Version: {"seq":N,"ts":"T"[,"event_ts":"E"],"user":"U","value":V}
// with N digits (no leading zero, at most 19) and no space (in V, none
// before or after it). It checks the JSON piece by piece in one pass:
// strings by jsonString, V by json.Valid (a plain string by jsonString);
// ok is false for any other spelling, which the caller reads with
// encoding/json. The nodes store versions so (tree/<path>/versions.jsonl)
// and send them so (history and get replies splice the stored lines):
// reading them directly costs a fraction of encoding/json's reflection
// and its scan of the whole input.
func ScanVersion(b []byte) (VersionSpans, bool) {
	if len(b) < 2 || b[0] != '{' || b[len(b)-1] != '}' {
		return VersionSpans{}, false
	}
	return scanFields(b[1 : len(b)-1])
}

// scanFields is ScanVersion of a version's fields without their braces,
// all of b: V runs to its end, so no key follows it (a repeated "seq"
// there would win in encoding/json).
func scanFields(b []byte) (v VersionSpans, ok bool) {
	rest, ok := bytes.CutPrefix(b, []byte(`"seq":`))
	if !ok {
		return VersionSpans{}, false
	}
	var n int
	if v.Seq, n = digits(rest); v.Seq == 0 {
		return VersionSpans{}, false
	}
	if v.TS, rest = cutString(rest[n:], `,"ts":`); v.TS == nil {
		return VersionSpans{}, false
	}
	if bytes.HasPrefix(rest, []byte(`,"event_ts":`)) {
		if v.EventTS, rest = cutString(rest, `,"event_ts":`); v.EventTS == nil {
			return VersionSpans{}, false
		}
	}
	if v.User, rest = cutString(rest, `,"user":`); v.User == nil {
		return VersionSpans{}, false
	}
	v.Value, ok = bytes.CutPrefix(rest, []byte(`,"value":`))
	if !ok || len(v.Value) == 0 || jsonSpace(v.Value[0]) || jsonSpace(v.Value[len(v.Value)-1]) { // encoding/json trims spaces off a raw value
		return VersionSpans{}, false
	}
	if v.Value[0] == '"' && jsonString(v.Value) == len(v.Value) || json.Valid(v.Value) {
		return v, true
	}
	return VersionSpans{}, false
}

// digits reads the number b starts with as JSON spells an unsigned
// integer, at most 19 digits (never overflowing), and how many bytes it
// took; 0 digits or a leading zero read as 0, 0.
func digits(b []byte) (uint64, int) {
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

// unquote is the string a JSON string (checked, quotes included) holds.
func unquote(s []byte) string {
	if bytes.IndexByte(s, '\\') < 0 && utf8.Valid(s) { // else encoding/json's escapes and U+FFFD for bad bytes
		return string(s[1 : len(s)-1])
	}
	var out string
	_ = json.Unmarshal(s, &out) // checked valid: never fails
	return out
}

// decodeFast reads a history reply as the nodes spell it,
// {"ok":true,"values":[V,…],"more":B} with each V as ScanVersion reads
// it, without encoding/json: a page of 64 versions cost a client 100 µs
// of CPU there (issue 7's W3). The versions are split where one ends and
// the next starts, at },{"seq": which no JSON string holds; a value that
// holds it (an array of such objects) is cut short there, is no longer
// valid JSON, and so the whole reply goes to encoding/json. Any other
// spelling returns false.
func (r *HistoryReply) decodeFast(data []byte) bool {
	body, ok := bytes.CutPrefix(data, []byte(`{"ok":true,"values":[`))
	more := bytes.HasSuffix(body, []byte(`],"more":true}`))
	if !ok || !more && !bytes.HasSuffix(body, []byte(`],"more":false}`)) {
		return false
	}
	body = body[:bytes.LastIndexByte(body, ']')]
	next := []byte(`},{"seq":`)
	values := make([]Version, 0, bytes.Count(body, next)+1)
	for len(body) > 0 {
		end := bytes.Index(body, next) + 1 // a version's closing brace, included
		if end == 0 {
			end = len(body)
		}
		v, ok := ScanVersion(body[:end])
		if !ok {
			return false
		}
		w := Version{Seq: v.Seq, TS: unquote(v.TS), User: unquote(v.User), Value: v.Value}
		if v.EventTS != nil {
			w.EventTS = unquote(v.EventTS)
		}
		values = append(values, w)
		body = body[min(end+1, len(body)):] // past the comma
	}
	*r = HistoryReply{Result: Result{OK: true}, Values: values, More: more}
	return true
}

// decodeFast reads a get reply as the nodes spell it (replica's
// spliceVersion): {"ok":true,"path":"P",F[,"applied_seq":N]} with P of
// the characters a valid path holds and F a version's fields as
// scanFields reads them, without encoding/json (a fifth of a client's
// CPU under gets). The last ,"applied_seq": is the reply's: a value
// holding one is followed by the reply's own, or by the value's
// closing brace and the reply's. Any other spelling returns false.
func (r *GetReply) decodeFast(data []byte) bool {
	rest, ok := bytes.CutPrefix(data, []byte(`{"ok":true,"path":"`))
	if !ok || data[len(data)-1] != '}' {
		return false
	}
	i := 0
	for i < len(rest) && pathByte(rest[i]) {
		i++
	}
	path := rest[:i]
	fields, ok := bytes.CutPrefix(rest[i:len(rest)-1], []byte(`",`))
	if !ok || len(path) == 0 {
		return false
	}
	var applied uint64
	if k := bytes.LastIndex(fields, []byte(`,"applied_seq":`)); k >= 0 {
		if n, m := digits(fields[k+len(`,"applied_seq":`):]); n > 0 && k+len(`,"applied_seq":`)+m == len(fields) {
			applied, fields = n, fields[:k]
		}
	}
	v, ok := scanFields(fields)
	if !ok {
		return false
	}
	*r = GetReply{Result: Result{OK: true}, Path: string(path), AppliedSeq: applied,
		Version: Version{Seq: v.Seq, TS: unquote(v.TS), User: unquote(v.User), Value: v.Value}}
	if v.EventTS != nil {
		r.EventTS = unquote(v.EventTS)
	}
	return true
}
