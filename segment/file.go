package segment

import (
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"

	"github.com/gojournal/journal/vfs"
)

// Name is the file name of the segment whose first record is first: the
// index zero-padded to 20 digits, so names sort in log order.
func Name(first uint64) string { return fmt.Sprintf("%020d%s", first, Ext) }

// ParseName returns the first index a segment file name encodes.
func ParseName(name string) (first uint64, ok bool) {
	digits, found := strings.CutSuffix(name, Ext)
	if !found || len(digits) != 20 {
		return 0, false
	}
	first, err := strconv.ParseUint(digits, 10, 64)
	return first, err == nil && first > 0
}

// Create makes a new, empty segment durably and returns it open for writing.
// The header is written to a temporary file, preallocated to prealloc
// bytes (not at all when prealloc is 0: a log opening on a full disk), synced, renamed into place and the directory synced, so a segment
// file under its final name always has a durable header.
func Create(fsys vfs.FS, dir string, first uint64, prealloc int64) (vfs.File, Header, error) {
	h := Header{FirstIndex: first, Salt: rand.Uint64(), Version: Version}
	final := filepath.Join(dir, Name(first))
	tmp := filepath.Join(dir, vfs.TempPrefix+Name(first))
	f, err := fsys.OpenFile(tmp, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return nil, h, fmt.Errorf("journal: create segment: %w", err)
	}
	err = writeNew(fsys, f, h, prealloc, tmp, final)
	if err != nil {
		f.Close()
		fsys.Remove(tmp)
		return nil, h, fmt.Errorf("journal: create segment %s: %w", final, err)
	}
	if err := fsys.SyncDir(dir); err != nil {
		// The rename may or may not survive a crash; the segment
		// must not be used.
		f.Close()
		return nil, h, fmt.Errorf("journal: create segment %s: %w", final, err)
	}
	return f, h, nil
}

func writeNew(fsys vfs.FS, f vfs.File, h Header, prealloc int64, tmp, final string) error {
	if _, err := f.WriteAt(appendHeader(nil, h), 0); err != nil {
		return err
	}
	if prealloc > 0 {
		if err := f.Preallocate(prealloc); err != nil {
			return err
		}
	}
	if err := f.Sync(); err != nil {
		return err
	}
	return fsys.Rename(tmp, final)
}

// AlignSector rounds off up to a sector boundary: where a write or a
// footer may start without sharing a sector with data before it.
func AlignSector(off int64) int64 { return alignSector(off) }

// Seal writes the footer indexing the records that start at offsets,
// followed by the trailer, at offset at (a sector boundary past the last
// record kept), trims the file there and syncs it. Anything between the
// last record and at is ignored from then on: TruncateBack seals a segment
// this way without touching the sectors of the records it keeps. times
// are the segment's append times (the zero Times where they are unknown);
// a segment whose header is older than version 3 has no room for them, and
// its Footer has none.
func Seal(f vfs.File, h Header, at int64, offsets []int64, times Times) (Footer, error) {
	if !h.timed() {
		times = Times{}
	}
	buf := sealBuffers.Get().(*sealBuffer)
	defer sealBuffers.Put(buf)
	buf.offsets = buf.offsets[:0]
	for _, o := range offsets {
		buf.offsets = append(buf.offsets, uint32(o))
	}
	buf.payload = appendFooterPayload(buf.payload[:0], h, buf.offsets, times)
	buf.footer = appendFooterFrame(buf.footer[:0], h, at, len(offsets), buf.payload)
	if _, err := f.WriteAt(buf.footer, at); err != nil {
		return Footer{}, err
	}
	if err := f.Truncate(h.SealedSize(at, len(offsets))); err != nil {
		return Footer{}, err
	}
	if err := f.Sync(); err != nil {
		return Footer{}, err
	}
	return Footer{Offset: at, Next: h.FirstIndex + uint64(len(offsets)), Count: int64(len(offsets)), Times: times}, nil
}

// sealBuffer holds the footer that Seal encodes, reused so that a rotation
// allocates nothing in proportion to the records it seals.
type sealBuffer struct {
	offsets         []uint32
	payload, footer []byte
}

var sealBuffers = sync.Pool{New: func() any { return new(sealBuffer) }}

// NewHeader is the header of a new segment whose first record is first,
// with a fresh random salt.
func NewHeader(first uint64) Header {
	return Header{FirstIndex: first, Salt: rand.Uint64(), Version: Version}
}

// SpareName is the name of the file CreateSpare makes: a temporary name,
// so recovery removes a spare that a crash leaves behind.
const SpareName = vfs.TempPrefix + "spare"

