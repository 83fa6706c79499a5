package storage

import "errors"

// Errors of the WAL and the state file, grouped by when they happen.
var (
	// ErrCorrupt means stored data failed its checksum or framing somewhere
	// other than a torn tail: the message names the file and offset. It is
	// never skipped silently.
	ErrCorrupt = errors.New("storage: corrupt data")
	// ErrBadSeq means Append was given records that do not directly follow
	// the log's end.
	ErrBadSeq = errors.New("storage: records out of sequence")
	// ErrClosed means the WAL was used after Close.
	ErrClosed = errors.New("storage: wal closed")
	// errConfig means a WALConfig failed validation.
	errConfig = errors.New("storage: invalid config")
)
