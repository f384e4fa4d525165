package segment

import (
	"bytes"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/gojournal/journal/internal/errs"
	"github.com/gojournal/journal/vfs"
)

// writeSegment writes data to a file under a segment name in a new
// directory and returns its path.
func writeSegment(t *testing.T, data []byte) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), Name(first))
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func openHandle(t *testing.T, path string) *Handle {
	t.Helper()
	s, err := OpenHandle(vfs.Default, path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// A file too short to hold a header is a segment whose creation was torn
// or whose header was lost: damage, whatever its few bytes hold, reported
// with the file's path.
func TestOpenHandleShortFileIsCorrupt(t *testing.T) {
	header := appendHeader(nil, Header{FirstIndex: first, Salt: testSalt})
	for name, data := range map[string][]byte{
		"Empty":          nil,
		"OneByte":        {0x89},
		"HalfAHeader":    header[:24],
		"NewlineOnly":    []byte("\n"),
		"OneByteShort":   header[:HeaderSize-1],
		"ShortForeign":   []byte("#!/bin/sh\n"),
		"MagicAndZeroes": append([]byte(Magic), make([]byte, 16)...),
	} {
		t.Run(name, func(t *testing.T) {
			path := writeSegment(t, data)
			s, err := OpenHandle(vfs.Default, path)
			if err == nil {
				s.Close()
				t.Fatal("OpenHandle succeeded")
			}
			var ce *errs.CorruptionError
			if !errors.Is(err, errs.ErrCorrupt) || errors.Is(err, errs.ErrFormat) || !errors.As(err, &ce) || ce.Path != path {
				t.Fatalf("OpenHandle: %v; want a *errs.CorruptionError naming %s", err, path)
			}
		})
	}
}

func TestOpenHandleRejects(t *testing.T) {
	good := append(appendHeader(nil, Header{FirstIndex: first, Salt: testSalt}), make([]byte, DataStart-HeaderSize)...)
	t.Run("BadMagicIsFormat", func(t *testing.T) {
		data := bytes.Clone(good)
		data[2] = 'X'
		path := writeSegment(t, data)
		_, err := OpenHandle(vfs.Default, path)
		if !errors.Is(err, errs.ErrFormat) || errors.Is(err, errs.ErrCorrupt) || !strings.Contains(err.Error(), path) {
			t.Fatalf("OpenHandle: %v; want errs.ErrFormat naming %s", err, path)
		}
	})
	t.Run("DamagedHeaderIsCorrupt", func(t *testing.T) {
		data := bytes.Clone(good)
		data[20] ^= 1
		path := writeSegment(t, data)
		_, err := OpenHandle(vfs.Default, path)
		var ce *errs.CorruptionError
		if !errors.As(err, &ce) || ce.Path != path || !strings.Contains(ce.Reason, "checksum") {
			t.Fatalf("OpenHandle: %v; want a *errs.CorruptionError naming %s", err, path)
		}
	})
	t.Run("MissingFileIsAnIOError", func(t *testing.T) {
		_, err := OpenHandle(vfs.Default, filepath.Join(t.TempDir(), Name(first)))
		if !errors.Is(err, fs.ErrNotExist) || errors.Is(err, errs.ErrCorrupt) || errors.Is(err, errs.ErrFormat) {
			t.Fatalf("OpenHandle of a missing file: %v", err)
		}
	})
}

// Reading a sealed segment through a Handle agrees with reading it through
// the footer functions.
func TestHandleSealedSegment(t *testing.T) {
	b := newSegmentBuilder(first, testSalt).record("a").endWrite().add(TypeRecord, S2, compressible(3000)).batch("c1").record("c2")
	b.syncFrame().record("d").endWrite()
	file := b.sealed()
	s := openHandle(t, writeSegment(t, file))
	if s.Header() != b.h || s.Size() != int64(len(file)) {
		t.Fatalf("Header, Size = %+v, %d; want %+v, %d", s.Header(), s.Size(), b.h, len(file))
	}
	ft, why, err := s.Footer()
	if err != nil || !ft.Valid() || ft.Count != int64(len(b.starts)) {
		t.Fatalf("Footer = %+v, %q, %v", ft, why, err)
	}
	r := bytes.NewReader(file)
	for k := range ft.Count {
		off, size, err := ft.RecordSpan(r, k)
		if err != nil {
			t.Fatal(err)
		}
		f, rec, err := s.Record(ft, k)
		if err != nil || f.Offset != off || f.Size() > size || f.Index != first+uint64(k) || !bytes.Equal(rec, b.records[k]) {
			t.Fatalf("Record(%d) = frame %+v, %.20q, %v; want the frame at %d (span %d) holding %.20q", k, f, rec, err, off, size, b.records[k])
		}
	}
	offs, err := s.Offsets(ft, int(ft.Count)+1)
	want := append(slices.Clone(b.starts), ft.Offset)
	if err != nil || !slices.Equal(offs, want) {
		t.Fatalf("Offsets(%d) = %v, %v; want %v", ft.Count+1, offs, err, want)
	}
	if offs, err := s.Offsets(ft, 2); err != nil || !slices.Equal(offs, b.starts[:2]) {
		t.Fatalf("Offsets(2) = %v, %v; want %v", offs, err, b.starts[:2])
	}
	if _, _, err := s.Record(ft, ft.Count); err == nil {
		t.Fatalf("Record(%d) of %d records: no error", ft.Count, ft.Count)
	}
}

// A footer entry damaged after the footer was read is reported as
// corruption in the file, not as an I/O error.
func TestHandleRecordWithDamagedFooterEntry(t *testing.T) {
	b := newSegmentBuilder(first, testSalt).record("a").record("b")
	file := b.sealed()
	ft, _, err := readFooter(bytes.NewReader(file), int64(len(file)), b.h)
	if err != nil || !ft.Valid() {
		t.Fatalf("readFooter: %+v, %v", ft, err)
	}
	file[ft.Offset+FrameHeader+4] = 3 // record 2 "starts" at offset 3
	path := writeSegment(t, file)
	s := openHandle(t, path)
	_, _, err = s.Record(ft, 1)
	var ce *errs.CorruptionError
	if !errors.As(err, &ce) || ce.Path != path || ce.Index != first+1 {
		t.Fatalf("Record(1) = %v; want a *errs.CorruptionError in %s for record %d", err, path, first+1)
	}
}

// Refresh makes a Handle see what was written after it was opened: bytes
// appended, and bytes written into space it had already read.
func TestHandleRefresh(t *testing.T) {
	b := newSegmentBuilder(first, testSalt).record("a").endWrite()
	path := writeSegment(t, append(b.bytes(), make([]byte, SectorSize)...))
	s := openHandle(t, path)
	if got := scanAll(t, s.Scan()); !slices.Equal(got.records, []string{"a"}) || got.why != StopZeros {
		t.Fatalf("scan before the writes read %q, stop %v", got.records, got.why)
	}

	// "b" goes into the zeros the Handle has read, "c" past the end of
	// the file it knows.
	b.record("b").endWrite().record("c").endWrite()
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt(b.buf[b.frameStart(2):], b.frameStart(2)); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}

	if err := s.Refresh(); err != nil {
		t.Fatal(err)
	}
	if s.Size() != b.end() {
		t.Fatalf("Size after Refresh = %d, want %d", s.Size(), b.end())
	}
	got := scanAll(t, s.Scan())
	if !slices.Equal(got.records, []string{"a", "b", "c"}) || got.why != StopEOF {
		t.Fatalf("scan after Refresh read %q, stop %v; want a, b, c to the end of the file", got.records, got.why)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
}

// A TypeSync frame between records is scanned through and is a commit
// point: a batch left unfinished after it is committed up to the sync
// frame's end.
func TestHandleScanThroughSyncFrame(t *testing.T) {
	b := newSegmentBuilder(first, testSalt).record("a").syncFrame().record("b").syncFrame().batch("c1")
	s := openHandle(t, writeSegment(t, b.bytes()))
	sc := s.Scan()
	got := scanAll(t, sc)
	if !slices.Equal(got.records, []string{"a", "b", "c1"}) || got.why != StopEOF {
		t.Fatalf("scan read %q, stop %v; want a, b, c1 to the end of the file", got.records, got.why)
	}
	if got.committed != b.syncEnd(2) || got.next != first+2 || !sc.Unfinished() {
		t.Fatalf("Committed = %d, %d (unfinished %v); want the end of the second sync frame %d, %d",
			got.committed, got.next, sc.Unfinished(), b.syncEnd(2), first+2)
	}
	// The unfinished batch shares its sector with the sync frame: the cut
	// is the sector boundary where the sync frame's write started.
	if got.cut != b.syncs[1] || got.cutNext != first+2 {
		t.Fatalf("Cut = %d, %d; want %d, %d", got.cut, got.cutNext, b.syncs[1], first+2)
	}
	// Resuming at the record after the first sync frame reads the same.
	rs := scanAll(t, s.ScanFrom(b.frameStart(2), first+1))
	if !slices.Equal(rs.records, []string{"b", "c1"}) || rs.committed != got.committed {
		t.Fatalf("ScanFrom read %q, committed %d", rs.records, rs.committed)
	}
	f, ok, err := s.Find(DataStart, func(f Frame) bool { return f.Type == TypeSync })
	if err != nil || !ok || f.Offset != b.syncs[0] || f.Index != first+1 {
		t.Fatalf("Find(sync frame) = %+v, %v, %v; want the frame at %d", f, ok, err, b.syncs[0])
	}
}
