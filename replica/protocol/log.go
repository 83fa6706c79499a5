package protocol

import "fmt"

// raftLog is the in-memory log: the entries after start, which is the last
// position compacted away (covered by a snapshot) or the zero Point.
//
// The entries' array is never changed below len(entries) except by a
// truncation's appends (slices handed out stay as they were), and is
// copied seldom: appends double it when full, and a compaction only moves
// entries' start forward, leaving dead the entries before it, until they
// outnumber the live ones and the live ones move to a new array. A
// compaction that copied the live entries, and appends that grew the
// array by a quarter, were a tenth of a node's allocations at 64 writers
// (the profile of issue 7).
type raftLog struct {
	start   Point
	entries []Entry // entries[i].Seq == start.Seq+1+i
	dead    int     // compacted entries before entries in its array
}

func (l *raftLog) last() Point {
	if n := len(l.entries); n > 0 {
		return Point{l.entries[n-1].Epoch, l.entries[n-1].Seq}
	}
	return l.start
}

func (l *raftLog) lastSeq() uint64 { return l.last().Seq }

// term returns the epoch of the entry at seq and whether it is known: seqs
// below start are compacted and unknown.
func (l *raftLog) term(seq uint64) (uint64, bool) {
	switch {
	case seq == l.start.Seq:
		return l.start.Epoch, true
	case seq < l.start.Seq || seq > l.lastSeq():
		return 0, false
	}
	return l.entries[seq-l.start.Seq-1].Epoch, true
}

// has reports whether the log holds the entry at p.
func (l *raftLog) has(p Point) bool {
	e, ok := l.term(p.Seq)
	return ok && e == p.Epoch
}

func (l *raftLog) point(seq uint64) (Point, bool) {
	e, ok := l.term(seq)
	return Point{e, seq}, ok
}

// slice returns the entries in (after, upto], which must be held.
func (l *raftLog) slice(after, upto uint64) []Entry {
	if after < l.start.Seq || upto > l.lastSeq() || after > upto {
		panic(fmt.Sprintf("protocol: slice (%d,%d] outside log (%d,%d]", after, upto, l.start.Seq, l.lastSeq()))
	}
	return l.entries[after-l.start.Seq : upto-l.start.Seq]
}

// append adds entries that directly follow the log's end.
func (l *raftLog) append(es ...Entry) {
	for _, e := range es {
		if e.Seq != l.lastSeq()+1 {
			panic(fmt.Sprintf("protocol: append seq %d after %d", e.Seq, l.lastSeq()))
		}
		if len(l.entries) == cap(l.entries) {
			l.moveTo(make([]Entry, len(l.entries), max(2*len(l.entries), 64)))
		}
		l.entries = append(l.entries, e)
	}
}

// moveTo copies the live entries to the front of a, which becomes the array.
func (l *raftLog) moveTo(a []Entry) {
	copy(a, l.entries)
	l.entries, l.dead = a[:len(l.entries)], 0
}

// truncateAfter drops every entry above seq.
func (l *raftLog) truncateAfter(seq uint64) {
	if seq < l.start.Seq {
		panic(fmt.Sprintf("protocol: truncate after %d below start %d", seq, l.start.Seq))
	}
	if seq < l.lastSeq() {
		l.entries = l.entries[:seq-l.start.Seq]
	}
}

// compact forgets the entries up to seq, which must be held.
func (l *raftLog) compact(seq uint64) {
	p, ok := l.point(seq)
	if !ok || seq <= l.start.Seq {
		return
	}
	k := int(seq - l.start.Seq)
	l.entries, l.dead = l.entries[k:], l.dead+k
	if l.dead > len(l.entries) { // mostly dead: the live ones move, the rest is freed
		l.moveTo(make([]Entry, len(l.entries), 2*len(l.entries)))
	}
	l.start = p
}

// reset makes the log empty, starting after p.
func (l *raftLog) reset(p Point) {
	l.start = p
	l.entries, l.dead = nil, 0
}
