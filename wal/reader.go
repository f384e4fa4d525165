package wal

import (
	"fmt"
	"os"
	"sort"

	"github.com/gojournal/journal/internal/errs"
	"github.com/gojournal/journal/segment"
	"github.com/gojournal/journal/vfs"
)

// Reader iterates over records in index order, scanning segment files
// sequentially (much faster than Read per index for replay). At the end of
// the log Next returns false with a nil Err, and calling Next again later
// picks up records appended since. A Reader is not safe for concurrent
// use; several Readers may run alongside appends and truncations.
//
// Each Next is atomic with respect to truncations: the record it returns
// is in the log at that moment, so a Reader never returns a record that a
// TruncateFront released or a TruncateBack dropped once that call has
// returned, and never skips one. When a truncation removes records the
// Reader is positioned at or has yet to return, Next stops the Reader with
// an error (sticky, like every Reader error):
//
//   - TruncateFront (or a Checkpoint) released records it had yet to
//     return: ErrCompacted, naming the records it lost. The same for a
//     Reader created below FirstIndex. Load the snapshot and start a new
//     Reader after it.
//   - TruncateBack dropped the current record (the last one Next
//     returned), and perhaps some before it: ErrTruncated, naming the
//     current record, even if its index was filled again since. Roll back
//     to a record still in the log and start a new Reader after it.
//   - TruncateBack dropped only records the Reader had yet to return: no
//     error. It returns the records kept, then those appended afterwards.
//
// After Close of the Log, Next stops the Reader with ErrClosed.
type Reader struct {
	l    *Log
	next uint64 // index of the next record to return; 0: FirstIndex
	f    vfs.File
	path string
	h    segment.Header // the header of the segment f reads
	sc   *segment.Scanner
	// The scanner may yield records below limit, as long as the log's
	// active segment is still active (TruncateBack always replaces it).
	limit  uint64
	active *activeSegment
	index  uint64
	salt   uint64 // salt of the segment the current record came from
	rec    []byte
	err    error
}

// NewReader returns a Reader starting at index from; from 0 means
// FirstIndex when Next is first called. A from below FirstIndex (and
// above 0) makes the first Next fail with ErrCompacted.
func (l *Log) NewReader(from uint64) *Reader {
	return &Reader{l: l, next: from}
}

// Next moves to the next record. It returns false at the current end of
// the log or on an error (see Err).
func (r *Reader) Next() bool {
	if r.err != nil {
		return false
	}
	// Held while a record is located and read: TruncateBack and the
	// removal of released segments wait for it.
	r.l.filesMu.RLock()
	defer r.l.filesMu.RUnlock()
	sp, more, err := r.check()
	if err != nil || !more {
		r.err = err
		return false
	}
	if sp != nil {
		if r.err = r.position(sp); r.err != nil {
			return false
		}
	}
	if r.sc.Next() {
		return r.take(r.sc.Frame())
	}
	if r.err = r.sc.Err(); r.err == nil {
		r.err = &errs.CorruptionError{Path: r.path, Offset: r.sc.Offset(), Index: r.next, Reason: r.sc.Why()}
	}
	return false
}

// check compares the Reader with the log as it is now: it reports records
// lost to truncations, the end of the log (false), or where to scan next
// when the current scanner may not go on (a non-nil span).
func (r *Reader) check() (*readSpan, bool, error) {
	l := r.l
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.isClosed() {
		return nil, false, ErrClosed
	}
	if r.next == 0 {
		r.next = l.first
	}
	if r.next < l.first {
		return nil, false, fmt.Errorf("%w: records [%d, %d] (the log starts at %d)",
			ErrCompacted, r.next, l.first-1, l.first)
	}
	if r.active != l.active {
		// A rotation or a TruncateBack: the scanner may be reading what
		// TruncateBack dropped, so it is repositioned either way.
		if r.index != 0 && r.index >= l.first && (r.index > l.last || l.saltOf(r.index) != r.salt) {
			return nil, false, fmt.Errorf("%w: record %d (the log holds [%d, %d])",
				ErrTruncated, r.index, l.first, l.last)
		}
		r.sc, r.active = nil, l.active
	}
	if r.sc != nil && r.next < r.limit {
		return nil, true, nil
	}
	sp, ok, err := l.spanFrom(r.next)
	if err != nil || !ok {
		return nil, false, err
	}
	return &sp, true, nil
}

