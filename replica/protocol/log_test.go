package protocol

import (
	"fmt"
	"testing"
)

// TestLogAppendAndCompact: through many appends and compactions the log
// holds exactly its entries, a slice handed out never changes, and the
// array stays within a small multiple of the live entries, so compacted
// entries (and their data) are freed.
func TestLogAppendAndCompact(t *testing.T) {
	var l raftLog
	entry := func(seq uint64) Entry { return Entry{Epoch: 1, Seq: seq, Data: []byte(fmt.Sprint(seq))} }
	type handed struct {
		es    []Entry
		first uint64
	}
	var out []handed
	seq := uint64(0)
	for round := 0; round < 200; round++ {
		for i := 0; i < 37+round%50; i++ {
			seq++
			l.append(entry(seq))
		}
		if seq > 10 {
			out = append(out, handed{l.slice(seq-10, seq), seq - 9})
		}
		if round%3 == 0 { // keep the last 100
			l.compact(max(seq, 100) - 100)
		}
		if live := len(l.entries); cap(l.entries)+l.dead > 4*max(live, 64) {
			t.Fatalf("round %d: %d live entries in an array of %d (%d dead)", round, live, cap(l.entries)+l.dead, l.dead)
		}
	}
	for i, e := range l.entries {
		if want := l.start.Seq + 1 + uint64(i); e.Seq != want || string(e.Data) != fmt.Sprint(want) {
			t.Fatalf("entry %d is seq %d %q, want %d", i, e.Seq, e.Data, want)
		}
	}
	for _, h := range out {
		for i, e := range h.es {
			if want := h.first + uint64(i); e.Seq != want || string(e.Data) != fmt.Sprint(want) {
				t.Fatalf("a slice handed out changed: seq %d %q, want %d", e.Seq, e.Data, want)
			}
		}
	}
}
