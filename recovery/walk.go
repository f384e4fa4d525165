package recovery

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/gojournal/journal/checkpoint"
	"github.com/gojournal/journal/segment"
	"github.com/gojournal/journal/vfs"
)

// This file holds the one walk behind every judgement of a log directory:
// Open (Scan, which stops at the first damage), `wal verify` and `wal info`
// (Check, which reports all of it), `wal recover` and salvage. The two
// modes differ only in whether the walk goes on after damage.

// SnapshotInfo describes the snapshot file.
type SnapshotInfo = checkpoint.Header

// Options tunes Scan.
type Options struct {
	// Verify reads every record of every live segment (decompressing
	// it) and the snapshot's contents, not only what Open needs: footers
	// of sealed segments, the newest segment's frames and the snapshot's
	// header.
	Verify bool
	// KeepFiles keeps every sealed segment's file open, as the walk
	// opened it (read-only), in Segment.File: a log reads its records
	// through them rather than opening each again. The caller closes them
	// (State.Close). Scan closes them itself when it returns an error.
	KeepFiles bool
	// Manifest trusts a valid clean-close manifest (see ManifestName) that
	// matches the directory: the sealed segments it describes are taken
	// from it, unopened (Segment.Unchecked), File nil. Only for the
	// process that holds the log's lock: another may change the directory
	// under a reader. Ignored with Verify.
	Manifest bool
	// Locked says the caller holds the log's lock, so no process changes
	// the directory during the walk: damage found is reported at once,
	// without the second walk that confirms it where another process may
	// be changing the log (see walk).
	Locked bool
}

// CheckOptions tunes Check.
type CheckOptions struct {
	// Progress, when set, is called with the number of bytes of segment
	// files examined since the last call.
	Progress func(n int64)
}

// Scan examines dir without changing anything, as Open does, and stops at
// the first damage: damage in data the log holds as durable gives an
// error satisfying errors.Is(err, ErrCorrupt), a *CorruptionError
// naming the file and offset; a file of an unknown format gives
// ErrFormat. The State is returned with the error too, holding
// what was walked before the damage.
func Scan(fsys vfs.FS, dir string, opts Options) (*State, error) {
	w := &walker{fs: fsys, deep: opts.Verify, stopEarly: true, keep: opts.KeepFiles, trust: opts.Manifest && !opts.Verify, locked: opts.Locked}
	st, err := w.walk(dir)
	if err == nil && st.Damaged() {
		err = st.Damage[0].Err()
	}
	if err != nil {
		st.Close()
	}
	return st, err
}

// Check examines every live segment of dir to the last byte: headers,
// footers, every record's frame checksum, index and compressed payload,
// and the snapshot's contents. Unlike Scan it does not stop at the first
// damage: after damaged bytes it resumes at the next frame that proves to
// have been durable, so State.Damage lists every damaged place; its first
// entry is what Scan (and Open with Options.Verify) stops at. Check only
// reads, takes no lock and works on a log another process is appending
// to. An error is an I/O error; damage goes into the State.
func Check(fsys vfs.FS, dir string, opts CheckOptions) (*State, error) {
	w := &walker{fs: fsys, deep: true, progress: opts.Progress}
	return w.walk(dir)
}

type walker struct {
	fs        vfs.FS
	deep      bool // read every record and the snapshot's contents
	stopEarly bool // stop at the first damage
	keep      bool // keep sealed segments' files open (Options.KeepFiles)
	trust     bool // use a matching manifest (Options.Manifest)
	locked    bool // no other process changes the log (Options.Locked)
	// trusted is the matching manifest, whose sealed segments the walk
	// takes from it; nil when there is none (or it is not trusted).
	// trustedFrom is the position in trusted.sealed of the first live
	// segment: the manifest matched the whole listing, in order, and the
	// live segments are its suffix after those wholly before the first
	// live index.
	trusted     *manifest
	trustedFrom int
	progress    func(int64)
	st          *State
	// handles holds the segments formats opened, by position in the live
	// list, until segment judges each (nil: the header was unreadable).
	// Each file is opened once per walk.
	handles []*segment.Handle
	// stale is set when the directory listing proved out of date: a
	// segment it lacks exists, or one it holds is gone.
	stale  bool
	listed []string // the names in the listing, sorted
}

