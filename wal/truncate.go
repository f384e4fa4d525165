package wal

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"slices"

	"github.com/gojournal/journal/recovery"
	"github.com/gojournal/journal/segment"
)

// TruncateFront drops the records before index: afterwards FirstIndex() is
// index. Any index in [FirstIndex, LastIndex+1] is allowed; LastIndex+1
// empties the log, and the next Append still continues from LastIndex+1.
// Once a checkpoint exists, the log must continue it: index may not exceed
// the snapshot's index plus one (ErrOutOfRange).
// The truncation is durable when TruncateFront returns; after a crash the
// log is either as before or as after it. Segments holding only dropped
// records are deleted.
func (l *Log) TruncateFront(index uint64) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if err := l.quiesce(); err != nil {
		return err
	}
	if index < l.first || index > l.last+1 {
		return fmt.Errorf("%w: TruncateFront(%d), log holds [%d, %d]", ErrOutOfRange, index, l.first, l.last)
	}
	if l.snapshot != 0 && index > l.snapshot+1 {
		return fmt.Errorf("%w: TruncateFront(%d) would drop records after the snapshot (as of %d): checkpoint first",
			ErrOutOfRange, index, l.snapshot)
	}
	if index == l.first {
		return nil
	}
	m := l.meta
	m.FirstIndex = index
	// The meta file's rename is the commit point.
	if err := l.whileBusy(func() error { return recovery.WriteMeta(l.fs, l.dir, m) }); err != nil {
		return err
	}
	l.meta, l.first = m, index
	k := 0
	for k < len(l.sealed) && l.sealed[k].next() <= index {
		k++
	}
	drop := append([]*sealedSegment(nil), l.sealed[:k]...)
	l.sealed = l.sealed[k:]
	l.mu.Unlock()
	err := l.removeSealed(drop)
	l.mu.Lock()
	if err != nil {
		// The truncation is committed and the next Open removes what is
		// left, but a failed remove leaves the directory's state unknown:
		// the log stops here like after any failed file operation.
		return l.fail(fmt.Errorf("journal: remove released segments: %w", err))
	}
	return nil
}

// syncKept makes the active segment durable before a TruncateBack
// commits. With NoSync its records may not be yet, and a meta file whose
// pending TruncateBack keeps records a crash then took away is a log Open
// refuses. (TruncateFront needs no such sync: a log whose first index lies
// past its last record opens empty, from that index.) Called with mu held
// and the log idle.
func (l *Log) syncKept() error {
	a := l.active
	if a.synced >= a.tail {
		return nil
	}
	if err := a.f.Sync(); err != nil {
		return l.fail(fmt.Errorf("journal: fdatasync %s: %w", a.path, err))
	}
	a.synced = a.tail
	return nil
}

// whileBusy runs op with appends held off and mu released; a failed op fails
// the log. Called with mu held and the log idle.
func (l *Log) whileBusy(op func() error) error {
	l.busy = true
	l.mu.Unlock()
	err := op()
	l.mu.Lock()
	l.busy = false
	l.cond.Broadcast()
	if err != nil {
		return l.fail(err)
	}
	return nil
}

// removeSealed closes and deletes segments no longer part of the log.
// Called without mu.
func (l *Log) removeSealed(segs []*sealedSegment) error {
	if len(segs) == 0 {
		return nil
	}
	l.filesMu.Lock()
	for _, s := range segs {
		if s.f != nil {
			s.f.Close()
			s.f = nil
		}
	}
	l.filesMu.Unlock()
	// No directory sync: the meta file already says these segments are
	// gone, and the next Open removes any that a crash brings back.
	var err error
	for _, s := range segs {
		if rerr := l.fs.Remove(s.path); rerr != nil && !errors.Is(rerr, fs.ErrNotExist) {
			err = errors.Join(err, rerr)
		}
	}
	return err
}

// TruncateBack drops the records after index: afterwards LastIndex() is
// index and the next Append gets index+1. Any index in [FirstIndex-1,
// LastIndex] is allowed, but not below the snapshot's index. The truncation is durable when TruncateBack
// returns; after a crash the log is either as before or as after it. Reads
// wait while it runs.
//
// The segment holding index is sealed right after it (its footer goes to a
// fresh sector, so the records kept are never rewritten), later segments
// are deleted, and appends continue in a new segment.
func (l *Log) TruncateBack(index uint64) error {
	l.filesMu.Lock()
	defer l.filesMu.Unlock()
	l.mu.Lock()
	defer l.mu.Unlock()
	if err := l.quiesce(); err != nil {
		return err
	}
	if index+1 < l.first || index > l.last {
		return fmt.Errorf("%w: TruncateBack(%d), log holds [%d, %d]", ErrOutOfRange, index, l.first, l.last)
	}
	if index < l.snapshot {
		return fmt.Errorf("%w: TruncateBack(%d) would drop records the snapshot (as of %d) covers", ErrOutOfRange, index, l.snapshot)
	}
	if index == l.last {
		return nil
	}
	if err := l.syncKept(); err != nil {
		return err
	}
	m := l.meta
	m.Back, m.BackPending = index, true
	var kept []*sealedSegment
	var next *activeSegment
	err := l.whileBusy(func() error {
		// The meta file's rename is the commit point; recovery finishes
		// the work if we crash before the second meta write.
		err := recovery.WriteMeta(l.fs, l.dir, m)
		if err == nil {
			kept, err = l.sealBefore(index + 1)
		}
		if err == nil {
			// Create syncs the directory, which makes sealBefore's
			// removals durable too.
			next, err = l.create(index + 1)
		}
		if err == nil {
			m.BackPending = false
			err = recovery.WriteMeta(l.fs, l.dir, m)
		}
		return err
	})
	if err != nil {
		return err
	}
	l.meta, l.last, l.next = m, index, index+1
	l.sealed, l.active = kept, next
	return nil
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
	if active {
		offsets = l.active.offsets[:n+1]
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
	ft, err := segment.Seal(f, s.h, segment.AlignSector(offsets[n]), offsets[:n])
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("journal: seal %s before %d: %w", s.path, index, err)
	}
	return &sealedSegment{path: s.path, h: s.h, footer: ft, f: f}, nil
}
