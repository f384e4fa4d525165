package wal

import (
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/gojournal/journal/recovery"
	"github.com/gojournal/journal/segment"
	"github.com/gojournal/journal/vfs"
	"go.uber.org/goleak"
)

// TestTruncateFrontPastTheEnd: an empty log may start at any index, on a
// brand-new log and on one holding several segments, NoSync or not, and
// the start survives a reopen with the records appended after it.
func TestTruncateFrontPastTheEnd(t *testing.T) {
	for _, noSync := range []bool{false, true} {
		for _, n := range []int{0, 1, 3000} {
			t.Run(fmt.Sprintf("NoSync=%v/records=%d", noSync, n), func(t *testing.T) {
				dir := t.TempDir()
				o := &Options{SegmentSize: MinSegmentSize, NoSync: noSync, Logger: quiet}
				l := openT(t, dir, o)
				appendN(t, l, n)
				at := uint64(n) + 1000
				if err := l.TruncateFront(at); err != nil {
					t.Fatalf("TruncateFront(%d) past the end: %v", at, err)
				}
				checkRange(t, l, at, at-1)
				if segs := segmentFiles(t, dir); !slices.Equal(segs, []string{filepath.Join(dir, segment.Name(at))}) {
					t.Fatalf("segments after the restart: %v, want only %s", segs, segment.Name(at))
				}
				appendN(t, l, 5)
				checkRange(t, l, at, at+4)
				// Past the end again, from a log that was restarted.
				if err := l.TruncateFront(at + 10); err != nil {
					t.Fatal(err)
				}
				appendN(t, l, 2)
				checkRange(t, l, at+10, at+11)
				if err := l.Close(); err != nil {
					t.Fatal(err)
				}
				l = openT(t, dir, o)
				defer l.Close()
				if r := l.Recovered(); r.Torn != nil || len(r.Removed) != 0 {
					t.Errorf("reopen repaired %+v", r)
				}
				checkRange(t, l, at+10, at+11)
				m, err := recovery.ReadMeta(vfs.Default, dir)
				if err != nil || m.EmptyPending || m.FirstIndex != at+10 {
					t.Fatalf("meta = %+v, %v; want first index %d, not pending", m, err, at+10)
				}
			})
		}
	}
}

// TestTruncateFrontPastTheEndWithACheckpoint: with a checkpoint the log
// must continue the snapshot, so it may not skip indexes.
func TestTruncateFrontPastTheEndWithACheckpoint(t *testing.T) {
	dir := t.TempDir()
	l := openT(t, dir, &Options{Logger: quiet})
	defer l.Close()
	appendN(t, l, 10)
	if err := l.Checkpoint(10, writeState(10)); err != nil {
		t.Fatal(err)
	}
	for _, at := range []uint64{12, 100} {
		if err := l.TruncateFront(at); !errors.Is(err, ErrOutOfRange) {
			t.Fatalf("TruncateFront(%d) past a snapshot as of 10: %v, want ErrOutOfRange", at, err)
		}
	}
	if err := l.TruncateFront(11); err != nil {
		t.Fatalf("TruncateFront(snapshot+1): %v", err)
	}
	appendN(t, l, 1)
	checkRange(t, l, 11, 11)
}

// TestRecoveryPendingRestart simulates a crash after the commit point of a
// TruncateFront past the end (the meta file says EmptyPending) at each
// step before the flag is cleared: no segment removed yet, some removed,
// all removed, the fresh segment created. Open must find the empty log
// continuing at the new index, clear the flag, and agree with Check.
func TestRecoveryPendingRestart(t *testing.T) {
	base := newFixture(t, MinSegmentSize)
	base.build(singles(slices.Repeat([]int{1000}, 150)...)...)
	segs := base.segments()
	if len(segs) < 3 {
		t.Fatalf("want 3 segments or more, got %d", len(segs))
	}
	const at = 400
	steps := []struct {
		name   string
		remove int  // how many segments the crash let go, oldest first
		fresh  bool // the empty segment at `at` exists
	}{
		{"NoSegmentRemoved", 0, false},
		{"SomeSegmentsRemoved", 2, false},
		{"AllSegmentsRemoved", len(segs), false},
		{"FreshSegmentCreated", len(segs), true},
		{"FreshSegmentBesideOldOnes", 1, true},
	}
	for _, s := range steps {
		t.Run(s.name, func(t *testing.T) {
			f := base.clone(t)
			must(t, recovery.WriteMeta(vfs.Default, f.dir, recovery.Meta{FirstIndex: at, EmptyPending: true}))
			for _, p := range f.segments()[:s.remove] {
				must(t, vfs.Default.Remove(p))
			}
			if s.fresh {
				fh, _, err := segment.Create(vfs.Default, f.dir, at, MinSegmentSize)
				must(t, err)
				fh.Close()
			}
			for range 2 { // Check agrees before and after the repair
				st, err := recovery.Check(vfs.Default, f.dir, recovery.CheckOptions{})
				if err != nil || st.Damaged() || st.FirstIndex != at || st.NextIndex() != at {
					t.Fatalf("Check = [%d, %d), damage %v, err %v; want an empty log at %d",
						st.FirstIndex, st.NextIndex(), st.Damage, err, at)
				}
				l := f.open()
				checkRange(t, l, at, at-1)
				appendN(t, l, 3)
				checkRange(t, l, at, at+2)
				must(t, l.TruncateBack(at-1))
				f.close(l)
				if got := segmentFiles(t, f.dir); len(got) != 1 {
					t.Fatalf("segments after recovery: %v, want one", got)
				}
				m, err := recovery.ReadMeta(vfs.Default, f.dir)
				if err != nil || m.EmptyPending || m.FirstIndex != at {
					t.Fatalf("meta after recovery = %+v, %v", m, err)
				}
			}
		})
	}
}

