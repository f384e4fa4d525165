// Package recovery decides what a log directory holds after a crash and
// repairs it. It never imports the log itself, so tools can examine a
// damaged directory without opening (or locking) a log.
//
// The procedure, run by Scan and then Repair:
//
//  1. List the directory: segment files (NNNNNNNNNNNNNNNNNNNN.wal), leftover
//     temporary files (.tmp-*), and the meta file.
//  2. Read the meta file. If it records a committed TruncateBack to index b,
//     the segment holding b becomes the newest and every later one is
//     dropped; records after b are cut.
//  3. Every segment but the newest must be sealed: its header and footer
//     must be valid (with Options.Deep every record is checked too). Any
//     damage there is corruption.
//  4. The newest segment is scanned frame by frame from its header. The scan
//     stops at the first frame that is not valid. The valid data ends at the
//     last complete batch before that point.
//  5. The bytes after the stop are searched for a valid frame written after
//     the stop was durable (each frame records how far its segment was synced
//     when it was written). If there is one, the damage lies in data once
//     acknowledged: corruption, reported with file, offset and index, and
//     nothing is cut. Otherwise the bytes are a torn tail left by a crash:
//     they are cut, and their count reported.
//  6. Segments must continue each other without gap or overlap. Segments
//     wholly before the meta file's first index are released.
//
// Repair then removes temporary files and released segments, cuts a torn
// tail (truncate and fdatasync) and finishes a committed TruncateBack. It is
// idempotent: running it twice, or again after a crash during it, leaves the
// same log.
package recovery

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/gojournal/journal/segment"
	"github.com/gojournal/journal/vfs"
)

// Options tunes Scan.
type Options struct {
	// Deep checks every record of sealed segments, not just their footers.
	Deep bool
}

// Segment is what Scan found in one segment file.
type Segment struct {
	Path   string
	Header segment.Header
	Size   int64 // file size as found
	Sealed bool  // has a valid footer (and is not cut by Repair)
	Footer segment.Footer
	Next   uint64 // index after the segment's last valid record

	// For the newest segment only:
	Offsets []int64 // start of each valid record frame
	End     int64   // end of the valid data: where the next write goes
	// SealAt, when not 0, is where Repair writes the footer that ends the
	// segment after the records at Offsets (a committed TruncateBack).
	SealAt int64
}

// Records is the number of records in the segment.
func (s *Segment) Records() uint64 { return s.Next - s.Header.FirstIndex }

// Torn describes a torn tail that Repair cuts.
type Torn struct {
	Path    string
	Offset  int64  // where the valid data ends; everything after it goes
	Bytes   int64  // non-zero bytes dropped (zeroed preallocation is not counted)
	Records int    // valid records of an unfinished batch that go with it
	Reason  string // why the scan stopped
}

// State is what a log directory holds, as Scan found it.
type State struct {
	Dir        string
	Meta       Meta
	FirstIndex uint64    // first live record
	Segments   []Segment // live segments in log order; the last is the newest
	Torn       *Torn     // nil when the tail is clean
	Temps      []string  // leftover temporary files to remove
	Obsolete   []string  // segments to remove (released, or cut by TruncateBack)
}

// NextIndex is the index the next appended record gets.
func (st *State) NextIndex() uint64 {
	if len(st.Segments) == 0 {
		return max(st.FirstIndex, 1)
	}
	return st.Segments[len(st.Segments)-1].Next
}

// Clean reports whether Repair has nothing to do.
func (st *State) Clean() bool {
	return st.Torn == nil && len(st.Temps) == 0 && len(st.Obsolete) == 0 && !st.Meta.BackPending
}

