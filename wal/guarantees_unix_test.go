//go:build unix

package wal

import (
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gojournal/journal/checkpoint"
	"github.com/gojournal/journal/recovery"
	"github.com/gojournal/journal/segment"
	"github.com/gojournal/journal/vfs"
)

// "Every name journal owns in the directory (segments, journal.meta,
// journal.manifest, journal.tail, snapshot, LOCK, .tmp-*) must be a regular
// file or a symlink to one: a directory, FIFO, socket or device there makes
// Open fail [...] (errors.Is(err, vfs.ErrNotRegular); a directory under
// snapshot is ErrFormat)." Each kind at each name, after a clean Close and
// after a crash (no manifest), with a default Open and with Verify.
func TestOpenRefusesNonRegularFilesAtItsNames(t *testing.T) {
	kinds := []struct {
		name string
		make func(t *testing.T, path string)
	}{
		{"Directory", func(t *testing.T, path string) {
			if err := os.Mkdir(path, 0o755); err != nil {
				t.Fatal(err)
			}
		}},
		{"FIFO", func(t *testing.T, path string) {
			if err := syscall.Mkfifo(path, 0o644); err != nil {
				t.Skipf("mkfifo: %v", err)
			}
		}},
		{"Socket", func(t *testing.T, path string) {
			// A socket's path is limited to about 100 bytes: bind in the
			// directory, under a short relative name, then rename.
			short := filepath.Join(filepath.Dir(path), "s")
			ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: short, Net: "unix"})
			if err != nil {
				t.Skipf("unix socket: %v", err)
			}
			ln.SetUnlinkOnClose(false)
			ln.Close()
			if err := os.Rename(short, path); err != nil {
				t.Fatal(err)
			}
		}},
		{"Device", func(t *testing.T, path string) {
			if err := os.Symlink(os.DevNull, path); err != nil {
				t.Fatal(err)
			}
		}},
	}
	names := []struct {
		name    string
		file    func(dir string) string
		wantErr error
	}{
		{"SealedSegment", func(string) string { return segment.Name(1) }, vfs.ErrNotRegular},
		{"NewestSegment", nil, vfs.ErrNotRegular}, // filled in per directory
		{"Meta", func(string) string { return recovery.MetaName }, vfs.ErrNotRegular},
		{"Manifest", func(string) string { return recovery.ManifestName }, vfs.ErrNotRegular},
		{"Tail", func(string) string { return recovery.TailName }, vfs.ErrNotRegular},
		{"Lock", func(string) string { return recovery.LockName }, vfs.ErrNotRegular},
		{"Temporary", func(string) string { return vfs.TempPrefix + recovery.MetaName + "-1" }, vfs.ErrNotRegular},
		// Any kind of file under snapshot is ErrFormat (checkpoint's
		// openChecked: no snapshot, not an I/O error), not only a
		// directory as the README says: README.proposed.md.
		{"Snapshot", func(string) string { return checkpoint.FileName }, ErrFormat},
	}
	build := func(t *testing.T, clean bool) (dir, newest string) {
		f := newFixture(t, MinSegmentSize)
		l := f.open()
		for l.Metrics().Segments < 3 {
			f.appendN(l, 1, 4096)
		}
		if err := l.TruncateFront(2); err != nil { // writes journal.meta
			t.Fatal(err)
		}
		f.close(l)
		if !clean {
			f.unclose() // as a crash leaves it: no manifest, the newest unsealed
		}
		return f.dir, filepath.Base(f.newest())
	}
	for _, clean := range []bool{true, false} {
		for _, n := range names {
			for _, k := range kinds {
				state := "AfterCrash"
				if clean {
					state = "AfterClose"
				}
				t.Run(state+"/"+n.name+"/"+k.name, func(t *testing.T) {
					dir, newest := build(t, clean)
					file := newest
					if n.file != nil {
						file = n.file(dir)
					}
					path := filepath.Join(dir, file)
					os.Remove(path)
					k.make(t, path)
					for _, verify := range []bool{false, true} {
						var err error
						within(t, 10*time.Second, "Open", func() {
							var l *Log
							l, err = Open(dir, &Options{Logger: quiet, Verify: verify})
							if err == nil {
								l.Close()
							}
						})
						want := n.wantErr
						if err == nil && clean && n.name == "SealedSegment" && !verify {
							// "A sealed segment damaged while the log was
							// closed is reported [...] when it is first
							// read, not by a default Open."
							within(t, 10*time.Second, "Read", func() {
								l, oerr := Open(dir, &Options{Logger: quiet})
								if oerr != nil {
									err = oerr
									return
								}
								defer l.Close()
								for i := l.FirstIndex(); i <= l.LastIndex() && err == nil; i++ {
									_, err = l.Read(i)
								}
							})
						}
						if !errors.Is(err, want) {
							t.Errorf("Open (Verify %v) with a %s at %s: %v, want %v", verify, k.name, file, err, want)
						} else if !strings.Contains(err.Error(), file) {
							t.Errorf("Open's error does not name %s: %v", file, err)
						}
					}
				})
			}
		}
	}
}