// TestTruncateFrontBelowAnEmptyLog: an empty log without a checkpoint may
// move its start below FirstIndex; a log with records, or with a
// checkpoint, may not.
func TestTruncateFrontBelowAnEmptyLog(t *testing.T) {
	dir := t.TempDir()
	o := &Options{SegmentSize: MinSegmentSize, Logger: quiet}
	l := openT(t, dir, o)
	must(t, l.TruncateFront(50))
	must(t, l.TruncateFront(20))
	checkRange(t, l, 20, 19)
	appendN(t, l, 3)
	if err := l.TruncateFront(10); !errors.Is(err, ErrOutOfRange) {
		t.Fatalf("TruncateFront(10) below a log holding [20, 22]: %v, want ErrOutOfRange", err)
	}
	must(t, l.TruncateFront(23)) // empties it the ordinary way
	must(t, l.TruncateFront(7))
	if err := l.TruncateFront(0); !errors.Is(err, ErrOutOfRange) {
		t.Fatalf("TruncateFront(0): %v, want ErrOutOfRange", err)
	}
	appendN(t, l, 4)
	must(t, l.Checkpoint(10, writeState(10)))
	checkRange(t, l, 11, 10)
	if err := l.TruncateFront(5); !errors.Is(err, ErrOutOfRange) {
		t.Fatalf("TruncateFront(5) below an empty log continuing a snapshot as of 10: %v, want ErrOutOfRange", err)
	}
	must(t, l.Close())
	l = openT(t, dir, o)
	defer l.Close()
	checkRange(t, l, 11, 10)
	appendN(t, l, 1)
	checkRange(t, l, 11, 11)
}

// TestReadersAcrossARestart: a Reader never silently skips or re-reads
// across a restart of the log. Waiting at the end when the log restarts
// past it, it learns with ErrCompacted that the indexes it waited for will
// never hold records; when an empty log restarts below where a Reader
// stands (raft continuing after a snapshot below its old end), the
// Reader's last record is gone and it gets ErrTruncated rather than
// waiting for an index that will come back with other records.
func TestReadersAcrossARestart(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	l := openT(t, t.TempDir(), &Options{SegmentSize: MinSegmentSize, Logger: quiet})
	defer l.Close()
	appendN(t, l, 10)

	past := l.NewReader(1)
	defer past.Close()
	wantIndexes(t, readAll(t, past), indexes(1, 10))
	c := waitNext(past)
	if err := l.TruncateFront(100); err != nil {
		t.Fatal(err)
	}
	select {
	case ok := <-c:
		if ok || !errors.Is(past.Err(), ErrCompacted) {
			t.Fatalf("Reader waiting at 11 after a restart at 100: ok=%v index %d, %v; want ErrCompacted", ok, past.Index(), past.Err())
		}
	case <-time.After(10 * time.Second):
		t.Fatal("a Reader waiting at the end was not woken by a restart past it")
	}

	appendN(t, l, 5) // [100, 104]
	below := l.NewReader(100)
	defer below.Close()
	wantIndexes(t, readAll(t, below), indexes(100, 104))
	if err := l.TruncateFront(105); err != nil { // empty, continuing at 105
		t.Fatal(err)
	}
	if err := l.TruncateFront(50); err != nil { // restarted below: 50 comes next
		t.Fatal(err)
	}
	appendN(t, l, 60) // [50, 109]: 100..104 hold other records now
	if below.Next() || !errors.Is(below.Err(), ErrTruncated) {
		t.Fatalf("Reader that returned 104 before a restart at 50: index %d, %v; want ErrTruncated", below.Index(), below.Err())
	}
	fresh := l.NewReader(0)
	defer fresh.Close()
	wantIndexes(t, readAll(t, fresh), indexes(50, 109))
}

// TestAppendWokenAfterRestarts: an Append whose record was written returns
// its index even if it wakes only after restarts moved LastIndex back below
// that index. The concurrent model check found such an Append flushing
// forever (histories 10656126287033361476 and 4762913987069543267: an
// appender starved by the scheduler while another client emptied the log
// past its end, restarted it below its start and appended). The waiter is
// registered by hand, so that the late wake-up is certain rather than left
// to the scheduler.
func TestAppendWokenAfterRestarts(t *testing.T) {
	for _, noSync := range []bool{false, true} {
		t.Run(fmt.Sprintf("NoSync=%v", noSync), func(t *testing.T) {
			l := openT(t, t.TempDir(), &Options{SegmentSize: MinSegmentSize, NoSync: noSync, Logger: quiet})
			appendN(t, l, 8)
			l.mu.Lock()
			w := l.register(8, 8) // the Append of record 8, written but not yet woken
			l.mu.Unlock()
			for _, at := range []uint64{12, 7} { // past the end, then below the empty log's start
				if err := l.TruncateFront(at); err != nil {
					t.Fatalf("TruncateFront(%d): %v", at, err)
				}
			}
			if i, err := l.Append([]byte("after")); err != nil || i != 7 {
				t.Fatalf("Append after the restarts = %d, %v; want 7", i, err)
			}
			woke := make(chan error, 1)
			go func() {
				l.mu.Lock()
				defer l.mu.Unlock()
				err := l.await(w)
				l.unregister(w)
				woke <- err
			}()
			select {
			case err := <-woke:
				if err != nil {
					t.Fatalf("the Append of record 8, woken after the restarts: %v; want its index", err)
				}
			case <-time.After(10 * time.Second):
				t.Fatal("the Append of record 8 still waits 10 s after the restarts (LastIndex is 7 and will not reach 8)")
			}
		})
	}
}
