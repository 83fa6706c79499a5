package tree

import (
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"sort"
	"time"

	"memstore/replica/storage/vfs"
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
// more match after it (page on with AfterSeq = the last seq). Recent
// versions come from memory, older ones from the file through the index.
func (t *Tree) History(p string, q HistoryQuery) ([]Version, bool, error) {
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
	i := sort.Search(len(refs), func(i int) bool { return refs[i].seq > q.AfterSeq })
	if !q.Since.IsZero() {
		since := q.Since.UnixNano()
		i = max(i, sort.Search(len(refs), func(i int) bool { return refs[i].ts >= since }))
	}
	end := len(refs)
	if !q.Until.IsZero() {
		until := q.Until.UnixNano()
		end = sort.Search(len(refs), func(i int) bool { return refs[i].ts > until })
	}
	if i >= end {
		return []Version{}, false, nil
	}
	more := end-i > limit
	end = min(end, i+limit)
	out := make([]Version, 0, end-i)
	firstRecent := len(refs) - len(ps.recent)
	var f vfs.File
	defer func() {
		if f != nil {
			f.Close()
		}
	}()
	for k := i; k < end; k++ {
		var line []byte
		if k >= firstRecent {
			line = ps.recent[k-firstRecent]
		} else {
			if f == nil {
				var err error
				if f, err = vfs.Open(t.fs, filepath.Join(t.diskPath(p), versionsFile)); err != nil {
					return nil, false, fmt.Errorf("tree: open history of %s: %w", p, err)
				}
			}
			line = make([]byte, refs[k].n())
			if _, err := f.ReadAt(line, refs[k].off()); err != nil && !errors.Is(err, io.EOF) {
				return nil, false, fmt.Errorf("tree: read history of %s: %w", p, err)
			}
		}
		v, err := decodeVersion(line)
		if err != nil {
			return nil, false, err
		}
		out = append(out, v)
	}
	return out, more, nil
}
