package crashfs

import (
	"errors"
	"io"
	"io/fs"
	"os"
	"slices"
	"syscall"
	"testing"

	"github.com/gojournal/journal/vfs"
)

// TestErrors lists how calls fail, as os fails them.
func TestErrors(t *testing.T) {
	setup := func(t *testing.T) *FS {
		fsys := New()
		mkdir(t, fsys, "db/sub")
		create(t, fsys, "db/a", "hello")
		create(t, fsys, "db/sub/x", "x")
		return fsys
	}
	open := func(name string, flag int) func(*FS) error {
		return func(fsys *FS) error {
			f, err := fsys.OpenFile(name, flag, 0o644)
			if err == nil {
				f.Close()
			}
			return err
		}
	}
	tests := []struct {
		name string
		call func(fsys *FS) error
		want error
	}{
		{"OpenMissing", open("db/missing", os.O_RDONLY), fs.ErrNotExist},
		{"OpenInMissingDir", open("nodir/a", os.O_RDWR|os.O_CREATE), fs.ErrNotExist},
		{"OpenUnderFile", open("db/a/b", os.O_RDWR|os.O_CREATE), syscall.ENOTDIR},
		{"OpenExclExisting", open("db/a", os.O_RDWR|os.O_CREATE|os.O_EXCL), fs.ErrExist},
		{"OpenDir", open("db/sub", os.O_RDONLY), syscall.EISDIR},
		{"OpenRoot", open("/", os.O_RDONLY), syscall.EISDIR},
		{"RemoveMissing", func(fsys *FS) error { return fsys.Remove("db/missing") }, fs.ErrNotExist},
		{"RemoveNonEmptyDir", func(fsys *FS) error { return fsys.Remove("db/sub") }, syscall.ENOTEMPTY},
		{"RemoveRoot", func(fsys *FS) error { return fsys.Remove("/") }, syscall.EBUSY},
		{"RenameMissing", func(fsys *FS) error { return fsys.Rename("db/missing", "db/b") }, fs.ErrNotExist},
		{"RenameIntoMissingDir", func(fsys *FS) error { return fsys.Rename("db/a", "nodir/b") }, fs.ErrNotExist},
		{"RenameOverDir", func(fsys *FS) error { return fsys.Rename("db/a", "db/sub") }, fs.ErrExist}, // as os.Rename says,
		{"RenameDir", func(fsys *FS) error { return fsys.Rename("db/sub", "db/sub2") }, errors.ErrUnsupported},
		{"MkdirOverFile", func(fsys *FS) error { return fsys.MkdirAll("db/a/b", 0o755) }, syscall.ENOTDIR},
		{"ReadDirMissing", func(fsys *FS) error { _, err := fsys.ReadDir("nodir"); return err }, fs.ErrNotExist},
		{"ReadDirFile", func(fsys *FS) error { _, err := fsys.ReadDir("db/a"); return err }, syscall.ENOTDIR},
		{"StatMissing", func(fsys *FS) error { _, err := fsys.Stat("db/missing"); return err }, fs.ErrNotExist},
		{"SyncDirMissing", func(fsys *FS) error { return fsys.SyncDir("nodir") }, fs.ErrNotExist},
		{"SyncDirFile", func(fsys *FS) error { return fsys.SyncDir("db/a") }, syscall.ENOTDIR},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := tt.call(setup(t)); !errors.Is(err, tt.want) {
				t.Errorf("got %v, want %v", err, tt.want)
			}
		})
	}
}

