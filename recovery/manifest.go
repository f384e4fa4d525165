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
	"github.com/gojournal/journal/segment"
	"github.com/gojournal/journal/vfs"
)

// ManifestName is the clean-close record: the last step of a clean Close
// writes it to describe every sealed segment (header, footer, size), so
// that the next Open of the log by a writer need not open and verify each
// of them. It is a hint, never the only copy of anything: every field
// repeats what a segment's own header and footer say, and a walk that
// ignores the file judges the log exactly as before. It is trusted only
// while nothing in the directory has changed since Close wrote it.
//
// The rest of this comment is the file's format, complete enough to write
// a decoder from.
//
// Layout. Every integer is little-endian and unsigned unless marked
// signed; offsets are in bytes from the start. A 40-byte head, n entries
// of 64 bytes, then the checksum: 48+64n bytes in all.
//
//	0         8         12        16            24            32        40
//	+---------+---------+---------+-------------+-------------+---------+
//	| magic   | version | flags   | first index | newest      | n       |
//	| 8 bytes | uint32  | uint32  | uint64      | uint64      | uint64  |
//	+---------+---------+---------+-------------+-------------+---------+
//	| entry 0 (64 bytes) | entry 1 | ... | entry n-1 | checksum uint64   |
//	+--------------------+---------+-----+-----------+-------------------+
//
// Each entry describes one sealed segment, oldest first:
//
//	+0   first index   uint64  the segment's first record (its name)
//	+8   salt          uint64  the header's salt
//	+16  version       uint32  the header's segment format version
//	+20  reserved      uint32  zero
//	+24  footer offset uint64  where the footer frame starts (Footer.Offset)
//	+32  next          uint64  the index after the segment's last record
//	+40  size          uint64  the file's size
//	+48  first time    int64   Footer.Times.First (0: unknown)
//	+56  last time     int64   Footer.Times.Last (0: unknown)
//
// The fields:
//
//   - magic is the 8 bytes 89 4a 4d 41 4e 0d 0a 1a ("\x89JMAN\r\n\x1a").
//   - version is 1. flags: none defined, all zero.
//   - first index is the meta file's first index when the file was
//     written (0 when there was no meta file).
//   - newest is the first index of the newest segment (the one appends
//     went to), which the file does not describe: Open judges it as
//     always. n is the number of entries.
//   - checksum is xxhash64 with seed 0 over every byte before it.
//
// An entry's next minus its first index is its record count; its size is
// what the segment format says a segment sealed at that footer offset
// with that many records measures (segment.Header.SealedSize); each entry's
// next is the next entry's first index, and the last one's is newest.
//
// When it is written. Close writes it as its last step, after the newest
// segment is sealed and every file is durable, with vfs.WriteFile (a
// temporary file, fdatasync, rename over journal.manifest, directory
// fsync). A log that failed, or a read-only one, writes none; nor does one
// that found a segment the manifest described damaged or missing. Its
// entries repeat the files, not the manifest Open read: a sound segment
// found other than described is entered as found (see below).
//
// When it is removed. Invariant: while the file exists and is believed,
// every sealed segment it describes is as it was when it was written.
// Whatever may change the log's files removes it first: a writer's Open
// before it changes anything (cut, unseal, preallocate, remove), Repair,
// and salvage; the other changes of a log (appends, rotations,
// truncations, checkpoints, retention) happen only in a log that Open
// returned, after that removal. Open and Repair only unlink it: the
// unlink becomes durable with the directory's next sync, and that sync
// comes before any change to a sealed segment it describes (the only one
// a log makes is TruncateBack's reseal, after the meta file's replacement
// has synced the directory). Until then a crash may bring the manifest
// back, but only beside the changes made before that sync: to the newest
// segment, which Open judges whatever the manifest says, or to the
// listing, which rule 4 below then refuses (a crash keeps changes to a
// directory in the order they were made, so none made after the unlink
// survives without it; ext4 and XFS journal them so, and vfs/crashfs
// models it). Salvage reseals segments in place, changing neither the
// listing nor the meta file, so it removes the manifest durably (unlink,
// then directory fsync) before anything else.
//
// How a reader treats it (the walk, when Options.Manifest is set), in
// this order; any failure means the walk ignores the file and judges the
// log as if it were not there:
//
//  1. no file, or one that cannot be read: ignored;
//  2. bad magic, a version other than 1 (a newer build's manifest is only
//     a hint, so an older build ignores it), unknown flags, a size other
//     than 48+64n, a checksum mismatch, or an entry that breaks the rules
//     above: ignored;
//  3. the meta file has a pending flag or another first index: ignored;
//  4. the segment files in the directory listing are not exactly the n
//     entries' names and newest's (a file missing or extra; temporary
//     files and every file that is not a segment do not count): ignored.
//
// Otherwise each entry stands for its segment: the walk opens none of
// them, and the log opens each one the first time it reads from it, or
// before retention releases it by its append times, and judges it as a
// walk does (segment.CheckSealed): a valid header naming the entry's first
// index and a valid footer, checksum included, ending at the entry's next.
// Damage found then, or a file missing, is reported as ErrCorrupt naming
// the file (ErrFormat for a file this build does not read, as a walk
// would). A sound file whose salt, footer offset, append times or size are
// not the entry's (a manifest restored from a backup or copied from
// another log, a segment copied back from elsewhere: the listing, and so
// every entry's range of records, still matches) is no damage, as `wal
// verify` judges it: the log takes the file's own header and footer, and
// so does the manifest its Close writes. The entry is thus never believed
// over the file: a stale manifest can neither make a read fail where `wal
// verify` finds nothing, nor hide damage it would report. Open with
// Options.Verify, `wal verify` and read-only logs never use the file.
//
// Worked example. A log whose meta file says first index 3, with one sealed
// segment (records 1 to 4, salt 0x0102030405060708, version 3, footer at
// 4096, file size 4176, appended at times 1000 to 2000) and the newest
// segment starting at 5:
//
//	offset  bytes                    field
//	     0  89 4a 4d 41 4e 0d 0a 1a  magic "\x89JMAN\r\n\x1a"
//	     8  01 00 00 00              version 1
//	    12  00 00 00 00              flags
//	    16  03 00 00 00 00 00 00 00  first index 3
//	    24  05 00 00 00 00 00 00 00  newest 5
//	    32  01 00 00 00 00 00 00 00  n = 1
//	    40  01 00 00 00 00 00 00 00  entry 0: first index 1
//	    48  08 07 06 05 04 03 02 01  salt 0x0102030405060708
//	    56  03 00 00 00 00 00 00 00  version 3, reserved
//	    64  00 10 00 00 00 00 00 00  footer offset 4096
//	    72  05 00 00 00 00 00 00 00  next 5
//	    80  50 10 00 00 00 00 00 00  size 4176
//	    88  e8 03 00 00 00 00 00 00  first time 1000
//	    96  d0 07 00 00 00 00 00 00  last time 2000
//	   104  e1 db 33 3e ce 4a 76 07  checksum: xxhash64 seed 0, bytes [0, 104) = 0x07764ace3e33dbe1
//
// TestManifestWorkedExample encodes this manifest and compares it with the
// bytes above (and recovery/testdata/manifest-v1.golden).
const ManifestName = "journal.manifest"

