package wal

import (
	"cmp"
	"fmt"
	"slices"
	"time"
)

// RetentionOptions releases records from the front of the log in the
// background, whole sealed segments at a time, oldest first, as
// TruncateFront does: by age, by the space the segments take, and once
// every consumer has acknowledged them. The zero value releases nothing.
//
// Consumers are protected: with Acked set, records a consumer has not
// acknowledged are never released by MaxAge or MaxBytes unless Overrun is
// set; a consumer overtaken then gets ErrCompacted from its Reader, naming
// the records it lost. Records after the snapshot are never released
// (the rule TruncateFront enforces). The active segment is never
// released: a log keeps at least its newest segment, whatever the limits.
type RetentionOptions struct {
	// MaxAge releases a sealed segment once its last record was appended
	// more than MaxAge ago, by the wall-clock time recorded in its footer
	// (format version 3); for a segment without one (an older version,
	// or one sealed by recovery), by the file's modification time. A
	// segment whose time is unknown stops release by age there. A clock
	// stepped back delays release; stepped forward, it releases early.
	MaxAge time.Duration
	// MaxBytes releases the oldest sealed segments while the log's
	// segment files (the active one included, preallocated space
	// counted, as in Metrics.SegmentBytes) take more than MaxBytes.
	MaxBytes int64
	// Acked returns the highest index that every consumer has
	// acknowledged; ok is false when there are no consumers (nothing is
	// then protected). cursor.Store.Acked fits.
	Acked func() (index uint64, ok bool)
	// ReleaseAcked releases the sealed segments whose records every
	// consumer has acknowledged (needs Acked).
	ReleaseAcked bool
	// Overrun lets MaxAge and MaxBytes release records consumers have
	// not acknowledged (needs Acked): the disk limit wins over the
	// consumers, who get ErrCompacted.
	Overrun bool
	// Interval is the time between passes; zero means
	// DefaultRetentionInterval, below a millisecond is refused (a bare
	// number is nanoseconds). A pass also runs after each rotation.
	Interval time.Duration
	// OnError, if set, is called with every failed pass's error (they are
	// also logged and kept for RetentionErr). It runs on the retention
	// goroutine and may call Close.
	OnError func(error)
}

// DefaultRetentionInterval is the default RetentionOptions.Interval.
const DefaultRetentionInterval = time.Second

// enabled reports whether any policy can release records.
func (r *RetentionOptions) enabled() bool {
	return r.MaxAge > 0 || r.MaxBytes > 0 || r.ReleaseAcked
}

// check refuses retention options that are out of range or would be
// ignored.
func (r *RetentionOptions) check() error {
	switch {
	case r.MaxAge < 0:
		return fmt.Errorf("%w: Retention.MaxAge %v is negative", ErrInvalidOptions, r.MaxAge)
	case r.MaxBytes < 0:
		return fmt.Errorf("%w: Retention.MaxBytes %d is negative", ErrInvalidOptions, r.MaxBytes)
	case r.Interval != 0:
		if err := checkInterval("Retention.Interval", r.Interval); err != nil {
			return err
		}
	}
	switch {
	case (r.ReleaseAcked || r.Overrun) && r.Acked == nil:
		return fmt.Errorf("%w: Retention.ReleaseAcked and Overrun need Retention.Acked", ErrInvalidOptions)
	case r.Overrun && r.MaxAge == 0 && r.MaxBytes == 0:
		return fmt.Errorf("%w: Retention.Overrun without MaxAge or MaxBytes: nothing could overrun", ErrInvalidOptions)
	case !r.enabled():
		for _, f := range []struct {
			name string
			set  bool
		}{{"Acked", r.Acked != nil}, {"Interval", r.Interval != 0}, {"OnError", r.OnError != nil}} {
			if f.set {
				return fmt.Errorf("%w: Retention.%s set without MaxAge, MaxBytes or ReleaseAcked: retention would never release", ErrInvalidOptions, f.name)
			}
		}
	}
	return nil
}

// RetentionErr returns the error of the last retention pass, nil if it
// succeeded (or none ran).
func (l *Log) RetentionErr() error { return l.keep.lastErr() }

// startRetention starts background retention if it is configured.
func (l *Log) startRetention() {
	r := l.opts.Retention
	if !r.enabled() {
		return
	}
	l.keep.what = "retention"
	l.keep.start(l, cmp.Or(r.Interval, DefaultRetentionInterval), l.retain, r.OnError)
	l.keep.poke() // what Open found may already be due
}

// retainSegment is what a retention pass needs of a sealed segment.
type retainSegment struct {
	seg  *sealedSegment // its append times are read when its age is (segmentAge)
	path string
	next uint64
	size int64
}

