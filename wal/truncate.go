package wal

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"slices"
	"sort"
	"syscall"

	"github.com/gojournal/journal/recovery"
	"github.com/gojournal/journal/segment"
)

// TruncateFront drops the records before index: afterwards FirstIndex() is
// index. Any index >= FirstIndex is allowed, up to MaxIndex
// (ErrOutOfRange past it, unless it is LastIndex+1). LastIndex+1 empties the log,
// and the next Append continues from LastIndex+1. An index past that
// empties the log too, and the next Append gets index: an empty log may
// start anywhere, as a replicated log must once it installs a snapshot
// taken elsewhere (this works on a brand-new log as well, to start it at
// index). An empty log without a checkpoint may also move its start below
// FirstIndex (to any index >= 1): a replica that dropped a conflicting
// tail along with its prefix continues from the leader's snapshot, which
// may lie before the end it had. Once a checkpoint exists, the log must
// continue it: index may not exceed the snapshot's index plus one
// (ErrOutOfRange), so a log with a checkpoint never skips indexes.
// The truncation is durable when TruncateFront returns; after a crash the
// log is either as before or as after it, NoSync or not (with NoSync the
// records kept are synced first). Segments holding only dropped records
// are deleted; past the end, every segment is, and appends continue in a
// fresh one (see recovery.MetaName for the commit protocol).
//
// An AppendApply or AppendBatchApply whose records it drops (any of them)
// before their apply starts skips the apply and returns ErrTruncated (the
// failure, if a failed TruncateFront may have dropped them), as after a
// TruncateBack; so does Checkpoint's release. Retention does not skip them.
//
// Appends go on while it runs (except past the end, where they wait, and
// those already given indexes are written first and then dropped); it
// waits for a Checkpoint or TruncateBack in flight. On a full disk it gives back the active segment's
// preallocated space to write its meta file; if that fails before the
// commit the error (ENOSPC) leaves the log as it was, and usable.
func (l *Log) TruncateFront(index uint64) error {
	l.opMu.Lock()
	defer l.opMu.Unlock()
	l.mu.Lock()
	defer l.mu.Unlock()
	if err := l.usable(); err != nil {
		return err
	}
	return l.truncateFront(index, true)
}

// truncateFront is TruncateFront once the log was found usable. It does
// not stop appends: the meta file it commits says nothing about the end
// of the log. It does not check for Close: a Checkpoint whose snapshot is
// committed finishes its release even if Close began meanwhile (Close
// waits for opMu, so the files are still open). With skipApplies, the
// applies waiting for their turn whose records it drops are skipped (see
// cutTurnsBefore); retention, which releases records on its own account,
// leaves them to run. Called with opMu and mu held.
func (l *Log) truncateFront(index uint64, skipApplies bool) error {
	// A segment a rotation is sealing joins the sealed ones (and may be
	// released) once the rotation ends.
	for l.sealing != nil && l.err == nil {
		l.cond.Wait()
	}
	if l.err != nil {
		return l.err
	}
	// Past MaxIndex only to release a log that reached it (a checkpoint
	// of its last record): no append could follow a start there.
	if index == 0 || (index > MaxIndex && l.last < MaxIndex) || (index < l.first && !l.movable()) {
		return fmt.Errorf("%w: TruncateFront(%d), log holds [%d, %d]", ErrOutOfRange, index, l.first, l.last)
	}
	if l.snapshot != 0 && index > l.snapshot+1 {
		return fmt.Errorf("%w: TruncateFront(%d) would drop records after the snapshot (as of %d): checkpoint first",
			ErrOutOfRange, index, l.snapshot)
	}
	if index == l.first {
		return nil
	}
	if index > l.last+1 || index < l.first {
		return l.restart(index, skipApplies)
	}
	// The records kept (up to index-1 at least) must be durable before
	// the meta file says the log starts at index, or a power loss could
	// leave a log that ends before it begins.
	if l.opts.NoSync {
		if err := l.syncAll(); err != nil {
			return err
		}
	}
	m := l.meta
	m.FirstIndex = index
	if err := l.commitFront(m); err != nil {
		if l.err != nil && skipApplies {
			l.cutTurnsBefore(index, err) // the records' fate is unknown
		}
		return err
	}
	l.meta, l.first = m, index
	if skipApplies {
		l.cutTurnsBefore(index, nil)
	}
	l.wakeReaders() // those it overtook learn it now
	l.publish()     // and those in other processes
	k := 0
	for k < len(l.sealed) && l.sealed[k].next() <= index {
		k++
	}
	drop := append([]*sealedSegment(nil), l.sealed[:k]...)
	l.sealed = l.sealed[k:]
	keep, drop, fresh := l.recyclable(drop)
	l.mu.Unlock()
	err := l.removeSealed(drop, keep, fresh)
	var sp *spareFile
	if err == nil && keep != nil {
		sp, err = l.recycleSegment(keep)
	}
	l.mu.Lock()
	if keep != nil {
		l.recycled(sp)
	}
	if err != nil {
		// The truncation is committed and the next Open removes what is
		// left, but a failed remove leaves the directory's state unknown:
		// the log stops here like after any failed file operation.
		return l.fail(fmt.Errorf("journal: remove released segments: %w", err))
	}
	return nil
}