// Scan examines dir without changing anything. Damage in data the log
// holds as durable gives an error satisfying errors.Is(err,
// segment.ErrCorrupt), usually a *segment.CorruptionError naming the file
// and offset; a file that is not a journal segment of a known version gives
// segment.ErrFormat.
func Scan(fsys vfs.FS, dir string, opts Options) (*State, error) {
	names, err := fsys.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("journal: list %s: %w", dir, err)
	}
	st := &State{Dir: dir}
	if st.Meta, err = ReadMeta(fsys, dir); err != nil {
		return nil, err
	}
	var paths []string
	for _, name := range names {
		if strings.HasPrefix(name, vfs.TempPrefix) {
			st.Temps = append(st.Temps, filepath.Join(dir, name))
		} else if _, ok := segment.ParseName(name); ok {
			paths = append(paths, filepath.Join(dir, name))
		}
	}
	paths = st.dropCutSegments(paths)
	paths = st.dropReleased(paths)
	if err := checkFormats(fsys, paths); err != nil {
		return nil, err
	}
	for i, path := range paths {
		seg, err := scanSegment(fsys, path, i == len(paths)-1, st.Meta, opts)
		if err != nil {
			return nil, err
		}
		if err := st.add(seg); err != nil {
			return nil, err
		}
	}
	return st, st.release()
}

// dropCutSegments applies a committed TruncateBack: segments that start
// after the kept records are obsolete.
func (st *State) dropCutSegments(paths []string) []string {
	if !st.Meta.BackPending {
		return paths
	}
	keep := 0
	for i, path := range paths {
		if first, _ := segment.ParseName(filepath.Base(path)); first <= st.Meta.Back {
			keep = i + 1
		}
	}
	st.Obsolete = append(st.Obsolete, paths[keep:]...)
	return paths[:keep]
}

// dropReleased marks obsolete, without reading them, the segments that
// lie wholly before the first live index: the next segment starts at or
// before it. A crash (or failure) while TruncateFront removed them may have
// left any subset.
func (st *State) dropReleased(paths []string) []string {
	keep := 0
	for i, path := range paths {
		if first, _ := segment.ParseName(filepath.Base(path)); first <= st.Meta.FirstIndex {
			keep = i
		}
	}
	st.Obsolete = append(st.Obsolete, paths[:keep]...)
	return paths[keep:]
}

// checkFormats reads every segment's header before any is judged, so a
// foreign file or one of a newer version is reported as such rather than
// as damage to the segments around it.
func checkFormats(fsys vfs.FS, paths []string) error {
	head := make([]byte, segment.HeaderSize)
	for _, path := range paths {
		f, err := fsys.OpenFile(path, os.O_RDONLY, 0)
		if err != nil {
			return fmt.Errorf("journal: open segment: %w", err)
		}
		n, _ := f.ReadAt(head, 0)
		f.Close()
		if _, err := segment.DecodeHeader(head[:n]); errors.Is(err, segment.ErrFormat) {
			return fileError(path, err)
		}
	}
	return nil
}

// add appends a scanned segment, checking that it continues the log.
func (st *State) add(seg scanned) error {
	if n := len(st.Segments); n > 0 {
		prev := st.Segments[n-1]
		if seg.Header.FirstIndex != prev.Next {
			return &segment.CorruptionError{Path: seg.Path, Index: prev.Next, Reason: fmt.Sprintf(
				"segment starts at index %d but %s ends before %d: segments missing or overlapping",
				seg.Header.FirstIndex, filepath.Base(prev.Path), prev.Next)}
		}
	}
	st.Segments = append(st.Segments, seg.Segment)
	st.Torn = seg.torn
	return nil
}

// release marks segments wholly before the first live index obsolete,
// keeping the newest (appends continue in it).
func (st *State) release() error {
	st.FirstIndex = 1
	if len(st.Segments) > 0 {
		st.FirstIndex = st.Segments[0].Header.FirstIndex
	}
	if want := max(st.Meta.FirstIndex, 1); st.FirstIndex > want {
		return &segment.CorruptionError{Path: st.Segments[0].Path, Index: want, Reason: fmt.Sprintf(
			"the log starts at %d but its first segment at %d: segments are missing", want, st.FirstIndex)}
	}
	st.FirstIndex = max(st.FirstIndex, st.Meta.FirstIndex)
	if next := st.NextIndex(); st.FirstIndex > next && len(st.Segments) > 0 {
		return &segment.CorruptionError{Path: filepath.Join(st.Dir, MetaName), Reason: fmt.Sprintf(
			"first index %d lies past the end of the log (next index %d)", st.FirstIndex, next)}
	}
	for len(st.Segments) > 1 && st.Segments[0].Next <= st.FirstIndex {
		st.Obsolete = append(st.Obsolete, st.Segments[0].Path)
		st.Segments = st.Segments[1:]
	}
	return nil
}

