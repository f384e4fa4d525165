package wal

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
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
	"github.com/gojournal/journal/internal/vfstest"
	"github.com/gojournal/journal/recovery"
	"github.com/gojournal/journal/segment"
	"github.com/gojournal/journal/vfs"
	"github.com/gojournal/journal/vfs/crashfs"
	"github.com/gojournal/journal/vfs/errorfs"
)

// recycleOpts are small segments with recycling on.
func recycleOpts(fsys vfs.FS) *Options {
	return &Options{SegmentSize: MinSegmentSize, RecycleSegments: true, Logger: quiet, FS: fsys}
}

// recycleSize is the size of record i in the recycling tests: drawn from
// the index, so a record read back can be checked without a model, and
// large enough that a segment holds a few dozen.
func recycleSize(i uint64) int {
	return 500 + int(i*2654435761%3000)
}

func recycleRecord(i uint64) []byte { return payload(i, recycleSize(i)) }

// recycler drives a log through rotations and releases, so that released
// segments are recycled, and remembers what the log acknowledged.
type recycler struct {
	l     *Log
	rng   *rand.Rand
	first uint64 // FirstIndex after the last TruncateFront that returned
	// trying is the FirstIndex a TruncateFront in flight would set (0:
	// none): a crash during it leaves either.
	trying uint64
	acked  uint64 // the last record whose append returned
	// recycledActive is set once a recycled file was seen as the active
	// segment, with bytes of the old one past its tail.
	recycledActive bool
}

// run appends n records in batches the rng draws and, once the log holds
// more than about three segments, releases all but the last two segments'
// worth (keep records), by TruncateFront. It stops at the first error.
func (r *recycler) run(n int, keep uint64) error {
	for done := 0; done < n; {
		k := 1 + r.rng.IntN(4)
		batch := make([][]byte, k)
		for j := range batch {
			batch[j] = recycleRecord(r.acked + 1 + uint64(j))
		}
		first, err := r.l.AppendBatch(batch)
		if err != nil {
			return err
		}
		if first != r.acked+1 {
			return fmt.Errorf("batch appended at %d, want %d", first, r.acked+1)
		}
		r.acked += uint64(k)
		done += k
		r.l.mu.Lock()
		if a := r.l.active; a.old > a.tail {
			r.recycledActive = true
		}
		r.l.mu.Unlock()
		if r.acked > r.first+keep+keep/2 {
			to := r.acked - keep
			r.trying = to
			if err := r.l.TruncateFront(to); err != nil {
				return err
			}
			r.first, r.trying = to, 0
		}
	}
	return nil
}

// checkLog checks that l holds a prefix-closed range of the records the
// recycler appended: it starts where a TruncateFront left it (or the one
// in flight would), ends at or after the last acknowledged record, and
// every record in it reads back as appended.
func (r *recycler) checkLog(l *Log) error {
	first, last := l.FirstIndex(), l.LastIndex()
	if first != r.first && (r.trying == 0 || first != r.trying) {
		return fmt.Errorf("log starts at %d, want %d (or %d, a TruncateFront in flight)", first, r.first, r.trying)
	}
	if last < r.acked {
		return fmt.Errorf("log ends at %d, before the last acknowledged record %d", last, r.acked)
	}
	rd := l.NewReader(first)
	defer rd.Close()
	want := first
	for rd.Next() {
		if rd.Index() != want || !bytes.Equal(rd.Record(), recycleRecord(want)) {
			return fmt.Errorf("reader: record %d (%d bytes), want record %d as appended", rd.Index(), len(rd.Record()), want)
		}
		want++
	}
	if err := rd.Err(); err != nil || want != last+1 {
		return fmt.Errorf("reader stopped at %d of [%d, %d]: %v", want, first, last, err)
	}
	return nil
}

