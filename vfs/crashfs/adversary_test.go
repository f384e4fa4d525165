package crashfs

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/gojournal/journal/internal/seedtest"
	"github.com/gojournal/journal/vfs"
)

// dataCovers checks File.Data's promise on name: every non-zero byte lies
// in a range it reports as data ("more than was written, never less").
func dataCovers(t *testing.T, fsys *FS, name string) {
	t.Helper()
	got, err := readFile(fsys, name)
	if err != nil {
		t.Fatal(err)
	}
	withFile(t, fsys, name, func(f vfs.File) error {
		for off := int64(0); off < int64(len(got)); {
			start, end, known, err := f.Data(off)
			if err != nil || !known {
				return err
			}
			for i := off; i < min(start, int64(len(got))); i++ {
				if got[i] != 0 {
					t.Fatalf("%s: Data(%d) says [%d, %d) is a hole, but byte %d is %#x", name, off, off, start, i, got[i])
				}
			}
			off = max(end, start+1)
		}
		return nil
	})
}

// An unsynced truncation that a crash undoes brings the durable bytes
// back, so File.Data must report them as data again. It reported the
// whole file as a hole, so a scan that trusts Data (segment's tail search
// does) skipped records that were synced.
func TestDataAfterUndoneTruncate(t *testing.T) {
	rng := seedtest.Rand(t)
	fsys := New()
	create(t, fsys, "f", string(make([]byte, 3*SectorSize))+"synced record")
	syncFile(t, fsys, "f")
	syncDir(t, fsys, "/")
	truncate(t, fsys, "f", 0)
	dataCovers(t, fsys.Crash(SyncedOnly, nil), "f")
	for range 20 {
		dataCovers(t, fsys.Crash(RandomSectors, rng), "f")
		dataCovers(t, fsys.Crash(Garbled, rng), "f")
	}
}

// Kill ends the dead process's hold on its locks. A Close of the dead
// holder's lock (a deferred Close, a Log closed after the test's Kill)
// must not release the lock a new holder took since: the dead process
// could not have.
func TestStaleLockCloseAfterKill(t *testing.T) {
	fsys := New()
	dead, err := fsys.Lock("LOCK")
	if err != nil {
		t.Fatal(err)
	}
	fsys.Kill()
	alive, err := fsys.Lock("LOCK")
	if err != nil {
		t.Fatalf("Lock after Kill: %v", err)
	}
	defer alive.Close()
	dead.Close()
	if l, err := fsys.Lock("LOCK"); !errors.Is(err, vfs.ErrLocked) {
		t.Errorf("Lock while the new holder holds it: %v, want ErrLocked", err)
		if l != nil {
			l.Close()
		}
	}
}

