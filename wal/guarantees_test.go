package wal

// Tests written by an audit of the README's Guarantees, Assumptions and
// Limitations sections (GUARANTEES-AUDIT.md): each checks one claim those
// sections make that no other test checked as stated.

import (
	"bytes"
	"errors"
	"io"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gojournal/journal/segment"
	"github.com/gojournal/journal/vfs"
	"github.com/gojournal/journal/vfs/errorfs"
)

// "A failed write or fdatasync poisons the log: that call and every later
// write return ErrFailed until the log is reopened (a failed fsync is never
// retried as if it had worked)." One fdatasync fails once, on real files;
// the disk is healthy again at once, yet the failing call and every later
// write (Append, AppendBatch, Sync, TruncateFront, TruncateBack, Checkpoint)
// return ErrFailed, reads show the log as before the failing call, and a
// reopened log holds every acknowledged record and takes appends again.
// In NoSync mode the failing call is Sync, and a second Sync must not
// return nil (that would acknowledge records whose fdatasync failed).
func TestFailedFdatasyncPoisonsTheLog(t *testing.T) {
	for _, noSync := range []bool{false, true} {
		name := "Sync"
		if noSync {
			name = "NoSync"
		}
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			efs := errorfs.Wrap(vfs.Default)
			opts := &Options{Logger: quiet, FS: efs, NoSync: noSync}
			l := openT(t, dir, opts)
			appendN(t, l, 5)
			if err := l.Sync(); err != nil {
				t.Fatal(err)
			}
			efs.Add(errorfs.Rule{Op: errorfs.OpSync, Match: func(p string) bool { return strings.HasSuffix(p, segment.Name(1)) }})
			var failing error
			if noSync {
				if _, err := l.Append(record(6)); err != nil {
					t.Fatalf("NoSync Append before the failing Sync: %v", err)
				}
				failing = l.Sync()
			} else {
				_, failing = l.Append(record(6))
			}
			if efs.Injected() != 1 {
				t.Fatalf("injected %d failures, want 1", efs.Injected())
			}
			if !errors.Is(failing, ErrFailed) || !errors.Is(failing, syscall.EIO) {
				t.Fatalf("the call whose fdatasync failed: %v, want ErrFailed wrapping EIO", failing)
			}
			// The disk works again: nothing may succeed all the same.
			if err := l.Sync(); !errors.Is(err, ErrFailed) {
				t.Errorf("Sync after a failed fdatasync: %v, want ErrFailed (never retried as if it had worked)", err)
			}
			if _, err := l.Append(record(7)); !errors.Is(err, ErrFailed) {
				t.Errorf("Append after a failed fdatasync: %v, want ErrFailed", err)
			}
			if _, err := l.AppendBatch([][]byte{record(7), record(8)}); !errors.Is(err, ErrFailed) {
				t.Errorf("AppendBatch after a failed fdatasync: %v, want ErrFailed", err)
			}
			if err := l.TruncateFront(2); !errors.Is(err, ErrFailed) {
				t.Errorf("TruncateFront after a failed fdatasync: %v, want ErrFailed", err)
			}
			if err := l.TruncateBack(3); !errors.Is(err, ErrFailed) {
				t.Errorf("TruncateBack after a failed fdatasync: %v, want ErrFailed", err)
			}
			if err := l.Checkpoint(2, func(w io.Writer) error { _, err := w.Write([]byte("state")); return err }); !errors.Is(err, ErrFailed) {
				t.Errorf("Checkpoint after a failed fdatasync: %v, want ErrFailed", err)
			}
			// "After ErrFailed, reads show the log as it was before the call
			// that failed."
			// The failing call is Append 6 (synced mode) or the Sync after
			// it (NoSync: Append 6 had returned, so the log held it).
			before := uint64(5)
			if noSync {
				before = 6
			}
			if f, g := l.FirstIndex(), l.LastIndex(); f != 1 || g != before {
				t.Errorf("a failed log reports [%d, %d], want [1, %d] as before the failing call", f, g, before)
			}
			for i := uint64(1); i <= 5; i++ {
				if got, err := l.Read(i); err != nil || !bytes.Equal(got, record(i)) {
					t.Errorf("Read(%d) of a failed log = %q, %v", i, got, err)
				}
			}
			if err := l.Close(); !errors.Is(err, ErrFailed) {
				t.Errorf("Close of a failed log: %v, want ErrFailed", err)
			}
			// "until the log is reopened"
			l = openT(t, dir, &Options{Logger: quiet})
			defer l.Close()
			if f, g := l.FirstIndex(), l.LastIndex(); f != 1 || (g != 5 && g != 6) {
				t.Fatalf("reopened log [%d, %d], want [1, 5] or [1, 6] (the failed call's record may or may not be there)", f, g)
			}
			for i := uint64(1); i <= l.LastIndex(); i++ {
				if got, err := l.Read(i); err != nil || !bytes.Equal(got, record(i)) {
					t.Errorf("reopened Read(%d) = %q, %v", i, got, err)
				}
			}
			appendN(t, l, 2)
		})
	}
}