// TestRecycleSegments appends across many rotations while TruncateFront
// releases old segments: released files become later segments (the
// counter and a recycled active segment say so), every acknowledged record
// reads back, a Reader of released records gets ErrCompacted, and the log
// reopens cleanly, with and without the option.
func TestRecycleSegments(t *testing.T) {
	rng := seedtest.Rand(t)
	dir := t.TempDir()
	l := openT(t, dir, recycleOpts(vfs.Default))
	r := &recycler{l: l, rng: rng, first: 1}
	if err := r.run(10, 60); err != nil {
		t.Fatal(err)
	}
	behind := l.NewReader(1)
	defer behind.Close()
	if !behind.Next() || behind.Index() != 1 {
		t.Fatalf("reader at 1: %v", behind.Err())
	}
	if err := r.run(600, 60); err != nil {
		t.Fatal(err)
	}
	m := l.Metrics()
	if m.SegmentsRecycled < 3 || !r.recycledActive {
		t.Fatalf("%d rotations, %d segments recycled, recycled active segment seen %v: recycling did not happen",
			m.Rotations, m.SegmentsRecycled, r.recycledActive)
	}
	t.Logf("%d records, %d rotations, %d segments recycled", r.acked, m.Rotations, m.SegmentsRecycled)
	// The reader's segment was released, and its file recycled since.
	if behind.Next() || !errors.Is(behind.Err(), ErrCompacted) {
		t.Fatalf("reader of released records: Next at %d, err %v; want ErrCompacted", behind.Index(), behind.Err())
	}
	if _, err := l.Read(1); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Read(1) after release: %v, want ErrNotFound", err)
	}
	if err := r.checkLog(l); err != nil {
		t.Fatal(err)
	}
	// A release now leaves a recycled spare held, whichever the last
	// rotation took.
	r.first = r.acked - 5
	must(t, l.TruncateFront(r.first))
	checkSpareCounted(t, l)
	must(t, l.Close())
	if names := listDir(t, dir); strings.Contains(strings.Join(names, " "), segment.SpareName) {
		t.Fatalf("Close left the spare: %v", names)
	}
	for _, recycle := range []bool{false, true} {
		o := recycleOpts(vfs.Default)
		o.RecycleSegments = recycle
		l := openT(t, dir, o)
		if rec := l.Recovered(); rec.Torn != nil || len(rec.Removed) > 0 {
			t.Fatalf("reopen after a clean Close repaired %+v", rec)
		}
		if err := r.checkLog(l); err != nil {
			t.Fatal(err)
		}
		must(t, l.Close())
	}
}

// checkSpareCounted: Metrics counts the recycled spare in DiskBytes like
// any ready spare, and not among the segments.
func checkSpareCounted(t *testing.T, l *Log) {
	t.Helper()
	l.mu.Lock()
	sp, segs := l.ready, len(l.sealed)+1
	l.mu.Unlock()
	m := l.Metrics()
	if m.Segments != segs {
		t.Fatalf("Metrics.Segments = %d, the log has %d", m.Segments, segs)
	}
	fi, err := os.Stat(filepath.Join(l.dir, segment.SpareName))
	if sp == nil || sp.written == 0 || err != nil {
		t.Fatalf("no recycled spare held (%+v, %v)", sp, err)
	}
	var others int64
	for _, name := range []string{recovery.MetaName, recovery.TailName} {
		if fi, err := os.Stat(filepath.Join(l.dir, name)); err == nil {
			others += fi.Size()
		}
	}
	if want := m.SegmentBytes + fi.Size() + others; m.DiskBytes != want {
		t.Fatalf("Metrics.DiskBytes = %d, want %d (segments %d, spare %d, meta and tail %d)", m.DiskBytes, want, m.SegmentBytes, fi.Size(), others)
	}
}