// scanned is a Segment plus what Scan learned about its tail.
type scanned struct {
	Segment
	torn *Torn
}

func scanSegment(fsys vfs.FS, path string, newest bool, meta Meta, opts Options) (scanned, error) {
	f, err := fsys.OpenFile(path, os.O_RDONLY, 0)
	if err != nil {
		return scanned{}, fmt.Errorf("journal: open segment: %w", err)
	}
	defer f.Close()
	seg := scanned{Segment: Segment{Path: path}}
	if seg.Size, err = f.Size(); err != nil {
		return seg, fmt.Errorf("journal: stat %s: %w", path, err)
	}
	head := make([]byte, segment.HeaderSize)
	if _, err := f.ReadAt(head, 0); err != nil && seg.Size >= segment.HeaderSize {
		return seg, fmt.Errorf("journal: read %s: %w", path, err)
	}
	if seg.Header, err = segment.DecodeHeader(head); err != nil {
		return seg, fileError(path, err)
	}
	if first, _ := segment.ParseName(filepath.Base(path)); first != seg.Header.FirstIndex {
		return seg, &segment.CorruptionError{Path: path, Reason: fmt.Sprintf("header names first index %d", seg.Header.FirstIndex)}
	}
	ft, reason, err := segment.ReadFooter(f, seg.Size, seg.Header)
	if err != nil {
		return seg, fmt.Errorf("journal: read %s: %w", path, err)
	}
	if reason == "" {
		seg.Sealed, seg.Footer, seg.Next = true, ft, ft.Next
	}
	switch {
	case meta.BackPending && newest && !(seg.Sealed && seg.Next == meta.Back+1):
		return seg, prepareSeal(f, &seg, meta.Back)
	case seg.Sealed && opts.Deep:
		return seg, checkRecords(f, &seg)
	case seg.Sealed:
		return seg, nil
	case !newest:
		// Sealed segments are synced before the next one exists:
		// anything short of a valid footer is damage.
		return seg, notSealed(f, &seg)
	}
	return seg, scanTail(f, &seg)
}

func fileError(path string, err error) error {
	return fmt.Errorf("%s: %w", path, err)
}

// notSealed explains why a segment that must be sealed is not.
func notSealed(f vfs.File, seg *scanned) error {
	sc := segment.NewScanner(f, seg.Size, seg.Header)
	for sc.Next() {
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("journal: read %s: %w", seg.Path, err)
	}
	_, next := sc.Committed()
	reason := sc.Reason()
	switch {
	case sc.Sealed():
		reason = "footer trailer damaged"
	case reason == "" || reason == "zeroed space":
		reason = "segment is not sealed but later segments exist"
	}
	return &segment.CorruptionError{Path: seg.Path, Offset: sc.Offset(), Index: next, Reason: reason}
}

// checkRecords reads every record a sealed segment's footer indexes.
func checkRecords(f vfs.File, seg *scanned) error {
	for k := range seg.Footer.Count {
		off, size, err := seg.Footer.RecordSpan(f, k)
		if err != nil {
			return fmt.Errorf("journal: read %s: %w", seg.Path, err)
		}
		if _, err := segment.ReadRecord(f, seg.Path, seg.Header, off, size, seg.Header.FirstIndex+uint64(k)); err != nil {
			return err
		}
	}
	return nil
}

