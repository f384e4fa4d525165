package recovery

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/gojournal/journal/segment"
	"github.com/gojournal/journal/vfs"
)

// Salvage is the operator's last resort, for a directory that Open refuses
// because data it had made durable is damaged (or that Check finds
// damaged). Open never drops durable records by itself; salvage does, on
// request, and keeps what it drops.
//
// The procedure, planned by PlanSalvage (which only reads) and carried out
// by SalvagePlan.Apply:
//
//  1. Check the directory (every byte, see Check) and take its damage in
//     log order.
//  2. A segment whose records are all intact and that continues into the
//     next segment, but whose footer is missing or damaged, is resealed:
//     its footer is written again, after the records the walk found,
//     nothing is given up. Go on with the next damage.
//  3. At the first other damage the log is cut: it will end at the last
//     sector-aligned commit point before the damage (Scanner.Cut), in the
//     damaged segment, which becomes the newest. A segment whose header is
//     unreadable, or that does not continue the previous one, is dropped
//     whole (if it was the first, an empty segment replaces it so that
//     indexes go on where they were). Every live record indexed at or
//     after the cut is given up (records already released are not counted).
//     Records missing before the first segment (a removed segment file)
//     are planned first, wherever that damage falls in log order: the log
//     restarts at its first segment (Restart).
//  4. Before anything changes, every file that will change or go is copied,
//     whole, into a new quarantine directory beside the segments
//     (QuarantinePrefix + UTC time), with a README saying what was cut
//     where; the copies, the README and both directories are fsync'd.
//     Whole copies keep each segment's header, whose salt the frame
//     checksums need, so the quarantine directory can itself be read with
//     the CLI's verify. It holds no journal.meta: unless its first copy is
//     the log's first segment, verify reports the records before that copy
//     as missing, and dump (which shows what Open would keep) stops there
//     with exit 1 and prints nothing.
//  5. Reseal, or cut the damaged segment (truncate, fdatasync), then
//     remove the later segments, newest first, and sync the directory.
//     A pending TruncateBack is void after a cut (the log now ends before
//     it) and the meta file says so.
//
// A snapshot changes step 3: the log must continue the snapshot (Open
// refuses a log that ends before the snapshot's index). When the cut would
// end the log at or before the index S the snapshot covers
// (SalvageOptions.Snapshot), the records up to S are not needed: the log
// continues after the snapshot instead, in an empty segment starting at S+1,
// and the meta file's first index becomes S+1 (its rename is the commit
// point; segments before it are then obsolete and Repair removes them).
// Only records after S are given up.
//
// A crash at any point leaves a directory that Salvage, run again, brings
// to the same end: the quarantine copies are complete before anything is
// changed, the damaged segment is cut before any later segment goes, and
// later segments go newest first. Salvage does not Repair: run Scan and
// Repair (or Open) afterwards to cut a torn tail and remove leftovers.
//
// The caller must hold the log's directory lock.

// QuarantinePrefix starts the name of the directories salvage creates.
const QuarantinePrefix = "quarantine-"

// SalvagePlan is what salvage would do to a directory.
type SalvagePlan struct {
	Dir    string
	Report *State // what Check found
	// Reseal lists segments whose footer is rewritten (nothing given up).
	Reseal []string
	// Cut is nil when nothing is cut.
	Cut *Cut
	// Restart, when set, moves the log's first index (missing records).
	Restart *Restart
	// Copies lists the files Apply copies whole into the quarantine
	// directory before it changes anything: every file that changes or
	// goes.
	Copies []string
	// Quarantine is the directory Apply copied files into ("" before
	// Apply, or when nothing needed copying).
	Quarantine string
}

