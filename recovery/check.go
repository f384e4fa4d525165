package recovery

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/gojournal/journal/segment"
	"github.com/gojournal/journal/vfs"
)

// This file holds the read-only examination behind operators' tools. Scan
// answers "can the log open, and what must Repair do?" and stops at the
// first damage, as Open must. Check reads every byte of every live segment
// and reports all the damage it finds, resuming after each damaged place,
// so an operator sees the whole picture before deciding what to give up.
// Neither ever writes, locks or opens a file for writing: both work on a
// directory another process has open and on a read-only file system.

// Listing is what a log directory holds, by file name alone.
type Listing struct {
	Dir  string
	Meta Meta
	// MetaErr is set when the meta file is damaged or of an unknown
	// format (Meta is then the zero Meta).
	MetaErr  error
	Live     []string // segments of the log, in log order; the last is the newest
	Obsolete []string // segments a committed truncation made obsolete
	Temps    []string // leftover temporary files
	Other    []string // names (not paths) of everything else, sorted
}

// List reads dir's names and its meta file and sorts the segments into
// live and obsolete by the rules Scan applies (steps 1, 2 and 6 of the
// procedure), without opening a segment.
func List(fsys vfs.FS, dir string) (*Listing, error) {
	names, err := fsys.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("journal: list %s: %w", dir, err)
	}
	ls := &Listing{Dir: dir}
	ls.Meta, err = ReadMeta(fsys, dir)
	if errors.Is(err, segment.ErrCorrupt) || errors.Is(err, segment.ErrFormat) {
		ls.MetaErr = err
	} else if err != nil {
		return nil, err
	}
	var paths []string
	for _, name := range names {
		switch _, seg := segment.ParseName(name); {
		case strings.HasPrefix(name, vfs.TempPrefix):
			ls.Temps = append(ls.Temps, filepath.Join(dir, name))
		case seg:
			paths = append(paths, filepath.Join(dir, name))
		case name != MetaName:
			ls.Other = append(ls.Other, name)
		}
	}
	if m := ls.Meta; m.BackPending {
		// A committed TruncateBack: segments starting after the kept
		// records are obsolete.
		keep := 0
		for i, p := range paths {
			if first, _ := segment.ParseName(filepath.Base(p)); first <= m.Back {
				keep = i + 1
			}
		}
		ls.Obsolete = append(ls.Obsolete, paths[keep:]...)
		paths = paths[:keep]
	}
	// Segments wholly before the first live index: the next one starts at
	// or before it.
	keep := 0
	for i, p := range paths {
		if first, _ := segment.ParseName(filepath.Base(p)); first <= ls.Meta.FirstIndex {
			keep = i
		}
	}
	ls.Obsolete = append(ls.Obsolete, paths[:keep]...)
	ls.Live = paths[keep:]
	return ls, nil
}

// Kinds of Damage.
const (
	// DamageRecord: a frame or record fails its checks (checksum, index,
	// framing, compressed payload), or bytes the log had made durable are
	// unreadable.
	DamageRecord = "record"
	// DamageHeader: a segment header is damaged, is not a journal header,
	// or disagrees with the file name.
	DamageHeader = "header"
	// DamageVersion: a segment of a newer format version (or with
	// unknown flags): not damage as such, but this build cannot read it.
	DamageVersion = "version"
	// DamageFooter: a segment that must be sealed (a later one exists) has
	// no valid footer.
	DamageFooter = "footer"
	// DamageOrder: segments missing or overlapping: a segment does not
	// start where the previous one ends.
	DamageOrder = "order"
	// DamageMeta: the meta file is damaged or of an unknown format.
	DamageMeta = "meta"
)

// Damage is one damaged place.
type Damage struct {
	Kind   string // one of the Damage constants
	Path   string
	Offset int64  // where the damage starts in the file
	Index  uint64 // the record expected there; 0 when unknown
	Reason string
}

// String says where the damage is and what is wrong there.
func (d Damage) String() string {
	s := fmt.Sprintf("%s at offset %d", d.Path, d.Offset)
	if d.Index != 0 {
		s += fmt.Sprintf(" (record %d)", d.Index)
	}
	return s + ": " + d.Reason
}

