package wal

import (
	"context"
	"errors"
	"fmt"
	"iter"
	"math"
	"os"
	"sort"
	"time"

	"github.com/gojournal/journal/internal/errs"
	"github.com/gojournal/journal/segment"
	"github.com/gojournal/journal/vfs"
)

// Reader iterates over records in index order, scanning segment files
// sequentially (much faster than Read per index for replay). Next returns
// false at the end of the log with a nil Err, and calling Next again later
// picks up records appended since; NextContext waits there instead, for
// the next record, the end of its context or Close (tailing). All and
// Follow give the same as Go iterators. A Reader is not safe for
// concurrent use; any number of Readers may run alongside appends and
// truncations, each independent of the others. A Reader never holds up
// appends: a group commit's only work for Readers is closing one channel.
//
// A Reader returns only durable records: ones an fdatasync has covered,
// which no crash can take back. With sync on, that is every record whose
// Append has returned (or is about to: the commit that made it durable
// wakes Readers just before it returns Append). With Options.NoSync a
// record becomes visible to Readers only at the next group commit that
// fdatasyncs (Sync, a rotation, a truncation, Close), although Read and
// LastIndex show it as soon as its Append returns.
//
// Each Next is atomic with respect to truncations: the record it returns
// is in the log at that moment, so a Reader never returns a record that a
// TruncateFront released or a TruncateBack dropped once that call has
// returned, and never skips one. When a truncation removes records the
// Reader is positioned at or has yet to return, Next stops the Reader with
// an error (sticky, like every Reader error except a context's):
//
//   - TruncateFront (or a Checkpoint) released records it had yet to
//     return: ErrCompacted, naming the records it lost. The same for a
//     Reader created below FirstIndex, and for one waiting in NextContext
//     when the release happens. Load the snapshot and start a new Reader
//     after it.
//   - TruncateBack dropped the current record (the last one Next
//     returned), and perhaps some before it: ErrTruncated, naming the
//     current record, even if its index was filled again since, and even
//     if a TruncateFront then released it (the next record is of a
//     history the Reader's record is not in). Roll back to a record still
//     in the log and start a new Reader after it. A Reader of a read-only
//     Log tells this from the segments left, so in that last case (the
//     record replaced, then released) it can tell only when the segment
//     holding the next record began at or before the current one.
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
	// backs is how many TruncateBacks the Log had done when the current
	// record was returned; atBacks, when check last looked.
	backs, atBacks uint64
	rec            []byte
	err            error
	// waitErr is why the last NextContext returned false without an
	// error of the Reader's own: its context ended. Not sticky.
	waitErr error
}

// NewReader returns a Reader starting at index from; from 0 means
// FirstIndex when Next is first called. A from below FirstIndex (and
// above 0) makes the first Next fail with ErrCompacted.
func (l *Log) NewReader(from uint64) *Reader {
	return &Reader{l: l, next: from}
}

// Next moves to the next record. It returns false, without waiting, at
// the current end of the log (Err is then nil) or on an error (see Err).
func (r *Reader) Next() bool {
	ok, _ := r.step(false)
	return ok
}

// NextContext moves to the next record like Next, but at the end of the
// log it waits until a record is durable, ctx ends or the log is closed.
// It returns false on an error of the Reader (see Err: ErrClosed when the
// log is closed before a record arrives, ErrCompacted when a truncation
// overtakes the Reader while it waits, the log's ErrFailed if it fails
// with nothing left to read), or when ctx ends: Err then returns
// ctx.Err(), and the Reader stays usable, so a later Next or NextContext
// goes on from where it was. A record available without waiting is
// returned even if ctx has ended.
func (r *Reader) NextContext(ctx context.Context) bool {
	var poll <-chan time.Time // a read-only Log: no commit wakes us
	for {
		ok, moved := r.step(true)
		if ok || moved == nil {
			return ok
		}
		if r.l.ro != nil && poll == nil {
			t := time.NewTicker(followPoll)
			defer t.Stop()
			poll = t.C
		}
		select {
		case <-moved:
		case <-poll:
		case <-ctx.Done():
			r.waitErr = ctx.Err()
			return false
		}
	}
}

// All is an iterator over the records from the Reader's position to the
// current end of the log, each as its index and its bytes (valid until the
// next iteration, as Record). It stops at the end of the log or on an
// error; Err then says which (nil at the end: ErrCompacted, ErrTruncated,
// ErrCorrupt, ErrClosed otherwise). Breaking out of the loop leaves the
// Reader on the last record yielded; ranging again goes on from there.
func (r *Reader) All() iter.Seq2[uint64, []byte] {
	return r.seq(func() bool { return r.Next() })
}

// Follow is All that waits for new records at the end of the log, as
// NextContext does: it stops only when ctx ends, the log is closed or an
// error stops the Reader, and Err says which after the loop.
func (r *Reader) Follow(ctx context.Context) iter.Seq2[uint64, []byte] {
	return r.seq(func() bool { return r.NextContext(ctx) })
}

