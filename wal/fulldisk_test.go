package wal

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/gojournal/journal/internal/seedtest"
	"github.com/gojournal/journal/segment"
	"github.com/gojournal/journal/vfs"
	"github.com/gojournal/journal/vfs/crashfs"
	"github.com/gojournal/journal/vfs/errorfs"
)

// These tests simulate a full disk with errorfs: ENOSPC for every
// preallocation, and for creating the meta file's replacement as long as
// the space the log could free is still held.

// fullDisk returns an errorfs over the OS that refuses to preallocate and,
// while full() holds, to create the meta file's replacement.
func fullDisk(full func() bool) *errorfs.FS { return fullDiskOver(vfs.Default, full) }

func fullDiskOver(fsys vfs.FS, full func() bool) *errorfs.FS {
	return errorfs.Wrap(fsys,
		errorfs.Rule{Op: errorfs.OpPreallocate, Sticky: true, Err: syscall.ENOSPC},
		errorfs.Rule{Op: errorfs.OpCreate, Sticky: true, Err: syscall.ENOSPC, Match: func(p string) bool {
			return strings.Contains(filepath.Base(p), ".tmp-journal.meta") && full()
		}})
}

// fileSize is the size of the file at path, -1 if it cannot be read.
func fileSize(path string) int64 {
	fi, err := os.Stat(path)
	if err != nil {
		return -1
	}
	return fi.Size()
}

// TestTruncateFrontFreesSpaceOnAFullDisk: on a full disk TruncateFront must
// still release records (and their segments), or an application could
// never free space. The log gives back the active segment's preallocated
// space to write the meta file.
func TestTruncateFrontFreesSpaceOnAFullDisk(t *testing.T) {
	dir := t.TempDir()
	o := &Options{SegmentSize: MinSegmentSize, Logger: quiet}
	l := openT(t, dir, o)
	appendN(t, l, 6000) // several sealed segments
	l.Close()
	var active string
	efs := fullDisk(func() bool { return fileSize(active) >= MinSegmentSize })
	o.FS = efs
	l = openT(t, dir, o)
	defer l.Close()
	active = l.active.path
	before := len(listDir(t, dir))
	if err := l.TruncateFront(5000); err != nil {
		t.Fatalf("TruncateFront on a full disk: %v", err)
	}
	if efs.Injected() == 0 {
		t.Fatal("the disk was never full: the test tests nothing")
	}
	if after := len(listDir(t, dir)); after >= before {
		t.Fatalf("no segment was removed: %d files before, %d after", before, after)
	}
	checkDisk(t, l, "after giving back the preallocated space")
	appendN(t, l, 10) // appends continue, growing the segment
	checkRange(t, l, 5000, 6010)
	checkDisk(t, l, "after appends grew the segment")
	l.Close()
	l = openT(t, dir, &Options{SegmentSize: MinSegmentSize, Logger: quiet})
	defer l.Close()
	checkRange(t, l, 5000, 6010)
}

// TestTruncateFrontOnAFullDiskFailsCleanly: when even that does not free
// enough, TruncateFront reports ENOSPC and leaves the log as it was, and
// usable: nothing was committed.
func TestTruncateFrontOnAFullDiskFailsCleanly(t *testing.T) {
	dir := t.TempDir()
	l := openT(t, dir, &Options{SegmentSize: MinSegmentSize, Logger: quiet})
	appendN(t, l, 100)
	l.Close()
	efs := fullDisk(func() bool { return true })
	l = openT(t, dir, &Options{SegmentSize: MinSegmentSize, Logger: quiet, FS: efs})
	defer l.Close()
	if err := l.TruncateFront(50); !errors.Is(err, syscall.ENOSPC) || errors.Is(err, ErrFailed) {
		t.Fatalf("TruncateFront with no space at all: %v, want ENOSPC and a usable log", err)
	}
	appendN(t, l, 1)
	checkRange(t, l, 1, 101)
}

