package segment

import (
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"

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
	offs := make([]uint32, len(offsets))
	for i, o := range offsets {
		offs[i] = uint32(o)
	}
	if !h.timed() {
		times = Times{}
	}
	if _, err := f.WriteAt(appendFooter(nil, h, at, offs, times), at); err != nil {
		return Footer{}, err
	}
	if err := f.Truncate(h.SealedSize(at, len(offs))); err != nil {
		return Footer{}, err
	}
	if err := f.Sync(); err != nil {
		return Footer{}, err
	}
	return Footer{Offset: at, Next: h.FirstIndex + uint64(len(offs)), Count: int64(len(offs)), Times: times}, nil
}
