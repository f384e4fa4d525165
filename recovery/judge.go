package recovery

import (
	"errors"
	"fmt"
	"io"

	"github.com/gojournal/journal/segment"
)

// judge decides what one segment holds: the per-segment half of the walk,
// the one place that tells a torn tail from damage.
type judge struct {
	w      *walker
	h      *segment.Handle
	seg    *Segment
	newest bool
	first  uint64 // the log's first live index: damage below it is released
	limit  uint64 // the last record a committed TruncateBack keeps (0: none)
	// found gathers the damage the frames show; confirmed holds the
	// stops already read afresh (see frames).
	found     []Damage
	confirmed map[int64]bool
	rechecks  int
}

// maxRechecks bounds how often a segment's frames are read afresh because a
// stop was followed by durable data (see frames).
const maxRechecks = 1 << 16

func (j *judge) run() error {
	ft, why, err := j.h.Footer()
	// The file ended before the size the handle took when it opened it:
	// in a log another process has open, the writer sealed the segment
	// (Seal cuts its preallocated space) or released its preallocation
	// meanwhile. That is no I/O error (wal verify said "read X: EOF" on a
	// live log, exit 2): read the footer again at the file's new size.
	for try := 0; try < 4 && (errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF)); try++ {
		if err = j.h.Refresh(); err != nil {
			return err
		}
		j.seg.Size = j.h.Size()
		ft, why, err = j.h.Footer()
	}
	if err != nil {
		return err
	}
	seg := j.seg
	if ft.Valid() {
		seg.Sealed, seg.Footer, seg.Next, seg.Intact = true, ft, ft.Next, true
	}
	switch {
	case j.limit != 0 && !(seg.Sealed && seg.Next == j.limit+1):
		return j.prepareSeal()
	case seg.Sealed && j.w.deep:
		return j.records()
	case seg.Sealed:
		return nil
	}
	return j.frames(why)
}

// records reads every live record of a sealed segment (a deep walk) the
// way a Reader does: frame by frame, from the first live record (which the
// footer locates) to the last. Damage between records, in a sync frame
// or in padding, stops a Reader as surely as damage in a record. After
// damage the walk goes on at the next record the footer locates.
func (j *judge) records() error {
	seg, h := j.seg, j.h
	k := int64(max(j.first, seg.First) - seg.First)
	for k < int64(seg.Footer.Count) {
		f, _, err := h.Record(seg.Footer, k)
		if err == nil {
			var resume uint64
			if resume, err = j.scanSealed(f.Offset, seg.First+uint64(k)); err != nil || resume == 0 {
				return err
			}
			k = int64(resume - seg.First)
			continue
		}
		d, ok := damageOf(KindRecord, seg.Path, err)
		if !ok {
			return err
		}
		seg.Intact = false
		j.w.damage(d)
		if j.w.stop() {
			return nil
		}
		k++
	}
	return nil
}

// scanSealed reads a segment's frames from record index at off to
// its last record. It returns 0 when it got there, or, after damage it
// reported, the record to go on from.
func (j *judge) scanSealed(off int64, index uint64) (uint64, error) {
	seg := j.seg
	sc := j.h.ScanFrom(off, index)
	expect := index
	// Up to the last record, not to the footer: a TruncateBack seals
	// after the records it keeps, and the dropped records' frames may lie
	// between them and the footer; a Reader stops at the last record too.
	for expect < seg.Next && sc.Next() {
		f := sc.Frame()
		expect = f.Index + 1
		rec, err := segment.Decompress(f.Codec, f.Data)
		if err != nil {
			seg.Intact = false
			j.w.damage(Damage{Kind: KindRecord, Path: seg.Path, Offset: f.Offset, Index: f.Index, Reason: err.Error()})
			if j.w.stop() {
				return 0, nil
			}
			continue
		}
		seg.Stored += int64(len(f.Data))
		seg.Decoded += int64(len(rec))
	}
	if err := sc.Err(); err != nil {
		return 0, fmt.Errorf("journal: read %s: %w", seg.Path, err)
	}
	if expect == seg.Next {
		return 0, nil
	}
	seg.Intact = false
	j.w.damage(Damage{Kind: KindRecord, Path: seg.Path, Offset: sc.Offset(), Index: expect, Reason: sc.Why()})
	if j.w.stop() || expect+1 >= seg.Next {
		return 0, nil
	}
	return expect + 1, nil
}

