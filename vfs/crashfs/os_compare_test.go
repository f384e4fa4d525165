package crashfs

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gojournal/journal/vfs"
)

// errKind names the class of err a caller can test with errors.Is, so the
// OS and crashfs can be compared without matching messages.
func errKind(err error) string {
	for _, k := range []struct {
		name string
		err  error
	}{
		{"ErrNotExist", fs.ErrNotExist}, {"ErrExist", fs.ErrExist},
		{"ErrClosed", fs.ErrClosed}, {"EOF", io.EOF}, {"ErrLocked", vfs.ErrLocked},
	} {
		if errors.Is(err, k.err) {
			return k.name
		}
	}
	if err != nil {
		return "error"
	}
	return "nil"
}

// osCase is one misuse (or use) a user might make, run against a directory
// holding "f" ("hello", a regular file) and "d" (a directory holding "x").
// It returns what it saw; the OS and crashfs must see the same.
type osCase struct {
	name string
	run  func(fsys vfs.FS, at func(string) string) string
}

// open runs fn on name opened with flag, and reports the open's error
// kind, then fn's observation.
func open(fsys vfs.FS, name string, flag int, fn func(f vfs.File) string) string {
	f, err := fsys.OpenFile(name, flag, 0o644)
	if err != nil {
		return "open " + errKind(err)
	}
	defer f.Close()
	return fn(f)
}

func readAll(f vfs.File) string {
	b := make([]byte, 64)
	n, err := f.ReadAt(b, 0)
	return fmt.Sprintf("%q %s", b[:n], errKind(err))
}

