package wal

import (
	"errors"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/gojournal/journal/internal/vfstest"
	"github.com/gojournal/journal/recovery"
	"github.com/gojournal/journal/segment"
	"github.com/gojournal/journal/vfs"
	"github.com/gojournal/journal/vfs/crashfs"
)

// openBudget is what Open may read beyond the bytes written: one read
// chunk of the scan past the end of the data, and slack for file-system
// blocks.
const openBudget = 1<<20 + 64<<10

// cleanBudget is what Open may read of the cleanly closed log of
// TestOpenReadsOnlyWhatWasWritten (300 records): headers, the footer's
// 4 bytes a record and the sync frame before it, read twice (checked by
// recovery, then lifted).
const cleanBudget = 4 << 10

// TestOpenReadsOnlyWhatWasWritten opens a log whose one segment is
// preallocated to 16 MiB but holds a few hundred KiB, cleanly closed and
// as a crash left it, on crashfs and on the disk under t.TempDir(): Open
// reads no more than the bytes written and one chunk after a crash, where
// a file system that cannot tell where data lies makes it read the whole
// segment. A cleanly closed log is sealed by Close: Open reads its header
// and its footer (4 bytes a record), never a frame, whatever the file
// system.
func TestOpenReadsOnlyWhatWasWritten(t *testing.T) {
	const segSize = 16 << 20
	for _, disk := range []bool{false, true} {
		for _, crash := range []bool{false, true} {
			name := map[bool]string{false: "crashfs", true: "disk"}[disk] + "/" + map[bool]string{false: "clean", true: "crash"}[crash]
			t.Run(name, func(t *testing.T) {
				var base vfs.FS = vfs.Default
				dir := filepath.Join(t.TempDir(), "log")
				mem := crashfs.New()
				if !disk {
					base, dir = mem, "/log"
				}
				opts := Options{FS: base, SegmentSize: segSize, Logger: quiet}
				l := openT(t, dir, &opts)
				rec := make([]byte, 1000)
				for i := range 30 {
					batch := make([][]byte, 10)
					for j := range batch {
						rec[0], rec[1] = byte(i), byte(j)
						batch[j] = append([]byte(nil), rec...)
					}
					if _, err := l.AppendBatch(batch); err != nil {
						t.Fatal(err)
					}
				}
				written := l.active.tail + 4<<10 // and the sync frame Close adds
				switch {
				case !crash:
					if err := l.Close(); err != nil {
						t.Fatal(err)
					}
				case disk:
					// What a SIGKILL leaves: the files as they are now.
					copySparseDir(t, dir, dir+".crash")
					dir = dir + ".crash"
					defer l.Close()
				default:
					base = mem.Crash(crashfs.SyncedOnly, nil)
				}
				// A file system that cannot tell where data lies (not
				// ext4, XFS, btrfs or tmpfs) makes Open read it all.
				known := dataKnown(t, base, dir)
				for _, unknown := range []bool{false, true} {
					fsys := &vfstest.CountFS{FS: base, Unknown: unknown}
					opts.FS = fsys
					l := openT(t, dir, &opts)
					if got := l.LastIndex(); got != 300 {
						t.Errorf("reopened log ends at %d, want 300", got)
					}
					if err := l.Close(); err != nil {
						t.Fatal(err)
					}
					read := fsys.Read()
					t.Logf("Data unknown=%v: Open read %d bytes (%d written)", unknown, read, written)
					switch {
					case !unknown && known && read > written+openBudget:
						t.Errorf("Open read %d bytes; %d were written (budget %d more)", read, written, openBudget)
					case !crash && read > cleanBudget:
						t.Errorf("a cleanly closed log: Open read %d bytes, more than its headers and footers (%d)", read, cleanBudget)
					case crash && unknown && read < segSize-written:
						t.Errorf("without File.Data Open read only %d bytes: the test no longer sees the search", read)
					}
				}
			})
		}
	}
}