// vanished notes an error opening a listed segment: one that is gone was
// removed since the listing (TruncateFront, in the process that has the
// log open), so the walk must start again on a fresh listing.
func (w *walker) vanished(err error) {
	w.stale = w.stale || errors.Is(err, fs.ErrNotExist)
}

// isListed reports whether name was in the listing.
func (w *walker) isListed(name string) bool {
	_, ok := slices.BinarySearch(w.listed, name)
	return ok
}

// stop reports whether the walk ends here.
func (w *walker) stop() bool { return w.stopEarly && w.st.Damaged() }

func (w *walker) damage(d Damage) { w.st.Damage = append(w.st.Damage, d) }

// walk judges dir. On a log another process has open, the directory
// changes under the walk. Reading a directory is not atomic: a segment
// created meanwhile may be missing from the listing while a later one is
// in it, which looks like a gap between segments; and a segment listed
// may be removed (released by TruncateFront, whose meta file the walk read
// before it committed) before the walk opens it. A walk that meets a gap
// whose missing segment is there after all, or a listed segment that is
// gone, starts again on a fresh listing: only a gap that stays is damage.
//
// Damage is reported only once a second walk finds it again, at the same
// place: a log another process has open changes under a walk in ways no
// listing shows (TruncateBack seals a segment anew after the records it
// keeps, cutting the file under a walk that took the old footer), and the
// walk must not call that damage. A log no one changes meets the same
// damage twice; only a walk that finds damage pays for the second one,
// and none of a process that holds the log's lock (Options.Locked: Open).
func (w *walker) walk(dir string) (*State, error) {
	var prev *Damage
	for range maxRelists {
		w.stale = false
		st, err := w.walkOnce(dir)
		switch {
		case w.stale:
		case err != nil || !st.Damaged() || w.locked:
			return st, err
		case prev != nil && prev.samePlace(st.Damage[0]):
			return st, nil
		default:
			first := st.Damage[0]
			prev = &first
		}
		st.Close()
	}
	return w.walkOnce(dir)
}

// samePlace reports whether d and o are the same damage: same kind, file,
// offset and record.
func (d Damage) samePlace(o Damage) bool {
	return d.Kind == o.Kind && d.Path == o.Path && d.Offset == o.Offset && d.Index == o.Index
}

// maxRelists bounds how often a walk starts again on a fresh listing: a
// directory that changes this often is judged as it is then.
const maxRelists = 16

func (w *walker) walkOnce(dir string) (*State, error) {
	w.st = &State{Dir: dir}
	defer w.closeHandles()
	live, err := w.list(dir)
	if err != nil || w.stop() {
		return w.st, err
	}
	if err := w.formats(live); err != nil || w.stop() {
		return w.st, err
	}
	if len(live) > 0 {
		w.st.Segments = make([]Segment, 0, len(live)) // one allocation for thousands of segments
	}
	var prev *Segment
	for i, path := range live {
		seg, err := w.segment(path, i, i == len(live)-1, prev)
		if err != nil {
			return w.st, err
		}
		w.st.Segments = append(w.st.Segments, seg)
		prev = &w.st.Segments[len(w.st.Segments)-1]
		if w.stop() {
			return w.st, nil
		}
		if w.progress != nil {
			w.progress(seg.Size)
		}
	}
	w.bounds()
	if w.stop() {
		return w.st, nil
	}
	return w.st, w.snapshot()
}

// isTemp reports whether name is a temporary file journal writes in a log
// directory and a crash may leave: a segment being created, the spare
// prepared for the next rotation, or a replacement of the meta, manifest,
// tail or snapshot file. Another program's file that only starts with
// vfs.TempPrefix is not journal's to remove.
func isTemp(name string) bool {
	if rest, ok := strings.CutPrefix(name, vfs.TempPrefix); ok {
		if _, seg := segment.ParseName(rest); seg {
			return true
		}
	}
	if name == segment.SpareName {
		return true
	}
	for _, base := range []string{MetaName, ManifestName, TailName, checkpoint.FileName} {
		if vfs.IsTempOf(name, base) {
			return true
		}
	}
	return false
}