// CreateSpare makes, in dir, a file that Install later turns into a
// segment: empty and preallocated to prealloc bytes. It does ahead of time
// the part of creating a segment that does not depend on its first index,
// so that a rotation need not wait for it. It does not sync: Stamp's
// fdatasync makes the allocation durable with the header, before the file
// gets a segment's name. A spare left by an earlier process is replaced.
func CreateSpare(fsys vfs.FS, dir string, prealloc int64) (vfs.File, string, error) {
	path := filepath.Join(dir, SpareName)
	f, err := fsys.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return nil, path, fmt.Errorf("journal: create spare segment: %w", err)
	}
	if err = f.Preallocate(prealloc); err != nil {
		f.Close()
		fsys.Remove(path)
		return nil, path, fmt.Errorf("journal: create spare segment %s: %w", path, err)
	}
	return f, path, nil
}

// Stamp writes header h into a spare and syncs it: the header must be
// durable before Install gives the file a segment's name.
func Stamp(f vfs.File, h Header) error {
	if _, err := f.WriteAt(appendHeader(nil, h), 0); err != nil {
		return err
	}
	return f.Sync()
}

// Install renames a stamped spare to the name of the segment whose first
// record is first and syncs the directory. Until the directory is synced
// the segment may vanish in a crash, so no record in it may be
// acknowledged before Install returns.
func Install(fsys vfs.FS, spare, dir string, first uint64) error {
	if err := fsys.Rename(spare, filepath.Join(dir, Name(first))); err != nil {
		return err
	}
	return fsys.SyncDir(dir)
}

// Unseal reopens for appending a segment that a log's Close sealed: one
// whose footer follows a sync frame in the sector just before it (so the
// records stay proven durable once the footer is gone). It returns the
// offset of each record frame and trims the footer and trailer, so the
// segment ends where its footer began (the caller preallocates and syncs
// the file again). A footer that is not preceded by such a sync frame
// (sealed by a rotation or a TruncateBack, where bytes between the last
// record and the footer may belong to dropped records) gives ok false and
// changes nothing. It reads the footer's index, never the record frames.
func Unseal(f vfs.File, h Header, ft Footer) (offsets []int64, ok bool, err error) {
	at := ft.Offset - SectorSize
	if !ft.Valid() || at < DataStart {
		return nil, false, nil
	}
	var b [FrameHeader]byte
	if _, err := f.ReadAt(b[:], at); err != nil {
		return nil, false, err
	}
	if fr, stop := parseFrame(b[:], h.Salt, at); stop != StopNone || fr.Type != TypeSync || fr.Index != ft.Next {
		return nil, false, nil
	}
	if offsets, err = ft.Offsets(f, int(ft.Count)); err != nil {
		return nil, false, err
	}
	if err := f.Truncate(ft.Offset); err != nil {
		return nil, false, err
	}
	return offsets, true, nil
}

// Recycle makes the released segment file at path the spare for a later
// rotation, so that the blocks it already has written need not be written
// with zeros again (an overwrite's fdatasync has only data to flush). The
// caller must have made the release durable first (the meta file that
// drops the segment's records): from then on a crash leaves the file under
// its old name, a segment before the log's first index that recovery
// removes unread, or under SpareName, a leftover that recovery removes.
// So it renames the file to SpareName and syncs the directory before it
// changes a byte of it, then cuts it to at most size-SectorSize bytes and
// preallocates it to size: whatever its old length, its last sector is
// zeros, so the footer it had is never found at the end of the segment it
// becomes (Stamp's fdatasync makes the new size durable with the header).
//
// It returns the file, open for writing, and written, how far its blocks
// are written: below it the file holds the old segment's header, frames
// and footer, which carry the old salt and so never validate as frames of
// the new segment (see "Recycled files"). at is where the file is: on an
// error, the name it is left under (path or the spare's), for the caller
// to remove; f is then closed.
func Recycle(fsys vfs.FS, dir, path string, size int64) (f vfs.File, at string, written int64, err error) {
	at = path
	f, err = fsys.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return nil, at, 0, fmt.Errorf("journal: recycle segment: %w", err)
	}
	spare := filepath.Join(dir, SpareName)
	written, err = reuse(fsys, f, dir, path, spare, size, &at)
	if err != nil {
		f.Close()
		return nil, at, 0, fmt.Errorf("journal: recycle segment %s: %w", path, err)
	}
	return f, at, written, nil
}

// reuse is Recycle on the open file f, in the order a crash requires. It
// sets *at to the spare's name once the rename is done.
func reuse(fsys vfs.FS, f vfs.File, dir, path, spare string, size int64, at *string) (int64, error) {
	old, err := f.Size()
	if err != nil {
		return 0, err
	}
	if err := fsys.Rename(path, spare); err != nil {
		return 0, err
	}
	*at = spare
	if err := fsys.SyncDir(dir); err != nil {
		return 0, err
	}
	written := min(old, size-SectorSize)
	if err := f.Truncate(written); err != nil {
		return 0, err
	}
	return written, f.Preallocate(size)
}