// TestOpenOnAFullDisk: Open of an existing log must not need new space
// (a new log on a full disk still fails to open: it has nothing to free):
// neither to restore the preallocation of an active segment that recovery
// cut, nor to preallocate the segment it starts after a sealed one.
func TestOpenOnAFullDisk(t *testing.T) {
	cases := map[string]func(t *testing.T, dir string, l *Log){
		"active segment cut short": func(t *testing.T, dir string, l *Log) {
			path, end := l.active.path, l.active.tail
			l.Close()
			truncate(t, path, end) // as recovery leaves a cut torn tail
		},
		"newest segment sealed": func(t *testing.T, dir string, l *Log) {
			if err := l.TruncateBack(l.LastIndex() - 5); err != nil {
				t.Fatal(err)
			}
			path := l.active.path
			l.Close()
			// A crash after sealing, before the next segment existed.
			if err := os.Remove(path); err != nil {
				t.Fatal(err)
			}
		},
	}
	for name, prepare := range cases {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			l := openT(t, dir, &Options{SegmentSize: MinSegmentSize, Logger: quiet})
			appendN(t, l, 3000)
			prepare(t, dir, l)
			efs := fullDisk(func() bool { return true })
			l, err := Open(dir, &Options{SegmentSize: MinSegmentSize, Logger: quiet, FS: efs})
			if err != nil {
				t.Fatalf("Open on a full disk: %v", err)
			}
			if efs.Injected() == 0 {
				t.Fatal("Open never preallocated: the test tests nothing")
			}
			checkDisk(t, l, "after Open on a full disk")
			last := l.LastIndex()
			appendN(t, l, 3)
			checkDisk(t, l, "after appends on a full disk")
			l.Close()
			checkDisk(t, l, "after Close (its sync frame) on a full disk")
			l = openT(t, dir, &Options{SegmentSize: MinSegmentSize, Logger: quiet})
			defer l.Close()
			checkRange(t, l, 1, last+3)
		})
	}
}

// TestTruncateFrontOnAFullDiskCrash crashes a TruncateFront that frees the
// active segment's preallocation after each of its file operations in
// turn: every crash state must open, as before or after the truncation,
// with every record kept.
func TestTruncateFrontOnAFullDiskCrash(t *testing.T) {
	rng := seedtest.Rand(t)
	build := func() (*crashfs.FS, string) {
		fsys := crashfs.New()
		l := openT(t, "/log", &Options{SegmentSize: MinSegmentSize, Logger: quiet, FS: fsys})
		appendN(t, l, 3000)
		active := l.active.path
		l.Close()
		return fsys, active
	}
	for k := 1; ; k++ {
		fsys, active := build()
		efs := fullDiskOver(fsys, func() bool {
			fi, err := fsys.Stat(active)
			return err == nil && fi.Size() >= MinSegmentSize
		})
		l := openT(t, "/log", &Options{SegmentSize: MinSegmentSize, Logger: quiet, FS: efs})
		fsys.SetCrashAfter(fsys.Ops() + k)
		err := l.TruncateFront(2500)
		l.Close()
		for _, mode := range []crashfs.CrashMode{crashfs.SyncedOnly, crashfs.RandomSectors, crashfs.Garbled} {
			st := fsys.Crash(mode, rng)
			l, oerr := Open("/log", &Options{SegmentSize: MinSegmentSize, Logger: quiet, FS: st})
			if oerr != nil {
				t.Fatalf("crash after op %d of TruncateFront (%v), %v state: Open: %v", k, err, mode, oerr)
			}
			first := l.FirstIndex()
			if (first != 1 && first != 2500) || (err == nil && first != 2500) {
				t.Fatalf("crash after op %d (TruncateFront: %v), %v state: FirstIndex %d, want 1 or 2500", k, err, mode, first)
			}
			checkRange(t, l, first, 3000)
			l.Close()
		}
		if !fsys.Crashed() {
			if err != nil {
				t.Fatalf("TruncateFront without a crash: %v", err)
			}
			// The meta file. (Close sealed the active segment, so Open
			// preallocated it again before the disk filled.)
			if efs.Injected() < 1 {
				t.Fatalf("%d calls failed: the disk was never full", efs.Injected())
			}
			t.Logf("crash points: %d", k)
			return
		}
	}
}

// TestRotationOnAFullDisk: when the background spare finds the disk full,
// appends go on in the active segment, and the Append that needs the next
// segment tries to create it itself: it must fail with ENOSPC, not be
// acknowledged, and leave every acknowledged record in place.
func TestRotationOnAFullDisk(t *testing.T) {
	dir := t.TempDir()
	efs := errorfs.Wrap(vfs.Default)
	o := &Options{SegmentSize: MinSegmentSize, Logger: quiet, FS: efs}
	l := openT(t, dir, o)
	efs.Add(errorfs.Rule{Op: errorfs.OpPreallocate, Sticky: true, Err: syscall.ENOSPC})
	var err error
	for err == nil && l.LastIndex() < 100_000 {
		_, err = l.Append(record(l.LastIndex() + 1))
	}
	if !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("Append that needs a segment on a full disk: %v, want ENOSPC", err)
	}
	spareFaults := 0
	for _, e := range efs.InjectedErrors() {
		if filepath.Base(e.Path) == segment.SpareName {
			spareFaults++
		}
	}
	if spareFaults < 2 {
		t.Fatalf("%d faults on the spare, want the background one and the rotation's own", spareFaults)
	}
	if _, err := l.Append(record(l.LastIndex() + 1)); err == nil {
		t.Fatal("Append after a rotation found no room succeeded")
	}
	acked := l.LastIndex()
	l.Close()
	l = openT(t, dir, &Options{SegmentSize: MinSegmentSize, Logger: quiet})
	defer l.Close()
	checkRange(t, l, 1, acked)
}