// recyclable picks, with Options.RecycleSegments, the released segment to
// keep as the spare for a later rotation: the largest of drop (the most
// blocks already written), unless a recycled spare is held already. At
// most one file may bear segment.SpareName, so it waits for a fresh spare
// being prepared and for a rotation in flight (truncateFront let one
// start while it committed: its spare, still under that name, is yet to
// be installed), then reserves the name (preparing: no spare is prepared
// and no rotation takes one until recycled ends it), and returns drop
// without the segment kept. A fresh spare that is ready is given up for
// the recycled one, which saves more: fresh is returned for removal.
// Called with mu held.
func (l *Log) recyclable(drop []*sealedSegment) (keep *sealedSegment, rest []*sealedSegment, fresh *spareFile) {
	if !l.opts.RecycleSegments || len(drop) == 0 {
		return nil, drop, nil
	}
	for (l.preparing || l.sealing != nil) && l.err == nil {
		l.cond.Wait()
	}
	if l.err != nil || (l.ready != nil && l.ready.written > 0) {
		return nil, drop, nil
	}
	k := 0
	for i, s := range drop {
		if s.size > drop[k].size {
			k = i
		}
	}
	keep = drop[k]
	rest = append(drop[:k:k], drop[k+1:]...)
	fresh, l.ready = l.ready, nil
	l.preparing = true
	return keep, rest, fresh
}

// recycleSegment turns released segment s into the spare (see
// segment.Recycle). The release is committed and durable: the file may
// change from here on. On a full disk the file is deleted, as it would
// have been without recycling, and the log goes on without a spare; any
// other failure, or a failed deletion, is returned, and fails the log as
// a failed removal does. Called without mu, the spare reserved.
func (l *Log) recycleSegment(s *sealedSegment) (*spareFile, error) {
	f, at, written, err := segment.Recycle(l.fs, l.dir, s.path, l.opts.SegmentSize)
	if err == nil {
		return &spareFile{f: f, path: at, written: written}, nil
	}
	if rerr := l.fs.Remove(at); rerr != nil && !errors.Is(rerr, fs.ErrNotExist) {
		return nil, errors.Join(err, rerr)
	}
	if errors.Is(err, syscall.ENOSPC) {
		l.opts.Logger.Warn("journal: disk full; released segment deleted, not recycled", "file", s.path, "err", err)
		return nil, nil
	}
	return nil, err
}

// recycled ends the reservation recyclable made, with the recycled spare
// ready (nil when recycling failed). Called with mu held.
func (l *Log) recycled(sp *spareFile) {
	l.preparing = false
	if sp != nil {
		l.ready, l.spareFull = sp, false
		l.metrics.SegmentsRecycled++
	}
	l.broadcast()
}

// cutTurnsBefore skips the applies still waiting for their turn whose
// records a TruncateFront to index dropped (some or all of them): their
// calls return ErrTruncated, as after a TruncateBack, or failed, the
// failure of a TruncateFront that may have dropped them. The database
// dropped the prefix because its state is kept elsewhere (a snapshot,
// perhaps installed from another replica), so applying such a record would
// apply it twice, or on a state that never had the records before it. An
// apply already running stays applied. Called with mu held.
func (l *Log) cutTurnsBefore(index uint64, failed error) {
	for t := l.turns; t != nil; t = t.next {
		if t.first >= index || t.err != nil {
			continue
		}
		t.err = failed
		if failed == nil {
			t.err = fmt.Errorf("%w: records [%d, %d] appended, then TruncateFront(%d) dropped records before %d",
				ErrTruncated, t.first, t.last, index, index)
		}
		t.ready.Signal()
	}
}

