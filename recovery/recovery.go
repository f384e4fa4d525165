// Package recovery decides what a log directory holds after a crash, and
// repairs it. It never imports the log itself, so tools can examine a
// damaged directory without opening (or locking) a log.
//
// One walk makes every judgement: Open runs it through Scan, which stops
// at the first damage; `wal verify` and `wal info` through Check, which
// reports all of it; `wal recover` and salvage act on what it found. Each
// kind of damage is a typed Kind, never a compared message. The walk:
//
//  1. List the directory: segment files (NNNNNNNNNNNNNNNNNNNN.wal), leftover
//     temporary files (.tmp- followed by a name journal writes: see isTemp;
//     another program's .tmp-* file is left alone), and the meta file.
//  2. Read the meta file. If it records a committed TruncateBack to index b,
//     the segment holding b becomes the newest and every later one is
//     dropped; records after b are cut. Segments wholly before the meta
//     file's first index are released, unread. If it records a committed
//     TruncateFront past the end of the log, every segment is released:
//     the log is empty and continues at the meta file's first index.
//  3. Read every live segment's header: a file of an unknown format or a
//     newer version is reported first (ErrFormat). Each segment is opened
//     once: the handle that read its header judges it in the next steps,
//     and with Options.KeepFiles a sealed segment's file stays open for
//     the caller (the log reads its records through it).
//  4. Every segment but the newest must be sealed: its header and footer
//     must be valid (with Options.Verify, and always in Check, every live
//     record is read and decompressed too, frame by frame from the first
//     as a Reader reads them, so damage between records counts). Any
//     damage there is corruption.
//  5. The newest segment is scanned frame by frame from its header. The scan
//     stops at the first frame that is not valid. The valid data ends at the
//     last complete batch before that point (segment.Scanner.Cut).
//  6. The bytes after the stop are searched for a valid frame written after
//     the stop was durable (each frame records how far its segment was synced
//     when it was written; a NoSync log's Sync and Close leave a sync frame
//     for this). If there is one, the damage lies in data once acknowledged:
//     corruption, reported with file, offset and index, and nothing is cut,
//     unless it lies in records already released, which the walk steps over
//     (State.Released). Otherwise the bytes are a torn tail left by a crash:
//     they are cut, and their count reported. Before damage is believed,
//     the scan is repeated on fresh reads: in a log another process is
//     appending to, a write in flight looks like damage until it lands.
//     The search reads only what the file system says may hold data
//     (vfs.File.Data): the preallocated space after the last write was
//     never written, reads as zeros and can hold no frame, so skipping it
//     proves as much as reading it. (The writer writes zeros over up to
//     1 MiB of it ahead of its frames, so that its fdatasyncs find the
//     blocks already written: those zeros are read. A recycled segment
//     holds an old segment's bytes there instead, read too, and cut as a
//     torn tail: see segment's "Recycled files".) Where the file
//     system cannot tell, it reads every byte to the end of the file.
//  7. Segments must continue each other without gap or overlap, the first
//     must hold the meta file's first index (Check reports this one even
//     after other damage: it needs only the file names), and that index
//     must not lie past the end of the log.
//  8. The log must continue the snapshot (if there is one): no record may
//     be missing between the two.
//
// The search of step 6 runs even when the scan stops at zeros just after a
// sync frame, as it does in a cleanly closed log. The sync frame proves
// everything before it durable, but not that nothing follows it: the log
// may have been reopened and appended to since, and a sector lost or
// zeroed right after the sync frame would then hide durable records behind
// it. Only the bytes after the stop can tell. So the rule is: the tail is
// always searched to the end of the file, stepping over what was never
// written; in a cleanly closed log nothing after its last write ever was,
// so the search costs one question to the file system.
//
// What the directory cannot prove, and the walk therefore cannot report:
// a newest segment deleted whole (the log then ends at the previous one,
// as after a crash between sealing a segment and creating the next); a
// snapshot file deleted (the meta file does not record that one exists);
// the newest segment cut short at a frame boundary (in sync mode the last
// write's frames prove only the writes before it durable).
//
// With Options.Manifest (a writer's Open), a valid clean-close manifest
// that matches the listing and the meta file stands for every sealed
// segment it describes in steps 3 and 4: those are not opened; the caller
// checks each on first use (Segment.Unchecked). See ManifestName for when
// it is written, removed and believed.
//
// Repair then removes temporary files and released segments, cuts a torn
// tail and finishes a committed TruncateBack or TruncateFront past the
// end. It is idempotent: running it
// twice, or again after a crash during it, leaves the same log.
package recovery

