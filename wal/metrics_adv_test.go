package wal

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/gojournal/journal/internal/seedtest"
	"github.com/gojournal/journal/internal/testproc"
	"github.com/gojournal/journal/segment"
	"github.com/gojournal/journal/vfs"
	"github.com/gojournal/journal/vfs/errorfs"
)

// Attacks on Metrics and the Logger from an operator's side: the disk
// figures against a walk of the directory after every kind of change, a
// SIGKILLed writer, read-only followers; counters that never go back;
// the log records each event gets, exactly when it happens.

// TestMetricsAdvFollowerDisk: a read-only Log's Metrics describe the
// directory it follows, as a writer's do: the same segments, the same
// bytes (the active segment's preallocated size included), whether the
// writer is running or closed the log.
func TestMetricsAdvFollowerDisk(t *testing.T) {
	dir := t.TempDir()
	w := openT(t, dir, &Options{SegmentSize: MinSegmentSize, NoSync: true, Logger: quiet})
	big := bytes.Repeat([]byte("f"), 1000)
	for range 150 {
		if _, err := w.Append(big); err != nil {
			t.Fatal(err)
		}
	}
	must(t, w.Sync())
	checkDisk(t, w, "writer")
	f, err := OpenReadOnly(dir, &Options{Logger: quiet})
	must(t, err)
	defer f.Close()
	checkDisk(t, f, "follower of a running writer")
	must(t, w.Close())
	r := f.NewReader(0)
	defer r.Close()
	// The follower installs the closed log's view when it next looks.
	for range 150 {
		if !r.Next() {
			t.Fatal(r.Err())
		}
	}
	r.Next() // at the end: the follower looks at the directory again
	checkDisk(t, f, "follower of a closed log")
	checkDisk(t, w, "writer after Close")
	f2, err := OpenReadOnly(dir, &Options{Logger: quiet})
	must(t, err)
	defer f2.Close()
	checkDisk(t, f2, "follower opened after Close")
}

// TestMetricsAdvRetention: what retention releases is counted in
// RetentionSegments and RetentionBytes exactly as the files that left
// the directory, and logged once per release with the same figures.
func TestMetricsAdvRetention(t *testing.T) {
	rec, logger := newRecorder()
	dir := t.TempDir()
	l := openT(t, dir, &Options{SegmentSize: MinSegmentSize, NoSync: true, Logger: logger,
		Retention: RetentionOptions{MaxBytes: 4 * MinSegmentSize, Interval: time.Millisecond}})
	defer l.Close()
	big := bytes.Repeat([]byte("r"), 1000)
	before, beforeBytes, _ := onDisk(t, dir)
	created, createdBytes := before, beforeBytes
	var prev Metrics
	seen := map[string]int64{} // each segment file's size when last seen
	for i := range 400 {
		if _, err := l.Append(big); err != nil {
			t.Fatal(err)
		}
		if i%40 == 39 {
			time.Sleep(20 * time.Millisecond) // a few passes
		}
		for _, name := range listDir(t, dir) {
			if strings.HasSuffix(name, segment.Ext) {
				if fi, err := os.Stat(filepath.Join(dir, name)); err == nil {
					seen[name] = fi.Size()
				}
			}
		}
		m := l.Metrics()
		if m.RetentionSegments < prev.RetentionSegments || m.RetentionBytes < prev.RetentionBytes || m.Rotations < prev.Rotations {
			t.Fatalf("counters went back: %+v then %+v", prev, m)
		}
		prev = m
	}
	m := checkDisk(t, l, "after retention")
	if m.RetentionSegments == 0 {
		t.Fatal("retention released nothing")
	}
	// Segments created: those at Open plus one per rotation; those
	// released: the difference with what the directory holds.
	created += int(m.Rotations)
	if got := created - m.Segments; uint64(got) != m.RetentionSegments {
		t.Fatalf("%d segments created, %d left: %d released; RetentionSegments %d", created, m.Segments, got, m.RetentionSegments)
	}
	_ = createdBytes
	// The bytes released are the sizes the released files had.
	var gone int64
	present := map[string]bool{}
	for _, name := range listDir(t, dir) {
		present[name] = true
	}
	for name, size := range seen {
		if !present[name] {
			gone += size
		}
	}
	if gone != m.RetentionBytes {
		t.Fatalf("the segments retention removed held %d bytes; RetentionBytes %d", gone, m.RetentionBytes)
	}
	var segs uint64
	var sum int64
	for _, r := range rec.find("journal: retention released records") {
		if r.level != slog.LevelInfo {
			t.Fatalf("retention logged at %v", r.level)
		}
		segs += uint64(r.attrs["segments"].Int64())
		sum += r.attrs["bytes"].Int64()
		if r.attrs["reason"].String() != "size" {
			t.Fatalf("retention logged reason %q, want size", r.attrs["reason"].String())
		}
	}
	if segs != m.RetentionSegments || sum != m.RetentionBytes {
		t.Fatalf("logged %d segments, %d bytes released; Metrics %d, %d", segs, sum, m.RetentionSegments, m.RetentionBytes)
	}
	// Every released segment was a full one: its sealed size.
	if m.RetentionBytes <= 0 || m.RetentionBytes > int64(m.RetentionSegments)*MinSegmentSize {
		t.Fatalf("RetentionBytes %d for %d segments of at most %d", m.RetentionBytes, m.RetentionSegments, MinSegmentSize)
	}
}