// On-disk layout of the manifest; integers little-endian.
const (
	manifestMagic   = "\x89JMAN\r\n\x1a"
	manifestVersion = 1
	manifestHead    = 40 // magic 8 + version 4 + flags 4 + first index 8 + newest 8 + n 8
	manifestEntry   = 64 // first 8 + salt 8 + version 4 + reserved 4 + footer offset 8 + next 8 + size 8 + times 16
	manifestSum     = 8  // xxhash64 of everything before it
)

// manifest is a decoded manifest file.
type manifest struct {
	first  uint64 // the meta file's first index
	newest uint64 // the newest segment's first index
	sealed []sealedEntry
}

// sealedEntry is one entry: what Open needs of a sealed segment, without
// pointers, so that thousands of them cost one allocation.
type sealedEntry struct {
	h    segment.Header
	ft   segment.Footer
	size int64
}

// segment is the Segment the entry stands for, at path.
func (e sealedEntry) segment(path string) Segment {
	return Segment{Path: path, First: e.h.FirstIndex, Header: e.h, Size: e.size, Sealed: true,
		Footer: e.ft, Next: e.ft.Next, Intact: true, Unchecked: true}
}

// WriteManifest durably writes dir's manifest (see ManifestName): first is
// the meta file's first index, segs the log's segments oldest first, every
// one but the last (the newest, of which only First is recorded) sealed.
func WriteManifest(fsys vfs.FS, dir string, first uint64, segs []Segment) error {
	if len(segs) == 0 {
		return nil
	}
	n := len(segs) - 1
	m := manifest{first: first, newest: segs[n].First, sealed: make([]sealedEntry, n)}
	for i, s := range segs[:n] {
		m.sealed[i] = sealedEntry{h: s.Header, ft: s.Footer, size: s.Size}
	}
	return vfs.WriteFile(fsys, filepath.Join(dir, ManifestName), 0o644, func(w io.Writer) error {
		_, err := w.Write(m.encode())
		return err
	})
}