// movable reports whether the log may restart below its first index: it
// is empty and has no checkpoint to continue. Called with mu held.
func (l *Log) movable() bool { return l.first > l.last && l.snapshot == 0 }

// restart is truncateFront outside [FirstIndex, LastIndex+1]. It holds
// appends off; those given indexes before are written first, and if they
// made the log reach index, or made it non-empty when index lies below
// its start, the call is judged again on the range they left.
func (l *Log) restart(index uint64, skipApplies bool) error {
	if err := l.exclusive(false); err != nil {
		return err
	}
	if index <= l.last+1 && (index >= l.first || !l.movable()) {
		l.endExclusive()
		return l.truncateFront(index, skipApplies)
	}
	defer l.endExclusive()
	return l.restartAt(index, skipApplies)
}

// restartAt empties the log so that it continues at index, past its end.
// The meta file with EmptyPending is the commit point; recovery deletes
// every segment while the flag is set (see recovery.MetaName). Called with
// opMu and mu held and the log busy (exclusive), everything pending
// written.
func (l *Log) restartAt(index uint64, skipApplies bool) error {
	m := l.meta
	m.FirstIndex, m.EmptyPending = index, true
	watch := &commitWatch{FS: l.fs}
	l.mu.Unlock()
	err := recovery.WriteMeta(watch, l.dir, m)
	l.mu.Lock()
	if err != nil {
		if !watch.renamed && errors.Is(err, syscall.ENOSPC) {
			// Nothing committed: the log is as it was, and usable.
			return fmt.Errorf("journal: TruncateFront(%d): %w", index, err)
		}
		err = l.fail(err)
		if skipApplies {
			l.cutTurnsBefore(index, err) // the records' fate is unknown
		}
		return err
	}
	if skipApplies {
		// Committed: every record is dropped, whatever happens next.
		l.cutTurnsBefore(index, nil)
	}
	l.mu.Unlock()
	l.filesMu.Lock()
	next, err := l.replaceAll(m)
	l.mu.Lock()
	l.filesMu.Unlock()
	if err != nil {
		return l.fail(fmt.Errorf("journal: TruncateFront(%d): %w", index, err))
	}
	m.EmptyPending = false
	// Appends whose records were written before the restart succeeded,
	// however late they wake to learn it.
	l.writtenWaiters()
	l.meta, l.first, l.last, l.next = m, index, index-1, index
	l.sealed, l.active = nil, next
	// For Readers a restart drops every record from index on, as a
	// TruncateBack to index-1 does: those indexes get other records.
	l.backs.add(index-1, index)
	// Readers learn that the records they had yet to return are gone,
	// and followers in other processes see the new start.
	l.setDurable(index - 1)
	return nil
}

// replaceAll applies a committed restart at m.FirstIndex: it deletes every
// segment, creates the empty one the log continues in (its directory sync
// makes the deletions durable), and clears EmptyPending. Deleting first
// frees the space the new segment preallocates. Called with filesMu held
// and the log busy, without mu.
func (l *Log) replaceAll(m recovery.Meta) (*activeSegment, error) {
	old := append(slices.Clone(l.sealed), &sealedSegment{path: l.active.path, f: l.active.f})
	for _, s := range old {
		if s.f != nil {
			s.f.Close()
			s.f = nil
		}
	}
	for _, s := range old {
		if err := l.fs.Remove(s.path); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return nil, err
		}
	}
	next, err := l.create(m.FirstIndex, l.opts.SegmentSize)
	if err != nil {
		return nil, err
	}
	m.EmptyPending = false
	if err := l.writeMeta(m); err != nil {
		next.f.Close()
		return nil, err
	}
	return next, nil
}

// commitFront writes the meta file that commits a TruncateFront; its
// rename is the commit point. On a full disk (ENOSPC) it gives back the
// active segment's preallocated space and tries once more, so that an
// application can release records to free space; if there is still no
// room, the log is left as it was, and usable (nothing was committed, and
// the temporary file is gone). Any other failure fails the log, as every
// failed file operation does. Called with mu held.
func (l *Log) commitFront(m recovery.Meta) error {
	for retried := false; ; retried = true {
		watch := &commitWatch{FS: l.fs}
		l.mu.Unlock()
		err := recovery.WriteMeta(watch, l.dir, m)
		l.mu.Lock()
		switch {
		case err == nil:
			return nil
		case !errors.Is(err, syscall.ENOSPC) || watch.renamed:
			return l.fail(err)
		case retried:
			return fmt.Errorf("journal: TruncateFront(%d): %w", m.FirstIndex, err)
		}
		if err := l.releasePrealloc(); err != nil {
			return err
		}
	}
}