// TestMetricsAdvCountersNeverGoBack: with appends, rotations,
// TruncateFront, TruncateBack, checkpoints and retention going on, no
// counter of successive snapshots goes back, each snapshot's histograms
// count what its counters count, and the checkpoints counted match those
// that succeeded and those logged.
func TestMetricsAdvCountersNeverGoBack(t *testing.T) {
	rng := seedtest.Rand(t)
	rec, logger := newRecorder()
	// Synced or not; the fdatasyncs are timed and counted but skipped, so
	// that enough is written for rotations and retention.
	l := openT(t, t.TempDir(), &Options{SegmentSize: MinSegmentSize, Logger: logger, NoSync: rng.IntN(2) == 0,
		FS:        &syncFS{FS: vfs.Default, skip: true},
		Retention: RetentionOptions{MaxBytes: 3 * MinSegmentSize, Interval: time.Millisecond}})
	defer l.Close()
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var mu sync.Mutex // between the writers, TruncateBack and Checkpoint
	var checkpoints int
	var checkpointed uint64
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				mu.Lock()
				_, err := l.Append(bytes.Repeat([]byte{byte(w)}, 100+i%700))
				mu.Unlock()
				if err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			case <-time.After(5 * time.Millisecond):
			}
			mu.Lock()
			last := l.LastIndex()
			var err error
			switch i % 3 {
			case 0:
				if last > 20 {
					err = l.TruncateBack(last - 10)
				}
			case 1:
				if last > l.FirstIndex() {
					if err = l.Checkpoint(last-1, writeState(last-1)); err == nil {
						checkpoints++
						checkpointed = last - 1
					}
				}
			case 2:
				if i%12 != 2 {
					break // seldom: retention should release some too
				}
				to := last / 2
				if checkpointed > 0 {
					to = min(to, checkpointed+1) // the log must continue the snapshot
				}
				err = l.TruncateFront(max(l.FirstIndex(), to))
			}
			mu.Unlock()
			if err != nil {
				t.Error(err)
				return
			}
		}
	}()
	var snaps [4][]Metrics
	for g := range snaps {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				snaps[g] = append(snaps[g], l.Metrics())
				time.Sleep(100 * time.Microsecond)
			}
		}()
	}
	time.Sleep(700 * time.Millisecond)
	close(stop)
	wg.Wait()
	final := l.Metrics()
	for g, ms := range snaps {
		ms = append(ms, final)
		for i, m := range ms {
			if m.Records != m.RecordsPerWrite.Sum || m.Writes != m.RecordsPerWrite.Count() || m.Syncs != m.SyncMicros.Count() {
				t.Fatalf("reader %d snapshot %d: histograms and counters disagree: %+v", g, i, m)
			}
			if m.CheckpointMax < m.CheckpointLast || m.Segments < 1 || m.SegmentBytes <= 0 || m.DiskBytes < m.SegmentBytes {
				t.Fatalf("reader %d snapshot %d: %+v", g, i, m)
			}
			if i == 0 {
				continue
			}
			p := ms[i-1]
			if m.Records < p.Records || m.Writes < p.Writes || m.Syncs < p.Syncs || m.Bytes < p.Bytes ||
				m.Rotations < p.Rotations || m.Checkpoints < p.Checkpoints || m.CheckpointMax < p.CheckpointMax ||
				m.RetentionSegments < p.RetentionSegments || m.RetentionBytes < p.RetentionBytes ||
				m.SyncMicros.Sum < p.SyncMicros.Sum || m.RecordsPerWrite.Sum < p.RecordsPerWrite.Sum {
				t.Fatalf("reader %d: a counter went back between snapshots %d and %d:\n%+v\n%+v", g, i-1, i, p, m)
			}
			for b := range m.SyncMicros.Counts {
				if m.SyncMicros.Counts[b] < p.SyncMicros.Counts[b] || m.RecordsPerWrite.Counts[b] < p.RecordsPerWrite.Counts[b] {
					t.Fatalf("reader %d: a histogram bucket went back between snapshots %d and %d", g, i-1, i)
				}
			}
		}
	}
	if final.Checkpoints != uint64(checkpoints) || len(rec.find("journal: checkpoint")) != checkpoints {
		t.Fatalf("%d checkpoints succeeded; Metrics counts %d, the log reported %d", checkpoints, final.Checkpoints, len(rec.find("journal: checkpoint")))
	}
	if n := len(rec.find("journal: rotated")); uint64(n) != final.Rotations {
		t.Fatalf("logged %d rotations, Metrics counts %d", n, final.Rotations)
	}
	if len(rec.find("journal: slow fdatasync")) != 0 && final.SyncMicros.Quantile(1) < uint64(DefaultSlowSync/time.Microsecond) {
		t.Fatal("a slow fdatasync logged that the histogram never saw")
	}
	t.Logf("%d snapshots, %d records, %d rotations, %d checkpoints, %d retention segments", len(snaps[0]), final.Records, final.Rotations, final.Checkpoints, final.RetentionSegments)
	checkDisk(t, l, "after the load")
}

