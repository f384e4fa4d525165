package recovery

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/cespare/xxhash/v2"
	"github.com/gojournal/journal/internal/errs"
	"github.com/gojournal/journal/vfs"
)

// MetaName is the file holding a log's Meta. It is only ever replaced
// atomically (vfs.WriteFile), so its rename is the commit point of every
// change that spans files: TruncateFront and TruncateBack.
//
// The rest of this comment is the file's format, complete enough to write
// a decoder from.
//
// Layout. The file is exactly 40 bytes (metaSize); every integer is
// little-endian and unsigned; offsets are in bytes from the start:
//
//	0         8         12        16            24            32         40
//	+---------+---------+---------+-------------+-------------+----------+
//	| magic   | version | flags   | first index | back        | checksum |
//	| 8 bytes | uint32  | uint32  | uint64      | uint64      | uint64   |
//	+---------+---------+---------+-------------+-------------+----------+
//
// The fields:
//
//   - magic is the 8 bytes 89 4a 4d 45 54 0d 0a 1a ("\x89JMET\r\n\x1a").
//   - version is 1.
//   - flags: bit 0 (value 1) is BackPending; bit 1 (value 2) is
//     EmptyPending; every other bit is zero.
//   - first index (Meta.FirstIndex) is the first live record: every record
//     below it was released by TruncateFront (or by Checkpoint, which
//     calls it), whatever the segments still hold. 0 when none was ever
//     released; the log then starts at its first segment.
//   - back (Meta.Back) is the last record kept by the latest TruncateBack;
//     0 if there was none. It means something only while BackPending is
//     set: then every record after back is gone, whatever the segments
//     still hold. Once the flag is clear, back is history and readers
//     ignore it.
//   - EmptyPending (flag bit 1) says that a TruncateFront past the end of
//     the log committed: the log holds no record and continues at first
//     index, and every segment file in the directory is obsolete, whatever
//     it holds (the fresh segment at first index included: no record is
//     appended to it before the flag is cleared). A reader that does not
//     know the flag must refuse the file (unknown flags), not judge the
//     segments that end before first index as missing records.
//   - checksum is xxhash64 with seed 0 over bytes [0, 32): magic through
//     back. It does not cover itself.
//
// When it is written. A log that was never truncated (nor salvaged) has no
// meta file. Each write replaces the whole file with vfs.WriteFile: the 40
// bytes go to a temporary file in the same directory (".tmp-journal.meta-"
// and a random suffix), which is fdatasync'd, renamed over journal.meta,
// and the directory is fsync'd. So after a crash the file holds either the old 40
// bytes or the new ones, never a mix (a leftover temporary file, which the
// next Open removes, aside). That rename is the one atomic step of each
// truncation, hence its commit point:
//
//   - TruncateFront(i) waits until no write is in flight and writes the
//     file with first index i. Once the rename is durable the records
//     below i are gone; only then are the segments that hold nothing at or
//     after i deleted. A crash before the rename leaves the old log; after
//     it, the new one plus segments that Open deletes.
//   - TruncateFront(i) past the end (i > last index + 1) holds appends
//     off and writes the file with first index i and EmptyPending: the
//     commit point. It then deletes every segment, creates an empty
//     segment starting at i (which fsyncs the directory, making the
//     deletions durable), and writes the file again with EmptyPending
//     clear. A crash before the commit leaves the old log; a crash after
//     it and before the second write leaves the flag set, and Open deletes
//     every segment and clears the flag (after the deletions, in directory
//     order), leaving an empty log that continues at i. Once the flag is
//     clear the segment at i exists durably, so a log whose segments end
//     before its first index is damage again.
//   - TruncateBack(i) writes the file with BackPending set and back = i
//     (first index unchanged): the commit point. It then seals the segment
//     holding i right after it, deletes the later segments, creates the
//     next segment (which fsyncs the directory, making the deletions
//     durable), and writes the file again with BackPending clear (back
//     stays i). A crash anywhere between the two writes leaves the flag
//     set, and Open finishes the work (seal, delete) before it clears the
//     flag in the same way.
//   - Salvage (`wal recover --salvage`) writes it when it makes the log
//     continue after the snapshot (a new first index past the records it
//     gives up, written once the fresh segment exists) and when it
//     completes a pending TruncateBack (the flag cleared).
//
// How a reader treats it (ReadMeta), in this order:
//
//  1. no file: the zero Meta, nothing was ever truncated;
//  2. a file that starts with the magic, is long enough to hold a version
//     (12 bytes) and names a version this build does not read: ErrFormat
//     naming the version found and the ones read, whatever its size (a
//     later version may be larger);
//  3. any other size than 40 bytes: ErrCorrupt (CorruptionError);
//  4. bad magic: ErrFormat, not a meta file;
//  5. checksum mismatch: ErrCorrupt;
//  6. a version this build does not read: ErrFormat as in 2 (here the
//     checksum held, so the version field is not a damaged 1);
//  7. unknown flags: ErrFormat.
//
// Open fails on every one of these errors rather than guess: a damaged
// meta file could hide a committed truncation.
//
// Worked example. After TruncateFront(4) and then a crash right after
// TruncateBack(9) committed, the file holds first index 4, back 9 and
// BackPending. The checksum value is the little-endian reading of its 8
// bytes:
//
//	offset  bytes                    field
//	     0  89 4a 4d 45 54 0d 0a 1a  magic "\x89JMET\r\n\x1a"
//	     8  01 00 00 00              version 1
//	    12  01 00 00 00              flags: BackPending
//	    16  04 00 00 00 00 00 00 00  first index 4
//	    24  09 00 00 00 00 00 00 00  back 9
//	    32  17 2b ee 77 64 84 33 e6  checksum: xxhash64 seed 0, bytes [0, 32) = 0xe633846477ee2b17
//
// TestMetaWorkedExample encodes this Meta and compares it with the bytes
// above, so the example cannot drift from the code.
const MetaName = "journal.meta"