// "AppendBatch: a batch whose frames, uncompressed, exceed MaxBatchSize
// gets ErrTooLarge" and nothing is written. The records share one buffer,
// left untouched, so the test costs little memory.
func TestBatchOverMaxBatchSizeWritesNothing(t *testing.T) {
	dir := t.TempDir()
	l := openT(t, dir, &Options{Logger: quiet})
	appendN(t, l, 3)
	if err := l.Sync(); err != nil {
		t.Fatal(err)
	}
	before := snapshot(t, dir)
	shared := make([]byte, MaxRecordSize)
	var batch [][]byte
	for size := 0; size <= MaxBatchSize; size += len(shared) {
		batch = append(batch, shared)
	}
	if i, err := l.AppendBatch(batch); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("AppendBatch of %d records of %d bytes = %d, %v; want ErrTooLarge", len(batch), len(shared), i, err)
	}
	sameSnapshot(t, dir, before)
	checkRange(t, l, 1, 3)
	appendN(t, l, 1) // the log goes on
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	l = openT(t, dir, nil)
	defer l.Close()
	checkRange(t, l, 1, 4)
}

// "Open takes an exclusive lock [...]. OpenReadOnly takes none and writes
// nothing." A reader opened first, on a log a crash left unsealed (a
// repair waiting for the writer), must neither keep the writer out nor
// change a byte; the writer then opens, repairs, appends, and a second
// writer is refused with ErrLocked while the reader still follows.
func TestReadOnlyFirstTakesNoLock(t *testing.T) {
	f := newFixture(t, MinSegmentSize)
	l := f.open()
	f.appendN(l, 40, 3000)
	f.close(l)
	f.unclose()
	before := snapshot(t, f.dir)
	ro, err := OpenReadOnly(f.dir, &Options{Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	defer ro.Close()
	if ro.LastIndex() != 40 {
		t.Fatalf("read-only log ends at %d, want 40", ro.LastIndex())
	}
	r := ro.NewReader(1)
	for i := uint64(1); i <= 40; i++ {
		if !r.Next() || !bytes.Equal(r.Record(), f.recs[i-1]) {
			t.Fatalf("read-only Reader at %d: %v", i, r.Err())
		}
	}
	sameSnapshot(t, f.dir, before)
	w := f.open() // the reader holds no lock
	defer w.Close()
	if _, err := Open(f.dir, &Options{Logger: quiet}); !errors.Is(err, ErrLocked) {
		t.Fatalf("a second writer: %v, want ErrLocked", err)
	}
	if _, err := w.Append([]byte("after")); err != nil {
		t.Fatal(err)
	}
	within(t, 10*time.Second, "the reader following the writer", func() {
		if !r.Next() || string(r.Record()) != "after" {
			t.Errorf("reader after the writer's append: %q, %v", r.Record(), r.Err())
		}
	})
}