// prepareSeal finds the records a committed TruncateBack keeps in the
// segment that holds its last record, for Repair to seal the segment after
// them.
func prepareSeal(f vfs.File, seg *scanned, back uint64) error {
	keep := int(back + 1 - seg.Header.FirstIndex)
	if seg.Sealed {
		if seg.Next <= back {
			return &segment.CorruptionError{Path: seg.Path, Index: back, Reason: "a committed TruncateBack keeps records this segment does not hold"}
		}
		for k := range keep + 1 {
			off, size, err := seg.Footer.RecordSpan(f, int64(min(k, keep-1)))
			if err != nil {
				return fmt.Errorf("journal: read %s: %w", seg.Path, err)
			}
			if k == keep {
				off += size
			}
			seg.Offsets = append(seg.Offsets, off)
		}
	} else {
		sc := segment.NewScanner(f, seg.Size, seg.Header)
		for len(seg.Offsets) <= keep && sc.Next() {
			seg.Offsets = append(seg.Offsets, sc.Frame().Offset)
		}
		if len(seg.Offsets) < keep {
			return &segment.CorruptionError{Path: seg.Path, Offset: sc.Offset(), Index: seg.Header.FirstIndex + uint64(len(seg.Offsets)),
				Reason: "records a committed TruncateBack keeps are damaged: " + sc.Reason()}
		}
		if len(seg.Offsets) == keep {
			seg.Offsets = append(seg.Offsets, sc.Offset())
		}
	}
	seg.SealAt = segment.AlignSector(seg.Offsets[keep])
	seg.Offsets = seg.Offsets[:keep]
	seg.Sealed, seg.Next = false, back+1
	return nil
}

// scanTail scans the newest segment, finds where its valid data ends and
// classifies what follows.
func scanTail(f vfs.File, seg *scanned) error {
	sc := segment.NewScanner(f, seg.Size, seg.Header)
	for sc.Next() {
		seg.Offsets = append(seg.Offsets, sc.Frame().Offset)
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("journal: read %s: %w", seg.Path, err)
	}
	valid := len(seg.Offsets)
	seg.End, seg.Next = sc.Cut()
	seg.Offsets = seg.Offsets[:seg.Next-seg.Header.FirstIndex]
	return classifyTail(f, seg, sc, valid-len(seg.Offsets))
}

// classifyTail decides whether the bytes after the valid data are a torn
// write (cut them) or damage followed by durable data (corruption).
// dropped counts valid records of an unfinished batch after the valid data.
func classifyTail(f vfs.File, seg *scanned, sc *segment.Scanner, dropped int) error {
	stop := sc.Offset()
	tail, err := segment.ScanTail(f, seg.Size, seg.Header, stop)
	if err != nil {
		return fmt.Errorf("journal: read %s: %w", seg.Path, err)
	}
	if d := tail.Durable; d != nil {
		return &segment.CorruptionError{Path: seg.Path, Offset: stop, Index: seg.Next + uint64(dropped), Reason: fmt.Sprintf(
			"%s, yet a frame written after this point was durable follows (index %d at offset %d)",
			sc.Reason(), d.Index, d.Offset)}
	}
	if end := min(max(tail.End, stop), seg.Size); end > seg.End || dropped > 0 {
		seg.torn = &Torn{Path: seg.Path, Offset: seg.End, Bytes: end - seg.End, Records: dropped, Reason: sc.Reason()}
		if sc.Sealed() {
			seg.torn.Reason = "footer trailer damaged"
		}
	}
	return nil
}

// Repair makes the directory match the state: it cuts a torn tail or the
// records a committed TruncateBack dropped (truncate, fdatasync), removes
// obsolete segments and temporary files (then syncs the directory), and
// marks a pending TruncateBack done. After it the newest segment ends at
// its End and the state is Clean.
func (st *State) Repair(fsys vfs.FS) error {
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
	if st.Meta.BackPending {
		m := st.Meta
		m.BackPending = false
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
	ft, err := segment.Seal(f, seg.Header, seg.SealAt, seg.Offsets)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("journal: recovery: seal %s: %w", seg.Path, err)
	}
	seg.Sealed, seg.Footer, seg.Next, seg.Size = true, ft, ft.Next, segment.SealedSize(ft.Offset, int(ft.Count))
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
