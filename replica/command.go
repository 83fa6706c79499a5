package replica

import (
	"bytes"
	"encoding/json"
	"time"

	"memstore/bus"
	"memstore/replica/tree"
)

// command is the data of one log entry: a put or a batch of puts, with the
// commit time the leader gave it and the writer.
type command struct {
	TS     string          `json:"ts"`
	User   string          `json:"user"`
	Puts   []bus.PathValue `json:"puts"`
	Src    string          `json:"src,omitempty"`     // deduplication key: source
	SrcSeq uint64          `json:"src_seq,omitempty"` // and its sequence
}

func (c command) treePuts() []tree.Put {
	out := make([]tree.Put, len(c.Puts))
	for i, p := range c.Puts {
		out[i] = tree.Put{Path: p.Path, Value: p.Value, EventTS: p.EventTS}
	}
	return out
}

// commandTS reads the commit time of an entry's command; zero for a no-op.
// The command's encoding starts with its ts, so the common case needs no
// full decode.
func commandTS(data []byte) time.Time {
	if len(data) == 0 {
		return time.Time{}
	}
	if rest, ok := bytes.CutPrefix(data, []byte(`{"ts":"`)); ok {
		if end := bytes.IndexByte(rest, '"'); end > 0 {
			if t, err := time.Parse(time.RFC3339Nano, string(rest[:end])); err == nil {
				return t
			}
		}
	}
	var c command
	if json.Unmarshal(data, &c) != nil {
		return time.Time{}
	}
	t, _ := time.Parse(time.RFC3339Nano, c.TS)
	return t
}
