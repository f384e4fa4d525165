package vfs_test

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/gojournal/journal/vfs"
	"github.com/gojournal/journal/vfs/crashfs"
	"github.com/gojournal/journal/vfs/errorfs"
)

// The layout of the file dataLayout writes: data at [0, 4 KiB) and
// [4 MiB, 4 MiB+4 KiB), preallocated space elsewhere, 8 MiB in all.
const (
	second    = 4 << 20
	written   = 4 << 10
	allocated = 8 << 20
)

// dataLayout creates the file and writes the layout.
func dataLayout(t *testing.T, fsys vfs.FS, path string) vfs.File {
	t.Helper()
	f, err := fsys.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	b := bytes.Repeat([]byte{0xab}, written)
	if err := f.Preallocate(allocated); err != nil {
		t.Fatal(err)
	}
	for _, off := range []int64{0, second} {
		if _, err := f.WriteAt(b, off); err != nil {
			t.Fatal(err)
		}
	}
	return f
}

// checkData checks File.Data on the layout: it never reports written bytes
// as a hole and, where it knows, it skips the preallocated space between
// and after them (rounding to blocks of up to 64 KiB allowed).
func checkData(t *testing.T, f vfs.File, mustKnow bool) {
	t.Helper()
	start, end, known, err := f.Data(0)
	if err != nil {
		t.Fatal(err)
	}
	if !known {
		if mustKnow {
			t.Fatal("Data does not know where data lies")
		}
		return
	}
	const slack = 64 << 10
	if start != 0 || end < written || end > written+slack {
		t.Fatalf("Data(0) = [%d, %d), want [0, %d) up to block rounding", start, end, written)
	}
	if start, end, _, err = f.Data(end); err != nil || start > second || start < second-slack || end < second+written {
		t.Fatalf("Data after the first range = [%d, %d) (%v), want it to cover [%d, %d) and skip what lies between", start, end, err, second, second+written)
	}
	if start, end, _, err = f.Data(second + written + slack); err != nil || start != allocated || end != allocated {
		t.Fatalf("Data past the written bytes = [%d, %d) (%v), want the end %d", start, end, err, allocated)
	}
	if start, _, _, err = f.Data(10); err != nil || start != 10 {
		t.Fatalf("Data(10) starts at %d (%v), want 10, inside the first range", start, err)
	}
}

// TestDataSkipsPreallocatedSpaceOnDisk checks File.Data on the file system
// under t.TempDir(): it never reports written bytes as a hole, and where
// the platform asks the file system (lseek SEEK_DATA on Linux) it reports
// preallocated space never written as one, so the tail search of recovery
// can skip it.
func TestDataSkipsPreallocatedSpaceOnDisk(t *testing.T) {
	dir := t.TempDir()
	f := dataLayout(t, vfs.Default, filepath.Join(dir, "f"))
	mustKnow := dataKnownOn(t, dir)
	checkData(t, f, mustKnow)
	// The same after fdatasync, when the data is in written extents.
	if err := f.Sync(); err != nil {
		t.Fatal(err)
	}
	checkData(t, f, mustKnow)
}

func TestDataInCrashFS(t *testing.T) {
	mem := crashfs.New()
	f := dataLayout(t, mem, "f")
	checkData(t, f, true)
	if err := f.Sync(); err != nil {
		t.Fatal(err)
	}
	if err := mem.SyncDir("."); err != nil {
		t.Fatal(err)
	}
	// A crash keeps what was written, and nothing it did not write reads
	// as data.
	g, err := mem.Crash(crashfs.SyncedOnly, nil).OpenFile("f", os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	checkData(t, g, true)
	// A truncate forgets what it cut off.
	if err := g.Truncate(second); err != nil {
		t.Fatal(err)
	}
	if err := g.Preallocate(allocated); err != nil {
		t.Fatal(err)
	}
	if start, end, _, err := g.Data(written); err != nil || start != allocated || end != allocated {
		t.Fatalf("after Truncate and Preallocate, Data(%d) = [%d, %d) (%v), want nothing to the end", written, start, end, err)
	}
}

func TestDataThroughErrorFS(t *testing.T) {
	efs := errorfs.Wrap(crashfs.New())
	f := dataLayout(t, efs, "f")
	checkData(t, f, true)
	efs.Add(errorfs.Rule{Op: errorfs.OpData, N: 1})
	if _, _, _, err := f.Data(0); !errors.Is(err, errorfs.ErrInjected) {
		t.Fatalf("Data with an injected error = %v, want the injected error", err)
	}
}