// TestFileErrors lists how calls on an open file fail.
func TestFileErrors(t *testing.T) {
	tests := []struct {
		name string
		flag int
		call func(f vfs.File) error
		want error
	}{
		{"WriteReadOnly", os.O_RDONLY, func(f vfs.File) error { _, err := f.WriteAt([]byte("x"), 0); return err }, syscall.EBADF},
		{"TruncateReadOnly", os.O_RDONLY, func(f vfs.File) error { return f.Truncate(0) }, syscall.EBADF},
		{"PreallocateReadOnly", os.O_RDONLY, func(f vfs.File) error { return f.Preallocate(10) }, syscall.EBADF},
		{"ReadWriteOnly", os.O_WRONLY, func(f vfs.File) error { _, err := f.ReadAt(make([]byte, 1), 0); return err }, syscall.EBADF},
		{"WriteNegative", os.O_RDWR, func(f vfs.File) error { _, err := f.WriteAt([]byte("x"), -1); return err }, syscall.EINVAL},
		{"ReadNegative", os.O_RDWR, func(f vfs.File) error { _, err := f.ReadAt(make([]byte, 1), -1); return err }, syscall.EINVAL},
		{"TruncateNegative", os.O_RDWR, func(f vfs.File) error { return f.Truncate(-1) }, syscall.EINVAL},
		{"WriteTooLarge", os.O_RDWR, func(f vfs.File) error { _, err := f.WriteAt([]byte("x"), MaxFileSize); return err }, syscall.EFBIG},
		{"TruncateTooLarge", os.O_RDWR, func(f vfs.File) error { return f.Truncate(MaxFileSize + 1) }, syscall.EFBIG},
		{"PreallocateTooLarge", os.O_RDWR, func(f vfs.File) error { return f.Preallocate(MaxFileSize + 1) }, syscall.EFBIG},
		{"ReadClosed", -1, func(f vfs.File) error { _, err := f.ReadAt(make([]byte, 1), 0); return err }, fs.ErrClosed},
		{"WriteClosed", -1, func(f vfs.File) error { _, err := f.WriteAt([]byte("x"), 0); return err }, fs.ErrClosed},
		{"SyncClosed", -1, func(f vfs.File) error { return f.Sync() }, fs.ErrClosed},
		{"SizeClosed", -1, func(f vfs.File) error { _, err := f.Size(); return err }, fs.ErrClosed},
		{"ChmodClosed", -1, func(f vfs.File) error { return f.Chmod(0o600) }, fs.ErrClosed},
		{"WritebackClosed", -1, func(f vfs.File) error { return f.StartWriteback(0, 5) }, fs.ErrClosed},
		{"CloseClosed", -1, func(f vfs.File) error { return f.Close() }, fs.ErrClosed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fsys := New()
			create(t, fsys, "a", "hello")
			flag := tt.flag
			if flag < 0 {
				flag = os.O_RDWR
			}
			f, err := fsys.OpenFile("a", flag, 0)
			if err != nil {
				t.Fatal(err)
			}
			if tt.flag < 0 {
				f.Close()
			}
			if err := tt.call(f); !errors.Is(err, tt.want) {
				t.Errorf("got %v, want %v", err, tt.want)
			}
		})
	}
}

