package tree

import (
	"fmt"
	"strings"
	"time"
)

// Config tunes a Tree.
type Config struct {
	// RecentVersions is how many of each path's latest versions are kept in
	// memory; older ones are read from the file. Default 64.
	RecentVersions int
	// MaxPage is the most versions (history) or paths (subtree) one read
	// returns. Default 1000.
	MaxPage int
	// Retention limits history per path prefix; the longest matching prefix
	// wins. Default: none, keep everything.
	Retention []Rule
}

// Rule limits the history of the paths under Prefix ("" is every path).
// Zero means no limit.
type Rule struct {
	Prefix      string
	MaxVersions int
	// MaxAge drops versions older than this before the ts of the latest
	// applied entry (never the wall clock, so every replica drops the same).
	MaxAge time.Duration
}

// DefaultConfig returns the defaults.
func DefaultConfig() Config {
	return Config{RecentVersions: 64, MaxPage: 1000}
}

func (c Config) validate() error {
	if c.RecentVersions < 1 || c.MaxPage < 1 {
		return fmt.Errorf("%w: RecentVersions and MaxPage must be at least 1", errConfig)
	}
	for _, r := range c.Retention {
		if err := ValidateFolder(r.Prefix); err != nil || r.MaxVersions < 0 || r.MaxAge < 0 {
			return fmt.Errorf("%w: retention rule %+v", errConfig, r)
		}
	}
	return nil
}

// rule returns the retention rule of a path, if any.
func (c Config) rule(path string) (Rule, bool) {
	best, found := Rule{}, false
	for _, r := range c.Retention {
		if (r.Prefix == "" || path == r.Prefix || strings.HasPrefix(path, r.Prefix+"/")) &&
			(!found || len(r.Prefix) > len(best.Prefix)) {
			best, found = r, true
		}
	}
	return best, found
}