// Cut says where salvage ends the log.
type Cut struct {
	Damage Damage // the damage that forces the cut
	Path   string // the segment cut, which becomes the newest
	// Offset is where the segment is cut; 0 drops the file whole.
	Offset int64
	// Index is the first index given up: the log ends at Index-1 and the
	// next append gets Index.
	Index uint64
	// Records is how many records had been indexed at or after Index
	// (readable or not) in segments whose header is readable: what the
	// log gives up. Records in a segment whose header is unreadable are
	// not counted: nothing says how many it held.
	Records uint64
	// Bytes is how many bytes leave the log: the segment's bytes after
	// Offset and every later segment.
	Bytes int64
	// Later lists the later segment files removed whole.
	Later []string
	// Fresh, when not 0, is the first index of the empty segment that
	// replaces a dropped first segment.
	Fresh uint64
	// ClearBack is set when a pending TruncateBack becomes void.
	ClearBack bool
	// Snapshot, when not 0, is the index the snapshot covers, when the log
	// continues after it: the meta file's first index becomes
	// Snapshot+1 (= Fresh), and the records from Index to Snapshot, cut
	// from the log, are covered by the snapshot (Covered of them).
	Snapshot uint64
	Covered  uint64
}

// Restart says how salvage makes a log whose first records are missing
// open again: the meta file's first index becomes First, and, when Fresh is
// set, an empty segment starting there continues the log.
type Restart struct {
	Damage Damage
	First  uint64
	Fresh  bool
	// Missing is how many records were already gone.
	Missing uint64
}

// SalvageOptions tunes PlanSalvage.
type SalvageOptions struct {
	CheckOptions
	// Snapshot is the index the directory's snapshot covers (0: none).
	// Package recovery does not read snapshots; the caller passes it.
	Snapshot uint64
}

// ErrNoSalvage is returned (wrapped) by PlanSalvage for damage salvage
// must not cut: a newer format version, a damaged meta file, a damaged
// snapshot or one the log starts after (also when it would start after it
// once salvage moved its first index past missing records).
var ErrNoSalvage = errors.New("journal: salvage refused")

// Empty reports whether the plan changes nothing.
func (p *SalvagePlan) Empty() bool { return p.Cut == nil && p.Restart == nil && len(p.Reseal) == 0 }

// PlanSalvage checks dir (Check) and works out what Salvage would do. It
// only reads.
func PlanSalvage(fsys vfs.FS, dir string, opts SalvageOptions) (*SalvagePlan, error) {
	rep, err := Check(fsys, dir, opts.CheckOptions)
	if err != nil {
		return nil, err
	}
	return PlanSalvageFor(fsys, rep, opts.Snapshot)
}

// PlanSalvageFor works out what Salvage would do from what Check found;
// snapshot is the index the directory's snapshot covers (0: none).
func PlanSalvageFor(fsys vfs.FS, rep *State, snapshot uint64) (*SalvagePlan, error) {
	p, err := planSalvage(fsys, rep, snapshot)
	if err != nil {
		return nil, err
	}
	p.Copies = slices.Clone(p.Reseal)
	if c := p.Cut; c != nil {
		p.Copies = append(p.Copies, c.Path)
		p.Copies = append(p.Copies, c.Later...)
	}
	gone := []string{ManifestName} // Apply removes the manifest before it changes anything
	if p.Restart != nil {
		gone = append(gone, MetaName)
	}
	for _, name := range gone {
		path := filepath.Join(p.Dir, name)
		if _, err := fsys.Stat(path); err == nil && !p.Empty() {
			p.Copies = append(p.Copies, path)
		} else if err != nil && !errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("journal: salvage: %w", err)
		}
	}
	return p, nil
}

// Result is the range of records the log holds once the plan is carried
// out: the first index and the index the next append gets. The cut and
// the restart decide it; a reseal changes nothing, and neither does the
// Repair that follows (the cut segment ends at the cut).
func (p *SalvagePlan) Result() (first, next uint64) {
	rep := p.Report
	first, next = max(rep.FirstIndex, 1), rep.NextIndex()
	if r := p.Restart; r != nil {
		first = r.First
		if r.Fresh {
			next = r.First
		}
	}
	if c := p.Cut; c != nil {
		next = c.Index
		if c.Snapshot != 0 || (c.Fresh != 0 && c.Fresh > first) {
			first = c.Fresh
		}
	}
	return first, next
}