// list reads dir's names and its meta file and sorts the segments into
// live and obsolete (steps 1, 2 and 6 of the procedure) without opening a
// segment.
func (w *walker) list(dir string) ([]string, error) {
	st := w.st
	names, err := w.fs.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("journal: list %s: %w", dir, err)
	}
	st.Meta, err = ReadMeta(w.fs, dir)
	if d, ok := damageOf(KindMeta, filepath.Join(dir, MetaName), err); ok {
		w.damage(d)
	} else if err != nil {
		return nil, err
	}
	var paths []string
	w.listed = names
	// prefix+name is filepath.Join(dir, name) for a segment's name, without
	// cleaning each path again: a log may hold thousands of segments.
	prefix := strings.TrimSuffix(filepath.Join(dir, "x"), "x")
	for _, name := range names {
		switch _, seg := segment.ParseName(name); {
		case isTemp(name):
			if err := w.regular(dir, name); err != nil {
				return nil, err
			}
			st.Temps = append(st.Temps, filepath.Join(dir, name))
		case name == ManifestName || name == TailName || name == LockName:
			if err := w.regular(dir, name); err != nil {
				return nil, err
			}
		case seg:
			paths = append(paths, prefix+name)
		case name != MetaName && name != TailName && name != ManifestName:
			st.Other = append(st.Other, name)
		}
	}
	w.trusted = w.manifest(dir, paths)
	if st.Meta.EmptyPending {
		// A committed TruncateFront past the end: no segment holds a
		// live record, not even the fresh one it may have created.
		st.Obsolete = append(st.Obsolete, paths...)
		return nil, nil
	}
	if m := st.Meta; m.BackPending {
		// A committed TruncateBack: segments starting after the kept
		// records are obsolete.
		keep := 0
		for i, p := range paths {
			if firstOf(p) <= m.Back {
				keep = i + 1
			}
		}
		st.Obsolete = append(st.Obsolete, paths[keep:]...)
		paths = paths[:keep]
	}
	// Segments wholly before the first live index, unread: the next one
	// starts at or before it. A crash while TruncateFront removed them
	// may have left any subset.
	keep := 0
	for i, p := range paths {
		if firstOf(p) <= st.Meta.FirstIndex {
			keep = i
		}
	}
	st.Obsolete = append(st.Obsolete, paths[:keep]...)
	w.trustedFrom = keep
	return paths[keep:], nil
}

// regular fails unless dir/name, a file that Open removes (a temporary,
// the manifest) or opens to write (the tail file, the lock file), is a
// regular file (or a symlink to one): Open cannot remove a directory that
// holds files, nor lock or write one, and would fail where `wal verify`
// judged the log healthy, so the walk refuses it, for both alike. The file is
// not journal's, and may matter to someone: the operator moves it away.
// A Stat that fails (the name gone since the listing) is no objection.
func (w *walker) regular(dir, name string) error {
	path := filepath.Join(dir, name)
	fi, err := w.fs.Stat(path)
	if err != nil || fi.Mode().IsRegular() {
		return nil
	}
	return fmt.Errorf("journal: %s is %s, not a file journal wrote: Open refuses to use or remove it; "+
		"move it out of the log directory: %w", path, kindOf(fi.Mode()), vfs.ErrNotRegular)
}

// kindOf names a kind of file that is not a regular file.
func kindOf(m fs.FileMode) string {
	switch {
	case m.IsDir():
		return "a directory"
	case m&fs.ModeNamedPipe != 0:
		return "a named pipe (FIFO)"
	case m&fs.ModeSocket != 0:
		return "a socket"
	case m&fs.ModeDevice != 0:
		return "a device"
	}
	return "not a regular file"
}

// manifest returns the manifest if the walk may trust it and it matches
// the directory (paths: every segment listed, in log order); nil
// otherwise.
func (w *walker) manifest(dir string, paths []string) *manifest {
	if !w.trust {
		return nil
	}
	m, ok := readManifest(w.fs, dir)
	if !ok || !m.matches(w.st.Meta, paths) {
		return nil
	}
	return &m
}

