package wal

import (
	"context"
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/gojournal/journal/recovery"
	"github.com/gojournal/journal/vfs"
)

// readOnlyFS is a read-only mount: every call that would change anything
// fails with EROFS, and is counted, so a test can assert that none was
// even tried.
type readOnlyFS struct {
	vfs.FS
	tried atomic.Int64
}

type readOnlyFile struct {
	vfs.File
	fs *readOnlyFS
}

func (r *readOnlyFS) refuse(op, name string) error {
	r.tried.Add(1)
	return &fs.PathError{Op: op, Path: name, Err: syscall.EROFS}
}

func (r *readOnlyFS) OpenFile(name string, flag int, perm fs.FileMode) (vfs.File, error) {
	if flag&(os.O_WRONLY|os.O_RDWR|os.O_CREATE|os.O_TRUNC|os.O_APPEND) != 0 {
		return nil, r.refuse("open", name)
	}
	f, err := r.FS.OpenFile(name, flag, perm)
	if err != nil {
		return nil, err
	}
	return readOnlyFile{f, r}, nil
}
func (r *readOnlyFS) Remove(name string) error               { return r.refuse("remove", name) }
func (r *readOnlyFS) Rename(old, _ string) error             { return r.refuse("rename", old) }
func (r *readOnlyFS) MkdirAll(d string, _ fs.FileMode) error { return r.refuse("mkdir", d) }
func (r *readOnlyFS) SyncDir(d string) error                 { return r.refuse("syncdir", d) }
func (r *readOnlyFS) Lock(name string) (io.Closer, error) {
	return nil, r.refuse("lock", name)
}
func (f readOnlyFile) WriteAt(p []byte, off int64) (int, error) {
	return 0, f.fs.refuse("write", f.Name())
}
func (f readOnlyFile) Sync() error             { return f.fs.refuse("sync", f.Name()) }
func (f readOnlyFile) Truncate(int64) error    { return f.fs.refuse("truncate", f.Name()) }
func (f readOnlyFile) Preallocate(int64) error { return f.fs.refuse("preallocate", f.Name()) }
func (f readOnlyFile) Chmod(fs.FileMode) error { return f.fs.refuse("chmod", f.Name()) }

// openFollower opens dir read-only through a read-only file system.
func openFollower(t *testing.T, dir string) (*Log, *readOnlyFS) {
	t.Helper()
	ro := &readOnlyFS{FS: vfs.Default}
	f, err := OpenReadOnly(dir, &Options{Logger: quiet, FS: ro})
	if err != nil {
		t.Fatalf("OpenReadOnly: %v", err)
	}
	return f, ro
}

// nextWithin is NextContext with a deadline, failing the test if no
// record comes (or the Reader stops) in time.
func nextWithin(t *testing.T, r *Reader) (uint64, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if !r.NextContext(ctx) {
		t.Fatalf("NextContext: %v", r.Err())
	}
	return r.Index(), string(r.Record())
}

// wantStop checks that the next NextContext stops the Reader with target.
func wantStop(t *testing.T, r *Reader, target error, says string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if r.NextContext(ctx) {
		t.Fatalf("returned record %d, want %v", r.Index(), target)
	}
	if err := r.Err(); !errors.Is(err, target) || !strings.Contains(err.Error(), says) {
		t.Fatalf("stopped with %v, want %v saying %q", err, target, says)
	}
}

// A read-only Log in the writer's process follows appends, rotations,
// both truncations and a reopened writer, through a file system that
// refuses every change, and never tries one.
func TestReadOnlyFollows(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	dir := t.TempDir()
	opts := &Options{SegmentSize: MinSegmentSize, Logger: quiet}
	w := openT(t, dir, opts)
	defer func() { w.Close() }()
	appendN(t, w, 300) // several segments
	f, ro := openFollower(t, dir)
	defer f.Close()
	checkRange(t, f, 1, 300)

	follow := f.NewReader(1)
	defer follow.Close()
	for i := uint64(1); i <= 300; i++ {
		if got, rec := nextWithin(t, follow); got != i || rec != string(record(i)) {
			t.Fatalf("got %d %q, want %d", got, rec, i)
		}
	}
	// Appends while it waits, across rotations.
	go func() {
		for i := uint64(301); i <= 500; i++ {
			if _, err := w.Append(record(i)); err != nil {
				t.Error(err)
				return
			}
		}
	}()
	for i := uint64(301); i <= 500; i++ {
		if got, rec := nextWithin(t, follow); got != i || rec != string(record(i)) {
			t.Fatalf("got %d %q, want %d", got, rec, i)
		}
	}

	for _, err := range []error{
		func() error { _, err := f.Append(nil); return err }(),
		f.Sync(), f.TruncateFront(2), f.TruncateBack(400),
	} {
		if !errors.Is(err, ErrReadOnly) {
			t.Fatalf("a change through a read-only Log: %v, want ErrReadOnly", err)
		}
	}

	// TruncateFront overtakes a Reader in the middle and one created
	// below; Read no longer finds the records.
	mid := f.NewReader(440)
	defer mid.Close()
	nextWithin(t, mid)
	if err := w.TruncateFront(460); err != nil {
		t.Fatal(err)
	}
	wantStop(t, mid, ErrCompacted, "[441, 459]")
	below := f.NewReader(100)
	defer below.Close()
	wantStop(t, below, ErrCompacted, "[100, 459]")
	if _, err := f.Read(459); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Read(459) after TruncateFront(460): %v", err)
	}

	// TruncateBack drops the record follow returned last.
	if err := w.TruncateBack(480); err != nil {
		t.Fatal(err)
	}
	wantStop(t, follow, ErrTruncated, "record 500")
	again := f.NewReader(470)
	defer again.Close()
	for i := uint64(470); i <= 480; i++ {
		if got, _ := nextWithin(t, again); got != i {
			t.Fatalf("got %d, want %d", got, i)
		}
	}
	if _, err := w.Append([]byte("new-481")); err != nil {
		t.Fatal(err)
	}
	if got, rec := nextWithin(t, again); got != 481 || rec != "new-481" {
		t.Fatalf("after TruncateBack: %d %q, want 481 new-481", got, rec)
	}

	// The writer closes and reopens; the Reader goes on.
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	w = openT(t, dir, opts)
	if _, err := w.Append([]byte("new-482")); err != nil {
		t.Fatal(err)
	}
	if got, rec := nextWithin(t, again); got != 482 || rec != "new-482" {
		t.Fatalf("after the writer reopened: %d %q, want 482 new-482", got, rec)
	}
	if first, last := f.FirstIndex(), f.LastIndex(); first != 460 || last != 482 {
		t.Fatalf("the follower holds [%d, %d], want [460, 482]", first, last)
	}
	if n := ro.tried.Load(); n != 0 {
		t.Fatalf("the read-only Log tried %d changes", n)
	}
}

