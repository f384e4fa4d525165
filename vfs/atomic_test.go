package vfs_test

import (
	"bytes"
	"errors"
	"io"
	"io/fs"
	"math/rand/v2"
	"os"
	"slices"
	"strconv"
	"testing"

	"github.com/gojournal/journal/internal/seedtest"
	"github.com/gojournal/journal/vfs"
	"github.com/gojournal/journal/vfs/crashfs"
	"github.com/gojournal/journal/vfs/errorfs"
)

// big is long enough for WriteFile to start writeback twice (every 8 MiB).
const big = 17 << 20

// writeN returns a write function for WriteFile producing n bytes of fill.
func writeN(n int, fill byte) func(w io.Writer) error {
	return func(w io.Writer) error {
		chunk := bytes.Repeat([]byte{fill}, 64<<10)
		for n > 0 {
			k, err := w.Write(chunk[:min(n, len(chunk))])
			if err != nil {
				return err
			}
			n -= k
		}
		return nil
	}
}

// oldState returns a crashfs holding db/state durably: "old", mode 0640.
func oldState(t *testing.T) *crashfs.FS {
	t.Helper()
	mem := crashfs.New()
	if err := mem.MkdirAll("db", 0o755); err != nil {
		t.Fatal(err)
	}
	if err := vfs.WriteFile(mem, "db/state", 0o640, writeN(3, 'o')); err != nil {
		t.Fatal(err)
	}
	if err := mem.SyncDir("/"); err != nil {
		t.Fatal(err)
	}
	return mem
}

// checkState checks that db/state holds n bytes of fill with mode perm, and
// that nothing else is in db.
func checkState(t *testing.T, fsys vfs.FS, n int, fill byte, perm fs.FileMode) {
	t.Helper()
	if names, err := fsys.ReadDir("db"); err != nil || !slices.Equal(names, []string{"state"}) {
		t.Errorf("db holds %q, %v; want only state (no temporary file)", names, err)
	}
	fi, err := fsys.Stat("db/state")
	if err != nil {
		t.Fatal(err)
	}
	if got := fi.Mode().Perm(); got != perm {
		t.Errorf("mode %#o, want %#o", got, perm)
	}
	got := readAll(t, fsys, "db/state")
	if want := bytes.Repeat([]byte{fill}, n); !bytes.Equal(got, want) {
		t.Errorf("db/state holds %d bytes starting %q, want %d bytes of %q", len(got), got[:min(len(got), 8)], n, fill)
	}
}

func readAll(t *testing.T, fsys vfs.FS, name string) []byte {
	t.Helper()
	f, err := fsys.OpenFile(name, os.O_RDONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	size, err := f.Size()
	if err != nil {
		t.Fatal(err)
	}
	b := make([]byte, size)
	if _, err := f.ReadAt(b, 0); err != nil && !errors.Is(err, io.EOF) {
		t.Fatal(err)
	}
	return b
}

// TestWriteFileCallsOptionalBehaviours: on a test FS, WriteFile takes the
// production path: it chmods a replacement and starts writeback every
// 8 MiB.
func TestWriteFileCallsOptionalBehaviours(t *testing.T) {
	tests := []struct {
		name       string
		existing   bool
		size       int
		chmods     int
		writebacks int
	}{
		{"NewSmallFile", false, 100, 0, 0},
		{"ReplaceSmallFile", true, 100, 1, 0},
		{"ReplaceJustUnder8MiB", true, 8<<20 - 1, 1, 0},
		{"Replace8MiB", true, 8 << 20, 1, 1},
		{"Replace17MiB", true, big, 1, 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			mem := oldState(t)
			if !tt.existing {
				if err := mem.Remove("db/state"); err != nil {
					t.Fatal(err)
				}
			}
			fsys := errorfs.Wrap(mem)
			if err := vfs.WriteFile(fsys, "db/state", 0o640, writeN(tt.size, 'n')); err != nil {
				t.Fatal(err)
			}
			if got := fsys.Count(errorfs.OpChmod); got != tt.chmods {
				t.Errorf("%d chmods, want %d", got, tt.chmods)
			}
			if got := fsys.Count(errorfs.OpWriteback); got != tt.writebacks {
				t.Errorf("%d writebacks, want %d", got, tt.writebacks)
			}
			checkState(t, mem, tt.size, 'n', 0o640)
		})
	}
}

