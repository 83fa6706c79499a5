package replica

import (
	"strings"
	"testing"
	"time"

	"memstore/bus"
	"memstore/replica/protocol"
)

// TestDeposedLeaderAnswersDuplicate: a leader takes a keyed put and the
// same put again (a router's resend), is deposed before either commits,
// and applies both as a follower once the next leader commits them. The
// second is a duplicate of the first, and its writer is told so, with the
// first's seq, as a leader would tell it.
func TestDeposedLeaderAnswersDuplicate(t *testing.T) {
	s := startStaleNode(t)
	all, err := s.nc.SubscribeSync(s.sub.All())
	if err != nil {
		t.Fatal(err)
	}
	send := func(m protocol.Message) {
		b, _ := m.MarshalBinary()
		if err := s.nc.Publish(s.sub.To(1), b); err != nil {
			t.Fatal(err)
		}
	}
	appended := func(seq uint64) { // node 1 multicasts an append holding seq
		t.Helper()
		for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); {
			m, err := all.NextMsg(time.Until(deadline))
			if err != nil {
				break
			}
			var a protocol.Message
			if a.UnmarshalBinary(m.Data) == nil && a.Type == protocol.MsgAppend && a.From == 1 &&
				len(a.Entries) > 0 && a.Entries[len(a.Entries)-1].Seq >= seq {
				return
			}
		}
		t.Fatalf("node 1 multicast no append up to seq %d", seq)
	}
	s.view(protocol.View{Epoch: 1, Leader: 1, Members: []protocol.NodeID{1, 2}})
	appended(1) // the epoch's no-op
	send(protocol.Message{Type: protocol.MsgAck, From: 2, To: 1, Epoch: 1, Seq: 1})

	put := func() <-chan string {
		return s.forward(bus.OpPut, `{"path":"a","value":1,"source":"s","source_seq":1}`)
	}
	first := put()
	appended(2)
	again := put()
	appended(3) // both wait for node 2's ack, which never comes

	s.view(protocol.View{Epoch: 2, Leader: 2, Members: []protocol.NodeID{1, 2}})
	send(protocol.Message{Type: protocol.MsgAppend, From: 2, To: 1, Epoch: 2, Prev: protocol.Point{Epoch: 1, Seq: 3},
		Entries: []protocol.Entry{{Epoch: 2, Seq: 4}}, Commit: 4, Last: protocol.Point{Epoch: 2, Seq: 4}})
	if got := <-first; !strings.Contains(got, `"seq":2`) || strings.Contains(got, "duplicate") {
		t.Errorf("the first put: %s, want seq 2", got)
	}
	if got := <-again; !strings.Contains(got, `"duplicate":true`) || !strings.Contains(got, `"seq":2`) {
		t.Errorf("the put sent again: %s, want a duplicate of seq 2", got)
	}
}