// trustedEntry returns the manifest's entry for the i-th live segment, if
// the walk takes the segment from it. The newest segment never is: it is
// judged as always. By position, as the manifest matched the listing
// (thousands of segments must not cost a search each).
func (w *walker) trustedEntry(i int, newest bool) (sealedEntry, bool) {
	if w.trusted == nil || newest || w.trustedFrom+i >= len(w.trusted.sealed) {
		return sealedEntry{}, false
	}
	return w.trusted.sealed[w.trustedFrom+i], true
}

func firstOf(path string) uint64 {
	first, _ := segment.ParseName(filepath.Base(path))
	return first
}

// formats reads every live segment's header before any is judged, so a
// foreign file, one of a newer version, or one whose header is damaged or
// cut short is reported as such, first, rather than as damage to the
// segments around it (the segment before it would otherwise be reported
// first, as unsealed with a later segment present).
func (w *walker) formats(paths []string) error {
	w.handles = make([]*segment.Handle, len(paths))
	for i, path := range paths {
		if _, ok := w.trustedEntry(i, i == len(paths)-1); ok {
			continue
		}
		h, err := segment.OpenHandle(w.fs, path)
		if err == nil {
			h.Idle() // judged later, by segment
			w.handles[i] = h
			continue
		}
		d, judged := damageOf(KindHeader, path, err)
		if !judged {
			w.vanished(err)
			return err
		}
		w.damage(d)
		if w.stop() {
			return nil
		}
	}
	return nil
}

// closeHandles closes the handles no segment took.
func (w *walker) closeHandles() {
	for _, h := range w.handles {
		if h != nil {
			h.Close()
		}
	}
	w.handles = nil
}

// segment judges live segment i; prev is the segment before it (nil for
// the first).
func (w *walker) segment(path string, i int, newest bool, prev *Segment) (Segment, error) {
	e, trusted := w.trustedEntry(i, newest)
	first := e.h.FirstIndex // the manifest matched the listing's names
	if !trusted {
		first = firstOf(path)
	}
	if prev != nil && prev.Next != 0 && first != prev.Next {
		// The segment that would fill the gap, if it exists unlisted.
		// (Listed, it is prev itself, holding no record.)
		if missing := segment.Name(prev.Next); first > prev.Next && !w.isListed(missing) {
			_, err := w.fs.Stat(filepath.Join(filepath.Dir(path), missing))
			w.stale = w.stale || err == nil
		}
		w.damage(Damage{Kind: KindOrder, Path: path, Index: prev.Next, Reason: fmt.Sprintf(
			"segment starts at index %d, but %s ends before %d: segments missing or overlapping",
			first, filepath.Base(prev.Path), prev.Next)})
		if w.stop() {
			return Segment{Path: path, First: first}, nil
		}
	}
	if trusted {
		return e.segment(path), nil
	}
	return w.judgeSegment(path, i, newest, first)
}

// judgeSegment reads and judges live segment i, which the manifest does
// not describe. (Apart from segment, whose fast path for thousands of
// segments the manifest describes must not allocate: seg escapes here.)
func (w *walker) judgeSegment(path string, i int, newest bool, first uint64) (seg Segment, err error) {
	seg = Segment{Path: path, First: first}
	h := w.handles[i]
	w.handles[i] = nil
	if h == nil {
		// Damage to the header was reported first, by formats (which
		// keeps no handle then).
		if h, err = segment.OpenHandle(w.fs, path); err != nil {
			if _, judged := damageOf(KindHeader, path, err); !judged {
				w.vanished(err)
				return seg, err
			}
			if fi, err := w.fs.Stat(path); err == nil {
				seg.Size = fi.Size()
			}
			return seg, nil
		}
	}
	defer func() {
		if w.keep && seg.Sealed && err == nil {
			seg.File = h.Detach()
			return
		}
		h.Close()
	}()
	seg.Header, seg.Size = h.Header(), h.Size()
	if seg.Header.FirstIndex != seg.First {
		w.damage(Damage{Kind: KindHeader, Path: path, Index: seg.First,
			Reason: fmt.Sprintf("header names first index %d", seg.Header.FirstIndex)})
		// A file under another segment's name (a copy left beside the
		// log): its frames and footer speak of other indexes, so judging
		// them by its name would only report every record as damage, and
		// its footer's end as the log's. Its Next stays unknown (0), so
		// the segments around it are judged by their own names.
		return seg, nil
	}
	j := &judge{w: w, h: h, seg: &seg, newest: newest, first: max(w.st.Meta.FirstIndex, 1)}
	if newest && w.st.Meta.BackPending {
		j.limit = w.st.Meta.Back
	}
	return seg, j.run()
}

