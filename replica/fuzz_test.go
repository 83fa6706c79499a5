package replica

import (
	"bytes"
	"encoding/json"
	"testing"

	"memstore/replica/protocol"
)

// FuzzProtocolMessage feeds arbitrary bytes, decoded as a node decodes
// what arrives on ms.sys.>, to a protocol node that holds a log: a forged
// or garbled message must never crash it.
func FuzzProtocolMessage(f *testing.F) {
	for _, m := range []protocol.Message{
		{Type: protocol.MsgAppend, From: 2, To: 1, Epoch: 2, Prev: protocol.Point{Epoch: 1, Seq: 3}, Commit: 9,
			Entries: []protocol.Entry{{Epoch: 2, Seq: 4, Data: []byte(`{"ts":"x"}`)}}},
		{Type: protocol.MsgAppend, From: 2, To: 1, Epoch: 1, Prev: protocol.Point{Epoch: 9, Seq: 1 << 62}},
		{Type: protocol.MsgPrepare, From: 1000, To: 1, Epoch: 5},
		{Type: protocol.MsgView, From: 1000, View: &protocol.View{Epoch: 3, Leader: 1, Members: []protocol.NodeID{1, 2, 3}}},
		{Type: protocol.MsgAck, From: 2, To: 1, Epoch: 1, Seq: 1 << 40},
		{Type: protocol.MsgCatchUp, From: 2, To: 1, Epoch: 1, Last: protocol.Point{Epoch: 7, Seq: 2}, Commit: 100},
		{Type: protocol.MsgReadPing, From: 2, Epoch: 1, Seq: 3},
		{Type: protocol.MsgSnapshotNeeded, From: 2, To: 1, Epoch: 1, Seq: 2},
	} {
		b, _ := m.MarshalBinary()
		f.Add(b)
	}
	f.Add([]byte{250, 0})
	f.Fuzz(func(t *testing.T, data []byte) {
		var msg protocol.Message
		if msg.UnmarshalBinary(data) != nil {
			return
		}
		restart := protocol.Restart{State: protocol.HardState{Epoch: 1}, Applied: 2}
		for seq := uint64(1); seq <= 3; seq++ {
			restart.Entries = append(restart.Entries, protocol.Entry{Epoch: 1, Seq: seq, Data: []byte(`{}`)})
		}
		n, err := protocol.NewNode(protocol.DefaultConfig(1), restart)
		if err != nil {
			t.Fatal(err)
		}
		n.Step(msg)
		for i := 0; i < 3; i++ {
			rd := n.Ready()
			if rd.Write != nil {
				n.DiskDone(rd.Write.ID)
			}
			n.Tick()
			n.Step(msg)
		}
	})
}

// FuzzMarshalled: a valid JSON value that marshalled says json.Marshal
// leaves as it is, it does: a leader stores such a value as it came.
func FuzzMarshalled(f *testing.F) {
	for _, seed := range []string{`"0000"`, `{"a":[1,2.5e3,-0,true,null]}`, `"\u00e9é"`, `"\xff"`, `"a b"`, `{ "a":1}`,
		`"<&>"`, "\"\u2028\"", `"\u2028"`, `"€"`, `"\t"`, `"\"\\/"`, `1E+2`} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, v []byte) {
		if !json.Valid(v) || !marshalled(v) {
			return
		}
		if m, err := json.Marshal(json.RawMessage(v)); err != nil || !bytes.Equal(m, v) {
			t.Fatalf("%q: json.Marshal gives %q (%v)", v, m, err)
		}
	})
}