// TestRecycleCrashPoints crashes a recycling workload after each of its
// mutating file operations in turn (the rename, directory sync, cut and
// preallocation of a recycled file among them) and checks several crash
// states of each: the directory opens, the log holds every acknowledged
// record and only records as appended, and `wal verify`'s walk finds no
// damage.
func TestRecycleCrashPoints(t *testing.T) {
	rng := seedtest.Rand(t)
	points, recycledAt := 0, 0
	for k := 1; ; k++ {
		mem := crashfs.New()
		mem.SetCrashAfter(k)
		var r *recycler
		if l, err := Open("db", recycleOpts(mem)); err == nil {
			r = &recycler{l: l, rng: rand.New(rand.NewPCG(7, 7)), first: 1}
			r.run(240, 30)
			l.mu.Lock()
			if l.metrics.SegmentsRecycled > 0 {
				recycledAt++
			}
			l.mu.Unlock()
			l.Close()
		}
		points++
		crashed := mem.Crashed()
		for _, mode := range []crashfs.CrashMode{crashfs.SyncedOnly, crashfs.RandomSectors, crashfs.Garbled} {
			st := mem.Crash(mode, rng)
			if err := checkCrashState(st, r); err != nil {
				t.Fatalf("crash after op %d, %v state: %v", k, mode, err)
			}
		}
		if !crashed {
			break
		}
	}
	t.Logf("%d crash points, %d of them after a segment was recycled", points, recycledAt)
	if recycledAt < points/4 {
		t.Fatalf("only %d of %d crash points came after a recycling", recycledAt, points)
	}
}

// checkCrashState opens a crash state and checks it against what r saw
// acknowledged (r nil: Open itself crashed, the log is empty).
func checkCrashState(st *crashfs.FS, r *recycler) error {
	check, err := recovery.Check(st, "db", recovery.CheckOptions{})
	if errors.Is(err, fs.ErrNotExist) {
		check, err = &recovery.State{}, nil // Open crashed before it made the directory
	}
	if err != nil {
		return fmt.Errorf("check: %w", err)
	}
	if check.Damaged() {
		return fmt.Errorf("check found damage: %v", check.Damage)
	}
	l, err := Open("db", recycleOpts(st))
	if err != nil {
		return fmt.Errorf("open: %w", err)
	}
	defer l.Close()
	if r == nil {
		r = &recycler{first: 1}
	}
	if next := check.NextIndex(); next != l.LastIndex()+1 {
		return fmt.Errorf("check says the log ends at %d, Open at %d", next-1, l.LastIndex())
	}
	return r.checkLog(l)
}

// recycledCrash builds, on a crashfs, a log whose active segment is a
// recycled file holding acknowledged records in several writes, and
// returns its durable state as a crash leaves it (the log never closed),
// the active segment's path and the offsets of its records' frames.
func recycledCrash(t *testing.T, recycle bool, segSize int64) (st *crashfs.FS, r *recycler, path string, offsets []int64) {
	t.Helper()
	mem := crashfs.New()
	o := recycleOpts(mem)
	o.RecycleSegments, o.SegmentSize = recycle, segSize
	l := openT(t, "db", o)
	r = &recycler{l: l, rng: rand.New(rand.NewPCG(1, 2)), first: 1}
	// Stop a few writes into a segment that follows a recycling.
	for {
		must(t, r.run(1, 40))
		l.mu.Lock()
		a := l.active
		n, recycled := len(a.offsets), a.old > 0
		path, offsets = a.path, append([]int64(nil), a.offsets...)
		l.mu.Unlock()
		if n >= 8 && (recycled || (!recycle && l.Metrics().Rotations >= 2)) {
			break
		}
	}
	st = mem.Crash(crashfs.SyncedOnly, nil)
	l.Close()
	return st, r, path, offsets
}