// releasePrealloc trims the active segment's preallocated space after its
// data. Appends are held off meanwhile and everything written is synced
// first, so no write lands past the cut and nothing unsynced is cut; after
// a crash the file is either as long as before (zeros past the data) or
// as short as after, and recovery reads both alike. Appends then grow the
// file until the next segment, which is preallocated again. Called with
// mu held.
func (l *Log) releasePrealloc() error {
	if err := l.exclusive(true); err != nil {
		return err
	}
	defer l.endExclusive()
	a := l.active
	l.mu.Unlock()
	err := a.f.Truncate(a.tail)
	l.mu.Lock()
	if err != nil {
		return l.fail(fmt.Errorf("journal: release preallocated space of %s: %w", a.path, err))
	}
	a.size = a.tail
	return nil
}

// writeMeta durably replaces the meta file with m.
func (l *Log) writeMeta(m recovery.Meta) error {
	return recovery.WriteMeta(l.fs, l.dir, m)
}

// removeSealed closes and deletes segments no longer part of the log, and
// closes keep, the one to be recycled, and deletes fresh, the spare it
// replaces. Closing under filesMu is what lets keep change afterwards:
// every read that located a record in these segments has ended, and every
// later one finds the records released (ErrCompacted). Called without mu.
func (l *Log) removeSealed(segs []*sealedSegment, keep *sealedSegment, fresh *spareFile) error {
	if len(segs) == 0 && keep == nil {
		return nil
	}
	l.filesMu.Lock()
	for _, s := range slices.Concat(segs, []*sealedSegment{keep}) {
		if s != nil && s.f != nil {
			s.f.Close()
			s.f = nil
		}
	}
	l.filesMu.Unlock()
	// No directory sync: the meta file already says these segments are
	// gone, and the next Open removes any that a crash brings back (a
	// spare, like any temporary file).
	var err error
	paths := make([]string, 0, len(segs)+1)
	for _, s := range segs {
		paths = append(paths, s.path)
	}
	if fresh != nil {
		fresh.f.Close()
		paths = append(paths, fresh.path)
	}
	for _, p := range paths {
		if rerr := l.fs.Remove(p); rerr != nil && !errors.Is(rerr, fs.ErrNotExist) {
			err = errors.Join(err, rerr)
		}
	}
	return err
}

// TruncateBack drops the records after index: afterwards LastIndex() is
// index and the next Append gets index+1. Any index in [FirstIndex-1,
// LastIndex] is allowed, but not below the snapshot's index. The
// truncation is durable when TruncateBack returns; after a crash the log is
// either as before or as after it, NoSync or not (everything written is
// synced before the commit). Reads wait while it runs.
//
// New appends wait while it runs. Appends already given their indexes are
// written first; those whose records it then drops return ErrTruncated
// (an Append that returned its index before the truncation committed saw
// its record dropped afterwards, like any record TruncateBack drops).
//
// The segment holding index is sealed right after it (its footer goes to a
// fresh sector, so the records kept are never rewritten), later segments
// are deleted, and appends continue in a new segment.
func (l *Log) TruncateBack(index uint64) error {
	l.opMu.Lock()
	defer l.opMu.Unlock()
	l.filesMu.Lock()
	defer l.filesMu.Unlock()
	l.mu.Lock()
	defer l.mu.Unlock()
	if err := l.usable(); err != nil {
		return err
	}
	if index+1 < l.first || index > l.last {
		return fmt.Errorf("%w: TruncateBack(%d), log holds [%d, %d]", ErrOutOfRange, index, l.first, l.last)
	}
	if index < l.snapshot {
		return fmt.Errorf("%w: TruncateBack(%d) would drop records the snapshot (as of %d) covers", ErrOutOfRange, index, l.snapshot)
	}
	// Everything written so far is made durable first, NoSync or not:
	// once the meta file below commits, recovery seals the segment after
	// the records kept, and they must be there to seal.
	if err := l.exclusive(true); err != nil {
		return err
	}
	defer l.endExclusive()
	if index == l.last {
		return nil
	}
	if err := l.checkKept(index); err != nil {
		return err
	}
	m := l.meta
	m.Back, m.BackPending = index, true
	l.mu.Unlock()
	kept, next, err := l.cutBack(m)
	l.mu.Lock()
	if err != nil {
		err = l.fail(err)
		l.cutWaiters(index, err)
		return err
	}
	l.cutWaiters(index, ErrTruncated)
	l.backs.add(index, l.first)
	m.BackPending = false
	l.meta, l.last, l.next = m, index, index+1
	l.sealed, l.active = kept, next
	l.setDurable(min(l.durable, index))
	return nil
}

