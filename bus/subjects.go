package bus

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"

	"memstore/replica/protocol"
)

// DefaultPrefix is the first token of every memstore subject.
const DefaultPrefix = "ms"

// API operations: the last token of ms.api.<op>.
const (
	OpPut     = "put"
	OpGet     = "get"
	OpHistory = "history"
	OpLs      = "ls"
	OpTree    = "tree"
	OpStatus  = "status"
	OpAgg     = "agg"
)

// HeaderUser carries the writer's name (without auth: the --user flag) from
// the client to the router, which forwards it in the batch (Forwarded).
const HeaderUser = "Ms-User"

// HeaderEventTime carries, on ms.in, the writer's own RFC 3339 time of the
// value (its event time).
const HeaderEventTime = "Ms-Event-Time"

// HeaderDeadline carries how long the client still waits, in milliseconds,
// so the router gives up (and answers) before the client does. A client
// that waits RouterWait or longer leaves it out: the router answers by
// then anyway, and the header costs every hop a parse (8% of stale
// gets/s at 16 readers).
const HeaderDeadline = "Ms-Deadline-Ms"

// RouterWait is how long the router waits for an answer to a request, its
// retries included, and a node holds a get for its min_seq, unless the
// request's HeaderDeadline says sooner: the client sends the header only
// when it gives up before that.
const RouterWait = 4 * time.Second

// Deadline reads a request's HeaderDeadline: how long its sender still
// waits; 0 if it does not say.
func Deadline(h nats.Header) time.Duration {
	if ms, err := strconv.ParseInt(h.Get(HeaderDeadline), 10, 64); err == nil && ms > 0 {
		return time.Duration(ms) * time.Millisecond
	}
	return 0
}

// HeaderReadCheck carries, on a forwarded batch of linearizable gets, the
// token of the read check the router multicast as the batch left
// (protocol.MsgReadCheck).
const HeaderReadCheck = "Ms-Read-Check"

// HeaderBatch marks, on ms.api.get.stale and ms.api.get, a batch of gets:
// the message is frames (AppendFrame) of at most MaxBatchGets get
// requests, and the reply is frames of their replies, in order
// (EncodeReplies); a reply left empty was too large to come with the
// others, so ask for it again alone. The Go client sends the gets that
// queue while one of its requests of their kind is out this way.
const HeaderBatch = "Ms-Batch"

// MaxBatchGets bounds the gets of a batch (HeaderBatch); a larger one is
// refused as bad_request.
const MaxBatchGets = 1000

// SplitGetBatch takes a batch of gets (HeaderBatch) apart: 1 to
// MaxBatchGets frames, aliasing b, or bad_request.
func SplitGetBatch(b []byte) ([][]byte, *Error) {
	gets, err := SplitFrames(b)
	if err != nil || len(gets) == 0 || len(gets) > MaxBatchGets {
		return nil, Errorf(CodeBadRequest, "a batch of gets that is not frames of 1 to %d gets", MaxBatchGets)
	}
	return gets, nil
}

// Queue groups.
const (
	// RouterQueue is the queue group the routers serve ms.api.<op> in.
	RouterQueue = "ms-router"
	// NodeQueue is the queue group the member nodes serve
	// ms.api.get.stale in.
	NodeQueue = "ms-nodes"
)

// Subjects builds subject names under a prefix.
type Subjects struct {
	Prefix string
}

// NewSubjects returns the subjects under prefix (DefaultPrefix if empty).
func NewSubjects(prefix string) Subjects {
	if prefix == "" {
		prefix = DefaultPrefix
	}
	return Subjects{Prefix: prefix}
}

// API is the subject of a public request: ms.api.<op>.
func (s Subjects) API(op string) string { return s.Prefix + ".api." + op }

// APIOps matches the public requests the router serves: ms.api.<op>, one
// token after api.
func (s Subjects) APIOps() string { return s.Prefix + ".api.*" }

// StaleGet is the subject of stale gets that the member nodes serve
// themselves, past the router: ms.api.get.stale.
func (s Subjects) StaleGet() string { return s.API(OpGet) + "." + Stale }

// In is the ingest subject of a path: ms.in.<tokens>.
func (s Subjects) In(path string) string { return s.Prefix + ".in." + PathToTokens(path) }

// InAll matches every ingest subject: ms.in.>.
func (s Subjects) InAll() string { return s.Prefix + ".in.>" }

// Ev is the subject a path's committed versions are published on.
func (s Subjects) Ev(path string) string { return s.Prefix + ".ev." + PathToTokens(path) }

// PathFromIn returns the path of an ingest subject.
func (s Subjects) PathFromIn(subject string) (string, bool) {
	rest, ok := strings.CutPrefix(subject, s.Prefix+".in.")
	if !ok || rest == "" {
		return "", false
	}
	return TokensToPath(rest), true
}

// Internal subjects (ms.sys.>): never open to users once auth is on.
//
//	ms.sys.group         node → every coordinator: status, promise, reject
//	ms.sys.all           leader, coordinator or router → every node: append, read_ping, view, read_check
//	ms.sys.to.<id>       → one node or coordinator: prepare, ack, catchup, …
//	ms.sys.snap.<id>     request → node <id>: a snapshot, chunk by chunk
//	ms.sys.fwd.<id>.<op> router → node <id>: user requests of op, in batches (Forwarded)
//	ms.sys.leave.<id>    operator → node <id> and every coordinator: take node <id> out of the group
func (s Subjects) Group() string { return s.Prefix + ".sys.group" }

// All is the multicast subject every node reads (initiate_multicast).
func (s Subjects) All() string { return s.Prefix + ".sys.all" }

// To is the subject of one node or coordinator.
func (s Subjects) To(id protocol.NodeID) string { return fmt.Sprintf("%s.sys.to.%d", s.Prefix, id) }

// Snap is the subject a node serves snapshots on.
func (s Subjects) Snap(id protocol.NodeID) string { return fmt.Sprintf("%s.sys.snap.%d", s.Prefix, id) }

// Leave is the subject that asks node <id> to leave the group gracefully;
// the coordinators hear it too, and take the node out even if it is down.
func (s Subjects) Leave(id protocol.NodeID) string {
	return fmt.Sprintf("%s.sys.leave.%d", s.Prefix, id)
}

// LeaveAll matches the Leave subject of every node.
func (s Subjects) LeaveAll() string { return s.Prefix + ".sys.leave.*" }

// LeaveID is the node a Leave subject names.
func (s Subjects) LeaveID(subject string) (protocol.NodeID, bool) {
	rest, ok := strings.CutPrefix(subject, s.Prefix+".sys.leave.")
	id, err := strconv.ParseUint(rest, 10, 64)
	return protocol.NodeID(id), ok && err == nil && id > 0
}

// Fwd is the subject a node serves forwarded user requests on; the last
// token is the API op.
func (s Subjects) Fwd(id protocol.NodeID, op string) string {
	return s.Prefix + ".sys.fwd." + strconv.FormatUint(uint64(id), 10) + "." + op // no Sprintf: one per routed request
}

// Address returns the subject a protocol message is sent on.
func (s Subjects) Address(m protocol.Message) string {
	switch m.To {
	case protocol.Multicast:
		return s.All()
	case protocol.Group:
		return s.Group()
	}
	return s.To(m.To)
}

// PathToTokens maps a valid path to subject tokens: a/b/c → a.b.c.
func PathToTokens(path string) string { return strings.ReplaceAll(path, "/", ".") }

// TokensToPath maps subject tokens back to a path: a.b.c → a/b/c.
func TokensToPath(tokens string) string { return strings.ReplaceAll(tokens, ".", "/") }