// TestRecycleCrashOpen: after a crash in a recycled segment, Open keeps
// exactly the acknowledged records and cuts the old segment's bytes as a
// torn tail, never as damage. It reports how much more a crash-open of a
// recycled segment reads than one of a fresh segment (2 MiB segments: a
// fresh one has zeros written at most 1 MiB ahead of its frames).
func TestRecycleCrashOpen(t *testing.T) {
	const segSize = 2 << 20
	read := map[bool]int64{}
	for _, recycle := range []bool{false, true} {
		st, r, path, _ := recycledCrash(t, recycle, segSize)
		cfs := &vfstest.CountFS{FS: st}
		o := recycleOpts(cfs)
		o.SegmentSize = segSize
		l, err := Open("db", o)
		if err != nil {
			t.Fatalf("recycle %v: Open after a crash: %v", recycle, err)
		}
		read[recycle] = cfs.Read()
		torn := l.Recovered().Torn
		if l.LastIndex() != r.acked {
			t.Fatalf("recycle %v: log ends at %d, %d acknowledged", recycle, l.LastIndex(), r.acked)
		}
		if err := r.checkLog(l); err != nil {
			t.Fatal(err)
		}
		if recycle && (torn == nil || torn.Path != path || torn.Records != 0 || torn.Bytes < segSize/2) {
			t.Fatalf("recycled segment %s: torn tail %+v, want the old segment's bytes cut", path, torn)
		}
		must(t, l.Close())
		l = openT(t, "db", recycleOpts(st))
		if rec := l.Recovered(); rec.Torn != nil {
			t.Fatalf("recycle %v: second Open cut %+v again", recycle, rec.Torn)
		}
		must(t, l.Close())
	}
	t.Logf("bytes read by Open after a crash: fresh segment %d, recycled segment %d (SegmentSize %d)",
		read[false], read[true], segSize)
}

// TestRecycleDamageStillCorrupt: in a recycled segment, damage to a
// durable record (a bit flip, a lost write, which shows the old
// segment's bytes) before the last write is ErrCorrupt, as in a fresh one.
func TestRecycleDamageStillCorrupt(t *testing.T) {
	for _, c := range []struct {
		name   string
		damage func(f vfs.File, off, junk int64) error
	}{
		{"bit flip", func(f vfs.File, off, _ int64) error {
			b := []byte{0}
			if _, err := f.ReadAt(b, off+40); err != nil {
				return err
			}
			b[0] ^= 4
			_, err := f.WriteAt(b, off+40)
			return err
		}},
		// The write never reached the disk: the sector holds what the
		// old segment left there (here, old bytes from past the tail).
		{"lost write", func(f vfs.File, off, junk int64) error {
			b := make([]byte, segment.SectorSize)
			if _, err := f.ReadAt(b, junk); err != nil {
				return err
			}
			if bytes.Equal(b, make([]byte, len(b))) {
				return errors.New("no old bytes to copy")
			}
			_, err := f.WriteAt(b, segment.AlignSector(off+1)-segment.SectorSize)
			return err
		}},
	} {
		t.Run(strings.ReplaceAll(c.name, " ", "_"), func(t *testing.T) {
			st, _, path, offsets := recycledCrash(t, true, MinSegmentSize)
			f, err := st.OpenFile(path, os.O_RDWR, 0)
			must(t, err)
			size, err := f.Size()
			must(t, err)
			junk := segment.AlignSector(offsets[len(offsets)-1]) + 4*segment.SectorSize
			for junk < size {
				b := make([]byte, 32)
				f.ReadAt(b, junk)
				if !bytes.Equal(b, make([]byte, 32)) {
					break
				}
				junk += segment.SectorSize
			}
			off := offsets[1] // a record before the last write (a batch holds at most 4)
			must(t, c.damage(f, off, junk))
			must(t, f.Sync())
			f.Close()
			_, err = Open("db", recycleOpts(st))
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("%s in a recycled segment at %d: Open = %v, want ErrCorrupt", c.name, off, err)
			}
			check, err := recovery.Check(st, "db", recovery.CheckOptions{})
			if err != nil || !check.Damaged() {
				t.Fatalf("%s: check = %v, damage %v; want the damage reported", c.name, err, check.Damage)
			}
		})
	}
}