// A process killed cannot write or sync any more: its files were closed
// by its death. A handle it had open (held by a Log the test abandoned,
// whose background goroutines run on) must fail, or a Sync after Kill
// would make durable what the dead process never synced, and a later
// Crash would keep it.
func TestKillClosesTheDeadProcessFiles(t *testing.T) {
	fsys := New()
	create(t, fsys, "f", "")
	syncFile(t, fsys, "f")
	syncDir(t, fsys, "/")
	f, err := fsys.OpenFile("f", os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt([]byte("unsynced"), 0); err != nil {
		t.Fatal(err)
	}
	fsys.Kill()
	if _, err := f.WriteAt([]byte("after death"), 0); !errors.Is(err, fs.ErrClosed) {
		t.Errorf("WriteAt after Kill: %v, want fs.ErrClosed", err)
	}
	if err := f.Sync(); !errors.Is(err, fs.ErrClosed) {
		t.Errorf("Sync after Kill: %v, want fs.ErrClosed", err)
	}
	if got, _ := readFile(fsys, "f"); string(got) != "unsynced" {
		t.Errorf("after Kill the file holds %q, want what the process wrote", got)
	}
	if got, _ := readFile(fsys.Crash(SyncedOnly, nil), "f"); len(got) != 0 {
		t.Errorf("power loss after Kill kept %q, which the dead process never synced", got)
	}
	// The new process opens it afresh.
	writeAt(t, fsys, "f", "reborn", 0)
}

// TestCrashAndKillInFlight stops writers in the middle of their work, by
// a crash point set while they run or by Kill, and checks that each
// writer sees only the documented errors (ErrCrashed, fs.ErrClosed), never
// a panic, and that what a power loss leaves holds every record a Sync
// acknowledged, and what the dead process leaves every record written.
func TestCrashAndKillInFlight(t *testing.T) {
	s := seedtest.Seed(t)
	for round, kill := range []bool{false, true, false, true} {
		rng := seedtest.New(s + uint64(round))
		fsys := New()
		mkdir(t, fsys, "db")
		const writers, record = 4, 100
		files := make([]vfs.File, writers)
		for g := range writers {
			f, err := fsys.OpenFile(fmt.Sprintf("db/%d", g), os.O_RDWR|os.O_CREATE, 0o644)
			if err != nil {
				t.Fatal(err)
			}
			files[g] = f
		}
		syncDir(t, fsys, "db")
		syncDir(t, fsys, "/")
		written, synced := make([]int, writers), make([]int, writers)
		var wg sync.WaitGroup
		for g := range writers {
			wg.Go(func() {
				f := files[g] // opened before Kill, so Kill stops it
				for i := 0; ; i++ {
					if i == 20000 {
						t.Errorf("writer %d: still writing after %d records: Kill or the crash point did not stop it", g, i)
						return
					}
					_, err := f.WriteAt(bytes.Repeat([]byte{byte(1 + i%255)}, record), int64(i*record))
					if err == nil {
						written[g] = i + 1
						if i%5 == 4 {
							if err = f.Sync(); err == nil {
								synced[g] = i + 1
							}
						}
					}
					if err != nil {
						if !errors.Is(err, ErrCrashed) && !errors.Is(err, fs.ErrClosed) {
							t.Errorf("writer %d: %v", g, err)
						}
						f.Close()
						return
					}
				}
			})
		}
		for range rng.IntN(100) {
			runtime.Gosched()
		}
		if kill {
			fsys.Kill()
		} else {
			fsys.SetCrashAfter(fsys.Ops() + rng.IntN(200))
		}
		wg.Wait()
		lost := fsys.Crash(SyncedOnly, nil)
		for g := range writers {
			name := fmt.Sprintf("db/%d", g)
			if got, _ := readFile(lost, name); len(got) < synced[g]*record {
				t.Errorf("round %d: power loss left %s with %d bytes, but %d records were synced", round, name, len(got), synced[g])
			}
			if got, _ := readFile(fsys, name); len(got) != written[g]*record {
				t.Errorf("round %d: %s holds %d bytes, but %d records were written", round, name, len(got), written[g])
			}
		}
	}
}

// onFile runs fn on name opened read-write (not a mutating operation).
func onFile(fsys *FS, name string, fn func(f vfs.File) error) error {
	f, err := fsys.OpenFile(name, os.O_RDWR, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	return fn(f)
}

// everyKindSteps is a program of one mutating operation of each kind per
// step, so that a crash point can fall between any two.
var everyKindSteps = []func(fsys *FS) error{
	func(fsys *FS) error { return fsys.MkdirAll("db/sub", 0o700) },
	func(fsys *FS) error {
		f, err := fsys.OpenFile("db/a", os.O_RDWR|os.O_CREATE, 0o600)
		if err == nil {
			err = f.Close()
		}
		return err
	},
	func(fsys *FS) error {
		return onFile(fsys, "db/a", func(f vfs.File) error { _, err := f.WriteAt([]byte("hello"), 0); return err })
	},
	func(fsys *FS) error { return onFile(fsys, "db/a", vfs.File.Sync) },
	func(fsys *FS) error { return onFile(fsys, "db/a", func(f vfs.File) error { return f.Chmod(0o640) }) },
	func(fsys *FS) error { return fsys.SyncDir("db") },
	func(fsys *FS) error { return onFile(fsys, "db/a", func(f vfs.File) error { return f.Truncate(2) }) },
	func(fsys *FS) error { return onFile(fsys, "db/a", func(f vfs.File) error { return f.Preallocate(9) }) },
	func(fsys *FS) error { return fsys.Rename("db/a", "db/sub/b") },
	func(fsys *FS) error {
		l, err := fsys.Lock("db/LOCK")
		if err == nil {
			err = l.Close()
		}
		return err
	},
	func(fsys *FS) error { return fsys.Remove("db/LOCK") },
	func(fsys *FS) error {
		f, err := fsys.OpenFile("db/sub/b", os.O_RDWR|os.O_TRUNC, 0)
		if err == nil {
			err = f.Close()
		}
		return err
	},
}

// state is tree plus every entry's mode.
func state(t *testing.T, fsys *FS) string {
	t.Helper()
	var out []string
	for name, data := range tree(t, fsys) {
		out = append(out, fmt.Sprintf("%s %v %q", name, mode(t, fsys, name), data))
	}
	slices.Sort(out)
	return strings.Join(out, "\n")
}

// TestCrashPointBetweenEveryKind sets the crash point after each step of
// a program that makes one mutating operation of every kind in turn:
// exactly k run, the next fails with ErrCrashed (and every later one), and the FS (and
// what a power loss leaves of it) is that of a run stopped after k steps:
// a refused call changes nothing.
func TestCrashPointBetweenEveryKind(t *testing.T) {
	for k := range len(everyKindSteps) + 1 {
		stopped, crashed := New(), New()
		crashed.SetCrashAfter(k)
		for i, step := range everyKindSteps {
			if i < k {
				if err := step(stopped); err != nil {
					t.Fatalf("step %d: %v", i, err)
				}
			}
			// Past the crash point a step fails with ErrCrashed, or
			// earlier because an earlier step was refused.
			err := step(crashed)
			if i < k && err != nil || i == k && !errors.Is(err, ErrCrashed) || i > k && err == nil {
				t.Fatalf("crash after %d: step %d returned %v", k, i, err)
			}
		}
		if crashed.Ops() != k {
			t.Errorf("crash after %d: Ops = %d", k, crashed.Ops())
		}
		if got, want := state(t, crashed), state(t, stopped); got != want {
			t.Errorf("crash after %d:\n%s\nwant\n%s", k, got, want)
		}
		got, want := state(t, crashed.Crash(SyncedOnly, nil)), state(t, stopped.Crash(SyncedOnly, nil))
		if got != want {
			t.Errorf("power loss after %d:\n%s\nwant\n%s", k, got, want)
		}
	}
}
