package recovery

import (
	"errors"
	"fmt"
	"strings"

	"github.com/gojournal/journal/internal/errs"
	"github.com/gojournal/journal/segment"
	"github.com/gojournal/journal/vfs"
)

// Kind says what kind of damage a Damage is. Recovery decides by kind,
// never by the wording of a reason.
type Kind uint8

const (
	// KindRecord: a frame or record fails its checks (checksum, index,
	// framing, compressed payload) in data the log had made durable.
	KindRecord Kind = iota + 1
	// KindHeader: a segment header is damaged, too short, or disagrees
	// with the file name.
	KindHeader
	// KindForeign: a file under a segment's name that is not a journal
	// file at all (Open: ErrFormat).
	KindForeign
	// KindVersion: a segment of a format version (or with flags) this
	// build does not read: not damage as such, but nothing this build may
	// change (Open: ErrFormat).
	KindVersion
	// KindFooter: a segment that must be sealed (a later one exists) has
	// no valid footer.
	KindFooter
	// KindOrder: a segment does not start where the previous one ends:
	// segments missing or overlapping.
	KindOrder
	// KindMissing: records the meta file says the log holds are not in
	// any segment: the first segment is missing, or the meta file's first
	// index lies past the end of the log.
	KindMissing
	// KindMeta: the meta file is damaged.
	KindMeta
	// KindSnapshot: the snapshot is damaged, or the log does not continue
	// it.
	KindSnapshot
)

var kindNames = [...]string{
	KindRecord: "record", KindHeader: "header", KindForeign: "foreign", KindVersion: "version", KindFooter: "footer",
	KindOrder: "order", KindMissing: "missing", KindMeta: "meta", KindSnapshot: "snapshot",
}

// String names the kind, as the operator's tools print it.
func (k Kind) String() string {
	if int(k) < len(kindNames) && kindNames[k] != "" {
		return kindNames[k]
	}
	return fmt.Sprintf("kind(%d)", uint8(k))
}

// Damage is one damaged place.
type Damage struct {
	Kind   Kind
	Path   string
	Offset int64  // where the damage starts in the file
	Index  uint64 // the record expected there; 0 when unknown
	Reason string // what is wrong, for people
	cause  error  // the error Open returns for it, when it came as one
}

// String says where the damage is and what is wrong there.
func (d Damage) String() string {
	s := fmt.Sprintf("%s at offset %d", d.Path, d.Offset)
	if d.Index != 0 {
		s += fmt.Sprintf(" (record %d)", d.Index)
	}
	return s + ": " + d.Reason
}

// Err is the error Open returns for this damage: ErrFormat for a file it
// cannot read, otherwise ErrCorrupt (a *CorruptionError, naming the
// file and offset).
func (d Damage) Err() error {
	if d.cause != nil {
		return d.cause
	}
	return &errs.CorruptionError{Path: d.Path, Offset: d.Offset, Index: d.Index, Reason: d.Reason}
}

// damageOf turns an error about a file into Damage of that file, or
// returns false when it is an I/O error (not a judgement about the bytes).
// A segment header's format errors get their own kinds.
func damageOf(kind Kind, path string, err error) (Damage, bool) {
	var ce *errs.CorruptionError
	switch {
	case errors.As(err, &ce):
		return Damage{Kind: kind, Path: ce.Path, Offset: ce.Offset, Index: ce.Index, Reason: ce.Reason, cause: err}, true
	case errors.Is(err, errs.ErrFormat):
		if kind == KindHeader {
			kind = KindVersion
			if errors.Is(err, errs.ErrForeign) {
				kind = KindForeign
			}
		}
		return Damage{Kind: kind, Path: path, Reason: strings.TrimPrefix(err.Error(), path+": "), cause: err}, true
	case errors.Is(err, errs.ErrCorrupt):
		return Damage{Kind: kind, Path: path, Reason: err.Error(), cause: err}, true
	}
	return Damage{}, false
}