func TestReadWriteAt(t *testing.T) {
	fsys := New()
	f, err := fsys.OpenFile("a", os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if f.Name() != "a" {
		t.Errorf("Name = %q", f.Name())
	}
	if n, err := f.WriteAt([]byte("world"), 6); n != 5 || err != nil {
		t.Fatalf("WriteAt past the end: %d, %v", n, err)
	}
	if n, err := f.WriteAt([]byte("hello"), 0); n != 5 || err != nil {
		t.Fatalf("WriteAt: %d, %v", n, err)
	}
	if n, err := f.WriteAt(nil, 100); n != 0 || err != nil {
		t.Fatalf("empty WriteAt: %d, %v", n, err)
	}
	tests := []struct {
		name string
		off  int64
		len  int
		want string
		err  error
	}{
		{"Whole", 0, 11, "hello\x00world", nil},
		{"Middle", 4, 3, "o\x00w", nil},
		{"ShortAtEnd", 8, 10, "rld", io.EOF},
		{"AtEnd", 11, 1, "", io.EOF},
		{"PastEnd", 100, 1, "", io.EOF},
		{"Empty", 100, 0, "", nil},
	}
	for _, tt := range tests {
		p := make([]byte, tt.len)
		n, err := f.ReadAt(p, tt.off)
		if string(p[:n]) != tt.want || err != tt.err {
			t.Errorf("%s: ReadAt(%d bytes at %d) = %q, %v; want %q, %v", tt.name, tt.len, tt.off, p[:n], err, tt.want, tt.err)
		}
	}
	if size, err := f.Size(); size != 11 || err != nil {
		t.Errorf("Size = %d, %v", size, err)
	}
}

// TestTruncateClearsOldBytes checks that bytes cut by Truncate read as
// zeros when the file grows again, however it grows.
func TestTruncateClearsOldBytes(t *testing.T) {
	grow := []struct {
		name string
		fn   func(f vfs.File) error
	}{
		{"Truncate", func(f vfs.File) error { return f.Truncate(10) }},
		{"Preallocate", func(f vfs.File) error { return f.Preallocate(10) }},
		{"WriteAt", func(f vfs.File) error { _, err := f.WriteAt([]byte("!"), 9); return err }},
	}
	want := map[string]string{
		"Truncate":    "he\x00\x00\x00\x00\x00\x00\x00\x00",
		"Preallocate": "he\x00\x00\x00\x00\x00\x00\x00\x00",
		"WriteAt":     "he\x00\x00\x00\x00\x00\x00\x00!",
	}
	for _, tt := range grow {
		t.Run(tt.name, func(t *testing.T) {
			fsys := New()
			create(t, fsys, "a", "hello world")
			truncate(t, fsys, "a", 2)
			withFile(t, fsys, "a", tt.fn)
			got, err := readFile(fsys, "a")
			if err != nil || string(got) != want[tt.name] {
				t.Errorf("got %q, %v; want %q", got, err, want[tt.name])
			}
		})
	}
}

func TestPreallocateNeverShrinks(t *testing.T) {
	fsys := New()
	create(t, fsys, "a", "hello")
	preallocate(t, fsys, "a", 3)
	if got, _ := readFile(fsys, "a"); string(got) != "hello" {
		t.Errorf("got %q", got)
	}
}

func TestOpenFlags(t *testing.T) {
	fsys := New()
	create(t, fsys, "a", "hello")
	// O_CREATE on an existing file keeps its contents and mode.
	f, err := fsys.OpenFile("a", os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	f.Close()
	if got, _ := readFile(fsys, "a"); string(got) != "hello" {
		t.Errorf("O_CREATE changed an existing file: %q", got)
	}
	if fi, _ := fsys.Stat("a"); fi.Mode() != 0o644 {
		t.Errorf("O_CREATE changed an existing file's mode to %v", fi.Mode())
	}
	// O_TRUNC on a read-only open changes nothing.
	f, err = fsys.OpenFile("a", os.O_RDONLY|os.O_TRUNC, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.Close()
	if got, _ := readFile(fsys, "a"); string(got) != "hello" {
		t.Errorf("read-only O_TRUNC truncated: %q", got)
	}
	f, err = fsys.OpenFile("a", os.O_WRONLY|os.O_TRUNC, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.Close()
	if got, _ := readFile(fsys, "a"); string(got) != "" {
		t.Errorf("O_TRUNC left %q", got)
	}
	f, err = fsys.OpenFile("a", os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteAt([]byte("x"), 0); err == nil {
		t.Error("WriteAt on an O_APPEND file succeeded")
	}
}

func TestStat(t *testing.T) {
	fsys := New()
	mkdir(t, fsys, "db")
	f, err := fsys.OpenFile("db/a", os.O_RDWR|os.O_CREATE, 0o640|fs.ModeSetuid)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt([]byte("hello"), 0); err != nil {
		t.Fatal(err)
	}
	f.Close()
	tests := []struct {
		path  string
		name  string
		size  int64
		mode  fs.FileMode
		isDir bool
	}{
		{"db/a", "a", 5, 0o640, false},
		{"/db/../db/a", "a", 5, 0o640, false},
		{"db", "db", 0, fs.ModeDir | 0o755, true},
		{"/", "/", 0, fs.ModeDir | 0o755, true},
		{".", "/", 0, fs.ModeDir | 0o755, true},
	}
	for _, tt := range tests {
		fi, err := fsys.Stat(tt.path)
		if err != nil {
			t.Errorf("Stat(%q): %v", tt.path, err)
			continue
		}
		if fi.Name() != tt.name || fi.Size() != tt.size || fi.Mode() != tt.mode || fi.IsDir() != tt.isDir {
			t.Errorf("Stat(%q) = name %q size %d mode %v dir %v; want %q %d %v %v",
				tt.path, fi.Name(), fi.Size(), fi.Mode(), fi.IsDir(), tt.name, tt.size, tt.mode, tt.isDir)
		}
	}
}

func TestReadDirAndPaths(t *testing.T) {
	fsys := New()
	mkdir(t, fsys, "/db/sub/deeper")
	for _, name := range []string{"db/c", "db/a", "/db/b", "db/./sub/../d"} {
		create(t, fsys, name, "")
	}
	names, err := fsys.ReadDir("db")
	if want := []string{"a", "b", "c", "d", "sub"}; err != nil || !slices.Equal(names, want) {
		t.Errorf("ReadDir(db) = %q, %v; want %q", names, err, want)
	}
	for _, root := range []string{"", ".", "/", "db/.."} {
		names, err := fsys.ReadDir(root)
		if err != nil || !slices.Equal(names, []string{"db"}) {
			t.Errorf("ReadDir(%q) = %q, %v", root, names, err)
		}
	}
	remove(t, fsys, "db/sub/deeper")
	names, err = fsys.ReadDir("db/sub")
	if err != nil || len(names) != 0 {
		t.Errorf("ReadDir after removing the only subdirectory: %q, %v", names, err)
	}
}

func TestRenameReplaces(t *testing.T) {
	fsys := New()
	create(t, fsys, "a", "new")
	create(t, fsys, "b", "old")
	rename(t, fsys, "a", "b")
	if got := tree(t, fsys); len(got) != 1 || got["b"] != "new" {
		t.Errorf("after rename: %q", got)
	}
	rename(t, fsys, "b", "/b") // the same file: a no-op
	if got := tree(t, fsys); len(got) != 1 || got["b"] != "new" {
		t.Errorf("after renaming to itself: %q", got)
	}
}

func TestLock(t *testing.T) {
	fsys := New()
	l, err := fsys.Lock("LOCK")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := fsys.Stat("LOCK"); err != nil {
		t.Errorf("Lock did not create its file: %v", err)
	}
	if _, err := fsys.Lock("/LOCK"); !errors.Is(err, vfs.ErrLocked) {
		t.Errorf("second Lock: %v, want ErrLocked", err)
	}
	// A crash releases every lock.
	c := fsys.Crash(SyncedOnly, nil)
	if l2, err := c.Lock("LOCK"); err != nil {
		t.Errorf("Lock in a crash state: %v", err)
	} else {
		l2.Close()
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if err := l.Close(); !errors.Is(err, fs.ErrClosed) {
		t.Errorf("second Close: %v", err)
	}
	l, err = fsys.Lock("LOCK")
	if err != nil {
		t.Fatalf("Lock after Close: %v", err)
	}
	l.Close()
}

func TestModeString(t *testing.T) {
	for m, want := range map[CrashMode]string{SyncedOnly: "SyncedOnly", RandomSectors: "RandomSectors", Garbled: "Garbled", 7: "CrashMode(7)"} {
		if m.String() != want {
			t.Errorf("%d: %q", int(m), m.String())
		}
	}
}

func TestCrashPanics(t *testing.T) {
	for _, m := range []CrashMode{RandomSectors, Garbled, 7} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("Crash(%v, nil) did not panic", m)
				}
			}()
			New().Crash(m, nil)
		}()
	}
}
