package protocol

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// The wire encoding of a Message (ms.sys.>): the type, a flags byte
// (Leading, Leaving, a View follows), then uvarints in the order of
// Message's fields: From, To, Epoch, Prev, Last, Commit, Seq, Applied, the
// number of entries and each entry as epoch, seq, data length and data,
// and the view as epoch, leader, member count and members. A tenth of the
// cost of the JSON it replaced (the profile of issue 7: decoding appends
// was a tenth of a cluster's CPU).

const (
	flagLeading = 1 << iota
	flagLeaving
	flagView
)

// errCodec is what UnmarshalBinary returns for bytes that are not a Message.
var errCodec = errors.New("protocol: not a message")

// MarshalBinary encodes m for the wire. It never fails.
func (m Message) MarshalBinary() ([]byte, error) {
	size := 64
	for _, e := range m.Entries {
		size += 3*binary.MaxVarintLen64 + len(e.Data)
	}
	b := make([]byte, 0, size)
	var flags byte
	if m.Leading {
		flags |= flagLeading
	}
	if m.Leaving {
		flags |= flagLeaving
	}
	if m.View != nil {
		flags |= flagView
	}
	b = append(b, byte(m.Type), flags)
	for _, v := range []uint64{uint64(m.From), uint64(m.To), m.Epoch, m.Prev.Epoch, m.Prev.Seq,
		m.Last.Epoch, m.Last.Seq, m.Commit, m.Seq, m.Applied, uint64(len(m.Entries))} {
		b = binary.AppendUvarint(b, v)
	}
	for _, e := range m.Entries {
		b = binary.AppendUvarint(b, e.Epoch)
		b = binary.AppendUvarint(b, e.Seq)
		b = binary.AppendUvarint(b, uint64(len(e.Data)))
		b = append(b, e.Data...)
	}
	if m.View != nil {
		b = binary.AppendUvarint(b, m.View.Epoch)
		b = binary.AppendUvarint(b, uint64(m.View.Leader))
		b = binary.AppendUvarint(b, uint64(len(m.View.Members)))
		for _, id := range m.View.Members {
			b = binary.AppendUvarint(b, uint64(id))
		}
	}
	return b, nil
}

// UnmarshalBinary decodes what MarshalBinary encoded; the entries' data
// share b. Anything else, cut short or followed by more bytes, is an error.
func (m *Message) UnmarshalBinary(b []byte) error {
	r := reader{b: b}
	*m = Message{Type: MsgType(r.byte())}
	flags := r.byte()
	fields := []*uint64{(*uint64)(&m.From), (*uint64)(&m.To), &m.Epoch, &m.Prev.Epoch, &m.Prev.Seq,
		&m.Last.Epoch, &m.Last.Seq, &m.Commit, &m.Seq, &m.Applied}
	for _, f := range fields {
		*f = r.uvarint()
	}
	n := r.count(3) // an entry takes at least 3 bytes
	if n > 0 {
		m.Entries = make([]Entry, n)
	}
	for i := range m.Entries {
		e := &m.Entries[i]
		e.Epoch, e.Seq = r.uvarint(), r.uvarint()
		e.Data = r.bytes(r.count(1))
	}
	if flags&flagView != 0 {
		m.View = &View{Epoch: r.uvarint(), Leader: NodeID(r.uvarint())}
		m.View.Members = make([]NodeID, r.count(1))
		for i := range m.View.Members {
			m.View.Members[i] = NodeID(r.uvarint())
		}
	}
	m.Leading, m.Leaving = flags&flagLeading != 0, flags&flagLeaving != 0
	switch {
	case r.err:
		return fmt.Errorf("%w: cut short or malformed", errCodec)
	case len(r.b) != 0:
		return fmt.Errorf("%w: %d bytes after it", errCodec, len(r.b))
	case flags&^(flagLeading|flagLeaving|flagView) != 0:
		return fmt.Errorf("%w: flags %#x", errCodec, flags)
	}
	return nil
}

// reader takes a message apart; after the first error it yields zeros.
type reader struct {
	b   []byte
	err bool
}

func (r *reader) byte() byte {
	if len(r.b) == 0 {
		r.err = true
		return 0
	}
	c := r.b[0]
	r.b = r.b[1:]
	return c
}

func (r *reader) uvarint() uint64 {
	v, k := binary.Uvarint(r.b)
	if k <= 0 {
		r.err, r.b = true, nil
		return 0
	}
	r.b = r.b[k:]
	return v
}

// count reads the number of items that follow, each at least size bytes:
// more than the bytes left can hold is an error, so a forged count never
// allocates more than the message's size warrants.
func (r *reader) count(size int) int {
	n := r.uvarint()
	if n > uint64(len(r.b)/size) {
		r.err, r.b = true, nil
		return 0
	}
	return int(n)
}

func (r *reader) bytes(n int) []byte {
	if n == 0 {
		return nil
	}
	p := r.b[:n:n]
	r.b = r.b[n:]
	return p
}
