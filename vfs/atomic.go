package vfs

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// TempPrefix starts the name of every temporary file journal writes, so a
// directory's leftovers from a crash are recognisable (and hidden).
const TempPrefix = ".tmp-"

// IsTempOf reports whether name (a base name) is one of the temporary
// files WriteFile writes to replace a file named base: TempPrefix, base,
// "-" and a suffix. Recovery removes only such names, so another
// program's file that merely starts with TempPrefix is left alone.
func IsTempOf(name, base string) bool {
	suffix, ok := strings.CutPrefix(name, TempPrefix+base+"-")
	return ok && suffix != ""
}

// WriteFile atomically and durably replaces the file at path with what
// write produces: the data goes to a temporary file in the same directory
// (named TempPrefix + base name + "-" + a random suffix), which is
// fdatasync'd, renamed over path, and the directory is synced. After a crash
// at any point path holds either its old contents or the new ones, never a
// mix; a leftover temporary file may remain. When WriteFile returns an error
// (or write panics) the temporary file has been removed and path is
// untouched, unless the error came from the final directory sync, in which
// case the new contents are in place but may not survive a crash.
//
// A new file is created with perm (less the umask); an existing file keeps
// its permission bits (not its owner, special bits or extended attributes),
// set explicitly because the umask could strip some of them. A symbolic
// link at path is replaced by a regular file, which keeps the permission
// bits of the link's target.
//
// The writer passed to write is buffered and valid only until write
// returns.
func WriteFile(fsys FS, path string, perm fs.FileMode, write func(w io.Writer) error) (err error) {
	existing := false
	if fi, err := fsys.Stat(path); err == nil {
		perm, existing = fi.Mode().Perm(), true
	} else if !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("vfs: replace %s: %w", path, err)
	}
	dir, base := filepath.Dir(path), filepath.Base(path) // dir: "." for a bare name, never a trailing slash
	tmp := filepath.Join(dir, TempPrefix+base+"-"+strconv.FormatUint(rand.Uint64(), 36))
	f, err := fsys.OpenFile(tmp, os.O_RDWR|os.O_CREATE|os.O_EXCL, perm)
	if err != nil {
		return fmt.Errorf("vfs: replace %s: %w", path, err)
	}
	renamed := false
	defer func() {
		// Also runs when write panics, so no temporary file is left
		// behind by anything short of a crash.
		if !renamed {
			if f != nil {
				f.Close()
			}
			fsys.Remove(tmp)
		}
		if err != nil {
			err = fmt.Errorf("vfs: replace %s: %w", path, err)
		}
	}()
	if existing {
		// OpenFile applied the umask to perm; the replacement must keep
		// the old file's bits, so set them explicitly.
		if err := f.Chmod(perm); err != nil {
			return err
		}
	}
	if err := fill(f, write); err != nil {
		return err
	}
	err, f = f.Close(), nil
	if err != nil {
		return err
	}
	if err := fsys.Rename(tmp, path); err != nil {
		return err
	}
	renamed = true
	// fdatasync need not persist the chmod. On ext4 and XFS, whose
	// journals commit metadata in order, the directory sync that makes the
	// rename durable carries it too; elsewhere the worst a power cut can
	// leave is the umask's stricter mode, never a looser one.
	return fsys.SyncDir(dir)
}

// fill streams write's output into f through a buffer and syncs it.
func fill(f File, write func(w io.Writer) error) error {
	bw := bufio.NewWriterSize(&trickle{f: f}, 256<<10)
	if err := write(bw); err != nil {
		return err
	}
	if err := bw.Flush(); err != nil {
		return err
	}
	return f.Sync()
}

// trickleEvery is how much a long write accumulates before its pages are
// sent to disk.
const trickleEvery = 8 << 20

// trickle writes sequentially and starts writeback every trickleEvery
// bytes, so a large file reaches the disk while it is written instead of
// in one burst at its fdatasync, which would stall the log's own syncs.
type trickle struct {
	f       File
	off     int64
	flushed int64
}

func (t *trickle) Write(p []byte) (int, error) {
	n, err := t.f.WriteAt(p, t.off)
	t.off += int64(n)
	if err == nil && t.off-t.flushed >= trickleEvery {
		err = t.f.StartWriteback(t.flushed, t.off-t.flushed)
		t.flushed = t.off
	}
	return n, err
}