// LockName is the lock file the process that has a log open holds (package
// wal re-exports it). The walk knows it only to check that it is a file:
// its contents mean nothing.
const LockName = "LOCK"

// On-disk layout of the meta file; integers little-endian.
const (
	metaMagic   = "\x89JMET\r\n\x1a"
	metaVersion = 1
	metaSize    = 40 // magic 8 + version 4 + flags 4 + first 8 + back 8 + xxhash64 of the preceding 32 bytes 8

	flagBackPending  = 1 // a TruncateBack to Back has committed but may not be applied yet
	flagEmptyPending = 2 // a TruncateFront past the end committed: every segment is obsolete
)

// metaVersions are the meta file versions this build reads.
var metaVersions = []uint32{metaVersion}

// Meta is the log state that segment files alone cannot tell.
type Meta struct {
	// FirstIndex is the first live record: records below it were released
	// by TruncateFront (their segments may linger until removed). 0: none.
	FirstIndex uint64
	// BackPending says that a TruncateBack to Back committed but may not
	// have been applied: every record after Back is gone, whatever the
	// segments still hold.
	BackPending bool
	Back        uint64
	// EmptyPending says that a TruncateFront past the end of the log
	// committed but may not have been applied: the log is empty and
	// continues at FirstIndex, and every segment file is obsolete.
	EmptyPending bool
}

func (m Meta) encode() []byte {
	var flags uint32
	if m.BackPending {
		flags |= flagBackPending
	}
	if m.EmptyPending {
		flags |= flagEmptyPending
	}
	b := append([]byte(nil), metaMagic...)
	b = binary.LittleEndian.AppendUint32(b, metaVersion)
	b = binary.LittleEndian.AppendUint32(b, flags)
	b = binary.LittleEndian.AppendUint64(b, m.FirstIndex)
	b = binary.LittleEndian.AppendUint64(b, m.Back)
	return binary.LittleEndian.AppendUint64(b, xxhash.Sum64(b))
}

func decodeMeta(b []byte, path string) (Meta, error) {
	// A later version may change the size: a file of ours that says it is
	// one is unsupported, not damaged.
	if len(b) != metaSize && len(b) >= 12 && string(b[:8]) == metaMagic {
		if err := checkMetaVersion(b, path); err != nil {
			return Meta{}, err
		}
	}
	switch {
	case len(b) != metaSize:
		return Meta{}, &errs.CorruptionError{Path: path, Reason: fmt.Sprintf("meta file is %d bytes, want %d", len(b), metaSize)}
	case string(b[:8]) != metaMagic:
		return Meta{}, fmt.Errorf("%w: %s is not a journal meta file", errs.ErrFormat, path)
	case binary.LittleEndian.Uint64(b[32:]) != xxhash.Sum64(b[:32]):
		return Meta{}, &errs.CorruptionError{Path: path, Reason: "meta checksum mismatch"}
	}
	if err := checkMetaVersion(b, path); err != nil {
		return Meta{}, err
	}
	flags := binary.LittleEndian.Uint32(b[12:])
	if flags&^(flagBackPending|flagEmptyPending) != 0 {
		return Meta{}, fmt.Errorf("%w: %s has unknown flags %#x", errs.ErrFormat, path, flags)
	}
	return Meta{
		FirstIndex:   binary.LittleEndian.Uint64(b[16:]),
		BackPending:  flags&flagBackPending != 0,
		Back:         binary.LittleEndian.Uint64(b[24:]),
		EmptyPending: flags&flagEmptyPending != 0,
	}, nil
}

func checkMetaVersion(b []byte, path string) error {
	if err := errs.CheckVersion("meta file", binary.LittleEndian.Uint32(b[8:]), metaVersions); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	return nil
}

// ReadMeta reads dir's meta file; a missing file is the zero Meta.
func ReadMeta(fsys vfs.FS, dir string) (Meta, error) {
	path := filepath.Join(dir, MetaName)
	f, err := fsys.OpenFile(path, os.O_RDONLY, 0)
	if errors.Is(err, fs.ErrNotExist) {
		return Meta{}, nil
	}
	if err != nil {
		return Meta{}, fmt.Errorf("journal: read meta: %w", err)
	}
	defer f.Close()
	b := make([]byte, metaSize+1)
	n, err := f.ReadAt(b, 0)
	if err != nil && err != io.EOF {
		return Meta{}, fmt.Errorf("journal: read meta: %w", err)
	}
	return decodeMeta(b[:n], path)
}

// WriteMeta durably replaces dir's meta file with m.
func WriteMeta(fsys vfs.FS, dir string, m Meta) error {
	return vfs.WriteFile(fsys, filepath.Join(dir, MetaName), 0o644, func(w io.Writer) error {
		_, err := w.Write(m.encode())
		return err
	})
}
