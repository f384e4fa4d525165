package vfs

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"slices"

	"golang.org/x/sys/unix"
)

// Default is the operating system's file system.
var Default FS = osFS{}

type osFS struct{}

// osFile is an *os.File, whose Chmod is the fchmod File.Chmod promises.
type osFile struct{ *os.File }

var _ File = osFile{}

func (osFS) OpenFile(name string, flag int, perm fs.FileMode) (File, error) {
	f, err := os.OpenFile(name, flag, perm)
	if err != nil {
		return nil, err
	}
	return osFile{f}, nil
}

func (osFS) Remove(name string) error                    { return os.Remove(name) }
func (osFS) Rename(oldname, newname string) error        { return os.Rename(oldname, newname) }
func (osFS) MkdirAll(dir string, perm fs.FileMode) error { return os.MkdirAll(dir, perm) }
func (osFS) Stat(name string) (fs.FileInfo, error)       { return os.Stat(name) }

func (osFS) ReadDir(dir string) ([]string, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	names := make([]string, len(entries))
	for i, e := range entries {
		names[i] = e.Name()
	}
	slices.Sort(names)
	return names, nil
}

func (osFS) SyncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	// A directory is synced with fsync: fdatasync need not cover the
	// entries on every file system.
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("vfs: sync directory %s: %w", dir, err)
	}
	return nil
}

func (osFS) Lock(name string) (io.Closer, error) {
	f, err := os.OpenFile(name, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, err
	}
	// flock locks belong to the open file description, so a second Open in
	// this process conflicts just as another process does.
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, unix.EWOULDBLOCK) {
			return nil, fmt.Errorf("%w: %s", ErrLocked, name)
		}
		return nil, fmt.Errorf("vfs: lock %s: %w", name, err)
	}
	return f, nil
}

func (f osFile) Sync() error {
	for {
		err := unix.Fdatasync(int(f.Fd()))
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

func (f osFile) Size() (int64, error) {
	fi, err := f.Stat()
	if err != nil {
		return 0, err
	}
	return fi.Size(), nil
}

func (f osFile) Name() string { return f.File.Name() }

// StartWriteback starts writing the dirty pages of [off, off+n) to disk
// without waiting for them (it makes nothing durable). Where
// sync_file_range is missing or refuses the file, it does nothing.
func (f osFile) StartWriteback(off, n int64) error {
	err := unix.SyncFileRange(int(f.Fd()), off, n, unix.SYNC_FILE_RANGE_WRITE)
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
	fd := int(f.Fd())
	_ = unix.Fadvise(fd, off, 0, unix.FADV_DONTNEED) // only a hint
	start, err = unix.Seek(fd, off, unix.SEEK_DATA)
	if errors.Is(err, unix.ENXIO) {
		// No data at or after off (or off is at or past the end).
		size, err := f.Size()
		return max(size, off), max(size, off), err == nil, err
	}
	if err == nil {
		end, err = unix.Seek(fd, start, unix.SEEK_HOLE)
	}
	if errors.Is(err, unix.EINVAL) || errors.Is(err, unix.EOPNOTSUPP) || errors.Is(err, unix.ENOSYS) {
		return 0, 0, false, nil
	}
	if err != nil {
		return 0, 0, false, &os.PathError{Op: "lseek", Path: f.File.Name(), Err: err}
	}
	return start, end, true, nil
}