// Segment is what the walk found in one live segment file.
type Segment struct {
	Path   string
	First  uint64 // first index, from the file name
	Header segment.Header
	Size   int64 // file size as found
	Sealed bool  // has a valid footer (and is not cut by Repair)
	Footer segment.Footer
	// Next is the index after the segment's last valid record; 0 when
	// unknown (the header is unreadable).
	Next uint64
	// Intact is true when every record the segment holds was read (or, in
	// a quick walk, indexed) without damage and the segment ends with a
	// complete batch: at most its footer is missing.
	Intact bool
	// Unchecked is true when the segment's header and footer were taken
	// from the clean-close manifest (Options.Manifest), not read from the
	// file: whoever reads the segment checks the file first
	// (segment.CheckSealed), and takes the file's own header and footer
	// when they differ from the manifest's but hold the same records.
	Unchecked bool
	// Stored and Decoded count the payload bytes of the records read, as
	// stored (compressed) and as records: a deep walk only.
	Stored, Decoded int64

	// For the newest segment, and any other without a valid footer:
	Offsets []int64 // start of each valid record frame
	End     int64   // end of the valid data: where the next write (or a footer) goes
	// SealAt, when not 0, is where Repair writes the footer that ends the
	// segment after the records at Offsets (a committed TruncateBack).
	SealAt int64

	// File is the sealed segment's file, open read-only, when the walk
	// was asked to keep it (Options.KeepFiles); nil otherwise. Whoever
	// holds the State closes it (State.Close), or takes it over.
	File vfs.File
}

// close closes the file the walk kept, if any.
func (s *Segment) close() {
	if s.File != nil {
		s.File.Close()
		s.File = nil
	}
}

// Close closes the segment files the walk kept open (Options.KeepFiles)
// that the caller did not take over (by setting Segment.File to nil).
func (st *State) Close() {
	for i := range st.Segments {
		st.Segments[i].close()
	}
}

// Records is the number of records in the segment.
func (s *Segment) Records() uint64 {
	if s.Next <= s.First {
		return 0
	}
	return s.Next - s.First
}

// Torn describes a torn tail that Repair cuts.
type Torn struct {
	Path    string
	Offset  int64  // where the valid data ends; everything after it goes
	Bytes   int64  // non-zero bytes dropped (zeroed preallocation is not counted)
	Records int    // valid records of an unfinished batch that go with it
	Reason  string // why the scan stopped, for people
}

// State is what a log directory holds, as the walk found it.
type State struct {
	Dir        string
	Meta       Meta
	FirstIndex uint64    // first live record
	Segments   []Segment // live segments in log order; the last is the newest
	Torn       *Torn     // nil when the tail is clean
	// Damage lists what the walk found damaged, in the order Open meets
	// it: segments whose header is unreadable (foreign, newer, damaged or
	// cut short) first, then by segment and offset,
	// then the snapshot. A quick walk (Scan) stops at the first.
	Damage []Damage
	// Released lists damage found in records already released (below
	// FirstIndex) that the walk stepped over: not damage to the log.
	Released []Damage
	// Snapshot is the index the snapshot covers; 0 when there is none.
	Snapshot uint64
	// SnapshotFile describes the snapshot; nil when there is none or it
	// is unreadable.
	SnapshotFile *SnapshotInfo
	Temps        []string // leftover temporary files to remove
	Obsolete     []string // segments to remove (released, or cut by TruncateBack)
	Other        []string // names (not paths) of everything else in the directory
}

// NextIndex is the index the next appended record gets.
func (st *State) NextIndex() uint64 {
	next := max(st.FirstIndex, 1)
	for _, s := range st.Segments {
		next = max(next, s.Next)
	}
	if n := len(st.Segments); n > 0 && st.Segments[n-1].Next != 0 {
		next = max(st.Segments[n-1].Next, st.FirstIndex)
	}
	return next
}

// segmentsEnd is the index after the newest segment's last valid record,
// as the segments say: unlike NextIndex it may lie below FirstIndex (when
// records are missing). 0 when unknown.
func (st *State) segmentsEnd() uint64 {
	if n := len(st.Segments); n > 0 {
		return st.Segments[n-1].Next
	}
	return 0
}

// Records is the number of live records.
func (st *State) Records() uint64 { return st.NextIndex() - max(st.FirstIndex, 1) }

// Clean reports whether Repair has nothing to do.
func (st *State) Clean() bool {
	return st.Torn == nil && len(st.Temps) == 0 && len(st.Obsolete) == 0 && !st.Meta.BackPending && !st.Meta.EmptyPending
}

// Damaged reports whether the walk found damage.
func (st *State) Damaged() bool { return len(st.Damage) > 0 }
