//go:build unix

package vfs_test

import (
	"errors"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/gojournal/journal/vfs"
	"golang.org/x/sys/unix"
)

// TestOpenFileRefusesAFIFO: a read-only open of a named pipe returns at
// once with ErrNotRegular (it blocked until a writer came: Open and `wal
// verify` hung on a pipe under a name the log owns); a read-write one is
// refused too. Regular files open as before, and a regular file opened
// read-only reads as usual.
func TestOpenFileRefusesAFIFO(t *testing.T) {
	dir := t.TempDir()
	pipe := filepath.Join(dir, "pipe")
	if err := syscall.Mkfifo(pipe, 0o644); err != nil {
		t.Skipf("mkfifo: %v", err)
	}
	for _, flag := range []int{os.O_RDONLY, os.O_RDWR} {
		done := make(chan error, 1)
		go func() {
			f, err := vfs.Default.OpenFile(pipe, flag, 0)
			if err == nil {
				f.Close()
			}
			done <- err
		}()
		select {
		case err := <-done:
			if !errors.Is(err, vfs.ErrNotRegular) {
				t.Errorf("OpenFile(FIFO, %#x): %v, want ErrNotRegular", flag, err)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("OpenFile(FIFO, %#x) blocked", flag)
		}
	}
	file := filepath.Join(dir, "file")
	if err := os.WriteFile(file, []byte("hello"), 0o644); err != nil {
		t.Fatal(err)
	}
	f, err := vfs.Default.OpenFile(file, os.O_RDONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	// Blocking, as os.NewFile expects of a regular file: openFile
	// opened it with O_NONBLOCK, and must have cleared it.
	if fl, err := unix.FcntlInt(f.(interface{ Fd() uintptr }).Fd(), unix.F_GETFL, 0); err != nil || fl&unix.O_NONBLOCK != 0 {
		t.Errorf("a regular file opened read-only: flags %#x, %v; want O_NONBLOCK cleared", fl, err)
	}
	buf := make([]byte, 5)
	if _, err := f.ReadAt(buf, 0); err != nil || string(buf) != "hello" {
		t.Errorf("ReadAt: %q, %v", buf, err)
	}
	f.Close()
	// A directory is refused too, read-only or not, as crashfs refuses it:
	// journal opens files only, and a directory under one of its names
	// must read as ErrNotRegular (it said EISDIR, on the first read or
	// at open).
	for _, flag := range []int{os.O_RDONLY, os.O_RDWR} {
		if d, err := vfs.Default.OpenFile(dir, flag, 0); !errors.Is(err, vfs.ErrNotRegular) || !errors.Is(err, syscall.EISDIR) {
			if err == nil {
				d.Close()
			}
			t.Errorf("OpenFile(directory, %#x): %v, want ErrNotRegular and EISDIR", flag, err)
		}
	}
}