// saltOf returns the salt of the segment holding a record in
// [first, last]. Called with mu held.
func (l *Log) saltOf(index uint64) uint64 {
	if a := l.unsealed(index); a != nil {
		return a.h.Salt
	}
	i := sort.Search(len(l.sealed), func(i int) bool { return l.sealed[i].next() > index })
	return l.sealed[i].h.Salt
}

func (r *Reader) take(f segment.Frame) bool {
	if f.Index != r.next {
		r.err = &errs.CorruptionError{Path: r.path, Offset: f.Offset, Index: r.next, Reason: fmt.Sprintf("frame carries index %d", f.Index)}
		return false
	}
	rec, err := segment.Decompress(f.Codec, f.Data)
	if err != nil {
		r.err = &errs.CorruptionError{Path: r.path, Offset: f.Offset, Index: r.next, Reason: err.Error()}
		return false
	}
	// Capped: an uncompressed record lies in the scanner's buffer, and a
	// caller appending to it must not overwrite the frames after it.
	r.index, r.salt, r.rec = r.next, r.h.Salt, rec[:len(rec):len(rec)]
	r.next++
	return true
}

// Index is the index of the current record.
func (r *Reader) Index() uint64 { return r.index }

// Record is the current record. It is valid until the next call to Next;
// copy it to keep it.
func (r *Reader) Record() []byte { return r.rec }

// Err is the error that stopped the Reader, nil at the end of the log.
// Damage gives an error satisfying errors.Is(err, ErrCorrupt); truncations
// give ErrCompacted or ErrTruncated (see Reader); a closed Log, ErrClosed.
func (r *Reader) Err() error { return r.err }

// Close releases the Reader's file.
func (r *Reader) Close() error {
	r.sc = nil
	if r.f == nil {
		return nil
	}
	err := r.f.Close()
	r.f = nil
	return err
}

// readSpan says where a Reader should scan: the segment holding index, the
// offset of its frame, and how far the scan may go.
type readSpan struct {
	path        string
	h           segment.Header
	sealed      *sealedSegment
	off, end    int64 // end: file offset after the last readable record (0: from the footer)
	index, stop uint64
}

// position points the scanner at sp. Called with filesMu held shared, so
// the segment's file exists.
func (r *Reader) position(sp *readSpan) error {
	// The same name may be a new file: TruncateBack deletes a segment and
	// may create the next one under its name.
	if r.f == nil || r.path != sp.path || r.h.Salt != sp.h.Salt {
		r.Close()
		f, err := r.l.fs.OpenFile(sp.path, os.O_RDONLY, 0)
		if err != nil {
			return fmt.Errorf("journal: open %s: %w", sp.path, err)
		}
		r.f, r.path, r.h = f, sp.path, sp.h
	}
	if sp.sealed != nil {
		var err error
		k := int64(sp.index - sp.h.FirstIndex)
		if sp.off, _, err = sp.sealed.footer.RecordSpan(r.f, k); err != nil {
			return fmt.Errorf("journal: read index of %s: %w", sp.path, err)
		}
		sp.end = sp.sealed.footer.Offset
	}
	r.sc = segment.NewScannerAt(r.f, sp.end, sp.h, sp.off, sp.index)
	r.limit = sp.stop
	return nil
}

// spanFrom locates the readable records from index on, index in
// [first, last+1]. It reports false when there are none. Called with mu
// held.
func (l *Log) spanFrom(index uint64) (readSpan, bool, error) {
	if index > l.last {
		return readSpan{}, false, nil
	}
	if a := l.unsealed(index); a != nil {
		k := int(index - a.first())
		stop := min(l.last+1, a.first()+uint64(len(a.offsets)))
		end := l.recordsEnd(a, int(stop-a.first()))
		return readSpan{path: a.path, h: a.h, off: a.offsets[k], end: end, index: index, stop: stop}, true, nil
	}
	for _, s := range l.sealed {
		if index < s.next() {
			return readSpan{path: s.path, h: s.h, sealed: s, index: index, stop: s.next()}, true, nil
		}
	}
	return readSpan{}, false, fmt.Errorf("journal: no segment holds index %d", index)
}
