package wal

import (
	"bytes"
	"context"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gojournal/journal/segment"
	"github.com/gojournal/journal/vfs"
)

// logged is one record a recorder received.
type logged struct {
	level slog.Level
	msg   string
	attrs map[string]slog.Value
}

// recorder is a slog.Handler that keeps every record, so tests can check
// what the log reported.
type recorder struct {
	mu   sync.Mutex
	recs []logged
}

// The log passes every attribute with its record (it never calls With),
// so WithAttrs and WithGroup need keep nothing.
func (r *recorder) Enabled(context.Context, slog.Level) bool { return true }
func (r *recorder) WithAttrs([]slog.Attr) slog.Handler       { return r }
func (r *recorder) WithGroup(string) slog.Handler            { return r }

func (r *recorder) Handle(_ context.Context, rec slog.Record) error {
	l := logged{level: rec.Level, msg: rec.Message, attrs: map[string]slog.Value{}}
	rec.Attrs(func(a slog.Attr) bool {
		l.attrs[a.Key] = a.Value
		return true
	})
	r.mu.Lock()
	defer r.mu.Unlock()
	r.recs = append(r.recs, l)
	return nil
}

// find returns the records with message msg.
func (r *recorder) find(msg string) []logged {
	r.mu.Lock()
	defer r.mu.Unlock()
	var found []logged
	for _, l := range r.recs {
		if l.msg == msg {
			found = append(found, l)
		}
	}
	return found
}

// one returns the only record with message msg at level, failing the test
// if there is not exactly one.
func (r *recorder) one(t *testing.T, level slog.Level, msg string) logged {
	t.Helper()
	found := r.find(msg)
	if len(found) != 1 || found[0].level != level {
		t.Fatalf("logged %q %d times (%+v), want once at %v", msg, len(found), found, level)
	}
	return found[0]
}

func newRecorder() (*recorder, *slog.Logger) {
	r := &recorder{}
	return r, slog.New(r)
}

// syncFS delays every File.Sync by delay (when set), and with skip does
// not pass it on: slow disks without sleeping in the test, and the sync
// path without the cost of real fdatasyncs.
type syncFS struct {
	vfs.FS
	delay atomic.Int64 // a time.Duration
	skip  bool
}

type syncFile struct {
	vfs.File
	fs *syncFS
}

func (s *syncFS) OpenFile(name string, flag int, perm fs.FileMode) (vfs.File, error) {
	f, err := s.FS.OpenFile(name, flag, perm)
	if err != nil {
		return nil, err
	}
	return syncFile{f, s}, nil
}

func (f syncFile) Sync() error {
	if d := time.Duration(f.fs.delay.Load()); d > 0 {
		time.Sleep(d)
	}
	if f.fs.skip {
		return nil
	}
	return f.File.Sync()
}

