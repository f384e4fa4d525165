package wal

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"os"

	"github.com/gojournal/journal/recovery"
	"github.com/gojournal/journal/segment"
)

// TruncateFront drops the records before index: afterwards FirstIndex() is
// index. Any index in [FirstIndex, LastIndex+1] is allowed; LastIndex+1
// empties the log, and the next Append still continues from LastIndex+1.
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
		// The truncation is committed; the next Open removes what is left.
		l.opts.Logger.Warn("journal: could not remove released segments", "err", err)
	}
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
	var err error
	for _, s := range segs {
		if rerr := l.fs.Remove(s.path); rerr != nil && !errors.Is(rerr, fs.ErrNotExist) {
			err = errors.Join(err, rerr)
		}
	}
	if err != nil {
		return err
	}
	return l.fs.SyncDir(l.dir)
}

// TruncateBack drops the records after index: afterwards LastIndex() is
// index and the next Append gets index+1. Any index in [FirstIndex-1,
// LastIndex] is allowed. The truncation is durable when TruncateBack
// returns; after a crash the log is either as before or as after it. Reads
// wait while it runs.
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
	if index == l.last {
		return nil
	}
	m := l.meta
	m.Back, m.BackPending = index, true
	k := l.segmentHolding(index + 1)
	var next *activeSegment
	err := l.whileBusy(func() error {
		// The meta file's rename is the commit point; recovery finishes
		// the cut if we crash before the second meta write.
		err := recovery.WriteMeta(l.fs, l.dir, m)
		if err == nil {
			next, err = l.cutBack(k, index+1)
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
	l.sealed, l.active = l.sealed[:k], next
	return nil
}

// segmentHolding returns the position in l.sealed of the segment holding
// index, or len(l.sealed) for the active one. Called with mu held.
func (l *Log) segmentHolding(index uint64) int {
	for k, s := range l.sealed {
		if index < s.next() {
			return k
		}
	}
	return len(l.sealed)
}

// cutBack cuts the log before index, which lies in l.sealed[k] (or the
// active segment when k == len(l.sealed)): that segment is truncated before
// index and becomes the active one, later ones are deleted. Called with the
// log busy and filesMu held.
func (l *Log) cutBack(k int, index uint64) (*activeSegment, error) {
	if k == len(l.sealed) {
		a := l.active
		n := int(index - a.first())
		return a, l.cut(a, a.offsets[n], n)
	}
	s := l.sealed[k]
	n := int(index - s.first())
	f, err := l.fs.OpenFile(s.path, os.O_RDWR, 0)
	if err != nil {
		return nil, fmt.Errorf("journal: open %s: %w", s.path, err)
	}
	a := &activeSegment{path: s.path, h: s.h, f: f}
	if a.offsets, err = readOffsets(s, f, n+1); err != nil {
		f.Close()
		return nil, err
	}
	if err := l.cut(a, a.offsets[n], n); err != nil {
		f.Close()
		return nil, err
	}
	later := append([]*sealedSegment(nil), l.sealed[k:]...)
	later = append(later, &sealedSegment{path: l.active.path, f: l.active.f})
	for _, s := range later {
		if s.f != nil {
			s.f.Close()
			s.f = nil
		}
	}
	for _, s := range later[1:] {
		if err := l.fs.Remove(s.path); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return nil, err
		}
	}
	return a, l.fs.SyncDir(l.dir)
}

// cut truncates a segment at off, keeping its first n records, durably, and
// preallocates it again for appends.
func (l *Log) cut(a *activeSegment, off int64, n int) error {
	err := a.f.Truncate(off)
	if err == nil {
		err = a.f.Sync()
	}
	if err == nil {
		err = a.f.Preallocate(l.opts.SegmentSize)
	}
	if err != nil {
		return fmt.Errorf("journal: truncate %s at %d: %w", a.path, off, err)
	}
	a.offsets = a.offsets[:n]
	a.tail, a.synced = off, off
	return nil
}

// readOffsets reads the offsets of the first n records of a sealed segment
// from its footer (n may be one past its last record: the footer's offset).
func readOffsets(s *sealedSegment, f interface {
	ReadAt([]byte, int64) (int, error)
}, n int) ([]int64, error) {
	count := min(int64(n), s.footer.Count)
	b := make([]byte, 4*count)
	if _, err := f.ReadAt(b, s.footer.Offset+segment.FrameHeader); err != nil {
		return nil, fmt.Errorf("journal: read index of %s: %w", s.path, err)
	}
	offs := make([]int64, 0, n)
	for i := range count {
		offs = append(offs, int64(binary.LittleEndian.Uint32(b[4*i:])))
	}
	if int64(n) > count {
		offs = append(offs, s.footer.Offset)
	}
	return offs, nil
}
