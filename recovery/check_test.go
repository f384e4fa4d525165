package recovery_test

import (
	"bytes"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/gojournal/journal/recovery"
	"github.com/gojournal/journal/segment"
	"github.com/gojournal/journal/vfs"
	"github.com/gojournal/journal/wal"
)

// TestCheckCountsBatches checks that Check counts the records of batches as
// Scan (and so Open) does: a log whose last write was a completed
// AppendBatch has no torn tail, and a torn batch's intact frames are the
// torn tail's records, not the segment's. Check once reported the last two
// records of a completed batch as an unfinished one.
func TestCheckCountsBatches(t *testing.T) {
	big := func(i byte) []byte { return bytes.Repeat([]byte{'a' + i}, 700) } // a batch of them spans sectors
	for _, tc := range []struct {
		name string
		// cut, when set, cuts the file after the frame of that record
		// (1-based among the segment's frames), as a torn write would.
		cut         int
		wantRecords int64
		wantTorn    int // records of the unfinished batch; -1: no torn tail
	}{
		{name: "CompletedBatchLast", wantRecords: 7, wantTorn: -1},
		{name: "TornBatchLast", cut: 6, wantRecords: 4, wantTorn: 2},
		{name: "TornAfterFirstFrameOfBatch", cut: 5, wantRecords: 4, wantTorn: 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			l, err := wal.Open(dir, options(vfs.Default))
			if err != nil {
				t.Fatal(err)
			}
			if _, err := l.Append(big(1)); err != nil {
				t.Fatal(err)
			}
			for _, batch := range [][][]byte{{big(2), big(3), big(4)}, {big(5), big(6), big(7)}} {
				if _, err := l.AppendBatch(batch); err != nil {
					t.Fatal(err)
				}
			}
			if err := l.Close(); err != nil {
				t.Fatal(err)
			}
			path := filepath.Join(dir, segment.Name(1))
			if tc.cut != 0 {
				cutAfterFrame(t, path, tc.cut)
			}
			st, err := recovery.Scan(vfs.Default, dir, recovery.Options{})
			if err != nil {
				t.Fatal(err)
			}
			rep, err := recovery.Check(vfs.Default, dir, recovery.CheckOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if got := int64(rep.Segments[0].Records()); got != tc.wantRecords || rep.NextIndex() != st.NextIndex() || st.NextIndex() != uint64(tc.wantRecords)+1 {
				t.Errorf("Check counts %d records, next %d; Scan next %d; want %d records", got, rep.NextIndex(), st.NextIndex(), tc.wantRecords)
			}
			for _, torn := range []*recovery.Torn{st.Torn, rep.Torn} {
				switch {
				case tc.wantTorn < 0 && torn != nil:
					t.Errorf("torn tail %+v, want none", *torn)
				case tc.wantTorn >= 0 && (torn == nil || torn.Records != tc.wantTorn):
					t.Errorf("torn tail %+v, want one with %d records", torn, tc.wantTorn)
				}
			}
		})
	}
}

// cutAfterFrame truncates the segment at path right after its k-th frame.
func cutAfterFrame(t *testing.T, path string, k int) {
	t.Helper()
	h, err := segment.OpenHandle(vfs.Default, path)
	if err != nil {
		t.Fatal(err)
	}
	sc := h.Scan()
	for range k {
		if !sc.Next() {
			t.Fatalf("fewer than %d frames: %s", k, sc.Why())
		}
	}
	fr := sc.Frame()
	h.Close()
	if err := os.Truncate(path, fr.Offset+fr.Size()); err != nil {
		t.Fatal(err)
	}
}

