package wal

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/gojournal/journal/internal/seedtest"
	"github.com/gojournal/journal/recovery"
	"github.com/gojournal/journal/segment"
	"github.com/gojournal/journal/vfs"
	"github.com/gojournal/journal/vfs/crashfs"
	"github.com/gojournal/journal/vfs/errorfs"
	"go.uber.org/goleak"
)

// retentionOpts are options with the smallest segments (about 15 records
// of 4 KiB each) and retention passes every few milliseconds.
func retentionOpts(r RetentionOptions) *Options {
	r.Interval = cmpOrDur(r.Interval, 5*time.Millisecond)
	return &Options{SegmentSize: MinSegmentSize, Logger: quiet, Retention: r}
}

func cmpOrDur(d, def time.Duration) time.Duration {
	if d == 0 {
		return def
	}
	return d
}

// fill appends n records of 4 KiB, each holding its index, and returns
// the last index.
func fill(t *testing.T, l *Log, n int) uint64 {
	t.Helper()
	var last uint64
	for range n {
		i, err := l.Append(bytes.Repeat([]byte{byte(l.LastIndex() + 1)}, 4096))
		if err != nil {
			t.Fatal(err)
		}
		last = i
	}
	return last
}

func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); !cond(); time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}

// stays checks that cond holds for a few retention intervals.
func stays(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for range 20 {
		if !cond() {
			t.Fatalf("%s no longer holds", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// checkReadable checks that every record from FirstIndex on reads.
func checkReadable(t *testing.T, l *Log) {
	t.Helper()
	for i := l.FirstIndex(); i <= l.LastIndex(); i++ {
		rec, err := l.Read(i)
		if err != nil || len(rec) != 4096 || rec[0] != byte(i) {
			t.Fatalf("Read(%d) = %d bytes, %v", i, len(rec), err)
		}
	}
}

func TestRetentionBySize(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent()) // Close stops the retention goroutine
	const max = 4 * MinSegmentSize
	l, err := Open(t.TempDir(), retentionOpts(RetentionOptions{MaxBytes: max}))
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	fill(t, l, 200) // about 13 segments
	eventually(t, "release by size", func() bool { return l.Metrics().SegmentBytes <= max })
	m := l.Metrics()
	if m.Segments < 3 || m.RetentionSegments == 0 || m.RetentionBytes == 0 {
		t.Fatalf("after retention: %d segments, %d bytes; released %d segments, %d bytes", m.Segments, m.SegmentBytes, m.RetentionSegments, m.RetentionBytes)
	}
	checkReadable(t, l)
	// A reader created before FirstIndex learns what it lost.
	r := l.NewReader(1)
	defer r.Close()
	if r.Next() || !errors.Is(r.Err(), ErrCompacted) {
		t.Fatalf("reader at 1 after retention: Next %v, err %v; want ErrCompacted", r.Index(), r.Err())
	}
	if err := l.RetentionErr(); err != nil {
		t.Fatal(err)
	}
}

func TestRetentionByAge(t *testing.T) {
	dir := t.TempDir()
	const age = 300 * time.Millisecond
	l, err := Open(dir, retentionOpts(RetentionOptions{MaxAge: age}))
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	old := fill(t, l, 60) // about 4 sealed segments
	if l.Metrics().Segments < 4 {
		t.Fatalf("only %d segments", l.Metrics().Segments)
	}
	// Nothing is released before the age is reached...
	if time.Since(start) < age/2 {
		stays(t, "no release before MaxAge", func() bool { return l.FirstIndex() == 1 })
	}
	// ...and every sealed segment once it is, the active one kept.
	eventually(t, "release by age", func() bool { return l.Metrics().Segments == 1 })
	if first := l.FirstIndex(); first > old || first < old-20 {
		t.Fatalf("FirstIndex %d after releasing all sealed segments of records 1 to %d", first, old)
	}
	checkReadable(t, l)
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
}

// The times that retention by age goes by are in the footer: a log
// reopened hours later (here: with a shorter MaxAge) releases by them, and
// a segment resumed after a clean restart keeps the first append time that
// Close sealed into its footer (one resumed after a crash has none:
// TestRetentionTimesOfASegmentResumedAfterACrash).
func TestRetentionByAgeUsesFooterTimesAfterReopen(t *testing.T) {
	dir := t.TempDir()
	before := time.Now().UnixNano()
	l, err := Open(dir, &Options{SegmentSize: MinSegmentSize, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	fill(t, l, 40)
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	after := time.Now().UnixNano()
	l, err = Open(dir, &Options{SegmentSize: MinSegmentSize, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	resumedFirst := l.active.first()
	fill(t, l, 20) // seals the segment resumed, and the next one
	now := time.Now().UnixNano()
	within := func(v, lo, hi int64) bool { return v >= lo && v <= hi }
	for i, s := range l.sealed {
		ts := s.footer.Times
		var ok bool
		switch {
		case s.first() < resumedFirst: // written and sealed in the first session
			ok = within(ts.First, before, after) && within(ts.Last, ts.First, after)
		case s.first() == resumedFirst: // resumed from the footer Close sealed
			ok = within(ts.First, before, after) && within(ts.Last, after, now)
		default:
			ok = within(ts.First, after, now) && within(ts.Last, ts.First, now)
		}
		if !ok {
			t.Fatalf("segment %d (first %d, resumed at %d) times %+v; sessions %d-%d, then to %d", i, s.first(), resumedFirst, ts, before, after, now)
		}
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(20 * time.Millisecond)
	l, err = Open(dir, retentionOpts(RetentionOptions{MaxAge: 10 * time.Millisecond}))
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	eventually(t, "release by footer times", func() bool { return l.Metrics().Segments == 1 })
}

// A segment resumed after a crash (no footer from Close) has no known
// first append time: its footer says 0 there, and a later append time.
func TestRetentionTimesOfASegmentResumedAfterACrash(t *testing.T) {
	fsys := crashfs.New()
	o := &Options{SegmentSize: MinSegmentSize, Logger: quiet, FS: fsys}
	l, err := Open("log", o)
	if err != nil {
		t.Fatal(err)
	}
	fill(t, l, 40)
	fsys.Kill() // the process dies: its files stay as written, unsealed
	crashed := time.Now().UnixNano()
	l, err = Open("log", o)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	resumedFirst := l.active.first()
	fill(t, l, 20) // seals the segment resumed
	for _, s := range l.sealed {
		if s.first() != resumedFirst {
			continue
		}
		if ts := s.footer.Times; ts.First != 0 || ts.Last < crashed {
			t.Fatalf("segment resumed after a crash sealed with times %+v; want first 0, last after %d", ts, crashed)
		}
		return
	}
	t.Fatalf("the segment resumed at %d was not sealed", resumedFirst)
}

// A segment without times (format version 2, or sealed by recovery) ages
// by its file's modification time; where there is none (crashfs) it is
// never released by age, and nothing after it is either.
func TestRetentionByAgeWithoutTimes(t *testing.T) {
	dir := t.TempDir()
	copyDir(t, "testdata/format-v2/sealed-and-active", dir)
	os.Remove(filepath.Join(dir, "expect.json"))
	old := time.Now().Add(-time.Hour)
	for _, name := range listDir(t, dir) {
		os.Chtimes(filepath.Join(dir, name), old, old)
	}
	l, err := Open(dir, retentionOpts(RetentionOptions{MaxAge: time.Minute}))
	if err != nil {
		t.Fatal(err)
	}
	eventually(t, "release by modification time", func() bool { return l.FirstIndex() > 1 })
	l.Close()

	fsys := crashfs.New()
	l, err = Open("log", &Options{SegmentSize: MinSegmentSize, Logger: quiet, FS: fsys})
	if err != nil {
		t.Fatal(err)
	}
	fill(t, l, 40)
	// Forget the times, as a segment sealed by recovery has none.
	for _, s := range l.sealed {
		s.footer.Times = segment.Times{}
	}
	l.opts.Retention = RetentionOptions{MaxAge: time.Nanosecond}
	if err := l.retain(); err != nil || l.FirstIndex() != 1 {
		t.Fatalf("retain: %v, FirstIndex %d; want nothing released", err, l.FirstIndex())
	}
	l.Close()
}

// ackedConsumers is a settable RetentionOptions.Acked.
type ackedConsumers struct{ index, ok atomic.Uint64 }

func (a *ackedConsumers) set(i uint64) { a.index.Store(i); a.ok.Store(1) }
func (a *ackedConsumers) acked() (uint64, bool) {
	return a.index.Load(), a.ok.Load() == 1
}

// ReleaseAcked releases the segments every consumer has acknowledged, and
// no further; with no consumers it releases nothing.
func TestRetentionUpToTheSlowestConsumer(t *testing.T) {
	var c ackedConsumers
	l, err := Open(t.TempDir(), retentionOpts(RetentionOptions{Acked: c.acked, ReleaseAcked: true}))
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	fill(t, l, 100)
	stays(t, "nothing released without consumers", func() bool { return l.FirstIndex() == 1 })
	c.set(50)
	eventually(t, "release up to the consumers", func() bool { return l.FirstIndex() > 1 })
	stays(t, "nothing past the slowest consumer", func() bool { first := l.FirstIndex(); return first > 30 && first <= 51 })
	c.set(100)
	eventually(t, "release of everything sealed", func() bool { return l.Metrics().Segments == 1 })
	checkReadable(t, l)
}

// MaxBytes and MaxAge stop at the slowest consumer, unless Overrun: then
// the consumer's reader gets ErrCompacted.
func TestRetentionNeverPassesAConsumerUnlessOverrun(t *testing.T) {
	for _, overrun := range []bool{false, true} {
		var c ackedConsumers
		c.set(20)
		l, err := Open(t.TempDir(), retentionOpts(RetentionOptions{Acked: c.acked, MaxBytes: 2 * MinSegmentSize, Overrun: overrun}))
		if err != nil {
			t.Fatal(err)
		}
		fill(t, l, 150)
		r := l.NewReader(21) // the consumer resumes after its position
		if !overrun {
			eventually(t, "release up to the consumer", func() bool { return l.FirstIndex() > 1 })
			stays(t, "the consumer's records kept", func() bool { return l.FirstIndex() <= 21 })
			if !r.Next() || r.Index() != 21 {
				t.Fatalf("consumer: Next at %d, %v", r.Index(), r.Err())
			}
		} else {
			eventually(t, "release past the consumer", func() bool { return l.Metrics().SegmentBytes <= 2*MinSegmentSize })
			if r.Next() || !errors.Is(r.Err(), ErrCompacted) {
				t.Fatalf("overtaken consumer: Next at %d, err %v; want ErrCompacted", r.Index(), r.Err())
			}
			if !strings.Contains(r.Err().Error(), "21") {
				t.Fatalf("ErrCompacted does not name the records lost: %v", r.Err())
			}
		}
		r.Close()
		l.Close()
	}
}

// Retention never releases records after the snapshot.
func TestRetentionRespectsTheSnapshot(t *testing.T) {
	l, err := Open(t.TempDir(), retentionOpts(RetentionOptions{MaxBytes: MinSegmentSize}))
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	fill(t, l, 10)
	if err := l.Checkpoint(10, func(w io.Writer) error { _, err := w.Write([]byte("state")); return err }); err != nil {
		t.Fatal(err)
	}
	fill(t, l, 100)
	stays(t, "the log continues the snapshot", func() bool { return l.FirstIndex() <= 11 })
	if err := l.RetentionErr(); err != nil {
		t.Fatal(err)
	}
	if err := l.Checkpoint(90, func(w io.Writer) error { _, err := w.Write([]byte("state")); return err }); err != nil {
		t.Fatal(err)
	}
	eventually(t, "release up to the new snapshot", func() bool { return l.FirstIndex() > 60 })
	stays(t, "the log continues the new snapshot", func() bool { return l.FirstIndex() <= 91 })
}

// A failed pass is logged, kept for RetentionErr and passed to OnError,
// like a failed background checkpoint; OnError may Close the log.
func TestRetentionErrorsAreReported(t *testing.T) {
	efs := errorfs.Wrap(vfs.Default)
	var mu sync.Mutex
	var got []error
	closed := make(chan error, 1)
	var l *Log
	opts := retentionOpts(RetentionOptions{MaxBytes: MinSegmentSize, OnError: func(err error) {
		mu.Lock()
		got = append(got, err)
		mu.Unlock()
		closed <- l.Close()
	}})
	opts.FS = efs
	l, err := Open(t.TempDir(), opts)
	if err != nil {
		t.Fatal(err)
	}
	// The meta file that commits the release cannot be created.
	efs.Add(errorfs.Rule{Op: errorfs.OpCreate, Err: syscall.EIO, Sticky: true,
		Match: func(path string) bool { return strings.Contains(path, recovery.MetaName) }})
	// The failed commit fails the log (its state is unknown): appends
	// stop with ErrFailed, or ErrClosed once OnError has closed it.
	for range 40 {
		if _, err := l.Append(make([]byte, 4096)); err != nil {
			if !errors.Is(err, ErrFailed) && !errors.Is(err, ErrClosed) {
				t.Fatal(err)
			}
			break
		}
	}
	select {
	case err := <-closed:
		if err != nil && !errors.Is(err, ErrFailed) {
			t.Fatalf("Close from OnError: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("OnError never called")
	}
	mu.Lock()
	defer mu.Unlock()
	if len(got) != 1 || !errors.Is(got[0], syscall.EIO) || !errors.Is(l.RetentionErr(), syscall.EIO) {
		t.Fatalf("OnError got %v, RetentionErr %v; want one EIO", got, l.RetentionErr())
	}
}

func TestRetentionOptionsRefused(t *testing.T) {
	acked := func() (uint64, bool) { return 0, false }
	for _, r := range []RetentionOptions{
		{MaxAge: -1},
		{MaxBytes: -1},
		{MaxBytes: 1, Interval: -1},
		{ReleaseAcked: true},
		{MaxBytes: 1, Overrun: true},
		{Acked: acked, Overrun: true, ReleaseAcked: true},
		{Acked: acked},
		{Interval: time.Second},
		{OnError: func(error) {}},
	} {
		if _, err := Open(t.TempDir(), &Options{Logger: quiet, Retention: r}); !errors.Is(err, ErrInvalidOptions) {
			t.Errorf("Open with Retention %+v: %v, want ErrInvalidOptions", r, err)
		}
	}
}

// Metrics report the bytes the log takes on disk from Open on, not only
// what was written since.
func TestMetricsReportDiskBytesAfterReopen(t *testing.T) {
	dir := t.TempDir()
	l, err := Open(dir, &Options{SegmentSize: MinSegmentSize, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	fill(t, l, 40)
	l.Close()
	l, err = Open(dir, &Options{SegmentSize: MinSegmentSize, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	var onDisk int64
	for _, name := range listDir(t, dir) {
		if _, ok := segment.ParseName(name); ok {
			fi, err := os.Stat(filepath.Join(dir, name))
			if err != nil {
				t.Fatal(err)
			}
			onDisk += fi.Size()
		}
	}
	if m := l.Metrics(); m.SegmentBytes != onDisk || m.DiskBytes < onDisk || m.Segments != 3 || l.Stats().Bytes != 0 {
		t.Fatalf("after reopen: Metrics %d segments, %d segment bytes, %d disk bytes; files hold %d", m.Segments, m.SegmentBytes, m.DiskBytes, onDisk)
	}
}

// A pass that decided on a view of the log that changed before it
// released (a TruncateFront, a Checkpoint or a TruncateBack ran between)
// releases nothing and reports no error: the next pass decides again.
func TestRetentionPassOnAStaleView(t *testing.T) {
	l, err := Open(t.TempDir(), retentionOpts(RetentionOptions{MaxBytes: 1 << 40, Interval: time.Hour}))
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	last := fill(t, l, 40)
	must(t, l.TruncateFront(30))
	if _, done, err := l.release(16); done || err != nil {
		t.Fatalf("release behind FirstIndex: %v, %v", done, err)
	}
	must(t, l.TruncateBack(35))
	if _, done, err := l.release(last); done || err != nil {
		t.Fatalf("release past the end after TruncateBack: %v, %v", done, err)
	}
	if l.FirstIndex() != 30 || l.Metrics().RetentionSegments != 0 {
		t.Fatalf("FirstIndex %d, %d segments counted released", l.FirstIndex(), l.Metrics().RetentionSegments)
	}
}

// A pass whose view went partly stale (a TruncateFront released the first
// of the segments it chose, here from within Acked, which a pass calls
// after taking its view) counts in Metrics, and logs, only the segment and
// bytes it released itself.
func TestRetentionCountsOnlyWhatItReleased(t *testing.T) {
	rec, logger := newRecorder()
	var l *Log
	var armed atomic.Bool
	var segs []retainSegment
	acked := func() (uint64, bool) {
		if !armed.CompareAndSwap(true, false) {
			return 0, false // no consumers yet: nothing is released
		}
		must(t, l.TruncateFront(segs[0].next))
		return segs[1].next - 1, true
	}
	o := retentionOpts(RetentionOptions{Acked: acked, ReleaseAcked: true, Interval: time.Hour})
	o.Logger = logger
	l, err := Open(t.TempDir(), o)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	fill(t, l, 40)
	segs, _, _, _ = l.retainView() // what the pass will see
	if len(segs) < 2 {
		t.Fatalf("%d sealed segments, want 2", len(segs))
	}
	armed.Store(true)
	must(t, l.retain())
	m := l.Metrics()
	if l.FirstIndex() != segs[1].next || m.RetentionSegments != 1 || m.RetentionBytes != segs[1].size {
		t.Fatalf("FirstIndex %d, Metrics count %d segments and %d bytes released; want %d, 1 and %d",
			l.FirstIndex(), m.RetentionSegments, m.RetentionBytes, segs[1].next, segs[1].size)
	}
	logged := rec.one(t, slog.LevelInfo, "journal: retention released records").attrs
	if logged["segments"].Int64() != 1 || logged["bytes"].Int64() != segs[1].size || logged["first"].Uint64() != segs[0].next {
		t.Fatalf("logged %v; want 1 segment of %d bytes from %d", logged, segs[1].size, segs[0].next)
	}
	checkDisk(t, l, "after the release")
}

// Retention by size releases segments under a writer that appends (with a
// random Compression), truncates both ends and reopens the log, while a
// Reader follows: the Reader never returns a record that does not follow
// the one before it or that a truncation removed; overtaken, it stops
// with ErrCompacted (or ErrTruncated) and starts again. Afterwards the
// segments take no more than MaxBytes (or only the active one is left),
// and Metrics still match the directory.
func TestReadersFollowRetention(t *testing.T) {
	rng := seedtest.Rand(t)
	dir := t.TempDir()
	opts := retentionOpts(RetentionOptions{MaxBytes: 2 * MinSegmentSize, Interval: time.Millisecond})
	opts.Compression = Compression(rng.IntN(3))
	c := &chainLog{retention: true}
	c.l.Store(openT(t, dir, opts))
	ctx, cancel := context.WithCancel(context.Background())
	type result struct {
		n, restarts int
		err         error
	}
	done := make(chan result, 1)
	go func() {
		n, restarts, err := chainReader(ctx, c, c.l.Load)
		done <- result{n, restarts, err}
	}()
	var released uint64
	for i := range 1500 {
		if i%500 == 499 {
			released += c.l.Load().Metrics().RetentionSegments
			must(t, c.l.Load().Close())
			c.l.Store(openT(t, dir, opts))
		}
		c.step(t, rng)
		if t.Failed() {
			break
		}
	}
	l := c.l.Load()
	eventually(t, "retention within MaxBytes", func() bool {
		m := l.Metrics()
		return m.SegmentBytes <= opts.Retention.MaxBytes || m.Segments == 1
	})
	cancel()
	r := <-done
	t.Logf("Reader: %d records checked, %d restarts; %d segments released", r.n, r.restarts, released+l.Metrics().RetentionSegments)
	if r.err != nil {
		t.Fatal(r.err)
	}
	if released+l.Metrics().RetentionSegments == 0 {
		t.Fatal("retention released nothing")
	}
	checkDisk(t, l, "after the run")
	must(t, l.Close())
}

// A power loss after each file operation of a retention release in turn
// (the meta file's commit, the removal of each released segment, the
// directory syncs), in each crash mode, leaves a directory that opens
// holding every record appended, from a first index that is either where
// the log began or where the release was going, each record intact.
func TestRetentionReleaseCrash(t *testing.T) {
	rng := seedtest.Rand(t)
	for _, mode := range []crashfs.CrashMode{crashfs.SyncedOnly, crashfs.RandomSectors, crashfs.Garbled} {
		for k := 1; ; k++ {
			if crashed := retentionCrash(t, rng, mode, k); !crashed {
				t.Logf("%v: %d crash points", mode, k-1)
				break // the release completed before the crash point
			}
		}
	}
}

// retentionCrash fills a log on a crashfs, crashes it after the k-th file
// operation of a retention release, reopens it and checks it. It reports
// whether the crash point was reached.
func retentionCrash(t *testing.T, rng *rand.Rand, mode crashfs.CrashMode, k int) bool {
	t.Helper()
	mem := crashfs.New()
	var armed atomic.Bool
	acked := func() (uint64, bool) { return 1 << 62, armed.Load() }
	o := retentionOpts(RetentionOptions{Acked: acked, ReleaseAcked: true, Interval: time.Hour})
	o.FS = mem
	l := openT(t, "db", o)
	last := fill(t, l, 40)
	segs, _, _, _ := l.retainView()
	to := segs[len(segs)-1].next
	armed.Store(true)
	mem.SetCrashAfter(mem.Ops() + k)
	err := l.retain()
	crashed := mem.Crashed()
	l.Close()
	o.FS = mem.Crash(mode, rng)
	o.Retention = RetentionOptions{}
	r, oerr := Open("db", o)
	if oerr != nil {
		t.Fatalf("%v crash after op %d of a release (%v): Open: %v", mode, k, err, oerr)
	}
	defer r.Close()
	if first := r.FirstIndex(); (first != 1 && first != to) || r.LastIndex() != last {
		t.Fatalf("%v crash after op %d of a release to %d (%v): log holds [%d, %d], want [1 or %d, %d]",
			mode, k, to, err, first, r.LastIndex(), to, last)
	}
	checkReadable(t, r)
	return crashed
}