func planSalvage(fsys vfs.FS, rep *State, snapshot uint64) (*SalvagePlan, error) {
	p := &SalvagePlan{Dir: rep.Dir, Report: rep}
	segs := rep.Segments
	at := func(path string) int {
		return slices.IndexFunc(segs, func(s Segment) bool { return s.Path == path })
	}
	// Damage salvage refuses, wherever it lies: a cut at earlier damage
	// would leave it, and the log unopenable. Missing records at the start
	// are planned here too, for the same reason: the first segment's
	// damage may come first in log order and end the search for a cut.
	for _, d := range rep.Damage {
		switch {
		case d.Kind == KindMeta:
			return nil, fmt.Errorf("%w: %s: the meta file holds the log's first index and pending truncations; "+
				"salvage cannot rebuild it (restore it from a backup)", ErrNoSalvage, d)
		case d.Kind == KindVersion:
			return nil, fmt.Errorf("%w: %s: written by a newer version of journal; use that version", ErrNoSalvage, d)
		case d.Kind == KindSnapshot && d.Index == 0: // the snapshot file itself, not where the log meets it
			return nil, fmt.Errorf("%w: %s: restore the snapshot from a backup, or have the application write a new one",
				ErrNoSalvage, d)
		case d.Kind == KindMissing && p.Restart == nil:
			p.Restart = planRestart(rep, d)
			if snapshot != 0 && p.Restart.First > snapshot+1 {
				return nil, fmt.Errorf("%w: %s: the log would start at %d, after the snapshot (as of %d): "+
					"restore the missing segments from a backup, or have the application write a new snapshot",
					ErrNoSalvage, d, p.Restart.First, snapshot)
			}
			if p.Restart.Fresh && p.Restart.First <= snapshot {
				// An empty log must continue the snapshot: it starts
				// after it (the records between are covered by it).
				p.Restart.First = snapshot + 1
			}
		}
	}
	if p.Restart != nil && p.Restart.Fresh {
		return p, nil // every segment holds only released records
	}
	for _, d := range inLogOrder(rep) {
		switch d.Kind {
		case KindMissing:
			continue // planned above
		case KindSnapshot:
			if p.Cut != nil || d.Index == 0 || d.Index > snapshot || len(segs) == 0 {
				return nil, fmt.Errorf("%w: %s: restore the snapshot from a backup, or have the application write a new one",
					ErrNoSalvage, d)
			}
			// The log ends before the snapshot: it continues after it.
			d.Offset = segs[len(segs)-1].End
			c, err := planCut(fsys, rep, len(segs)-1, d, snapshot)
			if err != nil {
				return nil, err
			}
			p.Cut = c
			return p, nil
		}
		i := at(d.Path)
		if i < 0 {
			return nil, fmt.Errorf("journal: salvage: damage in %s, which is not a live segment", d.Path)
		}
		if d.Kind == KindFooter && segs[i].Intact && i+1 < len(segs) && segs[i+1].First == segs[i].Next {
			p.Reseal = append(p.Reseal, d.Path)
			continue
		}
		c, err := planCut(fsys, rep, i, d, snapshot)
		if err != nil {
			return nil, err
		}
		p.Cut = c
		break
	}
	if n := len(segs); p.Cut == nil && n > 0 && snapshot != 0 && rep.NextIndex() <= snapshot {
		// Check does not judge where the log meets the snapshot once it
		// has found other damage: the log left by reseals alone must
		// still reach the snapshot, or it continues after it.
		d := endsBeforeSnapshot(rep.Dir, snapshot, rep.NextIndex())
		d.Offset = segs[n-1].End
		c, err := planCut(fsys, rep, n-1, d, snapshot)
		if err != nil {
			return nil, err
		}
		p.Cut = c
	}
	return p, nil
}

// inLogOrder returns the damage sorted by where it lies in the log: by
// segment, then offset; damage outside the segments last.
func inLogOrder(rep *State) []Damage {
	pos := func(d Damage) int {
		if i := slices.IndexFunc(rep.Segments, func(s Segment) bool { return s.Path == d.Path }); i >= 0 {
			return i
		}
		return len(rep.Segments)
	}
	out := slices.Clone(rep.Damage)
	slices.SortStableFunc(out, func(a, b Damage) int {
		if c := pos(a) - pos(b); c != 0 {
			return c
		}
		return int(a.Offset - b.Offset)
	})
	return out
}