// TestCheckReadsSealedSegmentsFrameByFrame zeroes the sync frame between
// two records of a sealed segment (a NoSync log's Sync wrote it; a
// TruncateBack sealed the segment). Every Reader stops there, so Check and
// Open with Verify must report it; they used to read each record through
// the footer and pass the segment.
func TestCheckReadsSealedSegmentsFrameByFrame(t *testing.T) {
	dir := t.TempDir()
	opts := options(vfs.Default)
	opts.NoSync = true
	l, err := wal.Open(dir, opts)
	if err != nil {
		t.Fatal(err)
	}
	for i, step := range []func() error{
		func() error { _, err := l.Append([]byte("one")); return err },
		l.Sync, // a sync frame at 1024, after record 1 at 512
		func() error { _, err := l.Append([]byte("two")); return err },
		func() error { _, err := l.Append([]byte("three")); return err },
		func() error { return l.TruncateBack(2) }, // seals the segment after record 2
		l.Close,
	} {
		if err := step(); err != nil {
			t.Fatalf("step %d: %v", i, err)
		}
	}
	path := filepath.Join(dir, segment.Name(1))
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt(make([]byte, segment.SectorSize), 1024); err != nil {
		t.Fatal(err)
	}
	f.Close()
	rep, err := recovery.Check(vfs.Default, dir, recovery.CheckOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Damage) != 1 || rep.Damage[0].Path != path || rep.Damage[0].Offset != 1024 || rep.Damage[0].Index != 2 {
		t.Fatalf("Check: damage %v, want one at offset 1024 (record 2)", rep.Damage)
	}
	opts.Verify = true
	_, err = wal.Open(dir, opts)
	var ce *wal.CorruptionError
	if !errors.As(err, &ce) || ce.Path != path || ce.Offset != 1024 {
		t.Fatalf("Open with Verify: %v, want a CorruptionError at offset 1024", err)
	}
}

// staleListing is a file system whose first few directory listings miss
// one name, as a listing can while another process creates that file: the
// read of a directory is not atomic. Or, with gone set, one whose first
// few opens of that file fail as if it had been removed since the listing.
type staleListing struct {
	vfs.FS
	miss  string
	times int
	gone  bool
}

func (s *staleListing) OpenFile(name string, flag int, perm fs.FileMode) (vfs.File, error) {
	if s.gone && s.times > 0 && filepath.Base(name) == s.miss {
		s.times--
		return nil, &fs.PathError{Op: "open", Path: name, Err: fs.ErrNotExist}
	}
	return s.FS.OpenFile(name, flag, perm)
}

func (s *staleListing) ReadDir(dir string) ([]string, error) {
	names, err := s.FS.ReadDir(dir)
	if s.gone || s.times == 0 || err != nil {
		return names, err
	}
	s.times--
	return slices.DeleteFunc(names, func(n string) bool { return n == s.miss }), nil
}

// TestStaleListingIsNotAGap: a segment missing from a listing that holds
// a later one looks like a gap between segments; the walk finds the file
// there, lists again and judges the log whole. A listing that keeps
// missing it is damage. A listed segment gone when opened (removed by
// TruncateFront since the listing) sends the walk back to a fresh listing
// too.
func TestStaleListingIsNotAGap(t *testing.T) {
	dir := t.TempDir()
	o := options(vfs.Default)
	o.SegmentSize = wal.MinSegmentSize
	l, err := wal.Open(dir, o)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 300; i++ {
		if _, err := l.Append(bytes.Repeat([]byte{'r'}, 400)); err != nil {
			t.Fatal(err)
		}
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	names, _ := vfs.Default.ReadDir(dir)
	var segs []string
	for _, n := range names {
		if _, ok := segment.ParseName(n); ok {
			segs = append(segs, n)
		}
	}
	if len(segs) < 3 {
		t.Fatalf("want 3 segments or more, got %v", segs)
	}
	for _, tc := range []struct {
		name    string
		times   int
		gone    bool // the file is gone when opened, rather than missing from the listing
		damaged bool
	}{
		{"Once", 1, false, false}, {"ThreeTimes", 3, false, false}, {"Always", 1 << 30, false, true},
		{"GoneOnce", 1, true, false}, {"GoneTwice", 2, true, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for _, check := range []bool{false, true} {
				fsys := &staleListing{FS: vfs.Default, miss: segs[1], times: tc.times, gone: tc.gone}
				var st *recovery.State
				if check {
					st, err = recovery.Check(fsys, dir, recovery.CheckOptions{})
				} else {
					st, err = recovery.Scan(fsys, dir, recovery.Options{})
					if errors.Is(err, wal.ErrCorrupt) {
						err = nil
					}
				}
				if err != nil {
					t.Fatal(err)
				}
				if st.Damaged() != tc.damaged {
					t.Errorf("Check %v: damage %v, want damaged %v", check, st.Damage, tc.damaged)
				}
				if !tc.damaged && len(st.Segments) != len(segs) {
					t.Errorf("Check %v: %d segments, want %d", check, len(st.Segments), len(segs))
				}
			}
		})
	}
}
