//go:build unix && (journal_portable || !(linux || darwin || freebsd))

package vfs

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"sync"
	"syscall"

	"golang.org/x/sys/unix"
)

// The generic lock is a POSIX record lock (fcntl F_SETLK), which every
// Unix has, flock or not. Such a lock belongs to the process, not to the
// open file: a second F_SETLK by the same process succeeds, and closing
// any descriptor of the file drops the lock. So the process keeps its own
// table of the lock files it holds, by device and inode (two paths may
// name one file), and never opens a held file again.
//
// On Linux an fcntl lock and a flock do not see each other: every process
// that opens one directory must be built alike, all with journal_portable
// or none (the tests that run cmd/wal beside themselves build it with
// their own tags for this reason: crashtest.GoBuild).

type fileID struct{ dev, ino uint64 }

var (
	heldMu sync.Mutex
	held   = map[fileID]bool{}
)

func idOf(fi fs.FileInfo) fileID {
	st := fi.Sys().(*syscall.Stat_t)
	return fileID{uint64(st.Dev), uint64(st.Ino)}
}

func lock(name string) (io.Closer, error) {
	heldMu.Lock()
	defer heldMu.Unlock()
	if fi, err := os.Stat(name); err == nil && held[idOf(fi)] {
		return nil, fmt.Errorf("%w: %s", ErrLocked, name)
	}
	f, err := os.OpenFile(name, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		// A directory or socket under the lock file's name is no lock
		// file: ErrNotRegular, as OpenFile says for any other name.
		var pe *fs.PathError
		if errors.As(err, &pe) {
			pe.Err = notRegular(pe.Err)
		}
		return nil, err
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, err
	}
	id := idOf(fi)
	// Invariant: id is not held. The Stat above found the file free or
	// missing, and heldMu keeps any other Lock of this process out until
	// the table says so.
	lk := unix.Flock_t{Type: unix.F_WRLCK} // the whole file
	err = ignoringEINTR(func() error { return unix.FcntlFlock(f.Fd(), unix.F_SETLK, &lk) })
	if err != nil {
		f.Close()
		if errors.Is(err, unix.EAGAIN) || errors.Is(err, unix.EACCES) {
			return nil, fmt.Errorf("%w: %s", ErrLocked, name)
		}
		return nil, fmt.Errorf("vfs: lock %s: %w", name, err)
	}
	held[id] = true
	return &fcntlLock{f: f, id: id}, nil
}

type fcntlLock struct {
	f  *os.File
	id fileID
}

// Close drops the lock (closing the descriptor does) and the table entry.
func (l *fcntlLock) Close() error {
	heldMu.Lock()
	defer heldMu.Unlock()
	delete(held, l.id)
	return l.f.Close()
}
