package tree

import (
	"errors"
	"fmt"
	"io"
	"path/filepath"

	"memstore/replica/storage/vfs"
)

// Compact applies the retention rules: for each path under a rule, versions
// beyond MaxVersions or older than MaxAge before the latest applied entry's
// ts are dropped, the latest version always kept. It depends only on the
// applied state, so every replica drops the same versions. Each file is
// rewritten atomically (temporary file, fsync, rename). It does nothing
// while a snapshot is being read.
func (t *Tree) Compact() error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.snapshots > 0 || len(t.cfg.Retention) == 0 {
		return nil
	}
	for p, ps := range t.paths {
		r, ok := t.cfg.rule(p)
		if !ok {
			continue
		}
		drop := 0
		if r.MaxVersions > 0 && len(ps.refs) > r.MaxVersions {
			drop = len(ps.refs) - r.MaxVersions
		}
		if r.MaxAge > 0 {
			cutoff := t.lastTS - r.MaxAge.Nanoseconds()
			for drop < len(ps.refs)-1 && ps.refs[drop].ts < cutoff {
				drop++
			}
		}
		if drop > 0 {
			if err := t.rewrite(p, ps, drop); err != nil {
				return err
			}
		}
	}
	return nil
}

// rewrite drops the first drop versions of a path's file. Lock should be
// held.
func (t *Tree) rewrite(p string, ps *pathState, drop int) error {
	if err := t.flush(p, ps); err != nil {
		return fmt.Errorf("tree: compact %s: %w", p, err)
	}
	name := filepath.Join(t.diskPath(p), versionsFile)
	src, err := vfs.Open(t.fs, name)
	if err != nil {
		return fmt.Errorf("tree: compact %s: %w", p, err)
	}
	keep := ps.refs[drop]
	data := make([]byte, ps.size-keep.off())
	_, err = src.ReadAt(data, keep.off())
	src.Close()
	if err != nil && !errors.Is(err, io.EOF) {
		return fmt.Errorf("tree: compact %s: %w", p, err)
	}
	t.appends.Remove(p) // the open file is about to be replaced
	if err := vfs.WriteFileAtomic(t.fs, t.diskPath(p), versionsFile, data); err != nil {
		return fmt.Errorf("tree: compact %s: %w", p, err)
	}
	refs := make([]ref, 0, len(ps.refs)-drop)
	for _, r := range ps.refs[drop:] {
		r.loc = locate(r.off()-keep.off(), r.n())
		refs = append(refs, r)
	}
	ps.refs, ps.size = refs, ps.size-keep.off()
	if len(ps.recent) > len(refs) {
		ps.recent = ps.recent[len(ps.recent)-len(refs):]
	}
	return nil
}
