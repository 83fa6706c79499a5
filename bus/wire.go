package bus

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
)

// Error codes of the wire contract. They are stable: users match on them.
const (
	CodeBadPath     = "bad_path"
	CodeBadRequest  = "bad_request"
	CodeNotFound    = "not_found"
	CodeTooLarge    = "too_large"
	CodeUnavailable = "unavailable"
	CodeTimeout     = "timeout"
	CodeForbidden   = "forbidden"
	CodeNotLeader   = "not_leader"
)

// Error is the error of a reply.
type Error struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

func (e *Error) Error() string { return e.Code + ": " + e.Message }

// HasCode reports whether err is, or wraps, an Error of code.
func HasCode(err error, code string) bool {
	var e *Error
	return errors.As(err, &e) && e.Code == code
}

// Errorf builds an Error.
func Errorf(code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// Result is the head of every reply: ok, or the error.
type Result struct {
	OK    bool   `json:"ok"`
	Error *Error `json:"error,omitempty"`
}

// Err returns the reply's error, nil if ok.
func (r Result) Err() error {
	if r.OK {
		return nil
	}
	if r.Error == nil {
		return &Error{Code: CodeBadRequest, Message: "reply neither ok nor an error"}
	}
	return r.Error
}

// Consistency levels of a get.
const (
	Linearizable = "linearizable"
	Stale        = "stale"
)

// PathValue is one write of a batch. EventTS, if given, is the writer's own
// RFC 3339 time of the value, stored beside the commit time.
type PathValue struct {
	Path    string          `json:"path"`
	Value   json.RawMessage `json:"value"`
	EventTS string          `json:"event_ts,omitempty"`
}

// PutRequest is ms.api.put: one path and value, or a batch in Values.
// Source and SourceSeq, if given, key the write: the store writes a key at
// most once, so a client can resend after a timeout or a restart without
// writing twice (sequences of a source must increase).
type PutRequest struct {
	Path      string          `json:"path,omitempty"`
	Value     json.RawMessage `json:"value,omitempty"`
	EventTS   string          `json:"event_ts,omitempty"`
	Values    []PathValue     `json:"values,omitempty"`
	Source    string          `json:"source,omitempty"`
	SourceSeq uint64          `json:"source_seq,omitempty"`
}

// PutReply answers a put once it is committed. Duplicate says the key was
// already written: Seq, TS and SourceSeq are then those of the source's
// last write (its source_seq equal to the put's: this put, resent).
type PutReply struct {
	Result
	Seq       uint64 `json:"seq,omitempty"`
	TS        string `json:"ts,omitempty"`
	Duplicate bool   `json:"duplicate,omitempty"`
	SourceSeq uint64 `json:"source_seq,omitempty"`
}

// GetRequest is ms.api.get.
type GetRequest struct {
	Path        string `json:"path"`
	Consistency string `json:"consistency,omitempty"`
	MinSeq      uint64 `json:"min_seq,omitempty"`
}

// Version is one stored version of a path: TS is its commit time, EventTS
// the writer's own time if it gave one.
type Version struct {
	Seq     uint64          `json:"seq"`
	TS      string          `json:"ts"`
	EventTS string          `json:"event_ts,omitempty"`
	User    string          `json:"user"`
	Value   json.RawMessage `json:"value"`
}

// GetReply is the latest version, its fields at the top level. AppliedSeq
// says how far the answering node had applied (stale reads).
type GetReply struct {
	Result
	Path string `json:"path,omitempty"`
	Version
	AppliedSeq uint64 `json:"applied_seq,omitempty"`
}

// HistoryRequest is ms.api.history. Since and Until are RFC 3339 times.
type HistoryRequest struct {
	Path     string `json:"path"`
	Since    string `json:"since,omitempty"`
	Until    string `json:"until,omitempty"`
	AfterSeq uint64 `json:"after_seq,omitempty"`
	Limit    int    `json:"limit,omitempty"`
}

// HistoryReply lists versions oldest first; More says a next page exists
// (ask again with after_seq = the last seq).
type HistoryReply struct {
	Result
	Values []Version `json:"values"`
	More   bool      `json:"more"`
}

// LsRequest is ms.api.ls; "" is the root.
type LsRequest struct {
	Path string `json:"path"`
}

// LsReply lists a folder's children.
type LsReply struct {
	Result
	Children []string `json:"children"`
}

// TreeRequest is ms.api.tree. At (RFC 3339) makes it an as-of read: each
// path's latest version committed at or before At.
type TreeRequest struct {
	Path string `json:"path"`
	At   string `json:"at,omitempty"`
	// After pages on: only paths after this one, in the reply's order.
	After string `json:"after,omitempty"`
	Limit int    `json:"limit,omitempty"`
}

// PathVersion is the latest version of one path.
type PathVersion struct {
	Path string `json:"path"`
	Version
}

// Event is published on ms.ev.<tokens> for each committed version.
// PrevSeq is the seq of the path's version before it (0 if none): a watcher
// that saw a different one last has missed versions in between.
type Event struct {
	PathVersion
	PrevSeq uint64 `json:"prev_seq,omitempty"`
}

// TreeReply holds the latest version of every path under the asked one.
type TreeReply struct {
	Result
	Values []PathVersion `json:"values"`
	More   bool          `json:"more"`
}

// Time bases of an aggregate.
const (
	CommitTime = "commit"
	EventTime  = "event"
)

// AggRequest is ms.api.agg: a summary of a path's versions in [Since,
// Until] (RFC 3339), computed in the store; Every (a Go duration, "1m")
// splits it into buckets; Time chooses commit (default) or event time.
type AggRequest struct {
	Path  string `json:"path"`
	Since string `json:"since,omitempty"`
	Until string `json:"until,omitempty"`
	Every string `json:"every,omitempty"`
	Time  string `json:"time,omitempty"`
}

// AggStats summarises versions: Count of them, Numeric of them JSON
// numbers, over which Min, Max, Mean and Sum are taken (absent if none);
// First and Last by the chosen time (absent if Count is 0).
type AggStats struct {
	Count   int      `json:"count"`
	Numeric int      `json:"numeric"`
	Min     *float64 `json:"min,omitempty"`
	Max     *float64 `json:"max,omitempty"`
	Mean    *float64 `json:"mean,omitempty"`
	Sum     *float64 `json:"sum,omitempty"`
	First   *Version `json:"first,omitempty"`
	Last    *Version `json:"last,omitempty"`
}

// AggBucket is the summary of [Start, Start+Every); buckets without a
// version are left out.
type AggBucket struct {
	Start string `json:"start"`
	AggStats
}

// AggReply answers ms.api.agg.
type AggReply struct {
	Result
	AggStats
	Buckets []AggBucket `json:"buckets,omitempty"`
}

// NodeStatus is one node as the group service sees it.
type NodeStatus struct {
	ID      uint64 `json:"id"`
	State   string `json:"state"` // leader, follower, joining, down
	Member  bool   `json:"member"`
	LastSeq uint64 `json:"last_seq"`
	Commit  uint64 `json:"commit_seq"`
	Applied uint64 `json:"applied_seq"`
	Lag     uint64 `json:"lag"`
}

// StatusReply is ms.api.status: the view and every node.
type StatusReply struct {
	Result
	Epoch   uint64       `json:"epoch"`
	Leader  uint64       `json:"leader"`
	Members []uint64     `json:"members"`
	Nodes   []NodeStatus `json:"nodes"`
	Auth    bool         `json:"auth"` // users are authenticated by the NATS server
}

// Healthy reports, as an error, what keeps a cluster of n members from
// being whole: no leader, other members, or a member not live.
func (s StatusReply) Healthy(n int) error {
	if s.Leader == 0 || len(s.Members) != n {
		return fmt.Errorf("leader %d, members %v (want %d)", s.Leader, s.Members, n)
	}
	for _, ns := range s.Nodes {
		if ns.State != "leader" && ns.State != "follower" {
			return fmt.Errorf("node %d is %s", ns.ID, ns.State)
		}
	}
	return nil
}

// Encode marshals a wire value.
func Encode(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(fmt.Sprintf("bus: encode %T: %v", v, err)) // wire types always marshal
	}
	return b
}