// RemoveManifest removes dir's manifest, if there is one, before a change
// to the log's files (see ManifestName for why no directory sync is
// needed here).
func RemoveManifest(fsys vfs.FS, dir string) error {
	_, err := removeManifest(fsys, dir)
	return err
}

// DropManifest removes dir's manifest durably (unlink, then directory
// fsync), if there is one: before a change to a sealed segment that keeps
// the listing and the meta file as they were (salvage's reseal).
func DropManifest(fsys vfs.FS, dir string) error {
	removed, err := removeManifest(fsys, dir)
	if err == nil && removed {
		if err = fsys.SyncDir(dir); err != nil {
			err = fmt.Errorf("journal: remove manifest: %w", err)
		}
	}
	return err
}

func removeManifest(fsys vfs.FS, dir string) (removed bool, err error) {
	err = fsys.Remove(filepath.Join(dir, ManifestName))
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return false, nil
	case err != nil:
		return false, fmt.Errorf("journal: remove manifest: %w", err)
	}
	return true, nil
}

func (m manifest) encode() []byte {
	b := make([]byte, 0, manifestHead+manifestEntry*len(m.sealed)+manifestSum)
	b = append(b, manifestMagic...)
	b = binary.LittleEndian.AppendUint32(b, manifestVersion)
	b = binary.LittleEndian.AppendUint32(b, 0)
	b = binary.LittleEndian.AppendUint64(b, m.first)
	b = binary.LittleEndian.AppendUint64(b, m.newest)
	b = binary.LittleEndian.AppendUint64(b, uint64(len(m.sealed)))
	for _, s := range m.sealed {
		b = binary.LittleEndian.AppendUint64(b, s.h.FirstIndex)
		b = binary.LittleEndian.AppendUint64(b, s.h.Salt)
		v := s.h.Version
		if v == 0 { // a header this build wrote: its version
			v = segment.Version
		}
		b = binary.LittleEndian.AppendUint32(b, v)
		b = binary.LittleEndian.AppendUint32(b, 0)
		b = binary.LittleEndian.AppendUint64(b, uint64(s.ft.Offset))
		b = binary.LittleEndian.AppendUint64(b, s.ft.Next)
		b = binary.LittleEndian.AppendUint64(b, uint64(s.size))
		b = binary.LittleEndian.AppendUint64(b, uint64(s.ft.Times.First))
		b = binary.LittleEndian.AppendUint64(b, uint64(s.ft.Times.Last))
	}
	return binary.LittleEndian.AppendUint64(b, xxhash.Sum64(b))
}

