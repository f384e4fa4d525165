//go:build freebsd && !journal_portable

package vfs

import (
	"errors"
	"os"
	"strconv"

	"golang.org/x/sys/unix"
)

// Sync is fdatasync (FreeBSD 11.1 and later); a kernel without it gets
// fsync, which flushes more.
func (f osFile) Sync() error {
	op := "fdatasync"
	fd, err := f.fd(op)
	if err != nil {
		return err
	}
	err = ignoringEINTR(func() error { return fdatasync(uintptr(fd)) })
	if errors.Is(err, unix.ENOSYS) {
		op = "fsync"
		err = ignoringEINTR(func() error { return unix.Fsync(fd) })
	}
	if err != nil {
		return &os.PathError{Op: op, Path: f.File.Name(), Err: err}
	}
	return nil
}

// Preallocate reserves blocks with posix_fallocate. ZFS refuses it
// (EINVAL: a copy-on-write file system cannot promise blocks in place),
// and so do some others (EOPNOTSUPP, ENODEV): there the file is only
// extended.
func (f osFile) Preallocate(size int64) error {
	cur, err := f.Size()
	if err != nil || cur >= size {
		return err
	}
	if strconv.IntSize == 32 {
		// off_t takes two argument words on 32-bit FreeBSD: extend only.
		return f.Truncate(size)
	}
	err = ignoringEINTR(func() error { return posixFallocate(f.Fd(), cur, size-cur) })
	if errors.Is(err, unix.EINVAL) || errors.Is(err, unix.EOPNOTSUPP) || errors.Is(err, unix.ENODEV) {
		return f.Truncate(size)
	}
	if err != nil {
		return &os.PathError{Op: "posix_fallocate", Path: f.File.Name(), Err: err}
	}
	return nil
}

func fdatasync(fd uintptr) error {
	if _, _, e := unix.Syscall(unix.SYS_FDATASYNC, fd, 0, 0); e != 0 {
		return e
	}
	return nil
}

// posixFallocate reports its error as the call's result, not in errno.
func posixFallocate(fd uintptr, off, n int64) error {
	r, _, e := unix.Syscall(unix.SYS_POSIX_FALLOCATE, fd, uintptr(off), uintptr(n))
	if e != 0 {
		return e
	}
	if r != 0 {
		return unix.Errno(r)
	}
	return nil
}
