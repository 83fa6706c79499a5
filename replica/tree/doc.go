// Package tree owns a node's state machine: every path's versions, in an
// in-memory index and on disk as a folder tree under <data>/tree.
//
// # On disk
//
//	tree/applied.json                  {"epoch","seq","ts"}: the checkpointed applied point
//	tree/plant1/line3/temp/versions.jsonl
//	                                   one JSON line per version: {"seq","ts","user","value"}
//
// A path's folder mirrors the path; its versions.jsonl is append-only and
// human readable (cat shows a path's history). Every name the tree itself
// uses holds a dot, which a path segment never does, so names cannot
// collide. ValidatePath is the single gate for paths; folders are created
// one by one and a component that is a symlink or not a folder is refused
// (ErrUnsafe), so nothing can be written outside tree/. Folders are 0700,
// files 0600.
//
// # Writes, checkpoints and crash replay
//
// Apply (write_to_file) appends one line per put to the path's pending
// lines; it is idempotent by seq per path. Pending lines are written to the
// file at the next checkpoint, or once flushAbove bytes gather, and reads
// see them as if written. Files are not fsynced per apply: the WAL is the
// source of truth. Checkpoint writes the pending lines, fsyncs every
// written file and new folder, then replaces applied.json atomically; a
// driver that must not wait for the fsyncs splits it into StartCheckpoint
// (under the lock) and Finish (beside the applies). After a crash, Open (read_from_file) reads every
// file back, cuts a torn or garbage last line, and reports the checkpointed
// point (AppliedPoint); the driver replays the WAL after it, and versions
// already present are skipped by seq. A bad line before the last one is
// ErrCorrupt, never skipped.
//
// # Memory
//
// Each path keeps its last RecentVersions encoded lines in memory and, for
// every version, a 24-byte reference (seq, ts, file offset, length); older
// versions are read from the file, so RAM stays bounded while the whole
// history stays readable, by seq or by time.
//
// # Snapshots and retention
//
// Snapshot streams the tree at its applied point in chunks under
// MaxChunkBytes; it copies the index when it starts and the files are
// append-only, so it stays consistent while applies go on (an Install
// ends it: ErrReplaced). An Installer
// writes a received stream into tree.new; Install fsyncs it, writes its
// marker last, and swaps it in by renames, which Open finishes or undoes
// after a crash: never half a snapshot, never a mix. Compact applies the
// retention rules (max versions, max age before the latest applied ts), the
// same on every replica, and waits while a snapshot is read.
package tree
