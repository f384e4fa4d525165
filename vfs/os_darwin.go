//go:build darwin && !journal_portable

package vfs

import (
	"errors"
	"os"

	"golang.org/x/sys/unix"
)

// Sync is fcntl(F_FULLFSYNC). On macOS fsync only hands the data to the
// drive, whose cache may lose it at a power cut; F_FULLFSYNC also makes
// the drive write its cache to the medium. File systems that refuse it
// (SMB, some FUSE and network mounts: ENOTSUP, ENOTTY) get fsync, which
// is the most they offer; there a power loss may lose what the drive
// cached.
func (f osFile) Sync() error {
	fd, err := f.fd("fcntl F_FULLFSYNC")
	if err != nil {
		return err
	}
	err = ignoringEINTR(func() error {
		_, err := unix.FcntlInt(uintptr(fd), unix.F_FULLFSYNC, 0)
		return err
	})
	op := "fcntl F_FULLFSYNC"
	if errors.Is(err, unix.ENOTSUP) || errors.Is(err, unix.EOPNOTSUPP) || errors.Is(err, unix.ENOTTY) {
		op = "fsync"
		err = ignoringEINTR(func() error { return unix.Fsync(fd) })
	}
	if err != nil {
		return &os.PathError{Op: op, Path: f.File.Name(), Err: err}
	}
	return nil
}

// Preallocate reserves the blocks with fcntl(F_PREALLOCATE), which does
// not change the file's size, then extends the file to size. Where the
// file system cannot reserve, the extension alone is done.
func (f osFile) Preallocate(size int64) error {
	cur, err := f.Size()
	if err != nil || cur >= size {
		return err
	}
	// F_PEOFPOSMODE counts from the end of the space already allocated,
	// which is at or past cur, so this reserves at least what is missing.
	st := unix.Fstore_t{Flags: unix.F_ALLOCATEALL, Posmode: unix.F_PEOFPOSMODE, Length: size - cur}
	err = unix.FcntlFstore(f.Fd(), unix.F_PREALLOCATE, &st)
	if err != nil && !errors.Is(err, unix.ENOTSUP) && !errors.Is(err, unix.EOPNOTSUPP) && !errors.Is(err, unix.EINVAL) {
		return &os.PathError{Op: "fcntl F_PREALLOCATE", Path: f.File.Name(), Err: err}
	}
	return f.Truncate(size)
}
