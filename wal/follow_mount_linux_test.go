//go:build linux

package wal

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"
)

// TestReadOnlyOnAReadOnlyMount follows a log through a real read-only
// bind mount of its directory while the writer appends through the
// writable path: OpenReadOnly must need nothing the kernel refuses on a
// read-only file system (no lock file, no open for writing, no directory
// sync). It needs root (CI runs as root) and skips elsewhere.
func TestReadOnlyOnAReadOnlyMount(t *testing.T) {
	dir := t.TempDir()
	ro := readOnlyMount(t, dir)
	w := openT(t, dir, &Options{SegmentSize: MinSegmentSize, Logger: quiet})
	defer func() { w.Close() }()
	appendN(t, w, 200) // several segments
	f, err := OpenReadOnly(ro, &Options{Logger: quiet})
	if err != nil {
		t.Fatalf("OpenReadOnly on a read-only mount: %v", err)
	}
	defer f.Close()
	checkRange(t, f, 1, 200)

	r := f.NewReader(150)
	defer r.Close()
	go func() {
		for i := uint64(201); i <= 400; i++ { // across rotations
			if _, err := w.Append(record(i)); err != nil {
				t.Error(err)
				return
			}
		}
	}()
	for i := uint64(150); i <= 400; i++ {
		if got, rec := nextWithin(t, r); got != i || rec != string(record(i)) {
			t.Fatalf("got %d %q, want %d", got, rec, i)
		}
	}
	if err := w.TruncateFront(300); err != nil {
		t.Fatal(err)
	}
	below := f.NewReader(100)
	defer below.Close()
	wantStop(t, below, ErrCompacted, "[100, 299]")
	if _, err := f.Append(nil); !errors.Is(err, ErrReadOnly) {
		t.Fatalf("Append through a read-only Log: %v, want ErrReadOnly", err)
	}
}

// readOnlyMount bind-mounts dir read-only on a new directory, which it
// returns, and unmounts it when the test ends. It skips the test where
// mounting needs a root it does not have.
func readOnlyMount(t *testing.T, dir string) string {
	t.Helper()
	ro := t.TempDir()
	if err := unix.Mount(dir, ro, "", unix.MS_BIND, ""); err != nil {
		t.Skipf("cannot bind-mount (needs root): %v", err)
	}
	t.Cleanup(func() {
		if err := unix.Unmount(ro, unix.MNT_DETACH); err != nil {
			t.Errorf("unmount %s: %v", ro, err)
		}
	})
	if err := unix.Mount("", ro, "", unix.MS_BIND|unix.MS_REMOUNT|unix.MS_RDONLY, ""); err != nil {
		t.Skipf("cannot remount read-only: %v", err)
	}
	if err := os.WriteFile(filepath.Join(ro, "probe"), nil, 0o644); !errors.Is(err, unix.EROFS) {
		t.Fatalf("writing into the read-only mount: %v, want EROFS", err)
	}
	return ro
}

// Open on a read-only mount of a log that was not closed cleanly (a torn
// tail to cut) fails with the file system's EROFS, changes nothing, and
// OpenReadOnly there still reads every acknowledged record; the log then
// opens writable at its real path.
func TestOpenOnAReadOnlyMount(t *testing.T) {
	f := newFixture(t, MinSegmentSize)
	f.build([]int{100, 100}, []int{100})
	ro := readOnlyMount(t, f.dir)
	before := snapshot(t, f.dir)
	l, err := Open(ro, &Options{Logger: quiet})
	if err == nil {
		l.Close()
		t.Fatal("Open on a read-only mount succeeded")
	}
	if !errors.Is(err, unix.EROFS) {
		t.Fatalf("Open on a read-only mount: %v, want EROFS", err)
	}
	sameSnapshot(t, f.dir, before)
	r, err := OpenReadOnly(ro, &Options{Logger: quiet})
	if err != nil {
		t.Fatalf("OpenReadOnly on a read-only mount: %v", err)
	}
	f.check(r, 1, uint64(len(f.recs)))
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	l = f.open()
	f.check(l, 1, uint64(len(f.recs)))
	f.close(l)
}