// onDisk sums the sizes of the files in dir and counts the segments and
// their bytes: what Metrics must report.
func onDisk(t *testing.T, dir string) (segments int, segBytes, total int64) {
	t.Helper()
	for _, name := range listDir(t, dir) {
		fi, err := os.Stat(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		total += fi.Size()
		if strings.HasSuffix(name, segment.Ext) {
			segments++
			segBytes += fi.Size()
		}
	}
	return segments, segBytes, total
}

// checkDisk compares the disk figures of Metrics with the directory.
func checkDisk(t *testing.T, l *Log, when string) Metrics {
	t.Helper()
	// A quiet moment: Metrics leaves out a spare being prepared (an
	// operation in flight), which the directory may already show.
	l.mu.Lock()
	for l.preparing {
		l.cond.Wait()
	}
	l.mu.Unlock()
	m := l.Metrics()
	n, seg, total := onDisk(t, l.Dir())
	if m.Segments != n || m.SegmentBytes != seg || m.DiskBytes != total {
		t.Fatalf("%s: Metrics says %d segments, %d segment bytes, %d bytes on disk; the directory holds %d, %d, %d",
			when, m.Segments, m.SegmentBytes, m.DiskBytes, n, seg, total)
	}
	return m
}

func TestMetricsCountAppendsBatchesAndSyncs(t *testing.T) {
	l := openT(t, t.TempDir(), &Options{Logger: quiet})
	defer l.Close()
	appendN(t, l, 10) // one at a time: one group commit each
	batch := [][]byte{record(11), record(12), record(13), record(14), record(15)}
	if _, err := l.AppendBatch(batch); err != nil {
		t.Fatal(err)
	}
	m := l.Metrics()
	if want := (Stats{Records: 15, Writes: 11, Syncs: 11, Bytes: 11 * segment.SectorSize}); m.Stats != want {
		t.Fatalf("Metrics().Stats = %+v, want %+v", m.Stats, want)
	}
	if st := l.Stats(); st != m.Stats {
		t.Fatalf("Stats() = %+v, Metrics().Stats = %+v", st, m.Stats)
	}
	var perWrite Histogram
	perWrite.Counts[1] = 10 // ten writes of 1 record
	perWrite.Counts[3] = 1  // one of 5, in [4, 8)
	perWrite.Sum = 15
	if m.RecordsPerWrite != perWrite {
		t.Fatalf("RecordsPerWrite = %+v, want %+v", m.RecordsPerWrite, perWrite)
	}
	if n := m.SyncMicros.Count(); n != m.Syncs {
		t.Fatalf("SyncMicros holds %d fdatasyncs, Syncs = %d", n, m.Syncs)
	}
	if m.Rotations != 0 || m.Checkpoints != 0 {
		t.Fatalf("Rotations %d, Checkpoints %d in a log that did neither", m.Rotations, m.Checkpoints)
	}
	checkDisk(t, l, "after appends")
}

// A snapshot taken while appends, group commits and rotations go on is
// consistent: its counters agree with its histograms.
func TestMetricsSnapshotIsConsistentUnderLoad(t *testing.T) {
	l := openT(t, t.TempDir(), &Options{SegmentSize: MinSegmentSize, Logger: quiet})
	defer l.Close()
	const writers, each = 8, 300
	var wg sync.WaitGroup
	for range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range each {
				if _, err := l.Append(bytes.Repeat([]byte("y"), 200)); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	check := func(m Metrics) {
		t.Helper()
		if m.Records != m.RecordsPerWrite.Sum || m.Writes != m.RecordsPerWrite.Count() || m.Syncs != m.SyncMicros.Count() {
			t.Fatalf("inconsistent snapshot: %+v", m)
		}
	}
	for {
		select {
		case <-done:
			m := l.Metrics()
			check(m)
			if m.Records != writers*each || m.Rotations == 0 {
				t.Fatalf("after the load: %d records, %d rotations; want %d and some", m.Records, m.Rotations, writers*each)
			}
			return
		default:
			check(l.Metrics())
		}
	}
}

// NoSync writes count as group commits without fdatasyncs until Sync asks
// for one.
func TestMetricsNoSyncCountsOnlySyncsThatHappen(t *testing.T) {
	l := openT(t, t.TempDir(), &Options{Logger: quiet, NoSync: true})
	defer l.Close()
	appendN(t, l, 3)
	if m := l.Metrics(); m.Writes != 3 || m.Syncs != 0 || m.SyncMicros.Count() != 0 {
		t.Fatalf("NoSync appends: Writes %d, Syncs %d, SyncMicros %d; want 3, 0, 0", m.Writes, m.Syncs, m.SyncMicros.Count())
	}
	if err := l.Sync(); err != nil {
		t.Fatal(err)
	}
	if m := l.Metrics(); m.Syncs != 1 || m.SyncMicros.Count() != 1 {
		t.Fatalf("after Sync: Syncs %d, SyncMicros %d; want 1, 1", m.Syncs, m.SyncMicros.Count())
	}
}

// Segments and bytes on disk follow rotation, TruncateFront, Checkpoint,
// TruncateBack, Close and reopen; the log reports rotations and
// checkpoints.
func TestMetricsFollowTheDirectory(t *testing.T) {
	rec, logger := newRecorder()
	dir := t.TempDir()
	opts := &Options{SegmentSize: MinSegmentSize, NoSync: true, Logger: logger}
	l := openT(t, dir, opts)
	checkDisk(t, l, "new log")
	big := bytes.Repeat([]byte("x"), 1000)
	for range 200 {
		if _, err := l.Append(big); err != nil {
			t.Fatal(err)
		}
	}
	m := checkDisk(t, l, "after rotations")
	if m.Segments < 3 || m.Rotations != uint64(m.Segments-1) {
		t.Fatalf("%d segments, %d rotations; want at least 3 and one fewer rotations", m.Segments, m.Rotations)
	}
	rotated := rec.find("journal: rotated")
	if len(rotated) != int(m.Rotations) {
		t.Fatalf("logged %d rotations, Metrics says %d", len(rotated), m.Rotations)
	}
	first := rotated[0].attrs
	if p := first["sealed"].String(); filepath.Base(p) != segment.Name(1) {
		t.Fatalf("first rotation sealed %s, want %s", p, segment.Name(1))
	}
	if fi, err := os.Stat(first["sealed"].String()); err != nil || fi.Size() != first["bytes"].Int64() {
		t.Fatalf("rotation logged %d bytes; the sealed file: %v, %v", first["bytes"].Int64(), fi, err)
	}

	if err := l.TruncateFront(100); err != nil {
		t.Fatal(err)
	}
	checkDisk(t, l, "after TruncateFront")

	if err := l.Checkpoint(150, writeState(150)); err != nil {
		t.Fatal(err)
	}
	m = checkDisk(t, l, "after Checkpoint")
	if m.Checkpoints != 1 || m.CheckpointLast <= 0 || m.CheckpointMax != m.CheckpointLast {
		t.Fatalf("after one checkpoint: Checkpoints %d, Last %v, Max %v", m.Checkpoints, m.CheckpointLast, m.CheckpointMax)
	}
	ck := rec.one(t, slog.LevelInfo, "journal: checkpoint").attrs
	snap, err := os.Stat(filepath.Join(dir, "snapshot"))
	if err != nil {
		t.Fatal(err)
	}
	if ck["index"].Uint64() != 150 || ck["bytes"].Int64() != snap.Size() || ck["took"].Duration() != m.CheckpointLast {
		t.Fatalf("checkpoint logged %v; want index 150, bytes %d, took %v", ck, snap.Size(), m.CheckpointLast)
	}
	if err := l.Checkpoint(160, writeState(160)); err != nil {
		t.Fatal(err)
	}
	m = checkDisk(t, l, "after a second Checkpoint")
	if m.Checkpoints != 2 || m.CheckpointMax < m.CheckpointLast {
		t.Fatalf("after two checkpoints: Checkpoints %d, Last %v, Max %v", m.Checkpoints, m.CheckpointLast, m.CheckpointMax)
	}

	if err := l.TruncateBack(180); err != nil {
		t.Fatal(err)
	}
	checkDisk(t, l, "after TruncateBack")
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	closed := checkDisk(t, l, "after Close")

	l = openT(t, dir, opts)
	defer l.Close()
	m = checkDisk(t, l, "after reopen")
	if m.Records != 0 || m.Rotations != 0 || m.Checkpoints != 0 {
		t.Fatalf("counters after reopen: %+v; want them to start again from 0", m)
	}
	if m.Segments != closed.Segments {
		t.Fatalf("%d segments after reopen, %d before", m.Segments, closed.Segments)
	}
	for range 100 {
		if _, err := l.Append(big); err != nil {
			t.Fatal(err)
		}
	}
	checkDisk(t, l, "after appends to the reopened log")
}

// Open reports what recovery did, in Metrics, Recovered and the log.
func TestMetricsReportRecovery(t *testing.T) {
	f := newFixture(t, MinSegmentSize)
	f.build([]int{100}, []int{200}, []int{50, 50})
	garbage := bytes.Repeat([]byte{0xab}, 100)
	writeAt(t, f.newest(), f.nextWrite(), garbage) // a write torn before its frame was whole
	writeFile(t, filepath.Join(f.dir, vfs.TempPrefix+"journal.meta-leftover"), []byte("x"))
	rec, logger := newRecorder()
	f.opts.Logger = logger
	l := f.open()
	defer l.Close()
	m := l.Metrics()
	r := l.Recovered()
	if m.CutBytes != int64(len(garbage)) || m.CutRecords != 0 || m.FilesRemoved != 1 {
		t.Fatalf("Metrics: cut %d bytes, %d records, removed %d files; want %d, 0, 1", m.CutBytes, m.CutRecords, m.FilesRemoved, len(garbage))
	}
	if m.OpenDuration <= 0 || m.OpenDuration != r.Duration {
		t.Fatalf("OpenDuration %v, Recovered().Duration %v; want the same, positive", m.OpenDuration, r.Duration)
	}
	open := rec.one(t, slog.LevelInfo, "journal: opened").attrs
	if open["cut_bytes"].Int64() != m.CutBytes || open["removed"].Int64() != 1 || open["took"].Duration() != m.OpenDuration ||
		open["last"].Uint64() != 4 {
		t.Fatalf("Open logged %v; want cut_bytes %d, removed 1, took %v, last 4", open, m.CutBytes, m.OpenDuration)
	}
	rec.one(t, slog.LevelWarn, "journal: cut torn tail")
	checkDisk(t, l, "after recovery")
}

// An fdatasync slower than SlowSync is logged at Warn; faster ones, and
// any with the warning off, are not.
func TestSlowSyncIsLogged(t *testing.T) {
	const delay = 3 * time.Millisecond
	cases := []struct {
		name     string
		slowSync time.Duration
		warned   bool
	}{
		{"SlowerThanTheThreshold", time.Millisecond, true},
		{"FasterThanTheThreshold", time.Hour, false},
		{"WarningOff", -1, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			rec, logger := newRecorder()
			fsys := &syncFS{FS: vfs.Default}
			l := openT(t, t.TempDir(), &Options{Logger: logger, FS: fsys, SlowSync: c.slowSync})
			defer l.Close()
			fsys.delay.Store(int64(delay)) // after Open: only the append's fdatasync is slow
			appendN(t, l, 1)
			fsys.delay.Store(0)
			warned := rec.find("journal: slow fdatasync")
			if !c.warned {
				if len(warned) != 0 {
					t.Fatalf("logged %+v with SlowSync %v", warned, c.slowSync)
				}
				return
			}
			w := rec.one(t, slog.LevelWarn, "journal: slow fdatasync").attrs
			if w["took"].Duration() < delay || w["threshold"].Duration() != c.slowSync ||
				filepath.Base(w["file"].String()) != segment.Name(1) {
				t.Fatalf("logged %v; want took >= %v, threshold %v, file %s", w, delay, c.slowSync, segment.Name(1))
			}
			// The latency histogram saw it too: its median bucket holds 3 ms.
			m := l.Metrics()
			if p50 := m.SyncMicros.Quantile(0.5); p50 < uint64(delay/time.Microsecond) {
				t.Fatalf("SyncMicros median bound %d µs, below the %v the fdatasync took", p50, delay)
			}
		})
	}
}

func TestSlowSyncDefault(t *testing.T) {
	o, err := (&Options{}).withDefaults()
	if err != nil || o.SlowSync != DefaultSlowSync {
		t.Fatalf("default SlowSync = %v, %v; want %v", o.SlowSync, err, DefaultSlowSync)
	}
}

// The sync path (timing the fdatasync, the histograms) allocates nothing
// either: TestAppendDoesNotAllocateInSteadyState runs with NoSync.
func TestSyncedAppendDoesNotAllocate(t *testing.T) {
	fsys := &syncFS{FS: vfs.Default, skip: true}
	l := openT(t, t.TempDir(), &Options{Logger: quiet, FS: fsys, SlowSync: time.Microsecond})
	defer l.Close()
	appendN(t, l, 100)
	data := record(0)
	allocs := testing.AllocsPerRun(2000, func() {
		if _, err := l.Append(data); err != nil {
			t.Fatal(err)
		}
	})
	if allocs > 0.05 {
		t.Fatalf("a synced Append allocates %.2f times per call", allocs)
	}
}

func TestHistogramBucketsArePowersOfTwo(t *testing.T) {
	var h Histogram
	for _, v := range []uint64{0, 1, 2, 3, 4, 7, 8, 1 << 40} {
		h.add(v)
	}
	want := [histBuckets]uint64{0: 1, 1: 1, 2: 2, 3: 2, 4: 1, histBuckets - 1: 1}
	if h.Counts != want || h.Sum != 0+1+2+3+4+7+8+1<<40 || h.Count() != 8 {
		t.Fatalf("histogram %+v (count %d)", h, h.Count())
	}
	for _, c := range []struct {
		q    float64
		want uint64
	}{{0, 0}, {0.25, 1}, {0.5, 3}, {0.75, 7}, {0.875, 15}, {1, 1 << 30}} {
		if got := h.Quantile(c.q); got != c.want {
			t.Errorf("Quantile(%v) = %d, want %d", c.q, got, c.want)
		}
	}
	var empty Histogram
	if got := empty.Quantile(0.5); got != 0 {
		t.Errorf("Quantile of an empty histogram = %d, want 0", got)
	}
}
