package replica

import (
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
		out[i] = tree.Put{Path: p.Path, Value: p.Value}
	}
	return out
}