// Environment of the child that TestMetricsAdvAfterKill SIGKILLs.
const envMetricsChild = "JOURNAL_METRICS_CHILD" // the log directory

// TestMetricsAdvChild appends forever (rotating small segments) until its
// parent kills it; it does nothing unless run by TestMetricsAdvAfterKill.
func TestMetricsAdvChild(t *testing.T) {
	dir := os.Getenv(envMetricsChild)
	if dir == "" {
		return
	}
	size, _ := strconv.ParseInt(os.Getenv(envMetricsChild+"_SIZE"), 10, 64)
	l := openT(t, dir, &Options{SegmentSize: size, Logger: quiet, NoSync: os.Getenv(envMetricsChild+"_NOSYNC") == "1"})
	for i := 0; ; i++ {
		if _, err := l.Append(bytes.Repeat([]byte("k"), 1+i%3000)); err != nil {
			fmt.Printf("error %v\n", err)
			return
		}
		if i == 300 {
			fmt.Println("ready")
		}
	}
}

// TestMetricsAdvAfterKill: after a writer is SIGKILLed mid-append, a
// follower's and then a writer's Metrics (reopened with the same, a
// smaller or a larger SegmentSize) match the directory; Open logs once
// what recovery did, with the figures Metrics reports.
func TestMetricsAdvAfterKill(t *testing.T) {
	rng := seedtest.Rand(t)
	for round := range 3 {
		dir := t.TempDir()
		noSync := rng.IntN(2) == 0
		env := []string{envMetricsChild + "=" + dir, envMetricsChild + "_SIZE=" + strconv.Itoa(MinSegmentSize),
			envMetricsChild + "_NOSYNC=" + map[bool]string{true: "1", false: "0"}[noSync]}
		child := testproc.Start(t, "TestMetricsAdvChild", env)
		child.Expect("ready")
		time.Sleep(time.Duration(rng.IntN(50)) * time.Millisecond)
		child.Kill()
		child.Wait()

		f, err := OpenReadOnly(dir, &Options{Logger: quiet})
		must(t, err)
		checkDisk(t, f, fmt.Sprintf("round %d: follower after the kill", round))
		must(t, f.Close())

		size := []int64{MinSegmentSize, MinSegmentSize / 2, 4 * MinSegmentSize}[round]
		if size < MinSegmentSize {
			size = MinSegmentSize
		}
		rec, logger := newRecorder()
		l := openT(t, dir, &Options{SegmentSize: size, Logger: logger, Verify: rng.IntN(2) == 0})
		m := checkDisk(t, l, fmt.Sprintf("round %d: reopened after the kill (NoSync %v, SegmentSize %d)", round, noSync, size))
		open := rec.one(t, slog.LevelInfo, "journal: opened").attrs
		if open["cut_bytes"].Int64() != m.CutBytes || open["cut_records"].Int64() != int64(m.CutRecords) ||
			open["removed"].Int64() != int64(m.FilesRemoved) || open["took"].Duration() != m.OpenDuration ||
			open["segments"].Int64() != int64(m.Segments) || open["last"].Uint64() != l.LastIndex() ||
			open["first"].Uint64() != l.FirstIndex() {
			t.Fatalf("round %d: Open logged %v; Metrics %+v, first %d, last %d", round, open, m, l.FirstIndex(), l.LastIndex())
		}
		if cut := rec.find("journal: cut torn tail"); (len(cut) == 1) != (m.CutBytes > 0) || len(cut) > 1 {
			t.Fatalf("round %d: cut %d bytes; logged %+v", round, m.CutBytes, cut)
		}
		big := bytes.Repeat([]byte("a"), 1500)
		for range 100 {
			if _, err := l.Append(big); err != nil {
				t.Fatal(err)
			}
		}
		checkDisk(t, l, fmt.Sprintf("round %d: appends after the reopen", round))
		must(t, l.Close())
		checkDisk(t, l, fmt.Sprintf("round %d: closed", round))
		l = openT(t, dir, &Options{SegmentSize: MinSegmentSize, Logger: quiet})
		checkDisk(t, l, fmt.Sprintf("round %d: reopened after Close", round))
		must(t, l.Close())
	}
}

