package tree

import (
	"fmt"
	"strings"
)

// Path limits of DESIGN.md.
const (
	MaxSegments   = 16
	MaxSegmentLen = 64
	MaxPathLen    = 255
)

// ValidatePath is the single gate every path goes through before it reaches
// the log or the disk: 1 to 16 segments joined by "/", each 1 to 64
// characters of [A-Za-z0-9_-], 255 bytes at most. So a path can never name
// anything outside tree/ ("." and ".." are not segments) nor collide with
// the files the tree keeps (their names hold a dot).
func ValidatePath(p string) error {
	if p == "" {
		return fmt.Errorf("%w: empty path", ErrBadPath)
	}
	if len(p) > MaxPathLen {
		return fmt.Errorf("%w: %d bytes, at most %d", ErrBadPath, len(p), MaxPathLen)
	}
	segs := strings.Split(p, "/")
	if len(segs) > MaxSegments {
		return fmt.Errorf("%w: %d segments, at most %d", ErrBadPath, len(segs), MaxSegments)
	}
	for i, s := range segs {
		if s == "" {
			return fmt.Errorf("%w: %q has an empty segment (leading, trailing or double /)", ErrBadPath, p)
		}
		if len(s) > MaxSegmentLen {
			return fmt.Errorf("%w: segment %d is %d characters, at most %d", ErrBadPath, i+1, len(s), MaxSegmentLen)
		}
		for _, c := range s {
			if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-') {
				return fmt.Errorf("%w: %q holds %q; segments use only A-Z a-z 0-9 _ -", ErrBadPath, p, c)
			}
		}
	}
	return nil
}

// ValidateFolder accepts what ValidatePath accepts, and "" for the root: the
// argument of ls and tree.
func ValidateFolder(p string) error {
	if p == "" {
		return nil
	}
	return ValidatePath(p)
}
