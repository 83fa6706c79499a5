// Package storage owns a node's durable protocol state: the write-ahead log
// (wal/) and the state file (state), behind the filesystem seam of package
// vfs, whose in-memory twin simulates crashes in tests.
//
// # WAL
//
// The log is a folder of segment files named after their first seq
// (%020d.seg). A segment starts with a 28-byte header: the magic
// "MSWAL002" (written in place; "MSWAL001": appended by older versions,
// still read), the (epoch, seq) of the record just before its first record
// (little endian uint64s), and the CRC-32C of those 24 bytes; so after older
// segments are dropped the log still knows what it follows. Records follow,
// each framed as
//
//	length uint32 | crc uint32 | epoch uint64 | seq uint64 | data
//
// where length counts epoch, seq and data, its top bit set on the last
// record of each Append, and crc is the CRC-32C (Castagnoli) of length and
// payload. Seqs are strictly consecutive across segments.
//
// Append writes a whole batch with one write and, under SyncAlways (the
// default), one fsync: group commit. It writes in place, over zeros: when
// its records reach the end of the file, it also writes 4 MiB of zeros
// past them (up to the segment's size), so the fsync after any other
// Append changes no file size and allocates no block. SyncNone skips
// fsync, for benchmarks only, and says so loudly at open.
//
// # Recovery
//
// OpenWAL reads every segment and checks every record and the chain of
// seqs; zeros after the last record are the segment's end. Bad bytes in
// the last segment are a torn tail if the valid records after them, if
// any, are of one Append (none but the last ends an Append): an Append
// written over zeros may reach the disk in some sectors and not others,
// and only the last Append can be unsynced. (In an older appended
// segment, only if no valid record follows them.) A torn tail is cut
// (truncated on disk) and never returned. Bad bytes anywhere else are an
// ErrCorrupt naming the file and offset; nothing is skipped. If the last
// segment is an older one, or its last record does not end an Append (a
// crash cut that Append short), appends go on in a new segment: a segment
// is only written in place from its start, and records that do not end an
// Append are never followed by another Append's in the same segment. TruncateAfter removes later segments before
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