// levels counts the records a recorder got at each level, by message.
func (r *recorder) levels() map[slog.Level]map[string]int {
	r.mu.Lock()
	defer r.mu.Unlock()
	got := map[slog.Level]map[string]int{}
	for _, l := range r.recs {
		if got[l.level] == nil {
			got[l.level] = map[string]int{}
		}
		got[l.level][l.msg]++
	}
	return got
}

// TestMetricsAdvLogEvents: each documented event is logged exactly when it
// happens, at its level: one "opened" per Open (a new log included), one
// "rotated" per rotation, one "checkpoint" per committed checkpoint
// (explicit or background) and none for a failed one, an Error for a
// failed background checkpoint; nothing else in a healthy run, nothing
// from a read-only Log, nothing from Close.
func TestMetricsAdvLogEvents(t *testing.T) {
	rec, logger := newRecorder()
	dir := t.TempDir()
	var failState atomic.Bool
	var l *Log
	opts := &Options{SegmentSize: MinSegmentSize, NoSync: true, Logger: logger,
		Checkpoint: CheckpointOptions{EveryBytes: 20_000, State: func() (uint64, func(io.Writer) error, error) {
			if failState.Load() {
				return 0, nil, errors.New("state unavailable")
			}
			i := l.LastIndex()
			return i, writeState(i), nil
		}}}
	l = openT(t, dir, opts)
	open := rec.one(t, slog.LevelInfo, "journal: opened").attrs
	if open["segments"].Int64() != 1 || open["first"].Uint64() != 1 || open["last"].Uint64() != 0 ||
		open["cut_bytes"].Int64() != 0 || open["removed"].Int64() != 0 || open["dir"].String() != dir {
		t.Fatalf("Open of a new log logged %v", open)
	}
	big := bytes.Repeat([]byte("e"), 1000)
	for range 200 {
		if _, err := l.Append(big); err != nil {
			t.Fatal(err)
		}
	}
	// The background checkpoints triggered by those bytes.
	deadline := time.Now().Add(10 * time.Second)
	for l.Metrics().Checkpoints == 0 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	if err := l.Checkpoint(l.LastIndex(), func(io.Writer) error { return errors.New("no state") }); err == nil {
		t.Fatal("a checkpoint whose write failed returned nil")
	}
	if err := l.Checkpoint(l.LastIndex(), writeState(l.LastIndex())); err != nil {
		t.Fatal(err)
	}
	failState.Store(true)
	for range 50 {
		if _, err := l.Append(big); err != nil {
			t.Fatal(err)
		}
	}
	for l.CheckpointErr() == nil && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	must(t, l.Close())
	m := l.Metrics()
	got := rec.levels()
	if got[slog.LevelInfo]["journal: rotated"] != int(m.Rotations) || m.Rotations == 0 {
		t.Fatalf("%d rotations; logged %v", m.Rotations, got)
	}
	if got[slog.LevelInfo]["journal: checkpoint"] != int(m.Checkpoints) || m.Checkpoints < 2 {
		t.Fatalf("%d checkpoints committed; logged %v", m.Checkpoints, got)
	}
	if got[slog.LevelError]["journal: background checkpoint failed"] < 1 {
		t.Fatalf("a background checkpoint failed; logged %v", got)
	}
	delete(got[slog.LevelInfo], "journal: rotated")
	delete(got[slog.LevelInfo], "journal: checkpoint")
	delete(got[slog.LevelError], "journal: background checkpoint failed")
	want := map[slog.Level]map[string]int{slog.LevelInfo: {"journal: opened": 1}, slog.LevelError: {}}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("logged %v besides rotations and checkpoints; want %v", got, want)
	}

	// A read-only Log logs nothing, also of a log that needs recovery.
	ro, rologger := newRecorder()
	f, err := OpenReadOnly(dir, &Options{Logger: rologger})
	must(t, err)
	r := f.NewReader(0)
	for r.Next() {
	}
	r.Close()
	must(t, f.Close())
	if n := len(ro.recs); n != 0 {
		t.Fatalf("a read-only Log logged %+v", ro.recs)
	}
	// A second Open logs its own "opened", once.
	rec2, logger2 := newRecorder()
	l2 := openT(t, dir, &Options{Logger: logger2, SegmentSize: MinSegmentSize})
	rec2.one(t, slog.LevelInfo, "journal: opened")
	must(t, l2.Close())
	if n := len(rec2.recs); n != 1 {
		t.Fatalf("Open and Close of a healthy log logged %+v", rec2.recs)
	}
}