// SegmentReport is what Check found in one live segment.
type SegmentReport struct {
	Path   string
	First  uint64 // first index, from the file name
	Next   uint64 // index after the last valid record; 0 if unknown (header unreadable)
	Size   int64  // file size
	Sealed bool   // has a valid footer
	// Intact is true when every record the segment holds was read without
	// damage and the segment ends with a complete batch: at most its
	// footer is missing.
	Intact bool
	// Records counts the valid records read, Stored their payload bytes
	// as stored (compressed) and Decoded their length as records.
	Records         int64
	Stored, Decoded int64
}

// Report is what Check found in a log directory.
type Report struct {
	Dir        string
	Meta       Meta
	FirstIndex uint64 // first live record
	// NextIndex is the index after the last valid record of the newest
	// segment (if its header is unreadable: the furthest end known).
	NextIndex uint64
	Segments  []SegmentReport
	Damage    []Damage // in log order: by segment, then offset
	Torn      *Torn    // the torn tail Open would cut; nil when clean
	Temps     []string
	Obsolete  []string
	Other     []string
}

// Records is the number of live records found.
func (r *Report) Records() uint64 {
	if r.NextIndex <= r.FirstIndex {
		return 0
	}
	return r.NextIndex - r.FirstIndex
}

// CheckOptions tunes Check.
type CheckOptions struct {
	// Progress, when set, is called with the number of bytes of segment
	// files examined since the last call.
	Progress func(n int64)
}

// Check examines every live segment of dir to the last byte: headers,
// footers, every record's frame checksum, index and compressed payload
// (sealed segments are read through their footers, the newest segment
// frame by frame). Unlike Scan it does not stop at the first damage: after
// damaged bytes it resumes at the next frame that proves to have been
// durable, so the Report lists every damaged place. It classifies the
// newest segment's tail as Scan does. Check only reads; an error is an
// I/O error, damage goes into the Report.
func Check(fsys vfs.FS, dir string, opts CheckOptions) (*Report, error) {
	ls, err := List(fsys, dir)
	if err != nil {
		return nil, err
	}
	c := &checker{fs: fsys, progress: opts.Progress, rep: &Report{
		Dir: dir, Meta: ls.Meta, Temps: ls.Temps, Obsolete: ls.Obsolete, Other: ls.Other,
	}}
	if ls.MetaErr != nil {
		c.damage(DamageMeta, filepath.Join(dir, MetaName), 0, 0, ls.MetaErr.Error())
	}
	var prev uint64
	for i, path := range ls.Live {
		newest := i == len(ls.Live)-1
		var limit uint64
		if newest && ls.Meta.BackPending {
			limit = ls.Meta.Back
		}
		sr, err := c.segment(path, newest, prev, limit)
		if err != nil {
			return nil, err
		}
		c.rep.Segments = append(c.rep.Segments, sr)
		prev = sr.Next
	}
	r := c.rep
	r.FirstIndex = max(ls.Meta.FirstIndex, 1)
	if len(r.Segments) > 0 {
		r.FirstIndex = max(r.FirstIndex, r.Segments[0].First)
	}
	// The newest segment's end, or, when its header is unreadable, the
	// furthest end known.
	for _, s := range r.Segments {
		r.NextIndex = max(r.NextIndex, s.Next)
	}
	if n := len(r.Segments); n > 0 && r.Segments[n-1].Next != 0 {
		r.NextIndex = r.Segments[n-1].Next
	}
	r.NextIndex = max(r.NextIndex, r.FirstIndex)
	return r, nil
}

type checker struct {
	fs       vfs.FS
	progress func(int64)
	rep      *Report
	done     int64 // bytes of the current segment reported to progress
}

func (c *checker) damage(kind, path string, off int64, index uint64, reason string) {
	c.rep.Damage = append(c.rep.Damage, Damage{Kind: kind, Path: path, Offset: off, Index: index, Reason: reason})
}

// advance reports progress up to offset off of the current segment.
func (c *checker) advance(off int64) {
	if c.progress != nil && off > c.done {
		c.progress(off - c.done)
		c.done = off
	}
}

