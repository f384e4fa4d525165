//go:build linux && !journal_portable

package vfs_test

import (
	"testing"

	"golang.org/x/sys/unix"
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