// TestMetricsAdvSlowSyncCounts: with every fdatasync slow, each
// group-commit fdatasync (an explicit Sync in NoSync mode included) is
// warned about once and counted in SyncMicros; those of rotations,
// which the docs leave out, are neither.
func TestMetricsAdvSlowSyncCounts(t *testing.T) {
	for _, noSync := range []bool{false, true} {
		t.Run(fmt.Sprint("NoSync=", noSync), func(t *testing.T) {
			rec, logger := newRecorder()
			fsys := &syncFS{FS: vfs.Default, skip: true}
			l := openT(t, t.TempDir(), &Options{SegmentSize: MinSegmentSize, NoSync: noSync, Logger: logger, FS: fsys, SlowSync: time.Millisecond})
			defer l.Close()
			fsys.delay.Store(int64(2 * time.Millisecond))
			big := bytes.Repeat([]byte("s"), 3000)
			for i := range 60 {
				if _, err := l.Append(big); err != nil {
					t.Fatal(err)
				}
				if noSync && i%10 == 0 {
					must(t, l.Sync())
				}
			}
			must(t, l.Sync())
			fsys.delay.Store(0)
			m := l.Metrics()
			warned := rec.find("journal: slow fdatasync")
			if m.Rotations == 0 || m.Syncs == 0 || uint64(len(warned)) != m.Syncs || m.SyncMicros.Count() != m.Syncs {
				t.Fatalf("%d rotations, %d group-commit fdatasyncs, %d in SyncMicros, %d warned", m.Rotations, m.Syncs, m.SyncMicros.Count(), len(warned))
			}
			for _, w := range warned {
				if w.level != slog.LevelWarn || w.attrs["took"].Duration() < 2*time.Millisecond || w.attrs["threshold"].Duration() != time.Millisecond {
					t.Fatalf("warned %+v", w)
				}
				if _, err := os.Stat(w.attrs["file"].String()); err != nil {
					t.Fatalf("warned about %s: %v", w.attrs["file"], err)
				}
			}
			if q := m.SyncMicros.Quantile(0); q < 2000 {
				t.Fatalf("the fastest fdatasync's bucket bound is %d µs, below the 2 ms each took", q)
			}
		})
	}
}

