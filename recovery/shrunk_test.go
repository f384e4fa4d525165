package recovery_test

import (
	"io/fs"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gojournal/journal/recovery"
	"github.com/gojournal/journal/segment"
	"github.com/gojournal/journal/vfs"
	"github.com/gojournal/journal/wal"
)

// grownFS reports every segment file, on its first Size, as preallocated
// to the full segment size: what a walk sees when it opens the active
// segment of a log another process has open and the writer seals it (Seal
// cuts the preallocated space) before the walk reads its footer.
type grownFS struct {
	vfs.FS
	extra int64
}

type grownFile struct {
	vfs.File
	extra int64
}

func (g grownFS) OpenFile(name string, flag int, perm fs.FileMode) (vfs.File, error) {
	f, err := g.FS.OpenFile(name, flag, perm)
	if err != nil || !strings.HasSuffix(name, segment.Ext) {
		return f, err
	}
	return &grownFile{File: f, extra: g.extra}, nil
}

func (f *grownFile) Size() (int64, error) {
	n, err := f.File.Size()
	n, f.extra = n+f.extra, 0
	return n, err
}

// TestCheckSegmentSealedUnderTheWalk: a segment that shrank between the
// walk's opening it and its reading the footer is read again at its new
// size. Check (wal verify, wal info) once failed with "read X: EOF", an
// I/O error (exit 2), on a healthy log whose writer rotated meanwhile
// (found by cmd/wal's TestLiveToolsOnAnotherProcessesLog).
func TestCheckSegmentSealedUnderTheWalk(t *testing.T) {
	dir := closedLog(t)
	st, err := recovery.Check(grownFS{vfs.Default, wal.MinSegmentSize}, dir, recovery.CheckOptions{})
	if err != nil {
		t.Fatalf("Check: %v", err)
	}
	defer st.Close()
	if st.Damaged() || st.NextIndex() != 301 || len(st.Segments) < 2 {
		t.Fatalf("Check: damage %v, next index %d, %d segments", st.Damage, st.NextIndex(), len(st.Segments))
	}
}

// closedLog writes 300 records of 500 bytes to a log of the smallest
// segments, several of them, and closes it (which seals the newest).
func closedLog(t *testing.T) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "log")
	l, err := wal.Open(dir, &wal.Options{SegmentSize: wal.MinSegmentSize})
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 300; i++ {
		if _, err := l.Append(make([]byte, 500)); err != nil {
			t.Fatal(err)
		}
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	return dir
}