var osCases = []osCase{
	{"OpenMissing", func(fsys vfs.FS, at func(string) string) string {
		return open(fsys, at("nope"), os.O_RDONLY, readAll)
	}},
	{"OpenInMissingDir", func(fsys vfs.FS, at func(string) string) string {
		return open(fsys, at("nodir/f"), os.O_RDWR|os.O_CREATE, readAll)
	}},
	{"OpenThroughAFile", func(fsys vfs.FS, at func(string) string) string {
		return open(fsys, at("f/x"), os.O_RDWR|os.O_CREATE, readAll)
	}},
	{"CreateExclExisting", func(fsys vfs.FS, at func(string) string) string {
		return open(fsys, at("f"), os.O_RDWR|os.O_CREATE|os.O_EXCL, readAll)
	}},
	{"CreateExclNew", func(fsys vfs.FS, at func(string) string) string {
		return open(fsys, at("g"), os.O_RDWR|os.O_CREATE|os.O_EXCL, readAll)
	}},
	{"ExclWithoutCreate", func(fsys vfs.FS, at func(string) string) string {
		return open(fsys, at("f"), os.O_RDWR|os.O_EXCL, readAll)
	}},
	{"CreateKeepsContents", func(fsys vfs.FS, at func(string) string) string {
		return open(fsys, at("f"), os.O_RDWR|os.O_CREATE, readAll)
	}},
	{"TruncOnOpen", func(fsys vfs.FS, at func(string) string) string {
		return open(fsys, at("f"), os.O_RDWR|os.O_TRUNC, readAll)
	}},
	{"OpenDirForWriting", func(fsys vfs.FS, at func(string) string) string {
		return open(fsys, at("d"), os.O_RDWR, readAll)
	}},
	{"WriteReadOnly", func(fsys vfs.FS, at func(string) string) string {
		return open(fsys, at("f"), os.O_RDONLY, func(f vfs.File) string {
			_, err := f.WriteAt([]byte("x"), 0)
			return errKind(err) + " " + readAll(f)
		})
	}},
	{"TruncateReadOnly", func(fsys vfs.FS, at func(string) string) string {
		return open(fsys, at("f"), os.O_RDONLY, func(f vfs.File) string {
			return errKind(f.Truncate(1)) + " " + readAll(f)
		})
	}},
	{"ReadWriteOnly", func(fsys vfs.FS, at func(string) string) string {
		return open(fsys, at("f"), os.O_WRONLY, readAll)
	}},
	{"SyncReadOnly", func(fsys vfs.FS, at func(string) string) string {
		return open(fsys, at("f"), os.O_RDONLY, func(f vfs.File) string { return errKind(f.Sync()) })
	}},
	{"WriteAtAppend", func(fsys vfs.FS, at func(string) string) string {
		return open(fsys, at("f"), os.O_WRONLY|os.O_APPEND, func(f vfs.File) string {
			_, err := f.WriteAt([]byte("x"), 0)
			return errKind(err)
		})
	}},
	{"ReadPastEnd", func(fsys vfs.FS, at func(string) string) string {
		return open(fsys, at("f"), os.O_RDONLY, func(f vfs.File) string {
			b := make([]byte, 4)
			n, err := f.ReadAt(b, 3)
			m, err2 := f.ReadAt(b, 10)
			return fmt.Sprint(n, errKind(err), m, errKind(err2))
		})
	}},
	{"WriteNegativeOffset", func(fsys vfs.FS, at func(string) string) string {
		return open(fsys, at("f"), os.O_RDWR, func(f vfs.File) string {
			_, err := f.WriteAt([]byte("x"), -1)
			return errKind(err)
		})
	}},
	{"WritePastEndZeroFills", func(fsys vfs.FS, at func(string) string) string {
		return open(fsys, at("f"), os.O_RDWR, func(f vfs.File) string {
			_, err := f.WriteAt([]byte("!"), 8)
			size, _ := f.Size()
			return fmt.Sprint(errKind(err), size, " ", readAll(f))
		})
	}},
	{"TruncateGrowAndShrink", func(fsys vfs.FS, at func(string) string) string {
		return open(fsys, at("f"), os.O_RDWR, func(f vfs.File) string {
			e1, e2, e3 := f.Truncate(2), f.Truncate(6), f.Truncate(-1)
			return errKind(e1) + errKind(e2) + errKind(e3) + " " + readAll(f)
		})
	}},
	{"PreallocateKeepsData", func(fsys vfs.FS, at func(string) string) string {
		return open(fsys, at("f"), os.O_RDWR, func(f vfs.File) string {
			err := f.Preallocate(8)
			return errKind(err) + " " + readAll(f)
		})
	}},
	{"UseAfterClose", func(fsys vfs.FS, at func(string) string) string {
		f, err := fsys.OpenFile(at("f"), os.O_RDWR, 0)
		if err != nil {
			return err.Error()
		}
		var seen []string
		seen = append(seen, errKind(f.Close()), errKind(f.Close()), errKind(f.Sync()), errKind(f.Truncate(0)))
		_, err = f.WriteAt([]byte("x"), 0)
		seen = append(seen, errKind(err))
		_, err = f.ReadAt(make([]byte, 1), 0)
		seen = append(seen, errKind(err))
		_, err = f.Size()
		// StartWriteback and Data are left out: where the OS lacks them
		// they are no-ops that return nil (see vfs.File).
		return strings.Join(append(seen, errKind(err)), " ")
	}},
	{"RemoveMissing", func(fsys vfs.FS, at func(string) string) string {
		return errKind(fsys.Remove(at("nope")))
	}},
	{"RemoveNonEmptyDir", func(fsys vfs.FS, at func(string) string) string {
		return errKind(fsys.Remove(at("d")))
	}},
	{"RemoveOpenFile", func(fsys vfs.FS, at func(string) string) string {
		return open(fsys, at("f"), os.O_RDWR, func(f vfs.File) string {
			err := fsys.Remove(at("f"))
			_, serr := fsys.Stat(at("f"))
			_, werr := f.WriteAt([]byte("J"), 0)
			return errKind(err) + " " + errKind(serr) + " " + errKind(werr) + " " + readAll(f)
		})
	}},
	{"RenameMissing", func(fsys vfs.FS, at func(string) string) string {
		return errKind(fsys.Rename(at("nope"), at("g")))
	}},
	{"RenameOverFile", func(fsys vfs.FS, at func(string) string) string {
		return open(fsys, at("d/x"), os.O_RDONLY, func(x vfs.File) string {
			err := fsys.Rename(at("f"), at("d/x"))
			_, serr := fsys.Stat(at("f"))
			// The replaced file stays readable through a handle open on it.
			return errKind(err) + " " + errKind(serr) + " " + open(fsys, at("d/x"), os.O_RDONLY, readAll) + " " + readAll(x)
		})
	}},
	{"RenameOntoDir", func(fsys vfs.FS, at func(string) string) string {
		return errKind(fsys.Rename(at("f"), at("d")))
	}},
	{"RenameToMissingDir", func(fsys vfs.FS, at func(string) string) string {
		return errKind(fsys.Rename(at("f"), at("nodir/f")))
	}},
	{"RenameToItself", func(fsys vfs.FS, at func(string) string) string {
		return errKind(fsys.Rename(at("f"), at("f"))) + " " + open(fsys, at("f"), os.O_RDONLY, readAll)
	}},
	{"MkdirAllOverFile", func(fsys vfs.FS, at func(string) string) string {
		return errKind(fsys.MkdirAll(at("f"), 0o755)) + " " + errKind(fsys.MkdirAll(at("f/sub"), 0o755))
	}},
	{"MkdirAllExisting", func(fsys vfs.FS, at func(string) string) string {
		return errKind(fsys.MkdirAll(at("d"), 0o755))
	}},
	{"StatAndReadDir", func(fsys vfs.FS, at func(string) string) string {
		fi, err := fsys.Stat(at("f"))
		_, serr := fsys.Stat(at("nope"))
		names, derr := fsys.ReadDir(at("d"))
		_, merr := fsys.ReadDir(at("nope"))
		_, ferr := fsys.ReadDir(at("f"))
		return fmt.Sprint(errKind(err), fi.Size(), fi.IsDir(), errKind(serr), names, errKind(derr), errKind(merr), errKind(ferr))
	}},
	{"SyncDirMissing", func(fsys vfs.FS, at func(string) string) string {
		return errKind(fsys.SyncDir(at("nope"))) + " " + errKind(fsys.SyncDir(at("d")))
	}},
	{"LockTwice", func(fsys vfs.FS, at func(string) string) string {
		l, err := fsys.Lock(at("LOCK"))
		if err != nil {
			return err.Error()
		}
		_, err2 := fsys.Lock(at("LOCK"))
		e3 := l.Close()
		l2, err4 := fsys.Lock(at("LOCK"))
		if err4 == nil {
			l2.Close()
		}
		return errKind(err2) + " " + errKind(e3) + " " + errKind(err4)
	}},
}

// TestSameAsOS runs each case on the operating system (in a temporary
// directory) and on crashfs, and wants the same observations: what an
// application sees on crashfs is what it sees in production.
func TestSameAsOS(t *testing.T) {
	setup := func(t *testing.T, fsys vfs.FS, dir string) {
		t.Helper()
		if err := fsys.MkdirAll(filepath.Join(dir, "d"), 0o755); err != nil {
			t.Fatal(err)
		}
		for name, data := range map[string]string{"f": "hello", "d/x": "xx"} {
			write := func(w io.Writer) error { _, err := io.WriteString(w, data); return err }
			if err := vfs.WriteFile(fsys, filepath.Join(dir, name), 0o644, write); err != nil {
				t.Fatal(err)
			}
		}
	}
	for _, c := range osCases {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			setup(t, vfs.Default, dir)
			want := c.run(vfs.Default, func(name string) string { return filepath.Join(dir, name) })
			mem := New()
			setup(t, mem, "/t")
			got := c.run(mem, func(name string) string { return filepath.Join("/t", name) })
			if got != want {
				t.Errorf("crashfs saw %s\n     the OS saw %s", got, want)
			}
		})
	}
}