// checkKept checks, before a TruncateBack to index commits, the sealed
// segment it will seal anew (the one holding both index and index+1) if
// Open took it from the manifest: sealing reads its footer, which must be
// sound before the truncation commits, or recovery could not finish it.
// Called with mu held, the log busy and filesMu held.
func (l *Log) checkKept(index uint64) error {
	i := sort.Search(len(l.sealed), func(i int) bool { return l.sealed[i].next() > index+1 })
	if i == len(l.sealed) || l.sealed[i].first() > index || !l.sealed[i].unchecked.Load() {
		return nil
	}
	s := l.sealed[i]
	if err := l.openSealed(s); err != nil {
		return err
	}
	return s.check(s.f, nil) // mu is held
}

// cutBack commits and applies a TruncateBack to m.Back: the meta file's
// rename is the commit point; recovery finishes the work if we crash
// before the second meta write. Called with the log busy and filesMu held.
func (l *Log) cutBack(m recovery.Meta) (kept []*sealedSegment, next *activeSegment, err error) {
	if err := l.writeMeta(m); err != nil {
		return nil, nil, err
	}
	if kept, err = l.sealBefore(m.Back + 1); err != nil {
		return nil, nil, err
	}
	// Create syncs the directory, which makes sealBefore's removals
	// durable too.
	if next, err = l.create(m.Back+1, l.opts.SegmentSize); err != nil {
		return nil, nil, err
	}
	m.BackPending = false
	if err := l.writeMeta(m); err != nil {
		next.f.Close()
		return nil, nil, err
	}
	return kept, next, nil
}

// sealBefore ends the log before index: the segment holding index-1 is
// sealed after it and every later segment deleted. It returns the sealed
// segments that remain. Called with the log busy and filesMu held.
func (l *Log) sealBefore(index uint64) ([]*sealedSegment, error) {
	all := append(slices.Clone(l.sealed), &sealedSegment{path: l.active.path, h: l.active.h, f: l.active.f})
	k := 0 // segments before k are kept whole
	for k < len(all) && all[k].next() <= index && k < len(l.sealed) {
		k++
	}
	kept := slices.Clone(l.sealed[:k])
	if k < len(all) && all[k].first() < index {
		s, err := l.sealAt(all[k], k == len(l.sealed), index)
		if err != nil {
			return nil, err
		}
		kept = append(kept, s)
		k++
	}
	for _, s := range all[k:] {
		if s.f != nil {
			s.f.Close()
		}
	}
	// The removals must be durable before the meta file says the
	// truncation is done; creating the next segment syncs the directory.
	for _, s := range all[k:] {
		if err := l.fs.Remove(s.path); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return nil, err
		}
	}
	return kept, nil
}

// sealAt seals segment s (the active one if active) so that it ends before
// index.
func (l *Log) sealAt(s *sealedSegment, active bool, index uint64) (*sealedSegment, error) {
	n := int(index - s.first())
	var offsets []int64
	f := s.f
	times := s.footer.Times
	if active {
		offsets = l.active.offsets[:n+1]
		times = l.active.sealTimes()
	} else {
		var err error
		if f, err = l.fs.OpenFile(s.path, os.O_RDWR, 0); err != nil {
			return nil, fmt.Errorf("journal: open %s: %w", s.path, err)
		}
		if offsets, err = s.footer.Offsets(f, n+1); err != nil {
			f.Close()
			return nil, fmt.Errorf("journal: read index of %s: %w", s.path, err)
		}
		if s.f != nil {
			s.f.Close()
		}
	}
	// The times stay those of the appends: the last one kept may be older
	// than the last append time, which is then an upper bound.
	ft, err := segment.Seal(f, s.h, segment.AlignSector(offsets[n]), offsets[:n], times)
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("journal: seal %s before %d: %w", s.path, index, err)
	}
	return &sealedSegment{path: s.path, h: s.h, footer: ft, f: f, size: s.h.SealedSize(ft.Offset, n)}, nil
}
