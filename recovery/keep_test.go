package recovery_test

import (
	"errors"
	"io/fs"
	"path/filepath"
	"sync"
	"testing"

	"github.com/gojournal/journal/internal/errs"
	"github.com/gojournal/journal/recovery"
	"github.com/gojournal/journal/segment"
	"github.com/gojournal/journal/vfs"
)

// openCounter counts the opens of each file and the files open now.
type openCounter struct {
	vfs.FS
	mu     sync.Mutex
	opened map[string]int
	open   int
}

func newOpenCounter(fsys vfs.FS) *openCounter {
	return &openCounter{FS: fsys, opened: map[string]int{}}
}

func (c *openCounter) OpenFile(name string, flag int, perm fs.FileMode) (vfs.File, error) {
	f, err := c.FS.OpenFile(name, flag, perm)
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.opened[filepath.Base(name)]++
	c.open++
	return &countedFile{File: f, c: c}, nil
}

type countedFile struct {
	vfs.File
	c    *openCounter
	once sync.Once
}

func (f *countedFile) Close() error {
	f.once.Do(func() {
		f.c.mu.Lock()
		f.c.open--
		f.c.mu.Unlock()
	})
	return f.File.Close()
}

// TestScanOpensEachSegmentOnce: the walk opens every live segment once
// (its header is read before any segment is judged, through the handle
// that judges it later), and with KeepFiles hands the sealed segments'
// files to the caller, open, instead of closing them; nothing else stays
// open, and a Scan that fails keeps nothing open.
func TestScanOpensEachSegmentOnce(t *testing.T) {
	base := build(t, 0) // three segments; the newest unsealed
	for _, keep := range []bool{false, true} {
		fsys := newOpenCounter(base)
		st, err := recovery.Scan(fsys, dir, recovery.Options{KeepFiles: keep})
		if err != nil {
			t.Fatal(err)
		}
		if len(st.Segments) != 3 {
			t.Fatalf("%d segments, want 3", len(st.Segments))
		}
		for _, s := range st.Segments {
			if n := fsys.opened[filepath.Base(s.Path)]; n != 1 {
				t.Errorf("keep=%v: %s opened %d times, want once", keep, s.Path, n)
			}
			if want := keep && s.Sealed; (s.File != nil) != want {
				t.Errorf("keep=%v: %s (sealed %v) has a file: %v, want %v", keep, s.Path, s.Sealed, s.File != nil, want)
			}
		}
		if want := map[bool]int{false: 0, true: 2}[keep]; fsys.open != want {
			t.Errorf("keep=%v: %d files open after Scan, want %d (the sealed segments')", keep, fsys.open, want)
		}
		// The kept file reads the segment.
		if keep {
			b := make([]byte, segment.HeaderSize)
			if _, err := st.Segments[0].File.ReadAt(b, 0); err != nil {
				t.Errorf("reading a kept file: %v", err)
			}
		}
		st.Close()
		if fsys.open != 0 {
			t.Errorf("keep=%v: %d files open after State.Close", keep, fsys.open)
		}
	}

	// Damage in the newest segment's durable data: Scan fails and keeps
	// no file open, though it had judged the sealed segments first.
	flipRecord(255, 260)(t, base)
	fsys := newOpenCounter(base)
	st, err := recovery.Scan(fsys, dir, recovery.Options{KeepFiles: true})
	if !errors.Is(err, errs.ErrCorrupt) {
		t.Fatalf("Scan of a damaged log: %v, want ErrCorrupt", err)
	}
	for _, s := range st.Segments {
		if s.File != nil {
			t.Errorf("%s: a file kept after a failed Scan", s.Path)
		}
	}
	if fsys.open != 0 {
		t.Errorf("%d files open after a failed Scan", fsys.open)
	}
}
