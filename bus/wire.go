package bus

import (
	"encoding/json"
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

// PathValue is one write of a batch.
type PathValue struct {
	Path  string          `json:"path"`
	Value json.RawMessage `json:"value"`
}

// PutRequest is ms.api.put: one path and value, or a batch in Values.
// Source and SourceSeq, if given, key the write: the store writes a key at
// most once, so a client can resend after a timeout or a restart without
// writing twice (sequences of a source must increase).
type PutRequest struct {
	Path      string          `json:"path,omitempty"`
	Value     json.RawMessage `json:"value,omitempty"`
	Values    []PathValue     `json:"values,omitempty"`
	Source    string          `json:"source,omitempty"`
	SourceSeq uint64          `json:"source_seq,omitempty"`
}

// PutReply answers a put once it is committed. Duplicate says the key was
// already written: Seq and TS are then those of the source's last write.
type PutReply struct {
	Result
	Seq       uint64 `json:"seq,omitempty"`
	TS        string `json:"ts,omitempty"`
	Duplicate bool   `json:"duplicate,omitempty"`
}

// GetRequest is ms.api.get.
type GetRequest struct {
	Path        string `json:"path"`
	Consistency string `json:"consistency,omitempty"`
	MinSeq      uint64 `json:"min_seq,omitempty"`
}

// Version is one stored version of a path.
type Version struct {
	Seq   uint64          `json:"seq"`
	TS    string          `json:"ts"`
	User  string          `json:"user"`
	Value json.RawMessage `json:"value"`
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

// TreeRequest is ms.api.tree.
type TreeRequest struct {
	Path  string `json:"path"`
	Limit int    `json:"limit,omitempty"`
}

// PathVersion is the latest version of one path.
type PathVersion struct {
	Path string `json:"path"`
	Version
}

// TreeReply holds the latest version of every path under the asked one.
type TreeReply struct {
	Result
	Values []PathVersion `json:"values"`
	More   bool          `json:"more"`
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
func Decode(data []byte, v any) *Error {
	if err := json.Unmarshal(data, v); err != nil {
		return Errorf(CodeBadRequest, "malformed %T: %v", v, err)
	}
	return nil
}

// ErrorReply encodes a failed reply.
func ErrorReply(e *Error) []byte {
	return Encode(Result{Error: e})
}