// decodeManifest decodes b, reporting false for anything but a valid
// version 1 manifest (reading rules 2 of ManifestName).
func decodeManifest(b []byte) (manifest, bool) {
	if len(b) < manifestHead+manifestSum || string(b[:8]) != manifestMagic {
		return manifest{}, false
	}
	le := binary.LittleEndian
	n := le.Uint64(b[32:])
	body := len(b) - manifestSum
	switch {
	case le.Uint32(b[8:]) != manifestVersion || le.Uint32(b[12:]) != 0:
		return manifest{}, false
	case n > uint64(len(b)/manifestEntry) || manifestHead+manifestEntry*int(n) != body:
		return manifest{}, false // bounded before anything is allocated
	case le.Uint64(b[body:]) != xxhash.Sum64(b[:body]):
		return manifest{}, false
	}
	m := manifest{first: le.Uint64(b[16:]), newest: le.Uint64(b[24:]), sealed: make([]sealedEntry, n)}
	for i := range m.sealed {
		e := b[manifestHead+manifestEntry*i:]
		h := segment.Header{FirstIndex: le.Uint64(e), Salt: le.Uint64(e[8:]), Version: le.Uint32(e[16:])}
		ft := segment.Footer{Offset: int64(le.Uint64(e[24:])), Next: le.Uint64(e[32:]),
			Times: segment.Times{First: int64(le.Uint64(e[48:])), Last: int64(le.Uint64(e[56:]))}}
		ft.Count = int64(ft.Next - h.FirstIndex)
		m.sealed[i] = sealedEntry{h: h, ft: ft, size: int64(le.Uint64(e[40:]))}
		if le.Uint32(e[20:]) != 0 {
			return manifest{}, false
		}
	}
	for i := range m.sealed {
		if !m.plausible(i) { // after all are decoded: it looks at the next entry
			return manifest{}, false
		}
	}
	return m, true
}

// plausible checks entry i against the rules of ManifestName: a count that
// fits the footer, a size the format agrees with, a version this build
// reads, and no gap before the next segment.
func (m manifest) plausible(i int) bool {
	s := m.sealed[i]
	next := m.newest
	if i+1 < len(m.sealed) {
		next = m.sealed[i+1].h.FirstIndex
	}
	return s.ft.Next == next && s.ft.Next >= s.h.FirstIndex && s.ft.Count <= s.ft.Offset &&
		s.ft.Offset >= segment.DataStart && segment.Readable(s.h.Version) &&
		s.size == s.h.SealedSize(s.ft.Offset, int(s.ft.Count))
}

// readManifest reads dir's manifest; false when there is none or it is not
// valid (rules 1 and 2 of ManifestName).
func readManifest(fsys vfs.FS, dir string) (manifest, bool) {
	f, err := fsys.OpenFile(filepath.Join(dir, ManifestName), os.O_RDONLY, 0)
	if err != nil {
		return manifest{}, false
	}
	defer f.Close()
	size, err := f.Size()
	if err != nil || size > 1<<30 {
		return manifest{}, false
	}
	b := make([]byte, size)
	if _, err := f.ReadAt(b, 0); err != nil && err != io.EOF {
		return manifest{}, false
	}
	return decodeManifest(b)
}

// matches reports whether the manifest describes the directory as listed
// (rules 3 and 4 of ManifestName): meta is the meta file read, paths every
// segment file listed, in log order.
func (m manifest) matches(meta Meta, paths []string) bool {
	if meta.BackPending || meta.EmptyPending || meta.FirstIndex != m.first || len(paths) != len(m.sealed)+1 {
		return false
	}
	for i, s := range m.sealed {
		if firstOf(paths[i]) != s.h.FirstIndex {
			return false
		}
	}
	return firstOf(paths[len(m.sealed)]) == m.newest
}