// retain runs one retention pass: it decides, from a copy of the log's
// segments, how far to release, and releases with TruncateFront.
func (l *Log) retain() error {
	segs, first, snapshot, total := l.retainView()
	r := l.opts.Retention
	acked, consumers := uint64(0), false
	if r.Acked != nil {
		acked, consumers = r.Acked()
	}
	now := time.Now().UnixNano()
	to, bytes := first, int64(0)
	var why string
	for _, s := range segs {
		if snapshot != 0 && s.next > snapshot+1 {
			break // the snapshot rule: the log must continue the snapshot
		}
		ackedAll := consumers && s.next-1 <= acked
		reason := ""
		switch {
		case r.ReleaseAcked && ackedAll:
			reason = "acknowledged"
		case consumers && !ackedAll && !r.Overrun:
		case r.MaxBytes > 0 && total-bytes > r.MaxBytes:
			reason = "size"
		case r.MaxAge > 0 && l.segmentAge(s, now) > r.MaxAge:
			reason = "age"
		}
		if reason == "" {
			break
		}
		to, why = s.next, reason
		bytes += s.size
	}
	if to <= first {
		return nil
	}
	got, done, err := l.release(to)
	if err != nil || !done {
		return err
	}
	l.opts.Logger.Info("journal: retention released records", "dir", l.dir, "first", got.first, "to", to-1,
		"segments", got.segments, "bytes", got.bytes, "reason", why)
	return nil
}

// retainView copies what a pass decides on: the sealed segments, the first
// index, the snapshot's index and the bytes the segment files take.
func (l *Log) retainView() (segs []retainSegment, first, snapshot uint64, total int64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	total = l.active.size
	for _, s := range l.sealed {
		segs = append(segs, retainSegment{seg: s, path: s.path, next: s.next(), size: s.size})
		total += s.size
	}
	return segs, l.first, l.snapshot, total
}

// segmentAge is how long ago segment s was last appended to; 0 (never
// old enough) when that is unknown.
func (l *Log) segmentAge(s retainSegment, now int64) time.Duration {
	if !l.ownTimes(s.seg) {
		return 0
	}
	// The file's time, not the view's: check may have just replaced the
	// manifest's times, which the view copied, by the file's.
	l.mu.Lock()
	last := s.seg.footer.Times.Last
	l.mu.Unlock()
	if last == 0 {
		fi, err := l.fs.Stat(s.path)
		if err != nil || fi.ModTime().IsZero() {
			return 0
		}
		last = fi.ModTime().UnixNano()
	}
	return time.Duration(now - last)
}

// released is what one retention pass released.
type released struct {
	first    uint64 // the log's first index before the release
	segments int
	bytes    int64
}

// release drops the records before to, as TruncateFront does, unless the
// log changed since the pass looked at it so that there is nothing left to
// release (a TruncateFront or Checkpoint released them meanwhile) or to is
// no longer in range (a TruncateBack dropped the segments): the next pass
// decides again. It counts what it released in the metrics: the segments
// it drops itself, counted here under the locks, not those of the pass's
// view, of which a truncation in between may have released some.
func (l *Log) release(to uint64) (released, bool, error) {
	l.opMu.Lock()
	defer l.opMu.Unlock()
	l.mu.Lock()
	defer l.mu.Unlock()
	if err := l.usable(); err != nil {
		return released{}, false, err
	}
	if to <= l.first || to > l.last+1 {
		return released{}, false, nil
	}
	// A segment a rotation is still sealing holds records after to, so
	// truncateFront drops exactly these.
	got := released{first: l.first}
	for _, s := range l.sealed {
		if s.next() <= to {
			got.segments++
			got.bytes += s.size
		}
	}
	if err := l.truncateFront(to, false); err != nil {
		return released{}, false, fmt.Errorf("journal: retention: %w", err)
	}
	l.metrics.RetentionSegments += uint64(got.segments)
	l.metrics.RetentionBytes += got.bytes
	return got, true, nil
}

// ownTimes reports whether s's footer times are its file's. Those of a
// segment Open took from the manifest are the manifest's until the file
// is checked against it: a manifest restored from an older copy of the
// directory would otherwise release records by times no segment holds.
// It checks such a segment now (once: check marks it checked, or doubted
// when the file disagrees, and then its age is unknown). Called without
// mu.
func (l *Log) ownTimes(s *sealedSegment) bool {
	if !s.unchecked.Load() {
		return true
	}
	l.filesMu.RLock()
	defer l.filesMu.RUnlock()
	l.mu.Lock()
	if l.isClosed() || !slices.Contains(l.sealed, s) {
		l.mu.Unlock() // released meanwhile: the next pass decides again
		return false
	}
	err := l.openSealed(s)
	f := s.f
	l.mu.Unlock()
	return err == nil && s.check(f, &l.mu) == nil
}
