package vfs

import (
	"fmt"
	"io"
	"io/fs"
	"os"
	"slices"
)

// The OS file system is split by platform, in files with build
// constraints; nothing else in journal has any:
//
//	            Sync              Preallocate            SyncDir      Lock
//	Linux       fdatasync         fallocate              fsync        flock
//	macOS       F_FULLFSYNC       F_PREALLOCATE, extend  F_FULLFSYNC  flock
//	FreeBSD     fdatasync         posix_fallocate        fsync        flock
//	Windows     FlushFileBuffers  extend                 none         LockFileEx
//	other Unix  fsync             extend                 fsync        fcntl F_SETLK
//
// The build tag journal_portable puts Linux, macOS and FreeBSD on the last
// row (os_portable.go, os_nohints.go, lock_fcntl.go), so the tests can run
// the fallback path. StartWriteback (sync_file_range) and Data (lseek
// SEEK_DATA) are taken on Linux only; elsewhere they do nothing and report
// unknown (os_nohints.go).

// Default is the operating system's file system.
var Default FS = osFS{}

type osFS struct{}

// osFile is an *os.File, whose Chmod is the fchmod File.Chmod promises.
type osFile struct{ *os.File }

var _ File = osFile{}

func (osFS) OpenFile(name string, flag int, perm fs.FileMode) (File, error) {
	f, err := openFile(name, flag, perm)
	if err != nil {
		return nil, err
	}
	return newFile(f), nil
}

func (osFS) Remove(name string) error                    { return os.Remove(name) }
func (osFS) Rename(oldname, newname string) error        { return rename(oldname, newname) }
func (osFS) MkdirAll(dir string, perm fs.FileMode) error { return os.MkdirAll(dir, perm) }
func (osFS) Stat(name string) (fs.FileInfo, error)       { return os.Stat(name) }

func (osFS) ReadDir(dir string) ([]string, error) {
	// Names only: os.ReadDir would make (and sort) an entry per name,
	// which Open, listing thousands of segments, does not need.
	f, err := os.Open(dir)
	if err != nil {
		return nil, err
	}
	names, err := f.Readdirnames(-1)
	f.Close()
	if err != nil {
		return nil, err
	}
	slices.Sort(names)
	return names, nil
}

// SyncDir and Lock are per platform (os_unix.go, os_windows.go,
// lock_*.go).
func (osFS) SyncDir(dir string) error {
	if err := syncDir(dir); err != nil {
		return fmt.Errorf("vfs: sync directory %s: %w", dir, err)
	}
	return nil
}

func (osFS) Lock(name string) (io.Closer, error) { return lock(name) }

func (f osFile) Size() (int64, error) {
	fi, err := f.Stat()
	if err != nil {
		return 0, err
	}
	return fi.Size(), nil
}

func (f osFile) Name() string { return f.File.Name() }