// Decode unmarshals a wire value; a malformed payload is a bad_request.
// Fields it does not know are skipped, so replies and events can grow.
// Get and history replies as the nodes spell them are read directly
// (decodeFast), into v as if it were zero, their values sharing data's
// memory (as DecodePutRequest's do).
func Decode(data []byte, v any) *Error {
	if f, ok := v.(interface{ decodeFast([]byte) bool }); ok && f.decodeFast(data) {
		return nil
	}
	if err := json.Unmarshal(data, v); err != nil {
		return Errorf(CodeBadRequest, "malformed %T: %v", v, err)
	}
	return nil
}

// DecodeRequest unmarshals a request strictly: one JSON object of the
// request's fields only; anything else, an unknown field included, is a
// bad_request, so a misspelt option is never silently ignored.
func DecodeRequest(data []byte, v any) *Error {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return Errorf(CodeBadRequest, "malformed %T: %v", v, err)
	}
	if len(bytes.TrimLeft(data[dec.InputOffset():], " \t\r\n")) > 0 { // not dec.More: it is false before a } or ]
		return Errorf(CodeBadRequest, "malformed %T: data after the request", v)
	}
	return nil
}

// DecodeGetRequest is DecodeRequest for a get, reading the Go client's
// spellings without the decoder: {"path":"…"}, then maybe
// ,"consistency":"stale" or "linearizable", the path of the characters a
// valid path holds (so no escapes). The strict decoder was a tenth of a
// node's CPU under gets (issue 7). Anything else goes through it.
func DecodeGetRequest(data []byte) (GetRequest, *Error) {
	if rest, ok := bytes.CutPrefix(data, []byte(`{"path":"`)); ok {
		path, rest := cutPath(rest)
		req := GetRequest{Path: string(path)}
		switch string(rest) {
		case `"}`:
			return req, nil
		case `","consistency":"` + Stale + `"}`:
			req.Consistency = Stale
			return req, nil
		case `","consistency":"` + Linearizable + `"}`:
			req.Consistency = Linearizable
			return req, nil
		}
	}
	var req GetRequest
	return req, DecodeRequest(data, &req)
}

