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

// TailName is the file through which the process writing a log tells
// readers in other processes (wal.OpenReadOnly) how far the log is
// durable. It is advisory: recovery never reads it, a log opens without
// it, and it is never synced.
//
// The rest of this comment is the file's format.
//
// Layout. The file is exactly 64 bytes (tailSize); every integer is
// little-endian and unsigned; offsets are in bytes from the start:
//
//	0        8        12       16       24        32        40        48        56        64
//	+--------+--------+--------+--------+---------+---------+---------+---------+---------+
//	| magic  | version| flags  | first  | durable | active  | active  | active  | checksum|
//	|        |        |        | index  | index   | first   | salt    | end     |         |
//	| 8 bytes| uint32 | uint32 | uint64 | uint64  | uint64  | uint64  | uint64  | uint64  |
//	+--------+--------+--------+--------+---------+---------+---------+---------+---------+
//
// The fields:
//
//   - magic is the 8 bytes 89 4a 54 41 4c 0d 0a 1a ("\x89JTAL\r\n\x1a").
//   - version is 1.
//   - flags: bit 0 (1, sealed) says the active segment named below is
//     sealed: the writer's Close sealed it after its last record (so that
//     the next Open reads its footer instead of scanning it), and the next
//     Open of a writer lifts the footer to append there again. Every other
//     bit is zero.
//   - first index is the log's FirstIndex.
//   - durable index is the last record that no crash can take back: an
//     fdatasync covered it. FirstIndex-1 when the log is empty.
//   - active first and active salt identify the segment appends go to
//     (its first index, from its name, and its header's salt); active end
//     is the offset in it after the frame of the durable record (the
//     segment's data start when the durable record lies in an earlier
//     segment).
//   - checksum is xxhash64 with seed 0 over bytes [0, 56). It does not
//     cover itself.
//
// A writer that reopens the log needs no mark of its own: the records a
// reader saw are durable, so the reopened log still holds them, and
// whatever Open changes that a reader must notice changes the active
// segment (a new one when the newest was sealed by a rotation or a
// TruncateBack, which always starts one, with a new salt), clears the
// sealed flag (a segment Close sealed, reopened for appends) or moves the
// durable index back (a salvage), which a reader takes as a new view of
// the log.
//
// When it is written. The writer rewrites the 64 bytes in place (one
// pwrite at offset 0, no fsync) after each change a reader must see: each
// group commit that fdatasyncs (the durable index advances), each
// rotation, TruncateFront, TruncateBack, at Open and at Close. It is
// written only after the change it describes is durable, so every value a
// reader finds, even after a crash, names records that are durable (or,
// after a TruncateBack or TruncateFront that followed, records since
// dropped: a reader checks segments against it). Being unsynced, after a
// power loss the file may be missing, stale or garbled; the next Open
// rewrites it.
//
// How a reader treats it (ReadTail): a checksum that does not match is a
// write in progress or a file garbled by a crash, and the reader reads it
// again, and when it stays so (a crash left it) treats it as absent until
// a writer rewrites it; no file means no writer has published (a log written by an
// earlier build, or never opened by one that publishes).
const TailName = "journal.tail"

// On-disk layout of the tail file.
const (
	tailMagic   = "\x89JTAL\r\n\x1a"
	tailVersion = 1
	tailSize    = 64 // magic 8 + version 4 + flags 4 + 6 uint64s 48
)

// ErrTailTorn is returned by ReadTail when the file's checksum does not
// match: a write in progress, or a file garbled by a crash.
var ErrTailTorn = errors.New("journal: tail file checksum mismatch")

// Tail is what the tail file says.
type Tail struct {
	FirstIndex  uint64
	Durable     uint64
	ActiveFirst uint64
	ActiveSalt  uint64
	ActiveEnd   int64
	// Sealed: Close sealed the active segment (flag bit 0).
	Sealed bool
}

// tailSealed is the flag bit of Tail.Sealed.
const tailSealed = 1

// Encode appends t, as the 64 bytes of the tail file, to dst[:0].
func (t Tail) Encode(dst []byte) []byte {
	b := append(dst[:0], tailMagic...)
	b = binary.LittleEndian.AppendUint32(b, tailVersion)
	var flags uint32
	if t.Sealed {
		flags |= tailSealed
	}
	b = binary.LittleEndian.AppendUint32(b, flags)
	for _, v := range []uint64{t.FirstIndex, t.Durable, t.ActiveFirst, t.ActiveSalt, uint64(t.ActiveEnd)} {
		b = binary.LittleEndian.AppendUint64(b, v)
	}
	return binary.LittleEndian.AppendUint64(b, xxhash.Sum64(b))
}

func decodeTail(b []byte, path string) (Tail, error) {
	// The checksum first: bytes a crash garbled or zeroed (the magic
	// included) are a torn file, not a file of another format.
	switch {
	case len(b) != tailSize || binary.LittleEndian.Uint64(b[56:]) != xxhash.Sum64(b[:56]):
		return Tail{}, fmt.Errorf("%w: %s", ErrTailTorn, path)
	case string(b[:8]) != tailMagic:
		return Tail{}, fmt.Errorf("%w: %s is not a journal tail file", errs.ErrFormat, path)
	}
	if err := errs.CheckVersion("tail file", binary.LittleEndian.Uint32(b[8:]), []uint32{tailVersion}); err != nil {
		return Tail{}, fmt.Errorf("%s: %w", path, err)
	}
	flags := binary.LittleEndian.Uint32(b[12:])
	if flags&^tailSealed != 0 {
		return Tail{}, fmt.Errorf("%w: %s has unknown flags %#x", errs.ErrFormat, path, flags)
	}
	u := func(off int) uint64 { return binary.LittleEndian.Uint64(b[off:]) }
	return Tail{FirstIndex: u(16), Durable: u(24),
		ActiveFirst: u(32), ActiveSalt: u(40), ActiveEnd: int64(u(48)), Sealed: flags&tailSealed != 0}, nil
}

// ReadTail reads the tail file through f (opened on TailName). It returns
// ErrTailTorn when the checksum does not match; the caller reads again.
func ReadTail(f io.ReaderAt, path string) (Tail, error) {
	var b [tailSize + 1]byte
	n, err := f.ReadAt(b[:], 0)
	if err != nil && err != io.EOF {
		return Tail{}, fmt.Errorf("journal: read %s: %w", path, err)
	}
	return decodeTail(b[:n], path)
}

// OpenTail opens dir's tail file for reading; ok is false when there is
// none.
func OpenTail(fsys vfs.FS, dir string) (f vfs.File, ok bool, err error) {
	f, err = fsys.OpenFile(filepath.Join(dir, TailName), os.O_RDONLY, 0)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("journal: open tail file: %w", err)
	}
	return f, true, nil
}
