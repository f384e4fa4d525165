package vfs

import (
	"errors"
	"io/fs"
	"syscall"
	"testing"

	"golang.org/x/sys/windows"
)

// TestDiskFullIsENOSPC: Windows' two full-disk errors match syscall.ENOSPC,
// as journal's full-disk handling expects, keep their own identity, and no
// other error is taken for a full disk.
func TestDiskFullIsENOSPC(t *testing.T) {
	for _, errno := range []error{windows.ERROR_DISK_FULL, windows.ERROR_HANDLE_DISK_FULL} {
		err := &fs.PathError{Op: "write", Path: "x", Err: diskFull(errno)}
		if !errors.Is(err, syscall.ENOSPC) || !errors.Is(err, errno) {
			t.Errorf("%v: errors.Is ENOSPC %v, itself %v; want both", errno, errors.Is(err, syscall.ENOSPC), errors.Is(err, errno))
		}
	}
	if err := diskFull(windows.ERROR_ACCESS_DENIED); errors.Is(err, syscall.ENOSPC) {
		t.Errorf("ERROR_ACCESS_DENIED is taken for a full disk")
	}
	if diskFull(nil) != nil {
		t.Errorf("diskFull(nil) is not nil")
	}
}