// planRestart works out how a log whose first records are missing opens
// again: it starts at its first segment, or, when even the records after
// the meta file's first index are gone, in an empty segment there.
func planRestart(rep *State, d Damage) *Restart {
	want := max(rep.Meta.FirstIndex, 1)
	first := rep.Segments[0].First
	if first > want {
		return &Restart{Damage: d, First: first, Missing: first - want}
	}
	next := rep.segmentsEnd()
	return &Restart{Damage: d, First: want, Fresh: true, Missing: want - min(next, want)}
}

// planCut works out the cut for damage d in live segment i.
func planCut(fsys vfs.FS, rep *State, i int, d Damage, snapshot uint64) (*Cut, error) {
	s := rep.Segments[i]
	c := &Cut{Damage: d, Path: s.Path, ClearBack: rep.Meta.BackPending}
	switch d.Kind {
	case KindOrder, KindHeader, KindForeign:
		c.Index = s.First
		if i > 0 {
			c.Index = rep.Segments[i-1].Next
		} else {
			c.Fresh = max(s.First, rep.Meta.FirstIndex)
			c.Index = c.Fresh
		}
	default:
		var err error
		if c.Offset, c.Index, err = cutPoint(fsys, s.Path, d.Offset); err != nil {
			return nil, err
		}
	}
	// Records below the log's first live index were released, not given
	// up: a cut among them leaves an empty log that starts there, in an
	// empty segment (the segments before it hold only released records).
	if c.Index < rep.FirstIndex {
		c.Offset, c.Index, c.Fresh = 0, rep.FirstIndex, rep.FirstIndex
	}
	if snapshot != 0 && c.Index <= snapshot {
		// The log would end before the snapshot: continue after it.
		c.Covered = snapshot + 1 - c.Index
		c.Offset, c.Index, c.Snapshot, c.Fresh = 0, snapshot+1, snapshot, snapshot+1
	}
	c.Bytes = s.Size - c.Offset
	// Only segments whose header is readable say what they held: the
	// name of one that is not (a foreign or truncated file) proves no
	// record exists, and counting up to it gave up records never written.
	known := c.Index
	for _, t := range rep.Segments[i:] {
		known = max(known, t.Next)
	}
	for _, t := range rep.Segments[i+1:] {
		c.Later = append(c.Later, t.Path)
		c.Bytes += t.Size
	}
	if c.ClearBack || c.Snapshot != 0 {
		// Segments a pending TruncateBack made obsolete would be live
		// again once it is cleared: they go too.
		for _, o := range rep.Obsolete {
			if first, _ := segment.ParseName(filepath.Base(o)); first > s.First {
				c.Later = append(c.Later, o)
			}
		}
		slices.Sort(c.Later)
	}
	c.Records = known - c.Index
	return c, nil
}

// cutPoint scans the segment at path and returns the last point at or
// before offset damage where the log can end (Scanner.Cut), and the index
// that follows it.
func cutPoint(fsys vfs.FS, path string, damage int64) (int64, uint64, error) {
	h, err := segment.OpenHandle(fsys, path)
	if err != nil {
		return 0, 0, fmt.Errorf("journal: salvage: %w", err)
	}
	defer h.Close()
	sc := h.Scan()
	off, next := sc.Cut()
	for {
		more := sc.Next()
		if more && sc.Frame().Offset >= damage {
			break
		}
		// Only a cut whose records all end before the damage.
		if co, _ := sc.Committed(); co <= damage {
			off, next = sc.Cut()
		}
		if !more {
			break
		}
	}
	if err := sc.Err(); err != nil {
		return 0, 0, fmt.Errorf("journal: read %s: %w", path, err)
	}
	return off, next, nil
}