// A read-only Log sees a NoSync writer's records only once synced.
func TestReadOnlySeesOnlyDurable(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	dir := t.TempDir()
	w := openT(t, dir, &Options{NoSync: true, Logger: quiet})
	defer w.Close()
	appendN(t, w, 10)
	syncT(t, w)
	appendN(t, w, 5)
	f, _ := openFollower(t, dir)
	defer f.Close()
	r := f.NewReader(1)
	defer r.Close()
	wantIndexes(t, readAll(t, r), indexes(1, 10))
	if last := f.LastIndex(); last != 10 {
		t.Fatalf("the follower's LastIndex is %d before the Sync, want 10", last)
	}
	syncT(t, w)
	for i := uint64(11); i <= 15; i++ {
		if got, _ := nextWithin(t, r); got != i {
			t.Fatalf("after Sync: %d, want %d", got, i)
		}
	}
}

// A read-only Log of a directory no writer ever published to (or whose
// writer is gone) shows it as Open would recover it; it needs no writer.
func TestReadOnlyWithoutWriter(t *testing.T) {
	dir := t.TempDir()
	w := openT(t, dir, &Options{SegmentSize: MinSegmentSize, Logger: quiet})
	appendN(t, w, 200)
	must(t, w.Close())
	must(t, os.Remove(dir+"/journal.tail"))
	f, ro := openFollower(t, dir)
	defer f.Close()
	checkRange(t, f, 1, 200)
	r := f.NewReader(0)
	defer r.Close()
	wantIndexes(t, readAll(t, r), indexes(1, 200))
	if err := r.Err(); err != nil {
		t.Fatal(err)
	}
	if n := ro.tried.Load(); n != 0 {
		t.Fatalf("the read-only Log tried %d changes", n)
	}
	if _, err := os.Stat(dir + "/journal.tail"); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("the read-only Log created the tail file: %v", err)
	}
}

// TestReadOnlyAfterWriterKilledWhileSealing: a writer killed between
// sealing its segment at Close and publishing that in the tail file leaves
// the tail naming the segment open while the directory holds it sealed. A
// follower opened then takes the directory's view (the segment sealed, an
// empty active segment after it, no file). The next writer unseals the
// segment and appends: the tail names the same open segment again, with
// more records, which the follower must not read through its view's active
// segment, which has no file (it panicked): it takes a new view.
func TestReadOnlyAfterWriterKilledWhileSealing(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "log")
	opts := Options{Logger: quiet}
	w := openT(t, dir, &opts)
	for i := range 10 {
		if _, err := w.Append([]byte{byte(i)}); err != nil {
			t.Fatal(err)
		}
	}
	tail := filepath.Join(dir, recovery.TailName)
	open := readFile(t, tail) // as published before Close: the segment open
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(tail, open, 0o644); err != nil { // killed before Close published
		t.Fatal(err)
	}
	f, err := OpenReadOnly(dir, &opts)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if got := f.LastIndex(); got != 10 {
		t.Fatalf("follower sees up to %d, want 10", got)
	}
	w = openT(t, dir, &opts)
	defer w.Close()
	for i := 10; i < 15; i++ {
		if _, err := w.Append([]byte{byte(i)}); err != nil {
			t.Fatal(err)
		}
	}
	if got := f.LastIndex(); got != 15 {
		t.Fatalf("follower sees up to %d after the next writer appended, want 15", got)
	}
	for i := uint64(1); i <= 15; i++ {
		if rec, err := f.Read(i); err != nil || len(rec) != 1 || rec[0] != byte(i-1) {
			t.Fatalf("follower Read(%d) = %v, %v", i, rec, err)
		}
	}
}
