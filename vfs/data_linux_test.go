//go:build linux && !journal_portable

package vfs_test

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/gojournal/journal/vfs"
)

// holeFS are the file systems whose lseek reports fallocate'd but never
// written space as a hole: there File.Data must know.
var holeFS = map[int64]string{
	unix.EXT4_SUPER_MAGIC:  "ext4",
	unix.XFS_SUPER_MAGIC:   "xfs",
	unix.TMPFS_MAGIC:       "tmpfs",
	unix.BTRFS_SUPER_MAGIC: "btrfs",
}

// dataKnownOn reports whether File.Data must know where data lies in dir.
func dataKnownOn(t *testing.T, dir string) bool {
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		t.Fatal(err)
	}
	name, ok := holeFS[int64(st.Type)]
	t.Logf("t.TempDir() is on file system type %#x (%s)", st.Type, name)
	return ok
}

// On a closed file the Linux calls behind Sync, StartWriteback and Data
// report fs.ErrClosed, as os.File's methods do, not the EBADF of a call
// on descriptor -1, which a caller cannot tell from a failing disk.
func TestClosedFileCalls(t *testing.T) {
	f, err := vfs.Default.OpenFile(filepath.Join(t.TempDir(), "f"), os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	_, _, _, derr := f.Data(0)
	for name, err := range map[string]error{"Sync": f.Sync(), "StartWriteback": f.StartWriteback(0, 1), "Data": derr} {
		if !errors.Is(err, fs.ErrClosed) {
			t.Errorf("%s on a closed file: %v, want fs.ErrClosed", name, err)
		}
	}
}