func (r *Reader) seq(next func() bool) iter.Seq2[uint64, []byte] {
	return func(yield func(uint64, []byte) bool) {
		for next() {
			if !yield(r.index, r.rec) {
				return
			}
		}
	}
}

// step moves to the next record. At the end of the log, when wait is set,
// it returns the channel that is closed when the log changes next.
//
// On a read-only Log it first brings the view up to the writer's
// published state; an error met while reading (a file the writer removed,
// frames a TruncateBack overwrote) is reported only if the view is still
// the same once refreshed: otherwise the step is retried in the new view,
// which tells what happened (ErrCompacted, ErrTruncated, or nothing: the
// records are elsewhere now).
func (r *Reader) step(wait bool) (bool, <-chan struct{}) {
	r.waitErr = nil
	if r.err != nil {
		return false, nil
	}
	if r.l.ro == nil {
		return r.stepIn(wait)
	}
	for {
		if err := r.l.follow(); err != nil {
			r.err = err
			return false, nil
		}
		seq := r.l.viewSeq()
		ok, moved := r.stepIn(wait)
		if ok || r.err == nil || errors.Is(r.err, ErrCompacted) || errors.Is(r.err, ErrTruncated) || errors.Is(r.err, ErrClosed) {
			return ok, moved
		}
		if !r.l.awaitView(seq) {
			return false, nil
		}
		r.err, r.sc = nil, nil
		r.Close()
	}
}

func (r *Reader) stepIn(wait bool) (bool, <-chan struct{}) {
	// Held while a record is located and read: TruncateBack and the
	// removal of released segments wait for it.
	r.l.filesMu.RLock()
	defer r.l.filesMu.RUnlock()
	sp, moved, err := r.check(wait)
	if err != nil || moved != nil {
		r.err = err
		return false, moved
	}
	if sp == nil && r.sc == nil {
		return false, nil // the end of the log, not waiting
	}
	if sp != nil {
		if r.err = r.position(sp); r.err != nil {
			return false, nil
		}
	}
	if r.sc.Next() {
		return r.take(r.sc.Frame()), nil
	}
	if r.err = r.sc.Err(); r.err == nil {
		r.err = &errs.CorruptionError{Path: r.path, Offset: r.sc.Offset(), Index: r.next, Reason: r.sc.Why()}
	}
	return false, nil
}

// check compares the Reader with the log as it is now: it reports records
// lost to truncations, or where to scan next when the current scanner may
// not go on (a non-nil span). At the end of the log it returns a nil span
// and nil scanner, or, when wait is set, the channel the next change of
// the log closes. Otherwise the Reader's scanner may go on.
func (r *Reader) check(wait bool) (*readSpan, <-chan struct{}, error) {
	l := r.l
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.isClosed() {
		return nil, nil, ErrClosed
	}
	if r.next == 0 {
		r.next = l.first
	}
	if r.next < l.first {
		return nil, nil, fmt.Errorf("%w: records [%d, %d] (the log starts at %d)",
			ErrCompacted, r.next, l.first-1, l.first)
	}
	if r.active != l.active {
		// A rotation or a TruncateBack: the scanner may be reading what
		// TruncateBack dropped, so it is repositioned either way.
		if r.index != 0 && r.replaced() {
			return nil, nil, fmt.Errorf("%w: record %d (the log holds [%d, %d])",
				ErrTruncated, r.index, l.first, l.last)
		}
		r.sc, r.active = nil, l.active
	}
	r.atBacks = l.backs.n
	if r.sc != nil && r.next < r.limit {
		return nil, nil, nil
	}
	if r.next > l.durable {
		return nil, r.waitFor(wait), nil
	}
	sp, err := l.spanFrom(r.next)
	return &sp, nil, err
}

// waitFor is the end of the log for check: nothing (a nil scanner) when
// not waiting; otherwise the channel the next change of the log closes,
// or the log's failure (no record will come). Called with mu held.
func (r *Reader) waitFor(wait bool) <-chan struct{} {
	r.sc = nil
	if !wait {
		return nil
	}
	l := r.l
	if l.err != nil {
		r.err = l.err
		return nil
	}
	if l.moved == nil {
		l.moved = make(chan struct{})
	}
	return l.moved
}

// replaced reports whether a TruncateBack dropped the Reader's current
// record. The writer's Log knows every TruncateBack since the record was
// returned; a read-only Log compares segments (see Log.replaced). Called
// with mu held.
func (r *Reader) replaced() bool {
	l := r.l
	if l.ro == nil {
		return l.backs.lowestSince(r.backs) < r.index
	}
	return l.replaced(r.index, r.salt)
}

// backMarks records the TruncateBacks of a Log open for writing (and the
// restarts of an empty log below its end, which drop indexes as they
// do), so that
// a Reader can tell whether one dropped its current record, even after
// its index was filled again and released by a TruncateFront (where no
// segment is left to compare). It keeps just enough to answer
// lowestSince: a mark (count, index) is dropped once a later TruncateBack
// went at least as low, and of the marks below FirstIndex-1 (which drop
// the current record of every Reader that has not lost records, whose
// record is at least FirstIndex-1) only the latest is kept.
type backMarks struct {
	n     uint64 // TruncateBacks so far
	marks []backMark
}