// segment checks one live segment; prev is the index after the previous
// segment's last record (0 for the first segment, or when unknown), limit
// the last record a committed TruncateBack keeps (0: none).
func (c *checker) segment(path string, newest bool, prev, limit uint64) (SegmentReport, error) {
	first, _ := segment.ParseName(filepath.Base(path))
	sr := SegmentReport{Path: path, First: first}
	f, err := c.fs.OpenFile(path, os.O_RDONLY, 0)
	if err != nil {
		return sr, fmt.Errorf("journal: open segment: %w", err)
	}
	defer f.Close()
	if sr.Size, err = f.Size(); err != nil {
		return sr, fmt.Errorf("journal: stat %s: %w", path, err)
	}
	c.done = 0
	defer func() { c.advance(sr.Size) }()
	if prev != 0 && first != prev {
		c.damage(DamageOrder, path, 0, prev, fmt.Sprintf(
			"segment starts at index %d, but the previous segment ends before %d: segments missing or overlapping", first, prev))
	}
	head := make([]byte, segment.HeaderSize)
	if n, err := f.ReadAt(head, 0); err != nil && !(err == io.EOF && n < len(head)) {
		return sr, fmt.Errorf("journal: read %s: %w", path, err)
	}
	h, err := segment.DecodeHeader(head)
	if err != nil {
		kind := DamageHeader
		if errors.Is(err, segment.ErrFormat) && string(head[:len(segment.Magic)]) == segment.Magic {
			kind = DamageVersion
		}
		c.damage(kind, path, 0, first, err.Error())
		return sr, nil
	}
	if h.FirstIndex != first {
		c.damage(DamageHeader, path, 0, first, fmt.Sprintf("header names first index %d", h.FirstIndex))
	}
	r := &cachedReader{r: f, size: sr.Size}
	ft, reason, err := segment.ReadFooter(&cachedReader{r: f, size: sr.Size}, sr.Size, h)
	if err != nil {
		return sr, fmt.Errorf("journal: read %s: %w", path, err)
	}
	if reason == "" {
		sr.Sealed = true
		return sr, c.sealed(r, &sr, h, ft, limit)
	}
	return sr, c.frames(r, &sr, h, newest, limit, reason)
}

// sealed checks every record a valid footer indexes.
func (c *checker) sealed(r *cachedReader, sr *SegmentReport, h segment.Header, ft segment.Footer, limit uint64) error {
	index := &cachedReader{r: r.r, size: r.size}
	sr.Next, sr.Intact = ft.Next, true
	for k := range ft.Count {
		i := h.FirstIndex + uint64(k)
		if limit != 0 && i > limit {
			sr.Next = limit + 1
			break
		}
		off, size, err := ft.RecordSpan(index, k)
		if err != nil {
			return fmt.Errorf("journal: read %s: %w", sr.Path, err)
		}
		rec, err := segment.ReadRecord(r, sr.Path, h, off, size, i)
		var ce *segment.CorruptionError
		switch {
		case errors.As(err, &ce):
			c.damage(DamageRecord, sr.Path, ce.Offset, i, ce.Reason)
			sr.Intact = false
			continue
		case errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF):
			c.damage(DamageRecord, sr.Path, off, i, "footer places the record past the end of the file")
			sr.Intact = false
			continue
		case err != nil:
			return err
		}
		var n [4]byte
		if _, err := r.ReadAt(n[:], off+24); err != nil {
			return fmt.Errorf("journal: read %s: %w", sr.Path, err)
		}
		sr.Records++
		sr.Stored += int64(binary.LittleEndian.Uint32(n[:]))
		sr.Decoded += int64(len(rec))
		c.advance(off + size)
	}
	return nil
}

// tally counts records on their way into a SegmentReport.
type tally struct{ records, stored, decoded int64 }

func (t *tally) addTo(sr *SegmentReport) {
	sr.Records += t.records
	sr.Stored += t.stored
	sr.Decoded += t.decoded
	*t = tally{}
}