// DecodePutRequest is DecodeRequest for a put, reading the Go client's
// spellings without the decoder: {"path":"…","value":V}, or a batch of
// them, {"values":[{"path":"…","value":V},…]} (the client's coalesced
// Puts), with each path of the characters a valid path holds and each V
// one valid JSON value, unpadded. The strict decoder was a tenth of a
// leader's CPU under puts, and over half of its work on a batch (issue
// 7). Anything else goes through it. Values alias data.
func DecodePutRequest(data []byte) (PutRequest, *Error) {
	if rest, ok := bytes.CutPrefix(data, []byte(`{"values":[`)); ok {
		var values []PathValue
		for {
			pv, after, ok := cutPathValue(rest)
			if !ok {
				break
			}
			values = append(values, pv)
			if string(after) == `}]}` {
				return PutRequest{Values: values}, nil
			}
			if rest, ok = bytes.CutPrefix(after, []byte(`},`)); !ok {
				break
			}
		}
	} else if pv, after, ok := cutPathValue(data); ok && string(after) == "}" {
		return PutRequest{Path: pv.Path, Value: pv.Value}, nil
	}
	var req PutRequest
	return req, DecodeRequest(data, &req)
}

// cutPathValue reads {"path":"…","value":V at the start of b, the path of
// the characters a valid path holds and V one valid JSON value, unpadded,
// and returns what follows V.
func cutPathValue(b []byte) (pv PathValue, after []byte, ok bool) {
	rest, ok := bytes.CutPrefix(b, []byte(`{"path":"`))
	if !ok {
		return PathValue{}, nil, false
	}
	path, rest := cutPath(rest)
	if rest, ok = bytes.CutPrefix(rest, []byte(`","value":`)); !ok {
		return PathValue{}, nil, false
	}
	n := valueLen(rest)
	if n <= 0 || jsonSpace(rest[0]) || jsonSpace(rest[n-1]) || !json.Valid(rest[:n]) {
		return PathValue{}, nil, false
	}
	return PathValue{Path: string(path), Value: rest[:n:n]}, rest[n:], true
}

// valueLen is the length of the JSON value b starts with, if it is one:
// a string or a nesting of objects and arrays up to its close, else a
// scalar up to the first comma or close after it (-1: none). The caller
// checks the value it cuts with json.Valid.
func valueLen(b []byte) int {
	depth := 0
	for i := 0; i < len(b); i++ {
		switch b[i] {
		case '"':
			for i++; i < len(b) && b[i] != '"'; i++ {
				if b[i] == '\\' {
					i++
				}
			}
			if i >= len(b) {
				return -1
			}
			if depth == 0 {
				return i + 1
			}
		case '{', '[':
			depth++
		case '}', ']':
			if depth == 0 {
				return i
			}
			if depth--; depth == 0 {
				return i + 1
			}
		case ',':
			if depth == 0 {
				return i
			}
		}
	}
	return -1
}

// jsonSpace reports whether c is white space between JSON tokens.
func jsonSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' }

// cutPath cuts off the start of b the run of characters a valid path
// holds (none that a JSON string escapes): the fast decoders read such a
// path as it stands.
func cutPath(b []byte) (path, rest []byte) {
	i := 0
	for i < len(b) && pathByte(b[i]) {
		i++
	}
	return b[:i], b[i:]
}

// pathByte reports whether c may be in a path: a segment character or /.
func pathByte(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-' || c == '/'
}

// ErrorReply encodes a failed reply.
func ErrorReply(e *Error) []byte {
	return Encode(Result{Error: e})
}
