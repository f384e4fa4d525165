package wal

import (
	"fmt"
	"os"

	"github.com/gojournal/journal/segment"
	"github.com/gojournal/journal/vfs"
)

// Reader iterates over records in index order, scanning segment files
// sequentially (much faster than Read per index for replay). It sees the
// records readable when each segment is reached: at the end of the log Next
// returns false, and calling Next again later picks up records appended
// since. A Reader is not safe for concurrent use; several Readers may run
// alongside appends. Truncations are not coordinated with Readers: after a
// TruncateFront a Reader resumes at the new FirstIndex, and a Reader running
// while TruncateBack removes records may already have returned some of
// them.
type Reader struct {
	l     *Log
	next  uint64 // index of the next record to return
	f     vfs.File
	path  string
	sc    *segment.Scanner
	limit uint64 // the scanner may yield records below this index
	index uint64
	rec   []byte
	err   error
}

// NewReader returns a Reader starting at index from (FirstIndex() if from
// is below it).
func (l *Log) NewReader(from uint64) *Reader {
	return &Reader{l: l, next: from}
}

// Next moves to the next record. It returns false at the current end of
// the log or on an error (see Err).
func (r *Reader) Next() bool {
	if r.err != nil {
		return false
	}
	for {
		if r.sc != nil && r.next < r.limit {
			if r.sc.Next() {
				return r.take(r.sc.Frame())
			}
			if err := r.sc.Err(); err != nil {
				r.err = err
			} else {
				r.err = &segment.CorruptionError{Path: r.path, Offset: r.sc.Offset(), Index: r.next, Reason: r.sc.Why()}
			}
			return false
		}
		more, err := r.reposition()
		if err != nil || !more {
			r.err = err
			return false
		}
	}
}

func (r *Reader) take(f segment.Frame) bool {
	if f.Index != r.next {
		r.err = &segment.CorruptionError{Path: r.path, Offset: f.Offset, Index: r.next, Reason: fmt.Sprintf("frame carries index %d", f.Index)}
		return false
	}
	rec, err := segment.Decompress(f.Codec, f.Data)
	if err != nil {
		r.err = &segment.CorruptionError{Path: r.path, Offset: f.Offset, Index: r.next, Reason: err.Error()}
		return false
	}
	r.index, r.rec = r.next, rec
	r.next++
	return true
}

// Index is the index of the current record.
func (r *Reader) Index() uint64 { return r.index }

// Record is the current record. It is valid until the next call to Next;
// copy it to keep it.
func (r *Reader) Record() []byte { return r.rec }

// Err is the error that stopped the Reader, nil at the end of the log.
// Damage gives an error satisfying errors.Is(err, ErrCorrupt).
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

// reposition points the scanner at the segment holding r.next. It reports
// false at the end of the log.
func (r *Reader) reposition() (bool, error) {
	sp, ok, err := r.l.spanFrom(r.next)
	if err != nil || !ok {
		return false, err
	}
	r.next = sp.index
	if r.f == nil || r.path != sp.path {
		r.Close()
		if r.f, err = r.l.fs.OpenFile(sp.path, os.O_RDONLY, 0); err != nil {
			return false, fmt.Errorf("journal: open %s: %w", sp.path, err)
		}
		r.path = sp.path
	}
	if sp.sealed != nil {
		k := int64(sp.index - sp.h.FirstIndex)
		if sp.off, _, err = sp.sealed.footer.RecordSpan(r.f, k); err != nil {
			return false, fmt.Errorf("journal: read index of %s: %w", sp.path, err)
		}
		sp.end = sp.sealed.footer.Offset
	}
	r.sc = segment.NewScannerAt(r.f, sp.end, sp.h, sp.off, sp.index)
	r.limit = sp.stop
	return true, nil
}

// spanFrom locates the readable records from index on. It reports false
// when there are none.
func (l *Log) spanFrom(index uint64) (readSpan, bool, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return readSpan{}, false, ErrClosed
	}
	index = max(index, l.first)
	if index > l.last {
		return readSpan{}, false, nil
	}
	if a := l.active; index >= a.first() {
		k := int(index - a.first())
		stop := l.last + 1
		end := a.tail + int64(len(l.pend))
		if n := int(stop - a.first()); n < len(a.offsets) {
			end = a.offsets[n]
		}
		return readSpan{path: a.path, h: a.h, off: a.offsets[k], end: end, index: index, stop: stop}, true, nil
	}
	for _, s := range l.sealed {
		if index < s.next() {
			return readSpan{path: s.path, h: s.h, sealed: s, index: index, stop: s.next()}, true, nil
		}
	}
	return readSpan{}, false, fmt.Errorf("journal: no segment holds index %d", index)
}