// frames scans a segment without a valid footer frame by frame. After
// damage followed by durable data it reports the damage and resumes at the
// durable frame; at the end of the valid data it classifies the rest as
// Scan does (steps 4 and 5): a torn tail for the newest segment, a missing
// footer for any other. footer says why the footer was not accepted.
func (c *checker) frames(r *cachedReader, sr *SegmentReport, h segment.Header, newest bool, limit uint64, footer string) error {
	off, next := int64(segment.DataStart), h.FirstIndex
	sr.Intact = true
	for {
		sc := segment.NewScannerAt(r, sr.Size, h, off, next)
		var pend tally // records after the last sector-aligned commit point
		cut, _ := sc.Cut()
		expect, beyond := next, false
		// A record counts once a cut point follows it. Next moves the cut
		// point (past the write padding) before it reads the frame it
		// returns, so a move seen after Next covers the records before
		// that frame; the move seen after the loop, the rest.
		settle := func() {
			if co, _ := sc.Cut(); co != cut {
				cut = co
				pend.addTo(sr)
			}
		}
		for sc.Next() {
			settle()
			fr := sc.Frame()
			if limit != 0 && fr.Index > limit {
				beyond = true
				break
			}
			expect = fr.Index + 1
			rec, err := segment.Decompress(fr.Codec, fr.Data)
			if err != nil {
				c.damage(DamageRecord, sr.Path, fr.Offset, fr.Index, err.Error())
				sr.Intact = false
			} else {
				pend.records++
				pend.stored += int64(len(fr.Data))
				pend.decoded += int64(len(rec))
			}
			c.advance(fr.Offset + fr.Size())
		}
		if err := sc.Err(); err != nil {
			return fmt.Errorf("journal: read %s: %w", sr.Path, err)
		}
		settle()
		if limit != 0 {
			// A committed TruncateBack ends the log at limit: what
			// follows is dropped, not examined.
			pend.addTo(sr)
			sr.Next = expect
			if !beyond && expect <= limit {
				c.damage(DamageRecord, sr.Path, sc.Offset(), expect, "records a committed TruncateBack keeps are missing or damaged: "+cmpReason(sc.Reason()))
				sr.Intact = false
			}
			return nil
		}
		stop := sc.Offset()
		tail, err := segment.ScanTail(r, sr.Size, h, stop)
		if err != nil {
			return fmt.Errorf("journal: read %s: %w", sr.Path, err)
		}
		if d := tail.Durable; d != nil {
			pend.addTo(sr)
			c.damage(DamageRecord, sr.Path, stop, expect, fmt.Sprintf(
				"%s, yet data written after this point was durable follows (record %d at offset %d)",
				cmpReason(sc.Reason()), d.Index, d.Offset))
			sr.Intact = false
			off, next = d.Offset, d.Index
			continue
		}
		cutOff, cutNext := sc.Cut()
		sr.Next = cutNext
		end := max(tail.End, stop)
		switch {
		case newest:
			if end > cutOff || pend.records > 0 {
				t := &Torn{Path: sr.Path, Offset: cutOff, Bytes: end - cutOff, Records: int(pend.records), Reason: sc.Reason()}
				if sc.Sealed() {
					t.Reason = "footer trailer damaged"
				}
				c.rep.Torn = t
			}
		default:
			// Sealed segments are synced before the next one exists:
			// a missing footer is damage. The records read are
			// counted, so salvage can tell whether resealing loses
			// nothing.
			pend.addTo(sr)
			sr.Next = expect
			why := "footer " + footer
			if sc.Sealed() {
				why = "footer trailer damaged"
			}
			if cutNext != expect {
				why += "; the last batch is incomplete"
				sr.Intact = false
			}
			if rs := sc.Reason(); rs != "" && rs != "zeroed space" && !sc.Sealed() {
				why += "; the records end with: " + rs
			}
			c.damage(DamageFooter, sr.Path, stop, expect, "segment is not sealed but later segments exist ("+why+")")
		}
		return nil
	}
}

func cmpReason(r string) string {
	if r == "" {
		return "end of file"
	}
	return r
}

// cachedReader serves small reads from one large buffer, so checking a
// segment record by record costs a read per megabyte, not per record.
type cachedReader struct {
	r    io.ReaderAt
	size int64
	buf  []byte
	off  int64
}

const cacheChunk = 1 << 20

func (c *cachedReader) ReadAt(p []byte, off int64) (int, error) {
	if off >= c.off && off+int64(len(p)) <= c.off+int64(len(c.buf)) {
		return copy(p, c.buf[off-c.off:]), nil
	}
	if len(p) > cacheChunk/2 || off >= c.size {
		return c.r.ReadAt(p, off)
	}
	n := min(int64(cacheChunk), c.size-off)
	if int64(cap(c.buf)) < n {
		c.buf = make([]byte, cacheChunk)
	}
	c.buf = c.buf[:n]
	m, err := c.r.ReadAt(c.buf, off)
	c.buf, c.off = c.buf[:m], off
	if m < int(n) && err == nil {
		err = io.ErrUnexpectedEOF
	}
	if err != nil && err != io.EOF {
		c.buf = c.buf[:0]
		return 0, err
	}
	k := copy(p, c.buf)
	if k < len(p) {
		return k, io.EOF
	}
	return k, nil
}