// bounds checks the log's ends against the meta file and releases
// segments wholly before the first live index (step 6).
func (w *walker) bounds() {
	st := w.st
	want := max(st.Meta.FirstIndex, 1)
	st.FirstIndex = want
	if len(st.Segments) == 0 {
		return
	}
	// The first segment's name alone says whether records before it are
	// missing, so Check reports it even after other damage: salvage must
	// give the log its start back as well as cut at the damage. Not with a
	// damaged meta file, whose first index is unknown.
	first := st.Segments[0]
	if first.First > want && !slices.ContainsFunc(st.Damage, func(d Damage) bool { return d.Kind == KindMeta }) {
		w.damage(Damage{Kind: KindMissing, Path: first.Path, Index: want, Reason: fmt.Sprintf(
			"the log starts at %d but its first segment at %d: records %d to %d are missing (a segment file was removed)",
			want, first.First, want, first.First-1)})
		return
	}
	if st.Damaged() {
		return // where damaged segments end is not known
	}
	if next := st.segmentsEnd(); next != 0 && want > next {
		w.damage(Damage{Kind: KindMissing, Path: filepath.Join(st.Dir, MetaName), Index: next, Reason: fmt.Sprintf(
			"first index %d lies past the end of the log (next index %d): records %d to %d are missing",
			want, next, next, want-1)})
		return
	}
	for len(st.Segments) > 1 && st.Segments[0].Next != 0 && st.Segments[0].Next <= st.FirstIndex {
		st.Obsolete = append(st.Obsolete, st.Segments[0].Path)
		st.Segments[0].close()
		st.Segments = st.Segments[1:]
	}
}

// snapshot reads the snapshot (its contents too in a deep walk) and checks
// that the log continues it: no record may be missing between the two.
func (w *walker) snapshot() error {
	st := w.st
	read := checkpoint.ReadHeader
	if w.deep {
		read = checkpoint.Verify
	}
	h, err := read(w.fs, st.Dir)
	path := filepath.Join(st.Dir, checkpoint.FileName)
	if errors.Is(err, checkpoint.ErrNoSnapshot) {
		return nil
	}
	if d, ok := damageOf(KindSnapshot, path, err); ok {
		if h.Index != 0 {
			st.SnapshotFile = &h // its header is readable
		}
		w.damage(d)
		return nil
	}
	if err != nil {
		return err
	}
	st.Snapshot, st.SnapshotFile = h.Index, &h
	if len(st.Damage) > 0 {
		return nil // the log's own ends are not known
	}
	first, next := st.FirstIndex, st.NextIndex()
	switch {
	case first > h.Index+1:
		w.damage(Damage{Kind: KindSnapshot, Path: path, Index: h.Index + 1, Reason: fmt.Sprintf(
			"the snapshot covers the log up to index %d, but the log starts at %d: records %d to %d are missing between them",
			h.Index, first, h.Index+1, first-1)})
	case next <= h.Index:
		w.damage(endsBeforeSnapshot(st.Dir, h.Index, next))
	}
	return nil
}

// endsBeforeSnapshot is the damage of a log whose next index is next, which
// ends before the snapshot (as of snap) it must continue.
func endsBeforeSnapshot(dir string, snap, next uint64) Damage {
	return Damage{Kind: KindSnapshot, Path: filepath.Join(dir, checkpoint.FileName), Index: next, Reason: fmt.Sprintf(
		"the snapshot covers the log up to index %d, but the log ends at %d: records are missing between them",
		snap, next-1)}
}

// openRW opens a file for Repair and salvage.
func openRW(fsys vfs.FS, path string) (vfs.File, error) {
	f, err := fsys.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return nil, fmt.Errorf("journal: recovery: %w", err)
	}
	return f, nil
}

// Live lists the live segment files of dir, in log order, by their names
// and the meta file alone (step 2), without opening a segment.
func Live(fsys vfs.FS, dir string) ([]string, error) {
	w := &walker{fs: fsys, st: &State{Dir: dir}}
	return w.list(dir)
}