// copySparseDir copies the files of dir into a new directory to, leaving
// the preallocated space of segments unwritten.
func copySparseDir(t *testing.T, dir, to string) {
	t.Helper()
	if err := os.MkdirAll(to, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, name := range listDir(t, dir) {
		copySparse(t, filepath.Join(dir, name), filepath.Join(to, name))
	}
}

// TestReopenWithLargerSegmentSize checks what Open does to the newest
// segment when SegmentSize grew: it preallocates it to the new size,
// because that segment is now sealed at the new size and the appends that
// fill it should not extend the file (each fdatasync would then have to
// persist a size change too). The space it adds is never written, so the
// next Open does not read it.
func TestReopenWithLargerSegmentSize(t *testing.T) {
	mem := crashfs.New()
	opts := Options{FS: mem, SegmentSize: 1 << 20, Logger: quiet}
	l := openT(t, "/log", &opts)
	rec := make([]byte, 10<<10)
	for range 20 {
		if _, err := l.Append(rec); err != nil {
			t.Fatal(err)
		}
	}
	first := l.active.path
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	opts.SegmentSize = 8 << 20
	l = openT(t, "/log", &opts)
	if fi, err := mem.Stat(first); err != nil || fi.Size() != 8<<20 {
		t.Fatalf("newest segment after reopening with 8 MiB segments: %v, %v; want it preallocated to 8 MiB", fi, err)
	}
	for range 300 { // 3 MiB: past the old size, within the new
		if _, err := l.Append(rec); err != nil {
			t.Fatal(err)
		}
	}
	if l.active.path != first {
		t.Errorf("the segment was sealed at the old size: now writing %s", l.active.path)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	fsys := &vfstest.CountFS{FS: mem}
	opts.FS = fsys
	l = openT(t, "/log", &opts)
	defer l.Close()
	if read, want := fsys.Read(), int64(320*(10<<10+64))+openBudget; read > want {
		t.Errorf("Open read %d bytes of a segment holding about 3.2 MiB (budget %d)", read, want)
	}
	if got := l.LastIndex(); got != 320 {
		t.Errorf("log ends at %d, want 320", got)
	}
}

// dataKnown reports whether the file system of dir can tell where the
// data of its segment lies.
func dataKnown(t *testing.T, fsys vfs.FS, dir string) bool {
	t.Helper()
	f, err := fsys.OpenFile(filepath.Join(dir, "00000000000000000001.wal"), os.O_RDONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	_, _, known, err := f.Data(0)
	if err != nil {
		t.Fatal(err)
	}
	if !known {
		t.Logf("the file system under %s cannot tell where data lies: Open reads every byte", dir)
	}
	return known
}

// TestOpenOpensEachSegmentOnce: an Open without the clean-close manifest
// (after a crash, or a Close that could not write it) opens each sealed
// segment once, in recovery's walk, and the log reads the segment's
// records through that file: reading every record opens nothing more. The
// newest segment, which Close sealed, is opened once more, for writing.
// Close, and an Open that fails, leave no file open. (With the manifest,
// see TestCleanOpenTakesSealedSegmentsFromTheManifest.)
func TestOpenOpensEachSegmentOnce(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "log")
	opts := Options{SegmentSize: MinSegmentSize, Logger: quiet}
	l := openT(t, dir, &opts)
	rec := make([]byte, 1000)
	for range 300 {
		if _, err := l.Append(rec); err != nil {
			t.Fatal(err)
		}
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	dropManifest(t, dir)
	fsys := &vfstest.CountFS{FS: vfs.Default}
	opts.FS = fsys
	l = openT(t, dir, &opts)
	newest := filepath.Base(l.active.path)
	segs := 0
	for _, name := range listDir(t, dir) {
		if _, ok := segment.ParseName(name); !ok {
			continue
		}
		segs++
		want := 1
		if name == newest {
			want = 2
		}
		if got := fsys.Opened()[name]; got != want {
			t.Errorf("Open opened %s %d times, want %d", name, got, want)
		}
	}
	if segs < 4 {
		t.Fatalf("%d segments: the test needs several sealed ones", segs)
	}
	opens := fsys.Opened()
	for i := l.FirstIndex(); i <= l.LastIndex(); i++ {
		if _, err := l.Read(i); err != nil {
			t.Fatal(err)
		}
	}
	if !maps.Equal(opens, fsys.Opened()) {
		t.Errorf("reading every record opened files: before %v, after %v", opens, fsys.Opened())
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if fsys.OpenNow() != 0 {
		t.Errorf("%d files open after Close", fsys.OpenNow())
	}
	dropManifest(t, dir)

	// The trailer of the segment before the newest damaged: it has no
	// valid footer though a later segment exists. Open fails after
	// recovery had kept the files of the sealed segments before it, and
	// closes them.
	damaged := filepath.Join(dir, sealedBefore(t, dir, newest))
	fi, err := os.Stat(damaged)
	if err != nil {
		t.Fatal(err)
	}
	flip(t, damaged, fi.Size()-1, 0)
	_, err = Open(dir, &opts)
	wantNamed(t, err, ErrCorrupt, damaged)
	if fsys.OpenNow() != 0 {
		t.Errorf("%d files open after a failed Open", fsys.OpenNow())
	}
}

// sealedBefore names the segment of dir just before the one named newest.
func sealedBefore(t *testing.T, dir, newest string) string {
	t.Helper()
	prev := ""
	for _, name := range listDir(t, dir) {
		if _, ok := segment.ParseName(name); ok && name < newest {
			prev = name
		}
	}
	if prev == "" {
		t.Fatalf("no segment before %s", newest)
	}
	return prev
}

// TestOpenRemovesReleasedSealedNewest: the newest segment, sealed by a
// rotation, holds only records a TruncateFront released, and the next
// segment was never installed (a crash in the middle of the rotation; made
// here by removing the empty next segment and committing the TruncateFront
// in the meta file). Open starts the next segment and removes the released
// one at once, so the next Open has nothing to repair (TestKill found the
// second Open removing it: recovery was not idempotent).
func TestOpenRemovesReleasedSealedNewest(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "log")
	opts := Options{SegmentSize: MinSegmentSize, Logger: quiet}
	l := openT(t, dir, &opts)
	for len(l.sealed) == 0 {
		if _, err := l.Append(make([]byte, 1000)); err != nil {
			t.Fatal(err)
		}
	}
	// The active segment goes with the record that started it: the
	// directory as if the rotation had not installed it.
	next, released, newest := l.active.first(), l.sealed[0].path, l.active.path
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(newest); err != nil {
		t.Fatal(err)
	}
	if err := recovery.WriteMeta(vfs.Default, dir, recovery.Meta{FirstIndex: next}); err != nil {
		t.Fatal(err)
	}
	for i, want := range [][]string{{released}, nil} {
		l := openT(t, dir, &opts)
		if got := l.Recovered().Removed; !slices.Equal(got, want) {
			t.Errorf("Open %d removed %v, want %v", i+1, got, want)
		}
		if f, g := l.FirstIndex(), l.LastIndex(); f != next || g != next-1 {
			t.Errorf("Open %d: the log holds [%d, %d], want [%d, %d] (empty)", i+1, f, g, next, next-1)
		}
		if err := l.Close(); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := os.Stat(released); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("the released segment is still there: %v", err)
	}
}

// dropManifest removes the manifest Close wrote in dir, as a crash after
// the next Open would have.
func dropManifest(t *testing.T, dir string) {
	t.Helper()
	if err := os.Remove(filepath.Join(dir, recovery.ManifestName)); err != nil {
		t.Fatalf("Close wrote no manifest: %v", err)
	}
}
