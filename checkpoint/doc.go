// Package checkpoint owns snapshots: the file in a log directory that holds
// the state of the database embedding the log as of one log index, written
// so that a crash never leaves a partial one in force, and read back so that
// a damaged one is never taken for valid. It also offers the atomic, durable
// file replacement it is built on (WriteFile) to anyone who needs it.
//
// A database checkpoints by streaming its state into Write together with the
// index of the last record applied to it; once Write returns, the records up
// to that index may be deleted. On start it calls Load, reads the state back
// to the end, and replays the log from the next index. Neither direction
// holds the state in memory, so snapshots may be larger than RAM.
//
// # File format
//
// A snapshot file (FileName, in the log directory) is a header, the
// contents, and a trailer. Every integer is little-endian. The length and
// checksum of the contents are known only once they have been streamed, so
// they go in the trailer, found at the end of the file.
//
//	offset      size  field
//	0           8     magic "\x89JSNP\r\n\x1a"
//	8           4     version, uint32 = 1
//	12          4     flags, uint32: bit 0 = contents are a zstd stream;
//	                  the other bits are zero
//	16          8     index, uint64: the last log index the state covers (>= 1)
//	24          L     contents, as stored (L bytes)
//	24+L        8     L, uint64: stored length of the contents
//	32+L        8     N, uint64: length of the contents as written
//	                  (uncompressed; equal to L when bit 0 is clear)
//	40+L        8     contents sum: xxhash64, seed 0, of the L stored bytes
//	48+L        8     meta sum: xxhash64, seed 0, of bytes [0, 24) followed
//	                  by bytes [24+L, 48+L) (header and the trailer's
//	                  first three fields)
//	56+L        8     end magic "\x89JSND\r\n\x1a"
//
// The file is exactly L+64 bytes. Compressed contents are a zstd stream
// whose frames carry the zstd format's own checksum of the uncompressed
// bytes, with a window of at most 8 MiB (this package writes one frame with
// a 4 MiB window).
//
// The meta sum lets a reader trust the lengths, flags and index before it
// has read the contents; the contents sum covers the rest and can only be
// checked at the end. Together they bind the contents to their index and
// length, so a file cut short, extended, or spliced from two snapshots
// does not validate.
//
// # Validity
//
// A snapshot file is valid when all of the following hold, checked in this
// order; the error says which failed.
//
//  1. It is a regular file that starts with the magic (else ErrFormat:
//     a foreign file, or a directory under the snapshot's name; but
//     ErrCorrupt if it still ends with the end magic).
//  2. Its version is 1 (else ErrFormat: a newer format). Magic and
//     version keep their offsets in every version.
//  3. It is at least 64 bytes long and ends with the end magic (else
//     ErrCorrupt: truncated, torn or extended).
//  4. The meta sum matches (else ErrCorrupt).
//  5. No unknown flag is set (else ErrFormat).
//  6. L is the file's size less 64, N equals L for stored contents, and
//     the index is not 0 (else ErrCorrupt).
//  7. The contents sum matches, and compressed contents decode, within
//     the 8 MiB window, to exactly N bytes (else ErrCorrupt).
//
// Load, ReadHeader and Verify check 1 to 6 when they open the file; the
// reader Load returns checks 7 as it reaches the end of the contents, and
// Verify reads them all. Damage is reported as a *CorruptionError
// naming the file and offset.
//
// # Worked example
//
// The snapshot of index 42 whose contents are the 5 bytes "hello", stored
// uncompressed, is these 69 bytes (xxhash64("hello") = 0x26c7827d889f6da3):
//
//	89 4a 53 4e 50 0d 0a 1a  01 00 00 00 00 00 00 00   magic, version 1, flags 0
//	2a 00 00 00 00 00 00 00  68 65 6c 6c 6f            index 42, "hello"
//	05 00 00 00 00 00 00 00  05 00 00 00 00 00 00 00   L = 5, N = 5
//	a3 6d 9f 88 7d 82 c7 26  3c e2 93 c1 9e f2 bd 45   contents sum, meta sum
//	89 4a 53 4e 44 0d 0a 1a                            end magic
//
// # Replacement and leftovers
//
// Write replaces the snapshot with WriteFile: temporary file (named
// vfs.TempPrefix + "snapshot-" + a random suffix), fdatasync, rename,
// directory fsync. The rename is the commit point: before it the previous
// snapshot is in force, after it the new one. A crash before it leaves a
// temporary file. Its name starts with vfs.TempPrefix like every leftover
// the log writes, so the log's recovery removes it, with the others, when it
// next opens the directory (wal.Open, wal recover).
package checkpoint
