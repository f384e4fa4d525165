// Package segment owns the on-disk format of one segment file of the log: it
// encodes and checks the segment header, record frames and the footer that
// seals a segment, compresses and decompresses payloads, scans a segment frame
// by frame, examines the bytes after the point where a scan stopped, and
// creates and seals segment files durably. It decides nothing about what
// damage means for the log as a whole: package recovery does, from what this
// package reports.
//
// The rest of this comment is the format, complete enough to write a decoder
// from.
//
// # Files
//
// A log is a directory of segments. Each segment holds records with
// consecutive indexes, starting at the index its header names; the next
// segment continues where the previous one ends. A segment file is named
// after its first index, written as 20 decimal digits with leading zeros,
// followed by ".wal", so names sort in log order: the segment whose first
// record is 1 is 00000000000000000001.wal (see Name and ParseName). Create
// writes a new segment under a temporary name (".tmp-" followed by the final
// name), preallocates it, fsyncs it, renames it into place and fsyncs the
// directory, so a file under a segment name always has a durable header.
// A log may instead prepare the file ahead of time, under the temporary
// name ".tmp-spare" (CreateSpare: preallocated), then write and
// sync its header (Stamp) and rename it into place and sync the directory
// (Install) when it needs the segment: the same guarantee. A log's Close
// seals its newest segment after the sync frame that ends its data, and
// the next Open lifts that footer (Unseal) to append there again; nothing
// in the format changes.
// Writers keep a segment below MaxSegmentSize, so that record offsets fit
// the footer's 32-bit entries.
//
// # Layout
//
// Every integer is little-endian and unsigned. Offsets are in bytes from the
// start of the file. The file is divided into sectors of SectorSize (512)
// bytes. The header has the first sector to itself; frames start at
// DataStart (512), each at a multiple of 8. A sealed segment ends with a
// footer frame, at a sector boundary, and a 16-byte trailer:
//
//	0        40       512                                   F               size
//	+--------+--------+---------+-----+---------+- - - -+  +--------------+---------+
//	| header | zeros  | frame 1 | ... | frame k | zeros |  | footer frame | trailer |
//	+--------+--------+---------+-----+---------+- - - -+  +--------------+---------+
//	 sector 0          sectors filled by writes             only when sealed
//
// Records are written in writes: each write starts at a sector boundary and
// holds one or more complete batches of frames, one right after the other,
// followed by zeros up to the next sector boundary. So a torn write never
// damages a sector that an earlier write made durable, even where a disk
// tears a whole sector.
//
// # Segment header
//
//	0         8         12        16            24            32            40
//	+---------+---------+---------+-------------+-------------+-------------+
//	| magic   | version | flags   | first index | salt        | checksum    |
//	| 8 bytes | uint32  | uint32  | uint64      | uint64      | uint64      |
//	+---------+---------+---------+-------------+-------------+-------------+
//
// The fields:
//
//   - magic is the 8 bytes 89 4a 52 4e 4c 0d 0a 1a ("\x89JRNL\r\n\x1a").
//   - version is 3 (Version). Version 2 added TypeSync frames; version 3
//     added the append times to the footer (see "Footer and trailer").
//     Files of versions 1 and 2 are read as well, and a segment is
//     always sealed in its header's version (a version 2 segment resumed
//     by this build gets a version 2 footer, without times).
//   - flags is 0; no flag is defined yet.
//   - first index is the index of the segment's first record; never 0.
//     Recovery also checks that it matches the file name.
//   - salt is chosen at random for each file. It seeds every frame checksum
//     in the file, so a frame copied from another segment, or left over from
//     an older file in reused space, never validates.
//   - checksum is xxhash64 with seed 0 over bytes [0, 32) of the file: magic
//     through salt.
//
// Bytes [40, 512) are zero (or not yet allocated) and never read.
// decodeHeader checks, in this order: at least 40 bytes (else ErrCorrupt,
// whatever the bytes there are: a header whose write was torn is damage),
// the magic (else ErrFormat: not a segment), the checksum (else ErrCorrupt),
// the version, 1, 2 or 3 (else ErrFormat), the flags (else ErrFormat) and the first
// index (0 gives ErrCorrupt). Because the checksum is checked before the
// version, a future version must keep the magic, version and checksum where
// they are, or older readers will report its files as corrupt rather than
// as unsupported.
//
// # Record frame
//
// Each record is stored in one frame: a 32-byte frame header, the n-byte
// payload, and zero bytes padding the frame to a multiple of 8:
//
//	0          8          16         24         28     29      30         32
//	+----------+----------+----------+----------+------+-------+----------+
//	| checksum | index    | synced   | length n | type | codec | reserved |
//	| uint64   | uint64   | uint64   | uint32   | 1    | 1     | 2, zero  |
//	+----------+----------+----------+----------+------+-------+----------+
//	32                                  32+n                 FrameSize(n)
//	+-----------------------------------+-----------------------+
//	| payload: n bytes                  | padding: 0 to 7 zeros |
//	+-----------------------------------+-----------------------+
//
// FrameSize(n) is 32 + n rounded up to a multiple of 8.
//
//   - checksum is xxhash64 seeded with the segment's salt over the frame's
//     bytes [8, 32+n): the rest of the frame header (index through reserved)
//     followed by the payload. It does not cover itself or the padding.
//   - index is the record's index: the header's first index for the first
//     frame, one more for each following one. A footer frame carries the
//     index after the segment's last record.
//   - synced is the offset up to which the segment file was known durable
//     (fsynced) when the frame was written: with every write synced before
//     the next begins, the start of the frame's own write. Readers accept
//     40 <= synced <= the frame's own offset; writers never write less than
//     512. See "Torn tails and corruption".
//   - length n is the size of the stored payload (after compression),
//     without the padding. 0 is allowed: an empty record.
//   - type is 1 (TypeRecord: a record that ends its batch), 2 (TypeBatch: a
//     record followed by more records of the same batch), 3 (TypeFooter)
//     or 4 (TypeSync, version 2: see "Sync frames"). 0 is never a valid
//     type, so zeroed space is never a frame.
//   - codec is 0 (None: the payload is the record), 1 (S2) or 2 (Zstd). A
//     footer and a sync frame always have codec 0.
//   - reserved is 2 zero bytes.
//
// A compressed payload (codec 1 or 2) is the decoded length m, then the
// compressed bytes:
//
//	0                    4
//	+--------------------+------------------------------------------+
//	| decoded length m   | codec 1: one S2 block                    |
//	| uint32             | codec 2: zstd frame(s) (RFC 8878)        |
//	+--------------------+------------------------------------------+
//
// The S2 block is the block format of github.com/klauspost/compress/s2 (a
// superset of the Snappy block format): it starts with m again, as a uvarint.
// Decompress refuses m > MaxRecordSize before allocating anything, and
// refuses a payload that does not decode to exactly m bytes (ErrCorrupt).
// Before allocating m bytes it also refuses an m the compressed bytes
// contradict: an S2 block whose uvarint is not m, a zstd payload of k bytes
// with m > 32768k (no zstd block of 4 bytes or more decodes to over
// 128 KiB), a zstd frame whose content size exceeds m.
// Whether a payload decompresses is not part of a frame's validity: the
// Scanner never decompresses, ReadRecord does.
//
// # When a frame is valid
//
// A frame at offset off, given the bytes from off to the end of the file, is
// valid when (parseFrame checks 1 to 8):
//
//  1. at least 32 bytes remain (else StopShortHeader, incomplete);
//  2. type is 1, 2, 3 or 4 (else StopType);
//  3. codec is 0, 1 or 2, and 0 for a footer or a sync frame (else
//     StopCodec);
//  4. the reserved bytes are zero (else StopReserved);
//  5. n <= MaxRecordSize + MaxRecordSize/64 + 68 (272629828): a largest
//     record, its worst compression expansion and the length prefix; and
//     n = 0 for a sync frame (else StopLength);
//  6. 40 <= synced <= off (else StopSynced);
//  7. at least 32+n bytes remain (else StopShortPayload, incomplete);
//  8. the checksum matches, computed with this segment's salt (else
//     StopChecksum);
//
// and, as Scanner.Next reads frames in sequence from 512 (or, with
// NewScannerAt, from a given frame):
//
//  9. the frame is right after the previous one (at its offset plus
//     FrameSize(n)); except that when the previous frame closed a batch
//     (TypeRecord) or was a sync frame, and the bytes from its end to the
//     next sector boundary (or to the end of the file) are all zero, those
//     bytes are write padding and the frame is at the boundary (damaged
//     padding is skipped too when the frame expected next is valid at the
//     boundary);
//  10. its index is the expected one (else StopIndex): the first index for
//     the first frame, one more after each record frame; a sync frame or a
//     footer carries the index of the record that would follow it;
//  11. it is not a footer or a sync frame while a batch is unfinished
//     (else StopType).
//
// The frame padding is neither checked nor required to be in the file.
// parseFrame checks 1 to 8 and returns the Stop naming the check that
// failed (StopNone for a valid frame). Scanner.Next stops at the first frame
// that is not valid and Scanner.Stop names the check that failed
// (Scanner.Why says it in words); it also stops at the end of the file
// (StopEOF), and after a valid footer frame (StopFooter, Sealed; the
// trailer is not read). Next never returns a sync frame: it reads on past
// it.
//
// # Zeros are the end of the log
//
// When the 32 bytes where the next frame would be (or all that remain, if
// fewer) are zero, the scan stops with StopZeros: the end of the
// log, not damage. Since type 0 is invalid, no frame can be all zeros, so
// preallocated or zero-filled space after the last write always reads as the
// end.
//
// # Batches
//
// Records appended together form a batch: every frame of the batch but the
// last has type TypeBatch; the last has TypeRecord. A single record is a batch
// of one TypeRecord frame. A batch counts only once its closing TypeRecord
// frame is valid: Scanner.Committed returns the end of the last complete
// batch (after the write padding that follows it, if any; a sync frame is
// such a point too) and the index after it; valid TypeBatch frames past
// that point belong to an unfinished batch (Scanner.Unfinished), which
// recovery drops whole.
//
// Scanner.Cut returns where recovery cuts a torn tail: a sector boundary
// and the index after the records kept. Every write ends at a sector
// boundary, so the bytes between the end of a complete batch and the next
// boundary are write padding whatever they hold: junk there (a torn later
// write, damaged padding) never costs a record, and the cut is that
// boundary, with every record of the batch kept. Only when valid frames of
// an unfinished batch were read after the last complete batch (a torn
// write that held more than one batch) is the cut the last commit point
// that is itself a sector boundary, dropping the torn write whole, so that
// no stray frame of the unfinished batch is left before the next write.
// Either way the cut never touches a sector that holds data kept.
//
// # Torn tails and corruption
//
// When a scan stops before the end of the file on bytes that are not zero,
// those bytes are either a torn tail (a write cut short by a crash, never
// acknowledged: safe to cut) or damage to data that had been made durable
// (corruption: must not be cut silently). The synced field tells them apart.
// Each frame records how far the file was durable when the frame was written,
// so a valid frame whose synced offset lies past the point where the scan
// stopped proves that the bytes at that point had been made durable before:
// the damage is corruption. Frames written in the same unfinished write as
// the damaged bytes carry a synced offset at or before them, and prove
// nothing. scanTail tries every multiple of 8 from the stop to the end of the
// file for a frame that passes checks 1 to 8 (whatever its index or type)
// with synced > the stop offset, and returns the first one as Tail.Durable.
// When it finds none, Tail.End is where the last non-zero byte ends: the
// extent of the torn tail. (The search stops at the first durable frame, so
// End is then only as far as it read.)
//
// The search reads only where the file may hold data: a Handle asks its
// file (vfs.File.Data, lseek SEEK_DATA/SEEK_HOLE on Linux) and steps over
// what was never written, such as the preallocated space after the last
// write. That changes no answer: space never written reads as zeros, where
// no frame starts (its checksum would be 0) and which moves no End. Where
// the file system cannot tell, every byte is read.
//
// # Recycled files
//
// A log may give a segment file whose records were all released a second
// life as a later segment (Recycle, wal.Options.RecycleSegments) instead
// of deleting it, so that its blocks, already written, need not be
// written with zeros again. Nothing in the format changes: the file is
// renamed to the spare's temporary name (the directory synced before
// anything else), cut to at most the segment size less one sector, so
// that no old footer and trailer can lie at its end, preallocated, and
// then stamped and installed as a spare is. Only the first 40 bytes are
// rewritten at once: past the new segment's frames the file holds what
// the old segment held (its frames, write padding, perhaps its footer and
// trailer), then zeros or unwritten space.
//
// What recovery sees in such a segment follows from the salt: the old
// frames' checksums were computed with the old segment's salt, so under
// the new header they fail check 8 (or an earlier one), like any garbage.
// The scan stops at the first byte after the new frames' last write (or
// at zeros there, which end the log as always), and the tail search finds
// no frame of this segment past it unless the new segment wrote one: old
// bytes are a torn tail, cut whole, never corruption. Damage to the new
// segment's own frames is told as in any segment: a later frame of this
// segment with a synced offset past the damage proves it, whatever lies
// around it. The cost is in reading: the old bytes are data to the file
// system, so the tail search of a crashed recycled segment reads them all
// (up to the segment size) where a fresh segment's preallocated space is
// skipped. A sealed recycled segment is trimmed after its footer like any
// other, and a log closed with an empty recycled segment trims the old
// bytes, so neither is read again.
//
// # Sync frames
//
// A log that does not sync every write (NoSync) still makes its data
// durable when Sync or Close is called, with an fdatasync. Without more, a
// record damaged after such a sync could not be told from a torn tail when
// nothing was appended after it: no later frame would carry a synced offset
// past it. So after the fdatasync the log writes a sync frame (format
// version 2), a write of its own at a sector boundary:
//
//   - the frame layout above with type 4 (TypeSync), codec 0, n = 0 (no
//     payload: the frame is 32 bytes), index = the index of the next
//     record, synced = its own offset;
//   - it holds no record: Scanner.Next reads past it and does not return
//     it, and the next record frame carries the same index;
//   - it is a commit point, like the end of a batch: write padding may
//     follow it, and it is invalid (StopType) while a batch is
//     unfinished;
//   - its synced offset lies past everything written before it, so
//     scanTail finds it as Tail.Durable when the data it covers is
//     damaged.
//
// A version 1 file never holds a sync frame; a version 1 reader rejects a
// version 2 file (ErrFormat) rather than stopping at its first sync frame.
//
// # Footer and trailer
//
// A segment is sealed (Seal) by writing, at a sector boundary F at or after
// the end of its last record frame, a footer frame and a trailer, trimming
// the file after them and fsyncing it. Bytes between the last record frame
// and F are ignored from then on: TruncateBack seals a segment this way
// without rewriting the sectors of the records it keeps. The footer frame
// has the frame layout above with type 3, codec 0, index = the next index
// (first index + k for k records), synced = F (its own offset), and as
// payload the offset of each record frame in order, one uint32 each,
// followed in version 3 by the segment's append times (Times):
//
//	0              4k             4k+8           4k+16
//	+--------------+--------------+--------------+
//	| k offsets    | first append | last append  |
//	| uint32 each  | int64        | int64        |
//	+--------------+--------------+--------------+
//	                 version 3 only (TimesSize = 16)
//
// so n = 4k in versions 1 and 2 and n = 4k + 16 in version 3. The
// checksum covers the times like the rest of the payload. The 16-byte
// trailer ends the file:
//
//	0                  8                  16
//	+------------------+------------------+
//	| footer offset F  | end magic        |
//	| uint64           | 8 bytes          |
//	+------------------+------------------+
//
// The end magic is 89 4a 45 4e 44 0d 0a 1a ("\x89JEND\r\n\x1a"). A sealed
// file is exactly F + FrameSize(n) + 16 bytes long (Header.SealedSize).
// readFooter accepts a footer when the file holds at least 88 bytes, ends
// with the end magic, F is a multiple of 512 with 512 <= F <= size-48, the
// frame at F passes checks 2 to 6 and has type 3, n is 4k (versions 1 and
// 2) or 4k + 16 (version 3) for some k >= 0 with the file size equal to
// F + FrameSize(n) + 16, index = first index + k, and the checksum
// matches. Otherwise it returns the zero Footer (Footer.Valid is
// false) and the reason, not an error. It does
// not check the offsets themselves. Record j (0-based) spans from offset j to
// offset j+1, the last one to F, write padding included (Footer.RecordSpan),
// and ReadRecord checks the frame found there (checks 1 to 8, a record type
// and the expected index, a span of at most FrameSize of the largest payload
// plus 512) before it decompresses the payload.
//
// # Append times
//
// The times in a version 3 footer are wall-clock times in nanoseconds
// since the Unix epoch (time.Time.UnixNano), two's complement int64:
// first append is when the first write of records to the segment was
// issued, last append when the last one was. The log takes one clock
// reading per group commit, not per record. 0 means unknown: recovery
// and salvage seal segments with both times 0, and a segment resumed after
// a restart keeps first append 0 (its earlier appends were not timed) and
// gets a last append at its next write. The wall clock may go backwards
// (an NTP step, a manual change): a writer never moves last append back
// within a segment, and keeps first <= last, so a backwards step makes the
// segment look newer than it is (retention by age releases it later) and
// a forward step makes later segments look older (released early, by the
// size of the step). Times are not compared across segments; the reader
// of times must expect them not to be monotonic from one segment to the
// next.
//
// # Worked example
//
// A segment with first index 1 and salt 0x0123456789abcdef holding one
// record, "hello", uncompressed, appended as a batch of one in the first
// write after the segment was created (so synced is 512). The checksum
// values are the little-endian reading of their 8 bytes; "00 * 472" stands
// for 472 zero bytes.
//
//	offset  bytes                    field
//	     0  89 4a 52 4e 4c 0d 0a 1a  magic "\x89JRNL\r\n\x1a"
//	     8  03 00 00 00              version 3
//	    12  00 00 00 00              flags 0
//	    16  01 00 00 00 00 00 00 00  first index 1
//	    24  ef cd ab 89 67 45 23 01  salt = 0x0123456789abcdef
//	    32  53 9e 45 04 0d 86 36 e2  header checksum: xxhash64 seed 0, bytes [0, 32) = 0xe236860d04459e53
//	    40  00 * 472                 the rest of the header's sector
//	   512  f0 1a 9f 47 74 a1 7c 5d  frame checksum: xxhash64 seed salt, bytes [520, 549) = 0x5d7ca174479f1af0
//	   520  01 00 00 00 00 00 00 00  index 1
//	   528  00 02 00 00 00 00 00 00  synced 512
//	   536  05 00 00 00              length 5
//	   540  01                       type 1 (TypeRecord)
//	   541  00                       codec 0 (None)
//	   542  00 00                    reserved
//	   544  68 65 6c 6c 6f           payload "hello"
//	   549  00 00 00                 frame padding to 552
//	   552  00 * 472                 write padding to the sector boundary 1024
//
// Sealing it, with the record appended at 2026-01-01 00:00:00 UTC
// (1767225600000000000 ns, both first and last append), writes a footer
// frame at 1024 and the trailer; the file is then SealedSize(1024, 1) =
// 1096 bytes long:
//
//	offset  bytes                    field
//	  1024  5a 97 f0 40 95 7f c2 fc  footer checksum: xxhash64 seed salt, bytes [1032, 1076) = 0xfcc27f9540f0975a
//	  1032  02 00 00 00 00 00 00 00  index 2, the next index
//	  1040  00 04 00 00 00 00 00 00  synced 1024, the footer's own offset
//	  1048  14 00 00 00              length 20: one offset and the times
//	  1052  03                       type 3 (TypeFooter)
//	  1053  00                       codec 0
//	  1054  00 00                    reserved
//	  1056  00 02 00 00              offset of record 1: 512
//	  1060  00 00 fa ed 51 72 86 18  first append = 0x18867251edfa0000
//	  1068  00 00 fa ed 51 72 86 18  last append = 0x18867251edfa0000
//	  1076  00 00 00 00              frame padding to 1080
//	  1080  00 04 00 00 00 00 00 00  footer offset 1024
//	  1088  89 4a 45 4e 44 0d 0a 1a  end magic "\x89JEND\r\n\x1a"
//
// The golden test in this package encodes this segment and compares it with
// the bytes above, so this example cannot drift from the code.
package segment