import (
	"errors"
	"fmt"
	"io/fs"
	"os"

	"github.com/gojournal/journal/segment"
	"github.com/gojournal/journal/vfs"
)

// Repair makes the directory match the state: it cuts a torn tail or the
// records a committed TruncateBack dropped (truncate, fdatasync), removes
// obsolete segments and temporary files (then syncs the directory), and
// marks a pending TruncateBack or TruncateFront past the end done. After
// it the newest segment ends at its End and the state is Clean.
func (st *State) Repair(fsys vfs.FS) error {
	// The manifest describes the directory as it is; Repair changes it
	// (ManifestName says why the unlink needs no sync of its own).
	if err := RemoveManifest(fsys, st.Dir); err != nil {
		return err
	}
	if n := len(st.Segments); n > 0 {
		newest := &st.Segments[n-1]
		var err error
		switch {
		case newest.SealAt != 0:
			err = seal(fsys, newest)
		case st.Torn != nil:
			err = cut(fsys, newest)
		}
		if err != nil {
			return err
		}
	}
	// Removals need no directory sync of their own: a segment that lingers
	// is obsolete again at the next Open, and where the meta file must not
	// change before they are durable (a pending TruncateBack), its
	// replacement syncs the same directory after them.
	for _, path := range append(st.Obsolete, st.Temps...) {
		if err := fsys.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("journal: recovery: %w", err)
		}
	}
	if st.Meta.BackPending || st.Meta.EmptyPending {
		// Clearing EmptyPending needs no directory sync before it: the
		// rename is kept by a crash only with the removals made before it
		// in the same directory.
		m := st.Meta
		m.BackPending, m.EmptyPending = false, false
		if err := WriteMeta(fsys, st.Dir, m); err != nil {
			return fmt.Errorf("journal: recovery: %w", err)
		}
		st.Meta = m
	}
	st.Torn, st.Temps, st.Obsolete = nil, nil, nil
	return nil
}

// seal ends the segment after the records a TruncateBack kept.
func seal(fsys vfs.FS, seg *Segment) error {
	f, err := fsys.OpenFile(seg.Path, os.O_RDWR, 0)
	if err != nil {
		return fmt.Errorf("journal: recovery: %w", err)
	}
	// When the kept records were appended is not known here: the footer
	// says so (zero Times), and retention by age goes by the file's
	// modification time.
	ft, err := segment.Seal(f, seg.Header, seg.SealAt, seg.Offsets, segment.Times{})
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("journal: recovery: seal %s: %w", seg.Path, err)
	}
	seg.Sealed, seg.Footer, seg.Next, seg.Size = true, ft, ft.Next, seg.Header.SealedSize(ft.Offset, int(ft.Count))
	seg.Offsets, seg.SealAt = nil, 0
	return nil
}

// cut truncates the newest segment to the end of its valid data. It needs
// no fdatasync: until the next write syncs the file, a crash brings back
// only the torn tail that the next recovery cuts again.
func cut(fsys vfs.FS, seg *Segment) error {
	f, err := fsys.OpenFile(seg.Path, os.O_RDWR, 0)
	if err != nil {
		return fmt.Errorf("journal: recovery: %w", err)
	}
	err = f.Truncate(seg.End)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("journal: recovery: cut %s at %d: %w", seg.Path, seg.End, err)
	}
	seg.Size, seg.Sealed, seg.Footer = seg.End, false, segment.Footer{}
	return nil
}
