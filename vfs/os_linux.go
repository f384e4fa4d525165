//go:build linux && !journal_portable

package vfs

import (
	"errors"
	"os"

	"golang.org/x/sys/unix"
)

// Linux: fdatasync, fallocate, sync_file_range and lseek(SEEK_DATA).
// The journal_portable build tag replaces all four with what every
// platform has (os_portable.go, os_nohints.go), so CI can run the tests,
// crash battery included, on the fallback path too.

// Sync is fdatasync: it flushes the data and the metadata needed to read
// it back (the size), and the drive's write cache with it.
func (f osFile) Sync() error {
	fd, err := f.fd("fdatasync")
	if err != nil {
		return err
	}
	for {
		err := unix.Fdatasync(fd)
		if err != unix.EINTR {
			if err != nil {
				return &os.PathError{Op: "fdatasync", Path: f.File.Name(), Err: err}
			}
			return nil
		}
	}
}

func (f osFile) Preallocate(size int64) error {
	cur, err := f.Size()
	if err != nil || cur >= size {
		return err
	}
	err = unix.Fallocate(int(f.Fd()), 0, cur, size-cur)
	if errors.Is(err, unix.EOPNOTSUPP) || errors.Is(err, unix.ENOSYS) {
		// The file system cannot reserve blocks: a size change is the
		// next best thing (zeros still read as the end of the log).
		return f.Truncate(size)
	}
	if err != nil {
		return &os.PathError{Op: "fallocate", Path: f.File.Name(), Err: err}
	}
	return nil
}

// StartWriteback starts writing the dirty pages of [off, off+n) to disk
// without waiting for them (it makes nothing durable). Where
// sync_file_range is missing or refuses the file, it does nothing.
func (f osFile) StartWriteback(off, n int64) error {
	fd, err := f.fd("sync_file_range")
	if err != nil {
		return err
	}
	err = unix.SyncFileRange(fd, off, n, unix.SYNC_FILE_RANGE_WRITE)
	if errors.Is(err, unix.ENOSYS) || errors.Is(err, unix.EINVAL) {
		return nil // only a hint
	}
	return err
}

// Data asks the file system where data lies (lseek SEEK_DATA, then
// SEEK_HOLE). ext4, XFS, btrfs and tmpfs report space reserved by
// fallocate but never written as a hole, and data still in the page cache
// as data. Where lseek cannot tell (an old kernel, a file system without
// the whence values), Data reports unknown.
//
// ext4 and XFS also report as data the zero pages a read of never-written
// space left in the page cache, and the kernel's read-ahead leaves them
// past every sequential read near the end of the data (up to
// read_ahead_kb, often megabytes; each read of them leaves more), so
// Data first drops the clean cached pages from off on (posix_fadvise
// DONTNEED). That changes nothing but speed: dirty pages stay, and a
// written page dropped is read again from the disk.
func (f osFile) Data(off int64) (start, end int64, known bool, err error) {
	fd, err := f.fd("lseek")
	if err != nil {
		return 0, 0, false, err
	}
	_ = unix.Fadvise(fd, off, 0, unix.FADV_DONTNEED) // only a hint
	start, err = unix.Seek(fd, off, unix.SEEK_DATA)
	if err == nil {
		end, err = unix.Seek(fd, start, unix.SEEK_HOLE)
	}
	if errors.Is(err, unix.ENXIO) {
		// No data at or after off (or off is at or past the end). From
		// SEEK_HOLE: the file was cut below start between the two calls
		// (a writer in another process sealing its newest segment; wal
		// info once failed with "lseek: no such device or address").
		size, err := f.Size()
		return max(size, off), max(size, off), err == nil, err
	}
	if errors.Is(err, unix.EINVAL) || errors.Is(err, unix.EOPNOTSUPP) || errors.Is(err, unix.ENOSYS) {
		return 0, 0, false, nil
	}
	if err != nil {
		return 0, 0, false, &os.PathError{Op: "lseek", Path: f.File.Name(), Err: err}
	}
	return start, end, true, nil
}
