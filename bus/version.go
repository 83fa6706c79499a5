package bus

import (
	"bytes"
	"encoding/json"
	"unicode/utf8"

	"memstore/internal/versionjson"
)

// unquote is the string a JSON string (checked, quotes included) holds.
func unquote(s []byte) string {
	if bytes.IndexByte(s, '\\') < 0 && utf8.Valid(s) { // else encoding/json's escapes and U+FFFD for bad bytes
		return string(s[1 : len(s)-1])
	}
	var out string
	_ = json.Unmarshal(s, &out) // checked valid: never fails
	return out
}

// versionOf is the Version whose fields v spans.
func versionOf(v versionjson.Spans) Version {
	w := Version{Seq: v.Seq, TS: unquote(v.TS), User: unquote(v.User), Value: v.Value}
	if v.EventTS != nil {
		w.EventTS = unquote(v.EventTS)
	}
	return w
}

// decodeFast reads a history reply as the nodes spell it,
// {"ok":true,"values":[V,…],"more":B} with each V as versionjson.Scan
// reads it, without encoding/json: a page of 64 versions cost a client 100 µs
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
		v, ok := versionjson.Scan(body[:end])
		if !ok {
			return false
		}
		values = append(values, versionOf(v))
		body = body[min(end+1, len(body)):] // past the comma
	}
	*r = HistoryReply{Result: Result{OK: true}, Values: values, More: more}
	return true
}

// decodeFast reads a get reply as the nodes spell it (replica's
// spliceVersion): {"ok":true,"path":"P",F[,"applied_seq":N]} with P of
// the characters a valid path holds and F a version's fields as
// versionjson.ScanFields reads them, without encoding/json (a fifth of a
// client's CPU under gets). The last ,"applied_seq": is taken as the
// reply's only if its digits run to the closing brace: a value can spell
// one, but a value is followed by the reply's own or by its closing
// brace and the reply's. Any other spelling returns false.
func (r *GetReply) decodeFast(data []byte) bool {
	rest, ok := bytes.CutPrefix(data, []byte(`{"ok":true,"path":"`))
	if !ok || data[len(data)-1] != '}' {
		return false
	}
	path, rest := cutPath(rest[:len(rest)-1])
	fields, ok := bytes.CutPrefix(rest, []byte(`",`))
	if !ok || len(path) == 0 {
		return false
	}
	var applied uint64
	if k := bytes.LastIndex(fields, []byte(`,"applied_seq":`)); k >= 0 {
		if n, m := versionjson.Digits(fields[k+len(`,"applied_seq":`):]); n > 0 && k+len(`,"applied_seq":`)+m == len(fields) {
			applied, fields = n, fields[:k]
		}
	}
	v, ok := versionjson.ScanFields(fields)
	if !ok {
		return false
	}
	*r = GetReply{Result: Result{OK: true}, Path: string(path), Version: versionOf(v), AppliedSeq: applied}
	return true
}
