package tree

import "errors"

// Errors of the tree.
var (
	// ErrBadPath means a path broke the rules of ValidatePath; nothing was
	// written.
	ErrBadPath = errors.New("tree: bad path")
	// ErrNotFound means the path holds no value.
	ErrNotFound = errors.New("tree: not found")
	// ErrCorrupt means a versions file or marker is damaged other than by a
	// torn last line; the message names the file.
	ErrCorrupt = errors.New("tree: corrupt data")
	// ErrUnsafe means a folder on the way to a path is a symlink or not a
	// folder: someone planted it; nothing is written through it.
	ErrUnsafe = errors.New("tree: unsafe folder")
	// ErrTooLarge means an answer would pass a bound (MaxBuckets).
	ErrTooLarge = errors.New("tree: answer too large")
	// ErrReplaced means a snapshot cannot go on: its tree has installed
	// another since it started.
	ErrReplaced = errors.New("tree: replaced by an installed snapshot")
	// errConfig means a Config failed validation.
	errConfig = errors.New("tree: invalid config")
)