// TestRecycleFullDisk: a full disk while a released file is recycled (its
// preallocation fails) does not fail the log: the file is deleted as
// without recycling, and rotations go on with fresh spares. Another
// failure (a rename that fails) fails the log, as a failed removal does,
// and the directory reopens.
func TestRecycleFullDisk(t *testing.T) {
	for _, c := range []struct {
		op   errorfs.Op
		err  error
		fail bool
	}{{errorfs.OpPreallocate, syscall.ENOSPC, false}, {errorfs.OpRename, syscall.EIO, true}} {
		t.Run(c.op.String(), func(t *testing.T) {
			dir := t.TempDir()
			var armed atomic.Bool
			efs := errorfs.Wrap(vfs.Default, errorfs.Rule{Op: c.op, Sticky: true, Err: c.err, Match: func(p string) bool {
				// The released segment, under the name it was opened by
				// (or renamed from): only Recycle preallocates or renames
				// a segment while TruncateFront runs.
				_, seg := segment.ParseName(filepath.Base(p))
				return armed.Load() && seg
			}})
			l := openT(t, dir, recycleOpts(efs))
			r := &recycler{l: l, rng: seedtest.Rand(t), first: 1}
			must(t, r.run(120, 1000)) // rotations, nothing released yet
			armed.Store(true)
			r.trying = r.acked - 20
			err := l.TruncateFront(r.trying)
			if c.fail {
				if !errors.Is(err, ErrFailed) {
					t.Fatalf("TruncateFront with a failing rename: %v, want ErrFailed", err)
				}
				l.Close()
				l = openT(t, dir, recycleOpts(vfs.Default))
				defer l.Close()
				if err := r.checkLog(l); err != nil {
					t.Fatal(err)
				}
				return
			}
			must(t, err)
			r.first, r.trying = r.trying, 0
			if efs.Injected() == 0 {
				t.Fatal("no preallocation failed: the test tests nothing")
			}
			m := l.Metrics()
			if m.SegmentsRecycled != 0 {
				t.Fatalf("%d segments recycled on a full disk", m.SegmentsRecycled)
			}
			for _, name := range listDir(t, dir) {
				if name == segment.SpareName {
					t.Fatalf("the file that could not be recycled is left as %s", name)
				}
			}
			armed.Store(false)
			must(t, r.run(100, 1000)) // rotations with fresh spares
			if err := r.checkLog(l); err != nil {
				t.Fatal(err)
			}
			must(t, l.Close())
		})
	}
}

// TestRecycleWhileRotating releases segments while writers keep the log
// rotating: a TruncateFront commits with mu released, so a rotation may
// start meanwhile, and its spare, still under the spare's name, must be
// installed before a released file takes that name. (The name was taken
// from under it: the released file was installed as the new segment, and
// the log failed at the next rotation.)
func TestRecycleWhileRotating(t *testing.T) {
	dir := t.TempDir()
	l := openT(t, dir, recycleOpts(vfs.Default))
	stop := make(chan struct{})
	var wg sync.WaitGroup
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
				if _, err := l.Append(payload(uint64(i), 2000+w*300)); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	deadline := time.Now().Add(time.Second)
	for time.Now().Before(deadline) && !t.Failed() {
		if last := l.LastIndex(); last > 100 {
			if err := l.TruncateFront(last - 60); err != nil {
				t.Error(err)
			}
		}
		time.Sleep(time.Millisecond)
	}
	close(stop)
	wg.Wait()
	m := l.Metrics()
	must(t, l.Close())
	t.Logf("%d rotations, %d segments recycled", m.Rotations, m.SegmentsRecycled)
	if m.SegmentsRecycled == 0 {
		t.Fatal("no segment recycled")
	}
	l = openT(t, dir, recycleOpts(vfs.Default))
	defer l.Close()
	rd := l.NewReader(0)
	defer rd.Close()
	n := 0
	for rd.Next() {
		n++
	}
	if rd.Err() != nil || uint64(n) != l.LastIndex()-l.FirstIndex()+1 {
		t.Fatalf("reopened log [%d, %d]: read %d records, %v", l.FirstIndex(), l.LastIndex(), n, rd.Err())
	}
}

