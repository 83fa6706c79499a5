package bus

import (
	"encoding/binary"
	"errors"
)

// OpPuts is the last token of ms.sys.fwd.<id>.puts: the router forwards
// the puts bound for one node together, as one message of frames
// (user, request, user, request, …), and the node answers with one
// message of frames, a reply per put, in the same order.
const OpPuts = "puts"

// PackFrames joins byte strings into one message: each is preceded by its
// length as a uvarint. The internal batches of forwarded puts use it; a
// binary framing costs nothing to build or split, unlike JSON.
func PackFrames(frames [][]byte) []byte {
	size := 0
	for _, f := range frames {
		size += binary.MaxVarintLen32 + len(f)
	}
	out := make([]byte, 0, size)
	for _, f := range frames {
		out = binary.AppendUvarint(out, uint64(len(f)))
		out = append(out, f...)
	}
	return out
}

// ErrBadFrames means a message is not a whole sequence of frames.
var ErrBadFrames = errors.New("bus: malformed frames")

// UnpackFrames splits a message made by PackFrames. The frames share the
// message's memory.
func UnpackFrames(b []byte) ([][]byte, error) {
	var frames [][]byte
	for len(b) > 0 {
		n, w := binary.Uvarint(b)
		if w <= 0 || n > uint64(len(b)-w) {
			return nil, ErrBadFrames
		}
		frames = append(frames, b[w:w+int(n)])
		b = b[w+int(n):]
	}
	return frames, nil
}