// Apply carries out the plan: quarantine copies first, then the reseals
// and the cut. now names the quarantine directory. The caller holds the
// directory lock, and nothing may have changed dir since PlanSalvage.
func (p *SalvagePlan) Apply(fsys vfs.FS, now time.Time) error {
	if p.Empty() {
		return nil
	}
	q, err := p.quarantine(fsys, now, p.Copies)
	if err != nil {
		return err
	}
	p.Quarantine = q
	// The manifest describes the segments salvage is about to change, in
	// place (a reseal changes neither the listing nor the meta file): its
	// removal must be durable first.
	if err := DropManifest(fsys, p.Dir); err != nil {
		return err
	}
	for _, path := range p.Reseal {
		if err := p.reseal(fsys, path); err != nil {
			return err
		}
	}
	if r := p.Restart; r != nil {
		if err := p.restart(fsys, r); err != nil {
			return err
		}
	}
	c := p.Cut
	if c == nil {
		return nil
	}
	if c.Offset > 0 {
		if err := truncate(fsys, c.Path, c.Offset); err != nil {
			return err
		}
	}
	if c.Snapshot != 0 {
		// The empty segment and the meta file's new first index come
		// first: the meta file's rename commits the log to continuing
		// after the snapshot, and until then the damage is still there
		// for a second run to find.
		if err := p.fresh(fsys, c.Fresh); err != nil {
			return err
		}
		m := p.Report.Meta
		m.FirstIndex, m.BackPending = c.Fresh, false
		if err := WriteMeta(fsys, p.Dir, m); err != nil {
			return fmt.Errorf("journal: salvage: %w", err)
		}
	}
	gone := slices.Clone(c.Later)
	slices.Reverse(gone) // newest first: what remains stays contiguous
	if c.Offset == 0 {
		gone = append(gone, c.Path)
	}
	for _, path := range gone {
		if c.Snapshot != 0 && path == filepath.Join(p.Dir, segment.Name(c.Fresh)) {
			continue // replaced by the fresh segment already
		}
		if err := fsys.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("journal: salvage: %w", err)
		}
	}
	if err := fsys.SyncDir(p.Dir); err != nil {
		return fmt.Errorf("journal: salvage: %w", err)
	}
	if c.Snapshot != 0 {
		return nil
	}
	if c.Fresh != 0 {
		if err := p.fresh(fsys, c.Fresh); err != nil {
			return err
		}
	}
	if c.ClearBack {
		m := p.Report.Meta
		m.BackPending = false
		if err := WriteMeta(fsys, p.Dir, m); err != nil {
			return fmt.Errorf("journal: salvage: %w", err)
		}
	}
	return nil
}

// restart moves the log's first index past missing records: an empty
// segment first (when the log continues in one), then the meta file, whose
// rename commits the change.
func (p *SalvagePlan) restart(fsys vfs.FS, r *Restart) error {
	if r.Fresh {
		if err := p.fresh(fsys, r.First); err != nil {
			return err
		}
	}
	m := p.Report.Meta
	m.FirstIndex = r.First
	if err := WriteMeta(fsys, p.Dir, m); err != nil {
		return fmt.Errorf("journal: salvage: %w", err)
	}
	p.Report.Meta = m // a cut that follows writes the meta file from this
	return nil
}

