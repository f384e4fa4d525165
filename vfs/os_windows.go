package vfs

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"syscall"

	"golang.org/x/sys/windows"
)

// Windows: FlushFileBuffers (os_portable.go), LockFileEx, MoveFileEx, and
// no directory sync.

// winFile reports a full disk as syscall.ENOSPC too, as on every other
// platform: journal checks for ENOSPC to keep a log usable on a full disk
// (a TruncateFront gives back preallocated space and retries; a spare
// segment is not prepared), and Windows says ERROR_DISK_FULL or
// ERROR_HANDLE_DISK_FULL instead.
type winFile struct{ osFile }

func newFile(f *os.File) File { return winFile{osFile{f}} }

func (f winFile) WriteAt(p []byte, off int64) (int, error) {
	n, err := f.osFile.WriteAt(p, off)
	return n, diskFull(err)
}

func (f winFile) Truncate(size int64) error    { return diskFull(f.osFile.Truncate(size)) }
func (f winFile) Preallocate(size int64) error { return diskFull(f.osFile.Preallocate(size)) }
func (f winFile) Sync() error                  { return diskFull(f.osFile.Sync()) }

// diskFullError is a Windows full-disk error that errors.Is also matches
// with syscall.ENOSPC.
type diskFullError struct{ err error }

func (e diskFullError) Error() string      { return e.err.Error() }
func (e diskFullError) Unwrap() error      { return e.err }
func (diskFullError) Is(target error) bool { return target == syscall.ENOSPC }

// diskFull wraps err when it says the disk is full.
func diskFull(err error) error {
	if errors.Is(err, windows.ERROR_DISK_FULL) || errors.Is(err, windows.ERROR_HANDLE_DISK_FULL) {
		return diskFullError{err}
	}
	return err
}

// openFile opens with FILE_SHARE_DELETE besides the read and write sharing
// os.OpenFile gives, so that a file this process (a Reader, a snapshot
// being read) holds open can still be removed or renamed over: without
// it TruncateFront and a checkpoint's replacement fail with a sharing
// violation while anyone reads. Windows removes the name of a file
// deleted while open at once where it uses POSIX delete semantics (NTFS
// on current Windows 10 and 11); elsewhere the name lingers until the
// last handle closes.
func openFile(name string, flag int, perm fs.FileMode) (*os.File, error) {
	if flag&(os.O_APPEND|os.O_SYNC) != 0 {
		return os.OpenFile(name, flag, perm) // not used by journal
	}
	p, err := windows.UTF16PtrFromString(name)
	if err != nil {
		return nil, &fs.PathError{Op: "open", Path: name, Err: err}
	}
	var access uint32
	switch flag & (os.O_RDONLY | os.O_WRONLY | os.O_RDWR) {
	case os.O_RDONLY:
		access = windows.GENERIC_READ
	case os.O_WRONLY:
		access = windows.GENERIC_WRITE
	default:
		access = windows.GENERIC_READ | windows.GENERIC_WRITE
	}
	create := uint32(windows.OPEN_EXISTING)
	switch {
	case flag&(os.O_CREATE|os.O_EXCL) == os.O_CREATE|os.O_EXCL:
		create = windows.CREATE_NEW
	case flag&os.O_CREATE != 0:
		create = windows.OPEN_ALWAYS
	}
	attrs := uint32(windows.FILE_ATTRIBUTE_NORMAL)
	if perm&0o200 == 0 {
		attrs = windows.FILE_ATTRIBUTE_READONLY
	}
	if access == windows.GENERIC_READ {
		attrs |= windows.FILE_FLAG_BACKUP_SEMANTICS // directories open too
	}
	share := uint32(windows.FILE_SHARE_READ | windows.FILE_SHARE_WRITE | windows.FILE_SHARE_DELETE)
	h, err := windows.CreateFile(p, access, share, nil, create, attrs, 0)
	if err != nil {
		return nil, &fs.PathError{Op: "open", Path: name, Err: diskFull(err)}
	}
	f := os.NewFile(uintptr(h), name)
	if flag&os.O_TRUNC != 0 {
		if err := f.Truncate(0); err != nil {
			f.Close()
			return nil, err
		}
	}
	return f, nil
}

// rename is MoveFileEx replacing the target, with MOVEFILE_WRITE_THROUGH
// so it returns only once the rename is on disk: Windows has no directory
// sync to make it durable later.
func rename(oldname, newname string) error {
	from, err := windows.UTF16PtrFromString(oldname)
	if err == nil {
		var to *uint16
		if to, err = windows.UTF16PtrFromString(newname); err == nil {
			err = windows.MoveFileEx(from, to, windows.MOVEFILE_REPLACE_EXISTING|windows.MOVEFILE_WRITE_THROUGH)
		}
	}
	if err != nil {
		return &os.LinkError{Op: "rename", Old: oldname, New: newname, Err: diskFull(err)}
	}
	return nil
}

// syncDir does nothing: Windows has no call that flushes a directory. NTFS
// journals its metadata: a file's creation is in its log, which
// FlushFileBuffers on the file (Sync) commits, and renames are written
// through (rename). Removals are not flushed: after a power cut a removed
// file may be back, which recovery treats as the leftover of a truncation
// that did not finish.
func syncDir(dir string) error { return nil }

func lock(name string) (io.Closer, error) {
	f, err := os.OpenFile(name, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, err
	}
	// LockFileEx locks belong to the handle, so a second Open in this
	// process conflicts just as another process does.
	h := windows.Handle(f.Fd())
	err = windows.LockFileEx(h, windows.LOCKFILE_EXCLUSIVE_LOCK|windows.LOCKFILE_FAIL_IMMEDIATELY, 0, 1, 0, new(windows.Overlapped))
	if err != nil {
		f.Close()
		if errors.Is(err, windows.ERROR_LOCK_VIOLATION) {
			return nil, fmt.Errorf("%w: %s", ErrLocked, name)
		}
		return nil, fmt.Errorf("vfs: lock %s: %w", name, err)
	}
	return winLock{f}, nil
}

type winLock struct{ f *os.File }

// Close unlocks before closing: Windows releases the locks of a closed
// handle only eventually, and a quick reopen must not find it held.
func (l winLock) Close() error {
	err := windows.UnlockFileEx(windows.Handle(l.f.Fd()), 0, 1, 0, new(windows.Overlapped))
	if cerr := l.f.Close(); err == nil {
		err = cerr
	}
	return err
}
