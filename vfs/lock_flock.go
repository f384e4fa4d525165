//go:build (linux || darwin || freebsd) && !journal_portable

package vfs

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"

	"golang.org/x/sys/unix"
)

func lock(name string) (io.Closer, error) {
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
	// flock locks belong to the open file description, so a second Open in
	// this process conflicts just as another process does.
	err = ignoringEINTR(func() error { return unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB) })
	if err != nil {
		f.Close()
		if errors.Is(err, unix.EWOULDBLOCK) {
			return nil, fmt.Errorf("%w: %s", ErrLocked, name)
		}
		return nil, fmt.Errorf("vfs: lock %s: %w", name, err)
	}
	return f, nil
}
