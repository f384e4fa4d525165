package wal

import (
	"context"
	"errors"
	"fmt"
	"github.com/gojournal/journal/vfs"
	"github.com/gojournal/journal/vfs/errorfs"
	"go.uber.org/goleak"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/gojournal/journal/recovery"
)

// TestReadOnlyWithAGarbledTailFile: the tail file is never synced, so a
// power loss may leave it empty (its directory entry made durable by a
// later directory fsync, its bytes lost) or garbled, until the writer's
// next Open rewrites it. A follower opened meanwhile must show the log as
// Open would recover it, as it does without a tail file, not fail.
func TestReadOnlyWithAGarbledTailFile(t *testing.T) {
	for _, c := range []struct {
		name   string
		garble func(b []byte) []byte
	}{
		{"Empty", func([]byte) []byte { return nil }},
		{"Short", func(b []byte) []byte { return b[:20] }},
		{"Zeroed", func(b []byte) []byte { return make([]byte, len(b)) }},
		{"BadChecksum", func(b []byte) []byte { b[30] ^= 0xff; return b }},
	} {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			w := openT(t, dir, &Options{SegmentSize: MinSegmentSize, Logger: quiet})
			appendN(t, w, 200)
			must(t, w.Close())
			tail := filepath.Join(dir, recovery.TailName)
			must(t, os.WriteFile(tail, c.garble(readFile(t, tail)), 0o644))
			f, err := OpenReadOnly(dir, &Options{Logger: quiet})
			if err != nil {
				t.Fatalf("OpenReadOnly with a garbled tail file: %v", err)
			}
			defer f.Close()
			checkRange(t, f, 1, 200)
			r := f.NewReader(0)
			defer r.Close()
			wantIndexes(t, readAll(t, r), indexes(1, 200))
			must(t, r.Err())
		})
	}
}

// TestReaderWhoseRecordWasReplacedThenReleased: a Reader's current record
// (10) is dropped by a TruncateBack, its index filled again, and then
// released by a TruncateFront to just after it. The Reader's next record
// (11) belongs to the new history, which does not contain the record it
// returned: it must stop with ErrTruncated, not go on from 11 as if 10
// had never been rolled back (it did, because its current record lies
// below FirstIndex, where it was not compared). The same through a
// read-only Log.
func TestReaderWhoseRecordWasReplacedThenReleased(t *testing.T) {
	for _, readOnly := range []bool{false, true} {
		t.Run(fmt.Sprintf("readOnly=%v", readOnly), func(t *testing.T) {
			dir := t.TempDir()
			l := openT(t, dir, &Options{Logger: quiet})
			defer l.Close()
			appendN(t, l, 10)
			from := l
			if readOnly {
				f, err := OpenReadOnly(dir, &Options{Logger: quiet})
				must(t, err)
				defer f.Close()
				from = f
			}
			r := from.NewReader(1)
			defer r.Close()
			wantIndexes(t, readAll(t, r), indexes(1, 10))
			must(t, l.TruncateBack(5))
			appendN(t, l, 7) // 6..12 again
			must(t, l.TruncateFront(11))
			wantReaderErr(t, r, ErrTruncated, "record 10")
		})
	}
}

// TestReaderWhoseRecordWasReplacedThenReleasedAtARotation: as above, but
// the new history rotates right after the Reader's record, so the
// segment holding the next record began after it and no segment left in
// the log tells that the record was replaced. The writer's Log, which
// saw the TruncateBack, must still stop its Reader with ErrTruncated.
func TestReaderWhoseRecordWasReplacedThenReleasedAtARotation(t *testing.T) {
	l := openT(t, t.TempDir(), &Options{SegmentSize: MinSegmentSize, Logger: quiet})
	defer l.Close()
	appendN(t, l, 10)
	r := l.NewReader(1)
	defer r.Close()
	wantIndexes(t, readAll(t, r), indexes(1, 10))
	must(t, l.TruncateBack(5))
	big := make([]byte, MinSegmentSize/6)
	for range 6 { // 6..11, 11 in a new segment
		_, err := l.Append(big)
		must(t, err)
	}
	if l.holder(11).FirstIndex != 11 {
		t.Fatalf("record 11 is in the segment starting at %d; the test needs it to start one", l.holder(11).FirstIndex)
	}
	must(t, l.TruncateFront(11))
	wantReaderErr(t, r, ErrTruncated, "record 10")
}

// TestReaderWaitingWhenTheWriterFails: a Reader waiting at the end of the
// log when an fdatasync fails (the log is then failed: no record will
// come) returns promptly with the log's ErrFailed, as does one that
// starts waiting afterwards; Close then leaves no goroutine behind.
func TestReaderWaitingWhenTheWriterFails(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	efs := errorfs.Wrap(vfs.Default)
	l := openT(t, t.TempDir(), &Options{FS: efs, Logger: quiet})
	appendN(t, l, 3)
	r := l.NewReader(0)
	defer r.Close()
	wantIndexes(t, readAll(t, r), indexes(1, 3))
	done := make(chan bool, 1)
	go func() { done <- r.NextContext(context.Background()) }()
	time.Sleep(20 * time.Millisecond) // let it wait
	efs.Add(errorfs.Rule{Op: errorfs.OpSync, Sticky: true})
	if _, err := l.Append([]byte("lost")); err == nil {
		t.Fatal("Append succeeded with every fdatasync failing")
	}
	select {
	case ok := <-done:
		if ok || !errors.Is(r.Err(), ErrFailed) {
			t.Fatalf("waiting Reader: ok=%v, %v; want ErrFailed", ok, r.Err())
		}
	case <-time.After(5 * time.Second):
		t.Fatal("a Reader waiting at the end was not woken when the log failed")
	}
	late := l.NewReader(4)
	defer late.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if late.NextContext(ctx) || !errors.Is(late.Err(), ErrFailed) {
		t.Fatalf("a Reader waiting on a failed log: %v, want ErrFailed", late.Err())
	}
	l.Close()
}
