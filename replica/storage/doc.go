// Package storage owns a node's durable protocol state: the write-ahead log
// (wal/) and the state file (state), behind the filesystem seam of package
// vfs, whose in-memory twin simulates crashes in tests.
//
// # WAL
//
// The log is a folder of segment files named after their first seq
// (%020d.seg). A segment starts with a 28-byte header: the magic
// "MSWAL001", the (epoch, seq) of the record just before its first record
// (little endian uint64s), and the CRC-32C of those 24 bytes; so after older
// segments are dropped the log still knows what it follows. Records follow,
// each framed as
//
//	length uint32 | crc uint32 | epoch uint64 | seq uint64 | data
//
// where length counts epoch, seq and data, and crc is the CRC-32C
// (Castagnoli) of length and payload. Seqs are strictly consecutive across
// segments.
//
// Append writes a whole batch with one write and, under SyncAlways (the
// default), one fsync: group commit. The last segment's blocks are
// reserved 4 MiB ahead of its end (vfs.File.Allocate, which keeps the
// size), so the fsync after an append commits no block allocation. SyncNone skips fsync, for benchmarks
// only, and says so loudly at open.
//
// # Recovery
//
// OpenWAL reads every segment and checks every record and the chain of
// seqs. Bad bytes at the end of the last segment, with no valid record after
// them, are a torn tail: they are cut (truncated on disk) and never
// returned. Bad bytes anywhere else are an ErrCorrupt naming the file and
// offset; nothing is skipped. TruncateAfter removes later segments before
// truncating, so a crash leaves a prefix; Reset writes the new empty
// segment under a temporary name before removing the old ones, and OpenWAL
// finishes or discards an interrupted reset, so a crash leaves either log.
//
// # State file
//
// state holds the promised epoch as JSON plus a CRC-32C line. SaveState
// replaces it atomically: temporary file, fsync, rename, fsync of the
// folder.
package storage
