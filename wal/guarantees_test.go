package wal

// Tests written by an audit of the README's Guarantees, Assumptions and
// Limitations sections (GUARANTEES-AUDIT.md): each checks one claim those
// sections make that no other test checked as stated.

import (
	"bytes"
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gojournal/journal/checkpoint"
	"github.com/gojournal/journal/recovery"
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

// "Every name journal owns in the directory (segments, journal.meta,
// journal.manifest, journal.tail, snapshot, LOCK, .tmp-*) must be a regular
// file or a symlink to one: a directory, FIFO, socket or device there makes
// Open fail [...] (errors.Is(err, vfs.ErrNotRegular); a directory under
// snapshot is ErrFormat)." Each kind at each name, after a clean Close and
// after a crash (no manifest), with a default Open and with Verify.
func TestOpenRefusesNonRegularFilesAtItsNames(t *testing.T) {
	kinds := []struct {
		name string
		make func(t *testing.T, path string)
	}{
		{"Directory", func(t *testing.T, path string) {
			if err := os.Mkdir(path, 0o755); err != nil {
				t.Fatal(err)
			}
		}},
		{"FIFO", func(t *testing.T, path string) {
			if err := syscall.Mkfifo(path, 0o644); err != nil {
				t.Skipf("mkfifo: %v", err)
			}
		}},
		{"Socket", func(t *testing.T, path string) {
			// A socket's path is limited to about 100 bytes: bind in the
			// directory, under a short relative name, then rename.
			short := filepath.Join(filepath.Dir(path), "s")
			ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: short, Net: "unix"})
			if err != nil {
				t.Skipf("unix socket: %v", err)
			}
			ln.SetUnlinkOnClose(false)
			ln.Close()
			if err := os.Rename(short, path); err != nil {
				t.Fatal(err)
			}
		}},
		{"Device", func(t *testing.T, path string) {
			if err := os.Symlink(os.DevNull, path); err != nil {
				t.Fatal(err)
			}
		}},
	}
	names := []struct {
		name    string
		file    func(dir string) string
		wantErr error
	}{
		{"SealedSegment", func(string) string { return segment.Name(1) }, vfs.ErrNotRegular},
		{"NewestSegment", nil, vfs.ErrNotRegular}, // filled in per directory
		{"Meta", func(string) string { return recovery.MetaName }, vfs.ErrNotRegular},
		{"Manifest", func(string) string { return recovery.ManifestName }, vfs.ErrNotRegular},
		{"Tail", func(string) string { return recovery.TailName }, vfs.ErrNotRegular},
		{"Lock", func(string) string { return recovery.LockName }, vfs.ErrNotRegular},
		{"Temporary", func(string) string { return vfs.TempPrefix + recovery.MetaName + "-1" }, vfs.ErrNotRegular},
		// Any kind of file under snapshot is ErrFormat (checkpoint's
		// openChecked: no snapshot, not an I/O error), not only a
		// directory as the README says: README.proposed.md.
		{"Snapshot", func(string) string { return checkpoint.FileName }, ErrFormat},
	}
	build := func(t *testing.T, clean bool) (dir, newest string) {
		f := newFixture(t, MinSegmentSize)
		l := f.open()
		for l.Metrics().Segments < 3 {
			f.appendN(l, 1, 4096)
		}
		if err := l.TruncateFront(2); err != nil { // writes journal.meta
			t.Fatal(err)
		}
		f.close(l)
		if !clean {
			f.unclose() // as a crash leaves it: no manifest, the newest unsealed
		}
		return f.dir, filepath.Base(f.newest())
	}
	for _, clean := range []bool{true, false} {
		for _, n := range names {
			for _, k := range kinds {
				state := "AfterCrash"
				if clean {
					state = "AfterClose"
				}
				t.Run(state+"/"+n.name+"/"+k.name, func(t *testing.T) {
					dir, newest := build(t, clean)
					file := newest
					if n.file != nil {
						file = n.file(dir)
					}
					path := filepath.Join(dir, file)
					os.Remove(path)
					k.make(t, path)
					for _, verify := range []bool{false, true} {
						var err error
						within(t, 10*time.Second, "Open", func() {
							var l *Log
							l, err = Open(dir, &Options{Logger: quiet, Verify: verify})
							if err == nil {
								l.Close()
							}
						})
						want := n.wantErr
						if err == nil && clean && n.name == "SealedSegment" && !verify {
							// "A sealed segment damaged while the log was
							// closed is reported [...] when it is first
							// read, not by a default Open."
							within(t, 10*time.Second, "Read", func() {
								l, oerr := Open(dir, &Options{Logger: quiet})
								if oerr != nil {
									err = oerr
									return
								}
								defer l.Close()
								for i := l.FirstIndex(); i <= l.LastIndex() && err == nil; i++ {
									_, err = l.Read(i)
								}
							})
						}
						if !errors.Is(err, want) {
							t.Errorf("Open (Verify %v) with a %s at %s: %v, want %v", verify, k.name, file, err, want)
						} else if !strings.Contains(err.Error(), file) {
							t.Errorf("Open's error does not name %s: %v", file, err)
						}
					}
				})
			}
		}
	}
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
