package recovery_test

import (
	"errors"
	"path/filepath"
	"testing"

	"github.com/gojournal/journal/internal/errs"
	"github.com/gojournal/journal/internal/vfstest"
	"github.com/gojournal/journal/recovery"
	"github.com/gojournal/journal/segment"
)

// TestScanOpensEachSegmentOnce: the walk opens every live segment once
// (its header is read before any segment is judged, through the handle
// that judges it later), and with KeepFiles hands the sealed segments'
// files to the caller, open, instead of closing them; nothing else stays
// open, and a Scan that fails keeps nothing open.
func TestScanOpensEachSegmentOnce(t *testing.T) {
	base := build(t, 0) // three segments; the newest unsealed
	for _, keep := range []bool{false, true} {
		fsys := &vfstest.CountFS{FS: base}
		st, err := recovery.Scan(fsys, dir, recovery.Options{KeepFiles: keep})
		if err != nil {
			t.Fatal(err)
		}
		if len(st.Segments) != 3 {
			t.Fatalf("%d segments, want 3", len(st.Segments))
		}
		for _, s := range st.Segments {
			if n := fsys.Opened()[filepath.Base(s.Path)]; n != 1 {
				t.Errorf("keep=%v: %s opened %d times, want once", keep, s.Path, n)
			}
			if want := keep && s.Sealed; (s.File != nil) != want {
				t.Errorf("keep=%v: %s (sealed %v) has a file: %v, want %v", keep, s.Path, s.Sealed, s.File != nil, want)
			}
		}
		if want := map[bool]int{false: 0, true: 2}[keep]; fsys.OpenNow() != want {
			t.Errorf("keep=%v: %d files open after Scan, want %d (the sealed segments')", keep, fsys.OpenNow(), want)
		}
		// The kept file reads the segment.
		if keep {
			b := make([]byte, segment.HeaderSize)
			if _, err := st.Segments[0].File.ReadAt(b, 0); err != nil {
				t.Errorf("reading a kept file: %v", err)
			}
		}
		st.Close()
		if fsys.OpenNow() != 0 {
			t.Errorf("keep=%v: %d files open after State.Close", keep, fsys.OpenNow())
		}
	}

	// Damage in the newest segment's durable data: Scan fails and keeps
	// no file open, though it had judged the sealed segments first.
	flipRecord(255, 260)(t, base)
	fsys := &vfstest.CountFS{FS: base}
	st, err := recovery.Scan(fsys, dir, recovery.Options{KeepFiles: true})
	if !errors.Is(err, errs.ErrCorrupt) {
		t.Fatalf("Scan of a damaged log: %v, want ErrCorrupt", err)
	}
	for _, s := range st.Segments {
		if s.File != nil {
			t.Errorf("%s: a file kept after a failed Scan", s.Path)
		}
	}
	if fsys.OpenNow() != 0 {
		t.Errorf("%d files open after a failed Scan", fsys.OpenNow())
	}
}
