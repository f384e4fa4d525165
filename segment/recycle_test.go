package segment

import (
	"bytes"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"testing"

	"github.com/gojournal/journal/vfs"
)

// oldSegment writes, as dir/Name(first), a sealed segment of many records
// in many synced writes, and returns its bytes.
func oldSegment(t *testing.T, dir string, first, salt uint64, records int) []byte {
	t.Helper()
	b := newSegmentBuilder(first, salt)
	for i := range records {
		b.record(string(bytes.Repeat([]byte{byte('a' + i%26)}, 300+i*7)))
		if i%3 == 2 {
			b.markDurable()
		}
	}
	b.markDurable()
	old := b.sealed()
	if err := os.WriteFile(filepath.Join(dir, Name(first)), old, 0o644); err != nil {
		t.Fatal(err)
	}
	return old
}

// TestRecycle: Recycle moves a released segment to the spare's name, keeps
// its bytes up to at most one sector short of the new size (so no old
// footer is at the end), and preallocates it to that size. Stamped as a
// new segment, with a few frames written, the file reads as those frames
// and then a torn tail: the old frames, under another salt, never
// validate, even where they carry the indexes the new segment expects;
// the old footer is never found. Damage to a new frame that a later one
// proves durable is still found.
func TestRecycle(t *testing.T) {
	for _, c := range []struct {
		name  string
		extra int64 // the new size, relative to the old file's
	}{{"cut", -5000}, {"grown", 8192}} {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			old := oldSegment(t, dir, first, testSalt, 60)
			size := AlignSector(int64(len(old))) + c.extra
			f, at, written, err := Recycle(vfs.Default, dir, filepath.Join(dir, Name(first)), size)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			if _, err := os.Stat(filepath.Join(dir, Name(first))); !errors.Is(err, fs.ErrNotExist) || at != filepath.Join(dir, SpareName) {
				t.Fatalf("recycled to %s, the old name stat says %v", at, err)
			}
			if want := min(int64(len(old)), size-SectorSize); written != want {
				t.Fatalf("written = %d, want %d", written, want)
			}
			got, err := os.ReadFile(at)
			if err != nil {
				t.Fatal(err)
			}
			if int64(len(got)) != size || !bytes.Equal(got[:written], old[:written]) || !isZero(got[written:]) {
				t.Fatalf("recycled file: %d bytes, want the old %d bytes then zeros to %d", len(got), written, size)
			}
			// The new segment: the same first index (the old frames carry
			// the indexes it expects), another salt, two synced writes;
			// then a crash, with the old bytes after them.
			b := newSegmentBuilder(first, testSalt+1)
			b.record("new one").record("new two").markDurable().record("new three").markDurable()
			if err := Stamp(f, b.h); err != nil {
				t.Fatal(err)
			}
			if _, err := f.WriteAt(b.buf[DataStart:], DataStart); err != nil {
				t.Fatal(err)
			}
			h, err := OpenHandle(vfs.Default, at)
			if err != nil {
				t.Fatal(err)
			}
			defer h.Close()
			if ft, _, err := h.Footer(); err != nil || ft.Valid() {
				t.Fatalf("recycled segment has a footer: %+v, %v", ft, err)
			}
			sc := h.Scan()
			var recs []string
			for sc.Next() {
				recs = append(recs, string(sc.Frame().Data))
			}
			if len(recs) != 3 || recs[2] != "new three" || sc.Err() != nil {
				t.Fatalf("recycled segment scans as %q (%s), want the 3 new records", recs, sc.Why())
			}
			stop := sc.Offset()
			tail, err := h.Tail(stop)
			if err != nil || tail.Durable != nil || tail.End <= stop {
				t.Fatalf("tail after the new records at %d: %+v, %v; want old bytes and no durable frame", stop, tail, err)
			}
			if off, next := sc.Cut(); off != b.end() || next != first+3 {
				t.Fatalf("cut at %d before %d, want %d before %d", off, next, b.end(), first+3)
			}
			// A bit flip in the first write: the third record's frame,
			// written after it was durable, proves it damage.
			flipped := bytes.Clone(b.buf[DataStart:])
			flipped[40] ^= 1
			if _, err := f.WriteAt(flipped, DataStart); err != nil {
				t.Fatal(err)
			}
			h2, err := OpenHandle(vfs.Default, at)
			if err != nil {
				t.Fatal(err)
			}
			defer h2.Close()
			sc = h2.Scan()
			for sc.Next() {
			}
			tail, err = h2.Tail(sc.Offset())
			if err != nil || tail.Durable == nil || tail.Durable.Index != first+2 {
				t.Fatalf("bit flip at %d: tail %+v, %v; want the third record as proof of durability", sc.Offset(), tail, err)
			}
		})
	}
}

// TestRecycleMissingFile: a file Recycle cannot open is named
// as where it is, for the caller to remove.
func TestRecycleMissingFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, Name(first))
	_, at, _, err := Recycle(vfs.Default, dir, path, 1<<16)
	if !errors.Is(err, fs.ErrNotExist) || at != path {
		t.Fatalf("Recycle of a missing file: at %s, %v", at, err)
	}
}
