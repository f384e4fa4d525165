package crashfs

import (
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/gojournal/journal/vfs"
)

// The helpers below fail the test on any error; they are for building
// states, not for testing the calls they make.

func mkdir(t *testing.T, fsys *FS, dir string) {
	t.Helper()
	if err := fsys.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
}

// create creates name holding data, without syncing anything.
func create(t *testing.T, fsys *FS, name, data string) {
	t.Helper()
	f, err := fsys.OpenFile(name, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt([]byte(data), 0); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
}

// withFile runs fn on name opened read-write.
func withFile(t *testing.T, fsys *FS, name string, fn func(f vfs.File) error) {
	t.Helper()
	f, err := fsys.OpenFile(name, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := fn(f); err != nil {
		t.Fatal(err)
	}
}

func syncFile(t *testing.T, fsys *FS, name string) {
	t.Helper()
	withFile(t, fsys, name, func(f vfs.File) error { return f.Sync() })
}

func writeAt(t *testing.T, fsys *FS, name, data string, off int64) {
	t.Helper()
	withFile(t, fsys, name, func(f vfs.File) error {
		_, err := f.WriteAt([]byte(data), off)
		return err
	})
}

func truncate(t *testing.T, fsys *FS, name string, size int64) {
	t.Helper()
	withFile(t, fsys, name, func(f vfs.File) error { return f.Truncate(size) })
}

func preallocate(t *testing.T, fsys *FS, name string, size int64) {
	t.Helper()
	withFile(t, fsys, name, func(f vfs.File) error { return f.Preallocate(size) })
}

func syncDir(t *testing.T, fsys *FS, dir string) {
	t.Helper()
	if err := fsys.SyncDir(dir); err != nil {
		t.Fatal(err)
	}
}

func rename(t *testing.T, fsys *FS, oldname, newname string) {
	t.Helper()
	if err := fsys.Rename(oldname, newname); err != nil {
		t.Fatal(err)
	}
}

func remove(t *testing.T, fsys *FS, name string) {
	t.Helper()
	if err := fsys.Remove(name); err != nil {
		t.Fatal(err)
	}
}

// readFile returns name's whole contents.
func readFile(fsys *FS, name string) ([]byte, error) {
	f, err := fsys.OpenFile(name, os.O_RDONLY, 0)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	size, err := f.Size()
	if err != nil {
		return nil, err
	}
	b := make([]byte, size)
	if _, err := f.ReadAt(b, 0); err != nil && !errors.Is(err, io.EOF) {
		return nil, err
	}
	return b, nil
}

// tree maps every path under the root to its contents; directories map
// to "/".
func tree(t *testing.T, fsys *FS) map[string]string {
	t.Helper()
	out := make(map[string]string)
	var walk func(dir string)
	walk = func(dir string) {
		names, err := fsys.ReadDir(dir)
		if err != nil {
			t.Fatal(err)
		}
		for _, name := range names {
			p := filepath.Join(dir, name)
			fi, err := fsys.Stat(p)
			if err != nil {
				t.Fatal(err)
			}
			if fi.IsDir() {
				out[p] = "/"
				walk(p)
				continue
			}
			b, err := readFile(fsys, p)
			if err != nil {
				t.Fatal(err)
			}
			out[p] = string(b)
		}
	}
	walk("")
	return out
}
