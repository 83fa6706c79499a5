package replica

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"memstore/bus"
	"memstore/replica/tree"
)

// command is the data of one log entry: a put or a batch of puts, with the
// commit time the leader gave it and the writer.
type command struct {
	TS     string          `json:"ts"`
	User   string          `json:"user"`
	Puts   []bus.PathValue `json:"puts"`              // values compact JSON, as the versions files store them
	Src    string          `json:"src,omitempty"`     // deduplication key: source
	SrcSeq uint64          `json:"src_seq,omitempty"` // and its sequence
}

// commandBinary starts a command in its binary encoding: frames
// (bus.AppendFrame) of the ts, the user, the source, the source's sequence
// (a uvarint), then the path, event_ts and value of each put. Every replica
// decodes every command it applies, and as JSON that was a tenth of a
// node's CPU at 64 writers (the profile of issue 7). Logs written before
// hold JSON commands, which start with '{'; they are still read.
const commandBinary = 0x01

// encode encodes c in the binary encoding.
func (c command) encode() []byte {
	size := 1 + 4*binary.MaxVarintLen32 + len(c.TS) + len(c.User) + len(c.Src)
	for _, p := range c.Puts {
		size += 3*binary.MaxVarintLen32 + len(p.Path) + len(p.EventTS) + len(p.Value)
	}
	b := append(make([]byte, 0, size), commandBinary)
	b = bus.AppendFrame(b, c.TS)
	b = bus.AppendFrame(b, c.User)
	b = bus.AppendFrame(b, c.Src)
	b = bus.AppendFrame(b, binary.AppendUvarint(nil, c.SrcSeq))
	for _, p := range c.Puts {
		b = bus.AppendFrame(b, p.Path)
		b = bus.AppendFrame(b, p.EventTS)
		b = bus.AppendFrame(b, p.Value)
	}
	return b
}

var errCommand = errors.New("replica: undecodable committed entry")

// decodeCommand decodes an entry's command, binary or JSON; the values of
// a binary one alias data.
func decodeCommand(data []byte) (command, error) {
	var c command
	if len(data) > 0 && data[0] == '{' {
		if err := json.Unmarshal(data, &c); err != nil {
			return command{}, fmt.Errorf("%w: %v", errCommand, err)
		}
		return c, nil
	}
	if len(data) == 0 || data[0] != commandBinary {
		return command{}, fmt.Errorf("%w: unknown encoding", errCommand)
	}
	f, err := bus.SplitFrames(data[1:])
	if err != nil || len(f) < 4 || (len(f)-4)%3 != 0 {
		return command{}, fmt.Errorf("%w: malformed (%v)", errCommand, err)
	}
	srcSeq, k := binary.Uvarint(f[3])
	if k != len(f[3]) {
		return command{}, fmt.Errorf("%w: malformed source sequence", errCommand)
	}
	c = command{TS: string(f[0]), User: string(f[1]), Src: string(f[2]), SrcSeq: srcSeq,
		Puts: make([]bus.PathValue, (len(f)-4)/3)}
	for i := range c.Puts {
		p := f[4+3*i:]
		c.Puts[i] = bus.PathValue{Path: string(p[0]), EventTS: string(p[1]), Value: p[2]}
	}
	return c, nil
}

func (c command) treePuts() []tree.Put {
	out := make([]tree.Put, len(c.Puts))
	for i, p := range c.Puts {
		out[i] = tree.Put{Path: p.Path, Value: p.Value, EventTS: p.EventTS}
	}
	return out
}

// commandTS reads the commit time of an entry's command; zero for a no-op
// or an undecodable command. Both encodings start with the ts, so the
// common case needs no full decode.
func commandTS(data []byte) time.Time {
	var ts []byte
	switch {
	case len(data) > 1 && data[0] == commandBinary:
		if n, k := binary.Uvarint(data[1:]); k > 0 && n <= uint64(len(data)-1-k) {
			ts = data[1+k : 1+k+int(n)]
		}
	case len(data) > 0:
		if c, err := decodeCommand(data); err == nil {
			ts = []byte(c.TS)
		}
	}
	t, _ := time.Parse(time.RFC3339Nano, string(ts))
	return t
}