type backMark struct{ n, index uint64 }

// add records the n+1st TruncateBack, to index, on a log starting at
// first.
func (b *backMarks) add(index, first uint64) {
	b.n++
	for len(b.marks) > 0 && b.marks[len(b.marks)-1].index >= index {
		b.marks = b.marks[:len(b.marks)-1]
	}
	b.marks = append(b.marks, backMark{b.n, index})
	for len(b.marks) > 1 && b.marks[1].index+1 < first {
		b.marks = b.marks[1:]
	}
}

// lowestSince returns the lowest index a TruncateBack after the first n
// kept the log up to; MaxUint64 when there was none.
func (b *backMarks) lowestSince(n uint64) uint64 {
	i := sort.Search(len(b.marks), func(i int) bool { return b.marks[i].n > n })
	if i == len(b.marks) {
		return math.MaxUint64
	}
	return b.marks[i].index
}

// replaced reports whether the record at index that a Reader returned
// from a segment with salt salt is no longer in the log's history: a
// TruncateBack dropped it. A segment never changes the records it holds
// (TruncateBack seals it anew before them, and the records after go to a
// new segment, with a new salt), so the record is the same exactly when
// the segment holding its index still has that salt. Below FirstIndex,
// where TruncateFront released it, the segment holding the next record
// tells, when it began at or before index: a Reader whose record was
// replaced and then released must not go on into the new history (it
// did). When that segment begins after index, nothing left in the log
// tells; the record counts as kept. Called with mu held, index at least
// FirstIndex-1 (a Reader further back has lost records: ErrCompacted).
func (l *Log) replaced(index, salt uint64) bool {
	if index > l.last {
		return true
	}
	if index >= l.first {
		return l.holder(index).Salt != salt
	}
	if l.first > l.last {
		return false
	}
	h := l.holder(l.first)
	return h.FirstIndex <= index && h.Salt != salt
}

// holder returns the header of the segment holding a record in
// [first, last]. Called with mu held.
func (l *Log) holder(index uint64) segment.Header {
	if a := l.unsealed(index); a != nil {
		return a.h
	}
	i := sort.Search(len(l.sealed), func(i int) bool { return l.sealed[i].next() > index })
	return l.sealed[i].h
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
	r.index, r.salt, r.backs, r.rec = r.next, r.h.Salt, r.atBacks, rec[:len(rec):len(rec)]
	r.next++
	return true
}

// Index is the index of the current record.
func (r *Reader) Index() uint64 { return r.index }

// Record is the current record. It is valid until the next call to Next;
// copy it to keep it.
func (r *Reader) Record() []byte { return r.rec }

// Err is the error that stopped the Reader, nil at the end of the log, or
// the error of the context that ended the last NextContext. Damage gives an error satisfying errors.Is(err, ErrCorrupt); truncations
// give ErrCompacted or ErrTruncated (see Reader); a closed Log, ErrClosed.
func (r *Reader) Err() error {
	if r.err != nil {
		return r.err
	}
	return r.waitErr
}

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
		if err != nil && sp.sealed != nil {
			return openSealedError(sp.sealed, err)
		}
		if err != nil {
			return fmt.Errorf("journal: open %s: %w", sp.path, err)
		}
		r.f, r.path, r.h = f, sp.path, sp.h
	}
	if sp.sealed != nil {
		var err error
		k := int64(sp.index - sp.h.FirstIndex)
		if err = sp.sealed.check(r.f, &r.l.mu); err != nil {
			return err
		}
		sp.h = sp.sealed.h // checked: the file's own, which check may have taken
		r.h = sp.h
		if sp.off, _, err = sp.sealed.footer.RecordSpan(r.f, k); err != nil {
			return fmt.Errorf("journal: read index of %s: %w", sp.path, err)
		}
		sp.end = sp.sealed.footer.Offset
	}
	r.sc = segment.NewScannerAt(r.f, sp.end, sp.h, sp.off, sp.index)
	r.limit = sp.stop
	return nil
}

// spanFrom locates the durable records from index on, index in
// [first, durable]. Called with mu held.
func (l *Log) spanFrom(index uint64) (readSpan, error) {
	if a := l.unsealed(index); a != nil {
		k := int(index - a.first())
		stop := min(l.durable+1, a.first()+uint64(len(a.offsets)))
		end := l.recordsEnd(a, int(stop-a.first()))
		return readSpan{path: a.path, h: a.h, off: a.offsets[k], end: end, index: index, stop: stop}, nil
	}
	for _, s := range l.sealed {
		if index < s.next() {
			return readSpan{path: s.path, h: s.h, sealed: s, index: index, stop: s.next()}, nil
		}
	}
	return readSpan{}, fmt.Errorf("journal: no segment holds index %d", index)
}
