//go:build unix

package vfs

import (
	"fmt"
	"io/fs"
	"os"

	"golang.org/x/sys/unix"
)

// newFile is the File OpenFile returns: on Unix the errors are the
// system's own (a full disk is ENOSPC).
func newFile(f *os.File) File { return osFile{f} }

// fd returns the file's descriptor for a system call named op, or, once
// the file is closed, the error os.File's own methods give then
// (fs.ErrClosed): Fd returns -1, and the call would fail with EBADF, which
// callers cannot tell from a failing disk.
func (f osFile) fd(op string) (int, error) {
	fd := f.Fd()
	if fd == ^uintptr(0) {
		return -1, &os.PathError{Op: op, Path: f.File.Name(), Err: os.ErrClosed}
	}
	return int(fd), nil
}

// openFile is open(2) and os.NewFile rather than os.OpenFile: os.OpenFile
// offers every file to the runtime's poller, which regular files never
// join (on Linux epoll refuses them), at the cost of four fcntl calls and
// a failing epoll_ctl for each open and close; os.NewFile, handed a
// blocking descriptor, makes one fcntl call. Open opens a file for each
// segment of the log, so these add up. Reads and writes are the same
// blocking pread and pwrite either way.
func openFile(name string, flag int, perm fs.FileMode) (*os.File, error) {
	// A read-only open of a FIFO blocks until a writer comes, which no
	// writer ever will: Open and `wal verify` would hang on a named pipe
	// left under a name the log owns. O_NONBLOCK makes that open return
	// at once; the check below then refuses the pipe. (It changes nothing
	// for regular files, and is cleared before they are used.)
	nonblock := flag&(unix.O_WRONLY|unix.O_RDWR|unix.O_NONBLOCK) == 0
	oflag := flag
	if nonblock {
		oflag |= unix.O_NONBLOCK
	}
	var fd int
	err := ignoringEINTR(func() (err error) {
		fd, err = unix.Open(name, oflag|unix.O_CLOEXEC, uint32(perm.Perm()))
		return err
	})
	if err != nil {
		return nil, &fs.PathError{Op: "open", Path: name, Err: notRegular(err)}
	}
	if err := usable(fd, nonblock, flag); err != nil {
		unix.Close(fd)
		return nil, &fs.PathError{Op: "open", Path: name, Err: err}
	}
	return os.NewFile(uintptr(fd), name), nil
}

// usable refuses a file that is not a regular file (a FIFO, a socket, a
// device: never one journal wrote, and reads from it may block or never
// end; a directory, which crashfs refuses too, and which journal would
// only fail to read later, with EISDIR, where callers look for
// ErrNotRegular), and clears O_NONBLOCK if openFile set it,
// so that os.NewFile sees the blocking descriptor it expects: F_SETFL
// with the caller's flags (the kernel takes only the status flags from
// them), one call where unix.SetNonblock makes two.
func usable(fd int, nonblock bool, flag int) error {
	var st unix.Stat_t
	if err := ignoringEINTR(func() error { return unix.Fstat(fd, &st) }); err != nil {
		return err
	}
	switch st.Mode & unix.S_IFMT {
	case unix.S_IFREG:
	case unix.S_IFDIR:
		return notRegular(unix.EISDIR)
	default:
		return ErrNotRegular
	}
	if !nonblock {
		return nil
	}
	_, err := unix.FcntlInt(uintptr(fd), unix.F_SETFL, flag)
	return err
}

// notRegular adds ErrNotRegular to the errors open(2) gives for a name
// that is no regular file: EISDIR (a directory opened to write) and ENXIO
// (a socket, or a device with no driver). The README promises
// errors.Is(err, vfs.ErrNotRegular) for every such file under a name the
// log owns; a socket there failed Open with a bare ENXIO, a directory
// with EISDIR. The system's error stays in the chain.
func notRegular(err error) error {
	if err == unix.EISDIR || err == unix.ENXIO {
		return fmt.Errorf("%w (%w)", ErrNotRegular, err)
	}
	return err
}

// rename is rename(2), atomic on every POSIX file system.
func rename(oldname, newname string) error { return os.Rename(oldname, newname) }

// syncDir fsyncs the directory: fdatasync need not cover the entries on
// every file system. On macOS, (*os.File).Sync is F_FULLFSYNC (fsync
// where the file system refuses it), so the entries reach the disk and
// not only the drive's cache.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}

// ignoringEINTR retries a system call that a signal interrupted.
func ignoringEINTR(call func() error) error {
	for {
		if err := call(); err != unix.EINTR {
			return err
		}
	}
}