// TestMetricsAdvWritesAndBytes pins what Writes and Bytes count, as their
// docs say: Bytes the group commits' writes only (each padded to a
// sector; no segment header or footer, also across rotations and Close),
// and a commit that only fdatasyncs (Sync with nothing new in NoSync
// mode) is a group commit of no record and no byte.
func TestMetricsAdvWritesAndBytes(t *testing.T) {
	l := openT(t, t.TempDir(), &Options{SegmentSize: MinSegmentSize, NoSync: true, Logger: quiet})
	big := bytes.Repeat([]byte("b"), 1000)
	if _, err := l.Append(big); err != nil {
		t.Fatal(err)
	}
	per := l.Stats().Bytes
	if per == 0 || per%segment.SectorSize != 0 {
		t.Fatalf("one record wrote %d bytes, want a positive multiple of %d", per, segment.SectorSize)
	}
	must(t, l.Sync())
	m := l.Metrics()
	if m.Writes != 2 || m.Syncs != 1 || m.Bytes != per || m.RecordsPerWrite.Counts[0] != 1 || m.RecordsPerWrite.Counts[1] != 1 {
		t.Fatalf("after a Sync with nothing new to write: %+v, records per write %v", m.Stats, m.RecordsPerWrite.Counts[:2])
	}
	for range 199 {
		if _, err := l.Append(big); err != nil {
			t.Fatal(err)
		}
	}
	must(t, l.Close())
	m = l.Metrics()
	if m.Rotations == 0 || m.Bytes != 200*per || m.Records != 200 || m.RecordsPerWrite.Sum != 200 || m.Writes != m.RecordsPerWrite.Count() {
		t.Fatalf("200 single appends of %d bytes each, %d rotations, closed: %+v", per, m.Rotations, m.Stats)
	}
}

// TestMetricsAdvDiskFull: on a full disk (every Preallocate fails with
// ENOSPC) a reopened log goes on in a segment it cannot preallocate;
// the segments' sizes Metrics reports follow the file as it grows by
// each write, not the preallocation that did not happen.
func TestMetricsAdvDiskFull(t *testing.T) {
	dir := t.TempDir()
	l := openT(t, dir, &Options{SegmentSize: MinSegmentSize, Logger: quiet})
	appendN(t, l, 20)
	must(t, l.Close())
	for _, closed := range []bool{false, true} {
		efs := errorfs.Wrap(vfs.Default, errorfs.Rule{Op: errorfs.OpPreallocate, Sticky: true, Err: syscall.ENOSPC})
		rec, logger := newRecorder()
		l = openT(t, dir, &Options{SegmentSize: MinSegmentSize, Logger: logger, FS: efs})
		rec.one(t, slog.LevelWarn, "journal: disk full; the active segment is not preallocated")
		checkDisk(t, l, fmt.Sprintf("reopened on a full disk (closed %v)", closed))
		for i := range 30 {
			// Small: a rotation on a full disk fails the log (as documented).
			if _, err := l.Append(bytes.Repeat([]byte("d"), 100+i)); err != nil {
				t.Fatal(err)
			}
			checkDisk(t, l, fmt.Sprintf("append %d on a full disk", i))
		}
		if closed {
			must(t, l.Close())
			checkDisk(t, l, "closed on a full disk")
		} else {
			// The next round reopens a copy of the directory as a SIGKILL
			// leaves it: the unsealed segment, not preallocated.
			crashed := t.TempDir()
			for _, name := range listDir(t, dir) {
				writeFile(t, filepath.Join(crashed, name), readFile(t, filepath.Join(dir, name)))
			}
			must(t, l.Close())
			dir = crashed
		}
	}
}

