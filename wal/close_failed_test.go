package wal

import (
	"errors"
	"io/fs"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/gojournal/journal/recovery"
	"github.com/gojournal/journal/segment"
	"github.com/gojournal/journal/vfs"
	"github.com/gojournal/journal/vfs/errorfs"
)

// stallFS holds the fdatasyncs of segment files, while armed, until
// released: a group commit can be kept in flight.
type stallFS struct {
	vfs.FS
	armed   atomic.Bool
	stalled chan struct{} // receives when a Sync is held
	release chan struct{}
}

func (s *stallFS) OpenFile(name string, flag int, perm fs.FileMode) (vfs.File, error) {
	f, err := s.FS.OpenFile(name, flag, perm)
	// A spare becomes the active segment under the name it was opened
	// with, so its fdatasyncs are held too.
	if err != nil || !strings.HasSuffix(name, segment.Ext) && filepath.Base(name) != segment.SpareName {
		return f, err
	}
	return &stallFile{File: f, fs: s}, nil
}

type stallFile struct {
	vfs.File
	fs *stallFS
}

func (f *stallFile) Sync() error {
	if f.fs.armed.CompareAndSwap(true, false) {
		f.fs.stalled <- struct{}{}
		<-f.fs.release
	}
	return f.File.Sync()
}

// Close of a log that failed while a group commit was in flight (here a
// TruncateFront whose commit failed, as a retention pass's may) waits for
// that write and fdatasync before it closes the segment files under them:
// closing a file another goroutine writes could even send the write to
// whatever file reuses its descriptor. (Found by the race detector in
// TestRetentionErrorsAreReported.)
func TestCloseWaitsForTheFlushOfAFailedLog(t *testing.T) {
	stall := &stallFS{FS: vfs.Default, stalled: make(chan struct{}), release: make(chan struct{})}
	efs := errorfs.Wrap(stall)
	l, err := Open(t.TempDir(), &Options{SegmentSize: MinSegmentSize, Logger: quiet, FS: efs})
	if err != nil {
		t.Fatal(err)
	}
	fill(t, l, 20)
	stall.armed.Store(true)
	appended := make(chan error, 1)
	go func() { _, err := l.Append([]byte("in flight")); appended <- err }()
	<-stall.stalled // the group commit is in its fdatasync
	efs.Add(errorfs.Rule{Op: errorfs.OpCreate, Err: syscall.EIO,
		Match: func(path string) bool { return strings.Contains(path, recovery.MetaName) }})
	if err := l.TruncateFront(5); !errors.Is(err, ErrFailed) {
		t.Fatalf("TruncateFront with its commit failing: %v, want ErrFailed", err)
	}
	closed := make(chan error, 1)
	go func() { closed <- l.Close() }()
	select {
	case err := <-closed:
		t.Fatalf("Close returned (%v) while a group commit was still writing", err)
	case <-time.After(50 * time.Millisecond):
	}
	close(stall.release)
	if err := <-closed; !errors.Is(err, ErrFailed) {
		t.Fatalf("Close: %v, want ErrFailed", err)
	}
	// Its write and fdatasync succeeded: the record is durable, and
	// saying so is the truth, failed log or not.
	if err := <-appended; err != nil && !errors.Is(err, ErrFailed) {
		t.Fatalf("the Append in flight: %v", err)
	}
}