// TestRecycleCloseTrimsAnEmptySegment: Close leaves a segment without
// records unsealed; were it a recycled file, the old segment's bytes after
// its header would make the next Open report a torn tail after a clean
// Close. Close cuts them.
func TestRecycleCloseTrimsAnEmptySegment(t *testing.T) {
	dir := t.TempDir()
	l := openT(t, dir, recycleOpts(vfs.Default))
	r := &recycler{l: l, rng: seedtest.Rand(t), first: 1}
	must(t, r.run(150, 1000))
	r.first = r.acked - 5
	must(t, l.TruncateFront(r.first)) // a recycled spare is held
	// A rotation that no append follows (one that Close overtook).
	l.mu.Lock()
	for l.sealing != nil {
		l.cond.Wait()
	}
	l.rotate()
	a := l.active
	l.mu.Unlock()
	if a.old == 0 || len(a.offsets) != 0 {
		t.Fatalf("the new segment holds %d records, old bytes to %d: want an empty recycled segment", len(a.offsets), a.old)
	}
	must(t, l.Close())
	if size := fileSize(a.path); size != segment.DataStart {
		t.Fatalf("empty recycled segment is %d bytes after Close, want %d", size, segment.DataStart)
	}
	l = openT(t, dir, recycleOpts(vfs.Default))
	defer l.Close()
	if rec := l.Recovered(); rec.Torn != nil || len(rec.Removed) > 0 {
		t.Fatalf("Open after a clean Close repaired %+v", rec)
	}
	if err := r.checkLog(l); err != nil {
		t.Fatal(err)
	}
}

// TestRecycleReadOnlyFollower: a Reader of a read-only Log (another
// process's view) follows a writer whose releases recycle the files the
// Reader may still hold open: it returns each record as appended, in
// order, or stops with ErrCompacted when a release overtakes it; never
// damage.
func TestRecycleReadOnlyFollower(t *testing.T) {
	const n = 1500
	dir := t.TempDir()
	w := openT(t, dir, recycleOpts(vfs.Default))
	defer w.Close()
	if _, err := w.Append(recycleRecord(1)); err != nil {
		t.Fatal(err)
	}
	f, _ := openFollower(t, dir)
	defer f.Close()
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := uint64(2); i <= n; i++ {
			if _, err := w.Append(recycleRecord(i)); err != nil {
				t.Error(err)
				return
			}
			if i%50 == 0 && i > 100 {
				if err := w.TruncateFront(i - 80); err != nil {
					t.Error(err)
					return
				}
			}
		}
	}()
	rng := seedtest.Rand(t)
	r := f.NewReader(0)
	defer func() { r.Close() }()
	want, overtaken := uint64(0), 0
	for want != n {
		if rng.IntN(30) == 0 {
			time.Sleep(time.Duration(rng.IntN(20)) * time.Millisecond) // falls behind
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		ok := r.NextContext(ctx)
		cancel()
		switch {
		case ok:
			if want != 0 && r.Index() != want+1 {
				t.Fatalf("follower returned %d after %d", r.Index(), want)
			}
			if want = r.Index(); !bytes.Equal(r.Record(), recycleRecord(want)) {
				t.Fatalf("follower's record %d is not the one appended", want)
			}
		case errors.Is(r.Err(), ErrCompacted):
			overtaken++
			r.Close()
			r, want = f.NewReader(0), 0
		default:
			t.Fatalf("follower stopped after %d: %v", want, r.Err())
		}
	}
	<-done
	m := w.Metrics()
	t.Logf("%d segments recycled; the follower was overtaken %d times", m.SegmentsRecycled, overtaken)
	if m.SegmentsRecycled == 0 {
		t.Fatal("no segment recycled")
	}
}