// frames walks a segment without a valid footer frame by frame (steps 4
// to 6). A stop followed by durable data in the newest segment is read
// afresh before it is believed: in a log another process is appending to, a
// write in flight looks like damage followed by durable data until it
// lands, and only a stop that stays put is damage. (The durable frame was
// read before the stop is read again, and it proves the bytes at the stop
// had been made durable, so they no longer change in a healthy log.)
func (j *judge) frames(footerWhy string) error {
	seg, h := j.seg, j.h
	seg.Intact, j.confirmed = true, map[int64]bool{}
	defer func() { j.w.st.Damage = append(j.w.st.Damage, j.found...) }()
	off, next := int64(segment.DataStart), seg.Header.FirstIndex
	var kept [2]int64 // Stored and Decoded at the last commit point
	for {
		sc := h.ScanFrom(off, next)
		for sc.Next() {
			j.record(sc.Frame())
			if j.stopping() {
				return nil
			}
			if sc.Frame().Type == segment.TypeRecord {
				kept = [2]int64{seg.Stored, seg.Decoded}
			}
		}
		if err := sc.Err(); err != nil {
			return fmt.Errorf("journal: read %s: %w", seg.Path, err)
		}
		stop, expect := sc.Offset(), seg.Header.FirstIndex+uint64(len(seg.Offsets))
		// Damage in records already released costs nothing: the walk
		// goes on at the first frame after it that it still needs,
		// durable proof or not.
		if resume, ok, err := j.released(stop, expect); err != nil {
			return err
		} else if ok {
			j.w.st.Released = append(j.w.st.Released, Damage{Kind: KindRecord, Path: seg.Path, Offset: stop, Index: expect,
				Reason: sc.Why() + ", in records already released"})
			off, next = resume.Offset, resume.Index
			continue
		}
		tail, err := h.Tail(stop)
		if err != nil {
			return err
		}
		d := tail.Durable
		if d == nil {
			j.end(sc, tail, footerWhy)
			return nil
		}
		if j.newest && !j.confirmed[stop] && j.rechecks < maxRechecks {
			j.confirmed[stop], j.rechecks = true, j.rechecks+1
			if err := h.Refresh(); err != nil {
				return err
			}
			seg.Size = h.Size()
			off, next = sc.Committed()
			seg.Offsets = seg.Offsets[:next-seg.Header.FirstIndex]
			seg.Stored, seg.Decoded = kept[0], kept[1]
			continue
		}
		seg.Intact = false
		j.found = append(j.found, Damage{Kind: KindRecord, Path: seg.Path, Offset: stop, Index: expect, Reason: fmt.Sprintf(
			"%s, yet a frame written after this point was durable follows (index %d at offset %d)", sc.Why(), d.Index, d.Offset)})
		if j.stopping() {
			return nil
		}
		// Report all: go on from the durable frame; the records between
		// are lost to the damage.
		off, next = d.Offset, d.Index
		for uint64(len(seg.Offsets)) < d.Index-min(d.Index, seg.Header.FirstIndex) {
			seg.Offsets = append(seg.Offsets, stop)
		}
	}
}

// stopping reports whether a quick walk ends with the damage found.
func (j *judge) stopping() bool { return j.w.stopEarly && (len(j.found) > 0 || j.w.st.Damaged()) }

// record takes one valid record frame of the scan; a deep walk decompresses
// it.
func (j *judge) record(f segment.Frame) {
	seg := j.seg
	for uint64(len(seg.Offsets)) < f.Index-seg.Header.FirstIndex {
		seg.Offsets = append(seg.Offsets, f.Offset) // stepped over: released, or damaged
	}
	seg.Offsets = append(seg.Offsets, f.Offset)
	if !j.w.deep || f.Index < j.first {
		return
	}
	rec, err := segment.Decompress(f.Codec, f.Data)
	if err != nil {
		seg.Intact = false
		j.found = append(j.found, Damage{Kind: KindRecord, Path: seg.Path, Offset: f.Offset, Index: f.Index, Reason: err.Error()})
		return
	}
	seg.Stored += int64(len(f.Data))
	seg.Decoded += int64(len(rec))
}

// released looks, after damage at stop where record expect was due, for
// the frame the walk can go on from when the damage lies in records
// already released: a valid record frame after stop whose index lies past
// expect and at or before the first live record.
func (j *judge) released(stop int64, expect uint64) (segment.Frame, bool, error) {
	if expect >= j.first {
		return segment.Frame{}, false, nil
	}
	return j.h.Find(stop, func(f segment.Frame) bool {
		return (f.Type == segment.TypeRecord || f.Type == segment.TypeBatch) && f.Index > expect && f.Index <= j.first
	})
}

