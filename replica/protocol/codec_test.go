package protocol

import (
	"bytes"
	"reflect"
	"testing"
)

var codecSeeds = []Message{
	{Type: MsgAppend, From: 2, To: Multicast, Epoch: 2, Prev: Point{Epoch: 1, Seq: 3}, Commit: 9, Last: Point{Epoch: 2, Seq: 5},
		Entries: []Entry{{Epoch: 2, Seq: 4, Data: []byte(`{"ts":"x"}`)}, {Epoch: 2, Seq: 5}}},
	{Type: MsgView, From: Group, View: &View{Epoch: 3, Leader: 1, Members: []NodeID{1, 2, 3}}},
	{Type: MsgStatus, From: 4, To: Group, Epoch: 1 << 63, Last: Point{Epoch: 7, Seq: 1<<64 - 1}, Commit: 5, Applied: 4, Leading: true, Leaving: true},
	{Type: MsgAck, From: 2, To: 1, Epoch: 1, Seq: 1 << 40},
}

// TestCodecRoundTrip: every field survives the wire; a message cut short
// or followed by anything is refused.
func TestCodecRoundTrip(t *testing.T) {
	for _, m := range codecSeeds {
		b, _ := m.MarshalBinary()
		var got Message
		if err := got.UnmarshalBinary(b); err != nil || !reflect.DeepEqual(got, m) {
			t.Fatalf("%v came back as %v (%v)", m, got, err)
		}
		for k := 0; k < len(b); k++ {
			if got.UnmarshalBinary(b[:k]) == nil {
				t.Fatalf("%v cut to %d of %d bytes decoded", m, k, len(b))
			}
		}
		if got.UnmarshalBinary(append(b, 0)) == nil {
			t.Fatalf("%v with a trailing byte decoded", m)
		}
	}
}

// FuzzCodec: whatever decodes encodes to bytes that decode to the same
// message.
func FuzzCodec(f *testing.F) {
	for _, m := range codecSeeds {
		b, _ := m.MarshalBinary()
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		var m Message
		if m.UnmarshalBinary(b) != nil {
			return
		}
		again, _ := m.MarshalBinary()
		var m2 Message
		if err := m2.UnmarshalBinary(again); err != nil || !reflect.DeepEqual(m, m2) {
			t.Fatalf("%v re-encoded as %x decodes to %v (%v)", m, again, m2, err)
		}
		if again2, _ := m2.MarshalBinary(); !bytes.Equal(again, again2) {
			t.Fatalf("encoding is not stable: %x then %x", again, again2)
		}
	})
}
