package bus

import (
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
)

// The router forwards user requests to a node in batches: one message on
// ms.sys.fwd.<node>.<op> carries the requests of one op, and the node
// answers with one message carrying their replies, in the same order. A
// batch is frames (a uvarint length, then that many bytes): user and
// request for each request; a reply is one frame per reply. Under load
// this is where the router saves messages: one per batch, not per request.

// Forwarded is one user request inside a forwarded batch: who sent it and
// its ms.api payload.
type Forwarded struct {
	User string
	Data []byte
}

// EncodeForwarded encodes a batch of requests.
func EncodeForwarded(reqs []Forwarded) []byte {
	size := 0
	for _, r := range reqs {
		size += len(r.User) + len(r.Data) + 2*binary.MaxVarintLen32
	}
	b := make([]byte, 0, size)
	for _, r := range reqs {
		b = AppendFrame(b, r.User)
		b = AppendFrame(b, r.Data)
	}
	return b
}

// DecodeForwarded decodes a batch of requests; the Data alias b.
func DecodeForwarded(b []byte) ([]Forwarded, error) {
	frames, err := SplitFrames(b)
	if err == nil && len(frames)%2 != 0 {
		err = errors.New("a user without its request")
	}
	if err != nil {
		return nil, fmt.Errorf("bus: malformed forwarded batch: %w", err)
	}
	reqs := make([]Forwarded, len(frames)/2)
	for i := range reqs {
		reqs[i] = Forwarded{User: string(frames[2*i]), Data: frames[2*i+1]}
	}
	return reqs, nil
}

// EncodeReplies encodes the replies to a batch, in its order.
func EncodeReplies(reps [][]byte) []byte {
	size := 0
	for _, r := range reps {
		size += len(r) + binary.MaxVarintLen32
	}
	b := make([]byte, 0, size)
	for _, r := range reps {
		b = AppendFrame(b, r)
	}
	return b
}

// FitReplies makes the replies to a batch of gets fit in one message of
// limit bytes, encoded: the largest are left out (empty), and their
// askers ask for each alone; a lone reply too large becomes too_large.
func FitReplies(reps [][]byte, limit int) {
	size := 0
	for _, r := range reps {
		size += len(r) + binary.MaxVarintLen32
	}
	if size <= limit {
		return
	}
	if len(reps) == 1 {
		reps[0] = ErrorReply(Errorf(CodeTooLarge, "a reply of %d bytes: more than the NATS server carries", len(reps[0])))
		return
	}
	order := make([]int, len(reps))
	for i := range order {
		order[i] = i
	}
	slices.SortFunc(order, func(x, y int) int { return len(reps[y]) - len(reps[x]) })
	for _, i := range order {
		if size <= limit {
			break
		}
		size -= len(reps[i])
		reps[i] = []byte{}
	}
}

// DecodeReplies decodes the replies to a batch of n requests; they alias b.
func DecodeReplies(b []byte, n int) ([][]byte, error) {
	reps, err := SplitFrames(b)
	if err == nil && len(reps) != n {
		err = fmt.Errorf("%d replies to %d requests", len(reps), n)
	}
	if err != nil {
		return nil, fmt.Errorf("bus: malformed batch replies: %w", err)
	}
	return reps, nil
}

// AppendFrame appends p as a frame: its length as a uvarint, then its
// bytes. Forwarded batches and log commands are frames.
func AppendFrame[T ~string | ~[]byte](b []byte, p T) []byte {
	return append(binary.AppendUvarint(b, uint64(len(p))), p...)
}

// SplitFrames takes frames apart; they alias b. It counts them first, so
// the slice is allocated once (a command is split at every replica's
// apply: growing it was a tenth of a leader's allocations).
func SplitFrames(b []byte) ([][]byte, error) {
	n := 0
	for rest := b; len(rest) > 0; n++ {
		size, k := binary.Uvarint(rest)
		if k <= 0 || size > uint64(len(rest)-k) {
			return nil, errors.New("truncated frame")
		}
		rest = rest[k+int(size):]
	}
	frames := make([][]byte, n)
	for i := range frames {
		size, k := binary.Uvarint(b)
		frames[i] = b[k : k+int(size) : k+int(size)]
		b = b[k+int(size):]
	}
	return frames, nil
}