// end classifies the end of the valid data when nothing durable follows:
// in the newest segment a torn tail (cut) or a clean end; in any other a
// missing footer, which is damage because sealed segments are synced
// before the next one exists.
func (j *judge) end(sc *segment.Scanner, tail segment.Tail, footerWhy string) {
	seg := j.seg
	cutOff, cutNext := sc.Cut()
	read := seg.Header.FirstIndex + uint64(len(seg.Offsets)) // after the last valid frame
	if !j.newest {
		// Where salvage would reseal it, when its records are intact.
		seg.Next, seg.End = read, cutOff
		why := footerWhy
		if sc.Sealed() {
			why = "footer trailer damaged"
		}
		if cutNext != read {
			why += "; the last batch is incomplete"
			seg.Intact = false
		}
		if !sc.Stop().End() {
			why += "; the records end with: " + sc.Why()
		}
		j.found = append(j.found, Damage{Kind: KindFooter, Path: seg.Path, Offset: sc.Offset(), Index: read,
			Reason: "segment is not sealed but later segments exist (" + why + ")"})
		return
	}
	seg.End, seg.Next = cutOff, cutNext
	seg.Offsets = seg.Offsets[:cutNext-seg.Header.FirstIndex]
	dropped := int(read - cutNext)
	if end := min(tail.End, seg.Size); end > cutOff || dropped > 0 {
		t := &Torn{Path: seg.Path, Offset: cutOff, Bytes: max(end-cutOff, 0), Records: dropped, Reason: sc.Why()}
		if sc.Sealed() {
			t.Reason = "footer trailer damaged"
		}
		j.w.st.Torn = t
	}
}

// prepareSeal finds the records a committed TruncateBack keeps in the
// segment that holds its last record, for Repair to seal the segment after
// them.
func (j *judge) prepareSeal() error {
	seg, back := j.seg, j.limit
	keep := int(back + 1 - seg.First)
	if seg.Sealed {
		if seg.Next <= back {
			j.w.damage(Damage{Kind: KindRecord, Path: seg.Path, Index: back,
				Reason: "a committed TruncateBack keeps records this segment does not hold"})
			return nil
		}
		offs, err := j.h.Offsets(seg.Footer, keep+1)
		if err != nil {
			return err
		}
		seg.Offsets = offs
	} else if done, err := j.keptOffsets(keep); err != nil || !done {
		return err
	}
	seg.SealAt = segment.AlignSector(seg.Offsets[keep])
	seg.Offsets = seg.Offsets[:keep]
	seg.Sealed, seg.Next, seg.Intact = false, back+1, true
	if !j.w.deep {
		return nil
	}
	return j.keptRecords()
}

// keptOffsets scans an unsealed segment for the offsets of its first keep
// records and of the frame after them (or the end of the valid data),
// stepping over damage in records already released as the ordinary walk
// does. It reports false when it reported the kept records damaged.
func (j *judge) keptOffsets(keep int) (bool, error) {
	seg := j.seg
	off, next := int64(segment.DataStart), seg.First
	for {
		sc := j.h.ScanFrom(off, next)
		for len(seg.Offsets) <= keep && sc.Next() {
			f := sc.Frame()
			for uint64(len(seg.Offsets)) < f.Index-seg.First {
				seg.Offsets = append(seg.Offsets, f.Offset) // stepped over: released
			}
			seg.Offsets = append(seg.Offsets, f.Offset)
		}
		if err := sc.Err(); err != nil {
			return false, fmt.Errorf("journal: read %s: %w", seg.Path, err)
		}
		if len(seg.Offsets) > keep {
			return true, nil
		}
		stop, expect := sc.Offset(), seg.First+uint64(len(seg.Offsets))
		resume, ok, err := j.released(stop, expect)
		if err != nil {
			return false, err
		}
		if ok {
			j.w.st.Released = append(j.w.st.Released, Damage{Kind: KindRecord, Path: seg.Path, Offset: stop, Index: expect,
				Reason: sc.Why() + ", in records already released"})
			off, next = resume.Offset, resume.Index
			continue
		}
		if len(seg.Offsets) == keep {
			seg.Offsets = append(seg.Offsets, stop)
			return true, nil
		}
		j.w.damage(Damage{Kind: KindRecord, Path: seg.Path, Offset: stop, Index: expect,
			Reason: "records a committed TruncateBack keeps are damaged: " + sc.Why()})
		return false, nil
	}
}

// keptRecords reads the live records a committed TruncateBack keeps (a
// deep walk), frame by frame as a Reader will once Repair has sealed the
// segment after them.
func (j *judge) keptRecords() error {
	seg := j.seg
	k := int64(max(j.first, seg.First) - seg.First)
	for k < int64(len(seg.Offsets)) {
		resume, err := j.scanSealed(seg.Offsets[k], seg.First+uint64(k))
		if err != nil || resume == 0 {
			return err
		}
		k = int64(resume - seg.First)
	}
	return nil
}