// slowSpareFS holds each Preallocate of the spare file until release is
// closed: a fallocate stuck on a sick disk.
type slowSpareFS struct {
	vfs.FS
	started chan struct{} // closed when a spare's Preallocate begins
	release chan struct{}
	once    sync.Once
}

type slowSpareFile struct {
	vfs.File
	fs   *slowSpareFS
	name string
}

func (s *slowSpareFS) OpenFile(name string, flag int, perm fs.FileMode) (vfs.File, error) {
	f, err := s.FS.OpenFile(name, flag, perm)
	if err != nil {
		return nil, err
	}
	return slowSpareFile{f, s, name}, nil
}

func (f slowSpareFile) Preallocate(size int64) error {
	if filepath.Base(f.name) == segment.SpareName {
		f.fs.once.Do(func() { close(f.fs.started) })
		<-f.fs.release
	}
	return f.File.Preallocate(size)
}

// TestMetricsAdvScrapeDuringStuckSpare: Metrics must answer while the
// spare for the next rotation is being preallocated, however long that
// takes: a scrape that waited for the disk would time out exactly when
// the operator needs it (it waited for as long as the fallocate took).
func TestMetricsAdvScrapeDuringStuckSpare(t *testing.T) {
	fsys := &slowSpareFS{FS: vfs.Default, started: make(chan struct{}), release: make(chan struct{})}
	l := openT(t, t.TempDir(), &Options{SegmentSize: MinSegmentSize, NoSync: true, Logger: quiet, FS: fsys})
	defer l.Close()
	released := false
	defer func() {
		if !released {
			close(fsys.release)
		}
	}()
	big := bytes.Repeat([]byte("p"), 1000)
	// Appends up to half the segment start the spare's preparation; no
	// more until it is released: an append that filled the segment would
	// wait for the spare this test holds (it hung so under load, when
	// the appends went on until the spare's goroutine reached its
	// Preallocate).
	for half := false; !half; {
		if _, err := l.Append(big); err != nil {
			t.Fatal(err)
		}
		l.mu.Lock()
		half = l.active.tail >= l.opts.SegmentSize/2
		l.mu.Unlock()
	}
	select {
	case <-fsys.started:
	case <-time.After(10 * time.Second):
		t.Fatal("no spare was prepared")
	}
	got := make(chan Metrics, 1)
	go func() { got <- l.Metrics() }()
	select {
	case m := <-got:
		// The spare in flight is not counted (the doc: temporary files of
		// an operation in flight aside); the rest is.
		n, seg, total := onDisk(t, l.Dir())
		if spare, err := os.Stat(filepath.Join(l.Dir(), segment.SpareName)); err == nil {
			total -= spare.Size()
		}
		if m.Segments != n || m.SegmentBytes != seg || m.DiskBytes != total {
			t.Fatalf("while the spare is prepared: Metrics %d, %d, %d; the directory %d, %d, %d (spare aside)", m.Segments, m.SegmentBytes, m.DiskBytes, n, seg, total)
		}
	case <-time.After(2 * time.Second):
		close(fsys.release)
		released = true
		<-got
		t.Fatal("Metrics waited for the spare's preallocation (over 2 s)")
	}
	close(fsys.release)
	released = true
	for range 100 {
		if _, err := l.Append(big); err != nil {
			t.Fatal(err)
		}
	}
	checkDisk(t, l, "after the spare was prepared and used")
}
