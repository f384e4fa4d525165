package wal

import (
	"os"
	"testing"

	"github.com/gojournal/journal/vfs/crashfs"
)

// TestZerosAheadOfTheData: after every write of frames, the blocks from the
// segment's start to between half and all of zeroAheadSize past the data
// are written (crashfs reports them as data, not as the unwritten space
// fallocate left), never past the preallocated size.
func TestZerosAheadOfTheData(t *testing.T) {
	const size = 4 << 20
	fsys := crashfs.New()
	l := openT(t, "db", &Options{FS: fsys, SegmentSize: size, Logger: quiet})
	defer l.Close()
	f, err := fsys.OpenFile(segmentPath("db", 1), os.O_RDONLY, 0)
	must(t, err)
	defer f.Close()
	rec := make([]byte, 10<<10)
	refills, last := 0, int64(0)
	for range 300 { // 3 MiB of frames: the zeros reach the end of the segment
		_, err := l.Append(rec)
		must(t, err)
		start, end, known, err := f.Data(0)
		must(t, err)
		tail := l.active.tail
		lo, hi := min(tail+zeroAheadSize/2, size), min(tail+zeroAheadSize, size)
		if !known || start != 0 || end < lo || end > hi {
			t.Fatalf("data ends at %d (from %d, known %v) with frames up to %d: want the blocks written to [%d, %d]", end, start, known, tail, lo, hi)
		}
		if end != last {
			refills++
			last = end
		}
		if n, _ := f.Size(); n != size {
			t.Fatalf("segment is %d bytes, preallocated to %d", n, size)
		}
	}
	// One extra write per half of zeroAheadSize of frames, at most.
	if max := 3<<20/(zeroAheadSize/2) + 1; refills > max {
		t.Fatalf("zeros written %d times for 3 MiB of frames, want at most %d", refills, max)
	}
}

// TestZerosAheadNeverGrowTheFile: a segment resumed without preallocation
// (a full disk) gets no zeros past its data, which would take space the
// disk does not have.
func TestZerosAheadNeverGrowTheFile(t *testing.T) {
	dir := t.TempDir()
	l := openT(t, dir, &Options{SegmentSize: MinSegmentSize, Logger: quiet})
	appendN(t, l, 100)
	path, end := l.active.path, l.active.tail
	l.Close()
	truncate(t, path, end) // as recovery leaves a cut torn tail
	efs := fullDisk(func() bool { return false })
	l, err := Open(dir, &Options{SegmentSize: MinSegmentSize, Logger: quiet, FS: efs})
	must(t, err)
	defer l.Close()
	if efs.Injected() == 0 {
		t.Fatal("Open never preallocated: the test tests nothing")
	}
	appendN(t, l, 3)
	if got, want := fileSize(path), l.active.tail; got != want {
		t.Fatalf("unpreallocated segment is %d bytes after appends, its frames end at %d", got, want)
	}
}
