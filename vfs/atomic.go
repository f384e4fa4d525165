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
)

// TempPrefix starts the name of every temporary file journal writes, so a
// directory's leftovers from a crash are recognisable (and hidden).
const TempPrefix = ".tmp-"

// WriteFile atomically and durably replaces the file at path with what
// write produces: the data goes to a temporary file in the same directory,
// which is fdatasync'd, renamed over path, and the directory is synced.
// After a crash at any point path holds either its old contents or the new
// ones, never a mix; a leftover temporary file may remain.
//
// A new file is created with perm (less the umask); an existing file keeps
// its permission bits.
func WriteFile(fsys FS, path string, perm fs.FileMode, write func(w io.Writer) error) (err error) {
	if fi, err := fsys.Stat(path); err == nil {
		perm = fi.Mode().Perm()
	} else if !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("vfs: replace %s: %w", path, err)
	}
	dir, base := filepath.Split(path)
	if dir == "" {
		dir = "."
	}
	tmp := filepath.Join(dir, TempPrefix+base+"-"+strconv.FormatUint(rand.Uint64(), 36))
	f, err := fsys.OpenFile(tmp, os.O_RDWR|os.O_CREATE|os.O_EXCL, perm)
	if err != nil {
		return fmt.Errorf("vfs: replace %s: %w", path, err)
	}
	defer func() {
		if err != nil {
			fsys.Remove(tmp)
			err = fmt.Errorf("vfs: replace %s: %w", path, err)
		}
	}()
	if err := fill(f, write); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := fsys.Rename(tmp, path); err != nil {
		return err
	}
	return fsys.SyncDir(dir)
}

// fill streams write's output into f through a buffer and syncs it.
func fill(f File, write func(w io.Writer) error) error {
	bw := bufio.NewWriterSize(io.NewOffsetWriter(f, 0), 256<<10)
	if err := write(bw); err != nil {
		return err
	}
	if err := bw.Flush(); err != nil {
		return err
	}
	return f.Sync()
}
