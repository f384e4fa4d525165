package checkpoint_test

import (
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gojournal/journal/checkpoint"
	"github.com/gojournal/journal/vfs"
)

// recFS wraps the OS file system, recording the operations that matter to
// durability and failing the first one of kind failOp.
type recFS struct {
	vfs.FS
	dir    string
	ops    []string
	failOp string
}

var errInjected = errors.New("injected failure")

func (r *recFS) do(op, name string) error {
	r.ops = append(r.ops, op+" "+name)
	if op == r.failOp {
		r.failOp = "" // once
		return fmt.Errorf("%s %s: %w", op, name, errInjected)
	}
	return nil
}

func (r *recFS) rel(name string) string {
	rel, _ := filepath.Rel(r.dir, name)
	if strings.HasPrefix(rel, vfs.TempPrefix) {
		return "tmp" // the suffix is random
	}
	return rel
}

func (r *recFS) OpenFile(name string, flag int, perm fs.FileMode) (vfs.File, error) {
	f, err := r.FS.OpenFile(name, flag, perm)
	if err != nil {
		return nil, err
	}
	return &recFile{File: f, fs: r, name: r.rel(name)}, nil
}

func (r *recFS) Rename(oldname, newname string) error {
	if err := r.do("rename", r.rel(oldname)+"->"+r.rel(newname)); err != nil {
		return err
	}
	return r.FS.Rename(oldname, newname)
}

func (r *recFS) SyncDir(dir string) error {
	if err := r.do("syncdir", r.rel(dir)); err != nil {
		return err
	}
	return r.FS.SyncDir(dir)
}

type recFile struct {
	vfs.File
	fs    *recFS
	name  string
	wrote bool
}

func (f *recFile) WriteAt(p []byte, off int64) (int, error) {
	if !f.wrote { // record the first write only
		f.wrote = true
		if err := f.fs.do("write", f.name); err != nil {
			return 0, err
		}
	}
	return f.File.WriteAt(p, off)
}

func (f *recFile) Sync() error {
	if err := f.fs.do("sync", f.name); err != nil {
		return err
	}
	return f.File.Sync()
}

func (f *recFile) Close() error {
	err := f.File.Close()
	if err := f.fs.do("close", f.name); err != nil {
		return err
	}
	return err
}

// TestWriteProtocol checks the order of the operations that make a Write
// atomic and durable, and that a failure of any of them before the rename
// leaves the previous snapshot in force and no temporary file behind.
func TestWriteProtocol(t *testing.T) {
	dir := t.TempDir()
	rfs := &recFS{FS: vfs.Default, dir: dir}
	if err := checkpoint.Write(rfs, dir, 1, checkpoint.WriteOptions{}, writeBytes([]byte("one"))); err != nil {
		t.Fatal(err)
	}
	want := "write tmp, sync tmp, close tmp, rename tmp->snapshot, syncdir ."
	if got := strings.Join(rfs.ops, ", "); got != want {
		t.Fatalf("operations:\n got %s\nwant %s", got, want)
	}

	for _, op := range []string{"write", "sync", "close", "rename"} {
		t.Run("FailedBeforeRename/"+op, func(t *testing.T) {
			rfs := &recFS{FS: vfs.Default, dir: dir, failOp: op}
			err := checkpoint.Write(rfs, dir, 2, checkpoint.WriteOptions{}, writeBytes([]byte("two")))
			if !errors.Is(err, errInjected) {
				t.Fatalf("Write error = %v, want the injected failure", err)
			}
			if index, got := load(t, dir); index != 1 || string(got) != "one" {
				t.Errorf("after a failed %s: %d %q, want 1 \"one\"", op, index, got)
			}
			if ts := temps(t, dir); len(ts) != 0 {
				t.Errorf("temporary files left: %q", ts)
			}
		})
	}
	t.Run("FailedDirectorySync", func(t *testing.T) {
		// The rename happened but may not survive a crash: the caller
		// must hear of it (and must not delete log records yet).
		rfs := &recFS{FS: vfs.Default, dir: dir, failOp: "syncdir"}
		err := checkpoint.Write(rfs, dir, 2, checkpoint.WriteOptions{}, writeBytes([]byte("two")))
		if !errors.Is(err, errInjected) {
			t.Fatalf("Write error = %v, want the injected failure", err)
		}
	})
}
