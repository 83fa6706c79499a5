package tree

import (
	"encoding/json"
	"fmt"
	"sort"
	"time"
)

// HistoryQuery selects versions of a path: seq after AfterSeq, commit time
// in [Since, Until] (zero times are open ends), at most Limit (capped by
// MaxPage; 0 means MaxPage).
type HistoryQuery struct {
	AfterSeq uint64
	Since    time.Time
	Until    time.Time
	Limit    int
}

// History returns a page of a path's versions, oldest first, and whether
// more match after it (page on with AfterSeq = the last seq).
func (t *Tree) History(p string, q HistoryQuery) ([]Version, bool, error) {
	lines, more, err := t.HistoryJSON(p, q)
	if err != nil {
		return nil, false, err
	}
	out := make([]Version, len(lines))
	for i, line := range lines {
		if out[i], err = decodeVersion(line); err != nil {
			return nil, false, err
		}
	}
	return out, more, nil
}

// HistoryJSON is History as the stored lines, each a JSON object with the
// fields of Version (the wire's version too), so a reply can carry them
// without decoding and encoding each. Recent versions come from memory,
// older ones from the file through the index; lines are never changed
// once stored, so the caller may keep them.
func (t *Tree) HistoryJSON(p string, q HistoryQuery) ([]json.RawMessage, bool, error) {
	if err := ValidatePath(p); err != nil {
		return nil, false, err
	}
	limit := q.Limit
	if limit <= 0 || limit > t.cfg.MaxPage {
		limit = t.cfg.MaxPage
	}
	t.mu.RLock()
	defer t.mu.RUnlock()
	ps := t.paths[p]
	if ps == nil {
		return nil, false, fmt.Errorf("%w: %s", ErrNotFound, p)
	}
	refs := ps.refs
	i, end := timeRange(refs, q.Since, q.Until)
	i = max(i, sort.Search(len(refs), func(i int) bool { return refs[i].seq > q.AfterSeq }))
	if i >= end {
		return []json.RawMessage{}, false, nil
	}
	more := end-i > limit
	end = min(end, i+limit)
	out := make([]json.RawMessage, 0, end-i)
	firstRecent := len(refs) - len(ps.recent)
	if old := min(end, firstRecent); i < old { // the older lines, one after the other in the file: one read for all
		base, last := refs[i].off(), refs[old-1]
		span := make([]byte, last.off()+last.n()-base)
		l := t.lines(p, ps)
		_, err := l.ReadAt(span, base)
		l.Close()
		if err != nil {
			return nil, false, fmt.Errorf("tree: history of %s: %w", p, err)
		}
		for _, r := range refs[i:old] {
			at := r.off() - base
			line := span[at : at+r.n() : at+r.n()]
			if !json.Valid(line) {
				return nil, false, fmt.Errorf("%w: %s: the line of seq %d", ErrCorrupt, p, r.seq)
			}
			out = append(out, line)
		}
		i = old
	}
	for k := i; k < end; k++ {
		out = append(out, ps.recent[k-firstRecent])
	}
	return out, more, nil
}
