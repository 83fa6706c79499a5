package query

import (
	"context"
	"fmt"
	"sync"
	"time"

	"memstore/bus"
	"memstore/client"
)

// FollowConfig says where following starts and how often it checks for
// versions whose events were missed.
type FollowConfig struct {
	// AfterSeq, if above 0, resumes after this seq: every version of the
	// subtree committed after it is printed. At 0 the latest version of
	// each path is printed first, then the new ones.
	AfterSeq uint64
	// Resync is how often the subtree is read to find versions whose
	// events were all missed (a leader that failed before sending them).
	// Default 2 s.
	Resync time.Duration
}

// Follow calls fn for every version of path and the paths under it, each
// exactly once and in seq order per path, until ctx ends or fn fails. It
// watches events; an event whose prev_seq is not the last one seen reveals
// a gap, which a history read fills, and a regular read of the subtree
// finds paths whose latest events never came. So nothing is missed or
// repeated across reconnects and leader changes.
func Follow(ctx context.Context, cl *client.Client, path string, cfg FollowConfig, fn func(Row) error) error {
	if cfg.Resync <= 0 {
		cfg.Resync = 2 * time.Second
	}
	var wg sync.WaitGroup
	defer wg.Wait() // after cancel, which ends the watches
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	events := make(chan bus.Event, 4096)
	patterns := []string{">"}
	if path != "" {
		patterns = []string{path, path + "/>"}
	}
	watchErr := make(chan error, len(patterns))
	for _, p := range patterns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			watchErr <- cl.Watch(ctx, p, func(ev bus.Event) {
				select {
				case events <- ev:
				case <-ctx.Done():
				}
			})
		}()
	}
	f := follower{cl: cl, path: path, base: cfg.AfterSeq, seen: map[string]uint64{}, fn: fn}
	if err := f.resync(ctx, cfg.AfterSeq == 0); err != nil {
		return err
	}
	tick := time.NewTicker(cfg.Resync)
	defer tick.Stop()
	for {
		var err error
		select {
		case <-ctx.Done():
			return nil
		case err = <-watchErr:
			if err == nil {
				return nil
			}
		case ev := <-events:
			err = f.event(ctx, ev)
		case <-tick.C:
			err = f.resync(ctx, false)
		}
		if err != nil && ctx.Err() == nil {
			return err
		}
	}
}

type follower struct {
	cl   *client.Client
	path string
	base uint64            // versions at or below it are not printed
	seen map[string]uint64 // path → last seq printed
	fn   func(Row) error
}

func (f *follower) known(p string) uint64 {
	return max(f.seen[p], f.base)
}

func (f *follower) emit(r Row) error {
	if r.Seq <= f.known(r.Path) {
		return nil
	}
	f.seen[r.Path] = r.Seq
	return f.fn(r)
}

// event prints an event, first filling the gap before it if there is one.
func (f *follower) event(ctx context.Context, ev bus.Event) error {
	if ev.Seq <= f.known(ev.Path) {
		return nil
	}
	if ev.PrevSeq > f.known(ev.Path) {
		if err := f.fill(ctx, ev.Path); err != nil {
			return err
		}
	}
	return f.emit(Row{Path: ev.Path, Version: ev.Version})
}

// fill prints a path's versions after the last one seen, from history.
func (f *follower) fill(ctx context.Context, p string) error {
	err := f.cl.Versions(ctx, bus.HistoryRequest{Path: p, AfterSeq: f.known(p)}, func(v bus.Version) error {
		return f.emit(Row{Path: p, Version: v})
	})
	if err != nil {
		return fmt.Errorf("query: follow %s: %w", p, err)
	}
	return nil
}

// resync reads the latest version of every path and fills each path that
// is behind. The first time, without AfterSeq, it prints the latest
// versions and starts from them. A path not written yet has none.
func (f *follower) resync(ctx context.Context, first bool) error {
	var latest []bus.PathVersion
	err := f.cl.Subtree(ctx, bus.TreeRequest{Path: f.path}, func(pv bus.PathVersion) error {
		latest = append(latest, pv)
		return nil
	})
	if err != nil && !bus.HasCode(err, bus.CodeNotFound) {
		return fmt.Errorf("query: follow %s: %w", f.path, err)
	}
	for _, pv := range latest {
		switch {
		case first:
			if err := f.emit(Row{Path: pv.Path, Version: pv.Version}); err != nil {
				return err
			}
		case pv.Seq > f.known(pv.Path):
			if err := f.fill(ctx, pv.Path); err != nil {
				return err
			}
		}
	}
	if first {
		for _, pv := range latest {
			f.base = max(f.base, pv.Seq)
		}
	}
	return nil
}
