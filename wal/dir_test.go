package wal

import (
	"errors"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"

	"github.com/gojournal/journal/vfs"
	"github.com/gojournal/journal/vfs/crashfs"
)

// Open creating several missing levels of the log's path must make each
// of them durable before an append is acknowledged: a power loss must not
// take the directory, and the records in it, away.
func TestOpenCreatesNestedDirectoriesDurably(t *testing.T) {
	for _, dir := range []string{"/data/app/wal", "/data/wal", "/wal", "rel/a/b"} {
		t.Run(dir, func(t *testing.T) {
			cfs := crashfs.New()
			o := &Options{FS: cfs, Logger: quiet}
			l := openT(t, dir, o)
			appendN(t, l, 3)
			// No Close: the power goes while the log is open.
			// SyncedOnly draws nothing from the generator.
			after := cfs.Crash(crashfs.SyncedOnly, rand.New(rand.NewPCG(1, 1)))
			o.FS = after
			l2 := openT(t, dir, o)
			defer l2.Close()
			checkRange(t, l2, 1, 3)
		})
	}
}

// The directories Open creates are synced top down, each level's parent
// once, and an existing directory costs no sync.
func TestOpenSyncsEachCreatedLevelsParent(t *testing.T) {
	cfs := crashfs.New()
	rec := &syncDirRecorder{FS: cfs}
	o := &Options{FS: rec, Logger: quiet}
	if err := cfs.MkdirAll("/data", 0o755); err != nil {
		t.Fatal(err)
	}
	l := openT(t, "/data/app/wal", o)
	l.Close()
	want := []string{"/data", "/data/app"}
	if got := rec.synced; len(got) < len(want) || !slices.Equal(got[:len(want)], want) {
		t.Fatalf("SyncDir calls start %q, want %q first", got, want)
	}
	rec.synced = nil
	l = openT(t, "/data/app/wal", o)
	l.Close()
	for _, d := range rec.synced {
		if d != "/data/app/wal" {
			t.Fatalf("reopening an existing log synced %q", d)
		}
	}
}

// A path whose existing prefix is a file fails Open with the file
// system's error.
func TestOpenRefusesAFileInThePath(t *testing.T) {
	cfs := crashfs.New()
	f, err := cfs.OpenFile("/data", os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	f.Close()
	_, err = Open(filepath.Join("/data", "wal"), &Options{FS: cfs, Logger: quiet})
	if err == nil {
		t.Fatal("Open under a file succeeded")
	}
	var pe *fs.PathError
	if !errors.As(err, &pe) {
		t.Fatalf("Open under a file: %v, want a *fs.PathError", err)
	}
}

// syncDirRecorder records the directories synced through it.
type syncDirRecorder struct {
	vfs.FS
	mu     sync.Mutex
	synced []string
}

func (r *syncDirRecorder) SyncDir(dir string) error {
	r.mu.Lock()
	r.synced = append(r.synced, dir)
	r.mu.Unlock()
	return r.FS.SyncDir(dir)
}