// TestWriteFileFailureLeavesOldFile fails each call WriteFile makes before
// its rename, the optional ones included: WriteFile reports the injected
// error, the old file is untouched (now and after a power loss) and no
// temporary file remains.
func TestWriteFileFailureLeavesOldFile(t *testing.T) {
	clean := errorfs.Wrap(oldState(t))
	if err := vfs.WriteFile(clean, "db/state", 0o600, writeN(big, 'n')); err != nil {
		t.Fatal(err)
	}
	for _, op := range []errorfs.Op{
		errorfs.OpCreate, errorfs.OpChmod, errorfs.OpWrite, errorfs.OpWriteback,
		errorfs.OpSync, errorfs.OpClose, errorfs.OpRename,
	} {
		calls := clean.Count(op)
		if calls == 0 {
			t.Errorf("WriteFile made no %v call", op)
		}
		// The first and the last call of each kind.
		for _, n := range slices.Compact([]int{1, calls}) {
			t.Run(op.String()+"/"+strconv.Itoa(n), func(t *testing.T) {
				mem := oldState(t)
				fsys := errorfs.Wrap(mem, errorfs.Rule{Op: op, N: n})
				err := vfs.WriteFile(fsys, "db/state", 0o600, writeN(big, 'n'))
				if !errors.Is(err, errorfs.ErrInjected) {
					t.Fatalf("WriteFile error %v, want the injected one", err)
				}
				checkState(t, mem, 3, 'o', 0o640)
				checkState(t, mem.Crash(crashfs.SyncedOnly, nil), 3, 'o', 0o640)
			})
		}
	}
}

// TestWriteFileKeepsModeUnderUmask: a replace keeps the old file's mode
// even where the umask would strip bits from the temporary file, and a
// power loss at any point leaves the old file or the new one, never with a
// looser mode; the only other outcome is the new contents with the
// umask's stricter mode (the chmod lost), as WriteFile documents.
func TestWriteFileKeepsModeUnderUmask(t *testing.T) {
	setup := func() *crashfs.FS {
		mem := oldState(t)
		f, err := mem.OpenFile("db/state", os.O_RDWR, 0)
		if err != nil {
			t.Fatal(err)
		}
		if err := f.Chmod(0o664); err != nil {
			t.Fatal(err)
		}
		f.Close()
		if err := mem.SyncDir("db"); err != nil {
			t.Fatal(err)
		}
		mem.SetUmask(0o077)
		return mem
	}
	replace := func(fsys vfs.FS) error { return vfs.WriteFile(fsys, "db/state", 0o600, writeN(3, 'n')) }

	mem := setup()
	start := mem.Ops()
	if err := replace(mem); err != nil {
		t.Fatal(err)
	}
	end := mem.Ops()
	checkState(t, mem, 3, 'n', 0o664)
	checkState(t, mem.Crash(crashfs.SyncedOnly, nil), 3, 'n', 0o664)

	seed := seedtest.Seed(t)
	rng := rand.New(rand.NewPCG(seed, seed)) // its own stream, as before, so old seeds replay
	type outcome struct {
		contents string
		perm     fs.FileMode
	}
	allowed := []outcome{{"ooo", 0o664}, {"nnn", 0o664}, {"nnn", 0o600}}
	for k := start; k <= end; k++ {
		mem := setup()
		mem.SetCrashAfter(k)
		err := replace(mem)
		for _, m := range []crashfs.CrashMode{crashfs.SyncedOnly, crashfs.RandomSectors} {
			after := mem.Crash(m, rng)
			fi, serr := after.Stat("db/state")
			if serr != nil {
				t.Fatalf("crash after op %d (%v): %v", k, m, serr)
			}
			got := outcome{string(readAll(t, after, "db/state")), fi.Mode().Perm()}
			switch {
			case !slices.Contains(allowed, got):
				t.Errorf("crash after op %d (%v): %q mode %#o", k, m, got.contents, got.perm)
			case m == crashfs.SyncedOnly && got.perm != 0o664:
				t.Errorf("crash after op %d (SyncedOnly): mode %#o, want 0664", k, got.perm)
			case err == nil && got != outcome{"nnn", 0o664}:
				t.Errorf("crash after WriteFile returned nil (op %d, %v): %q mode %#o", k, m, got.contents, got.perm)
			}
		}
	}
}