// fresh durably creates an empty segment starting at first.
func (p *SalvagePlan) fresh(fsys vfs.FS, first uint64) error {
	f, _, err := segment.Create(fsys, p.Dir, first, 0)
	if err != nil {
		return fmt.Errorf("journal: salvage: %w", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("journal: salvage: %w", err)
	}
	return nil
}

// quarantine creates the quarantine directory and durably copies the
// files into it, with a README.
func (p *SalvagePlan) quarantine(fsys vfs.FS, now time.Time, files []string) (string, error) {
	base := filepath.Join(p.Dir, QuarantinePrefix+now.UTC().Format("20060102T150405Z"))
	q := base
	for n := 2; ; n++ {
		if _, err := fsys.Stat(q); errors.Is(err, fs.ErrNotExist) {
			break
		} else if err != nil {
			return "", fmt.Errorf("journal: salvage: %w", err)
		}
		q = fmt.Sprintf("%s-%d", base, n)
	}
	if err := fsys.MkdirAll(q, 0o755); err != nil {
		return "", fmt.Errorf("journal: salvage: %w", err)
	}
	for _, path := range files {
		if err := copyFile(fsys, path, filepath.Join(q, filepath.Base(path))); err != nil {
			return "", err
		}
	}
	readme := filepath.Join(q, "README")
	if err := copyBytes(fsys, strings.NewReader(p.Describe(now)), readme); err != nil {
		return "", err
	}
	if err := fsys.SyncDir(q); err != nil {
		return "", fmt.Errorf("journal: salvage: %w", err)
	}
	if err := fsys.SyncDir(p.Dir); err != nil {
		return "", fmt.Errorf("journal: salvage: %w", err)
	}
	return q, nil
}

// Describe is the README written into the quarantine directory.
func (p *SalvagePlan) Describe(now time.Time) string {
	var b strings.Builder
	fmt.Fprintf(&b, "journal salvage of %s at %s\n\n", p.Dir, now.UTC().Format(time.RFC3339))
	fmt.Fprintf(&b, "Every file here is a whole copy of a log file as it was before salvage changed it.\n\n")
	for _, r := range p.Reseal {
		fmt.Fprintf(&b, "%s: footer missing or damaged, records intact: resealed, nothing given up\n", filepath.Base(r))
	}
	if r := p.Restart; r != nil {
		fmt.Fprintf(&b, "damage: %s\n", r.Damage)
		fmt.Fprintf(&b, "%s were already missing; the log now starts at %d\n", plural(r.Missing, "record"), r.First)
	}
	if c := p.Cut; c != nil {
		fmt.Fprintf(&b, "damage: %s\n", c.Damage)
		if c.Offset > 0 {
			fmt.Fprintf(&b, "%s: cut at offset %d; its bytes from there on left the log\n", filepath.Base(c.Path), c.Offset)
		} else {
			fmt.Fprintf(&b, "%s: removed from the log\n", filepath.Base(c.Path))
		}
		for _, l := range c.Later {
			fmt.Fprintf(&b, "%s: removed from the log\n", filepath.Base(l))
		}
		if c.Snapshot != 0 {
			fmt.Fprintf(&b, "the snapshot covers the log up to %d: the log continues after it, from %d; "+
				"%d records cut from the log are covered by the snapshot\n", c.Snapshot, c.Fresh, c.Covered)
		}
		fmt.Fprintf(&b, "records given up: %d (indexes from %d on); the log now ends at %d\n", c.Records, c.Index, c.Index-1)
	}
	return b.String()
}

func copyFile(fsys vfs.FS, src, dst string) error {
	f, err := fsys.OpenFile(src, os.O_RDONLY, 0)
	if err != nil {
		return fmt.Errorf("journal: salvage: %w", err)
	}
	defer f.Close()
	size, err := f.Size()
	if err != nil {
		return fmt.Errorf("journal: salvage: %w", err)
	}
	return copyBytes(fsys, io.NewSectionReader(f, 0, size), dst)
}

// copyBytes writes r to a new file dst and fdatasyncs it.
func copyBytes(fsys vfs.FS, r io.Reader, dst string) error {
	f, err := fsys.OpenFile(dst, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return fmt.Errorf("journal: salvage: %w", err)
	}
	_, err = io.Copy(io.NewOffsetWriter(f, 0), r)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("journal: salvage: copy to %s: %w", dst, err)
	}
	return nil
}

// reseal writes the footer of a segment whose records are intact, after
// the records the walk found: a scan of its own would stop at damage in
// records already released, which the walk stepped over.
func (p *SalvagePlan) reseal(fsys vfs.FS, path string) error {
	i := slices.IndexFunc(p.Report.Segments, func(s Segment) bool { return s.Path == path })
	if i < 0 {
		return fmt.Errorf("journal: salvage: %s is not a live segment", path)
	}
	seg := p.Report.Segments[i]
	f, err := openRW(fsys, path)
	if err != nil {
		return err
	}
	size, err := f.Size()
	if err == nil && size != seg.Size {
		err = fmt.Errorf("it changed since it was checked (%d bytes, then %d)", size, seg.Size)
	}
	if err == nil {
		_, err = segment.Seal(f, seg.Header, seg.End, seg.Offsets, segment.Times{}) // append times unknown
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("journal: salvage: reseal %s: %w", path, err)
	}
	return nil
}

func truncate(fsys vfs.FS, path string, off int64) error {
	f, err := fsys.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return fmt.Errorf("journal: salvage: %w", err)
	}
	err = f.Truncate(off)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("journal: salvage: cut %s at %d: %w", path, off, err)
	}
	return nil
}

func plural(n uint64, what string) string {
	if n == 1 {
		return "1 " + what
	}
	return fmt.Sprintf("%d %ss", n, what)
}
