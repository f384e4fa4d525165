package crashfs

import (
	"io/fs"
	"os"
	"testing"

	"github.com/gojournal/journal/internal/seedtest"
	"github.com/gojournal/journal/vfs"
)

// mode returns the permission bits of name.
func mode(t *testing.T, fsys *FS, name string) fs.FileMode {
	t.Helper()
	fi, err := fsys.Stat(name)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Mode().Perm()
}

// TestChmodDurability: Stat sees a Chmod at once; a crash keeps it only
// once a directory naming the file was synced, never through File.Sync.
func TestChmodDurability(t *testing.T) {
	tests := []struct {
		name      string
		then      func(t *testing.T, fsys *FS)
		afterLoss fs.FileMode
	}{
		{"UnsyncedChmodIsLost", func(*testing.T, *FS) {}, 0o644},
		{"FdatasyncDoesNotCarryTheMode", func(t *testing.T, fsys *FS) { syncFile(t, fsys, "db/a") }, 0o644},
		{"DirectorySyncCarriesTheMode", func(t *testing.T, fsys *FS) { syncDir(t, fsys, "db") }, 0o600},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fsys := durableDB(t)
			durableFile(t, fsys, "a", "hello")
			withFile(t, fsys, "db/a", func(f vfs.File) error { return f.Chmod(0o600 | fs.ModeSetuid) })
			if got := mode(t, fsys, "db/a"); got != 0o600 {
				t.Fatalf("mode after Chmod %#o, want 0600", got)
			}
			tt.then(t, fsys)
			if got := mode(t, fsys.Crash(SyncedOnly, nil), "db/a"); got != tt.afterLoss {
				t.Errorf("mode after a power loss %#o, want %#o", got, tt.afterLoss)
			}
		})
	}
}

// TestChmodRandomModes: a mode not yet durable survives some crashes and
// not others, the same way for the same seed.
func TestChmodRandomModes(t *testing.T) {
	fsys := durableDB(t)
	durableFile(t, fsys, "a", "hello")
	withFile(t, fsys, "db/a", func(f vfs.File) error { return f.Chmod(0o600) })
	s := seedtest.Seed(t)
	for _, m := range []CrashMode{RandomSectors, Garbled} {
		seen := map[fs.FileMode]int{}
		for i := range uint64(64) {
			got := mode(t, fsys.Crash(m, seedtest.New(s+i)), "db/a")
			if again := mode(t, fsys.Crash(m, seedtest.New(s+i)), "db/a"); again != got {
				t.Errorf("%v: seed %d gave %#o, then %#o", m, s+i, got, again)
			}
			seen[got]++
		}
		// Each of 64 crashes keeps the mode with probability 1/2: missing
		// either outcome has odds 2^-63.
		if len(seen) != 2 || seen[0o600] == 0 || seen[0o644] == 0 {
			t.Errorf("%v: modes after 64 crashes %v, want both 0600 and 0644", m, seen)
		}
	}
}

// TestUmask: SetUmask strips bits from what OpenFile and MkdirAll create,
// not from Chmod, and a crash state keeps it.
func TestUmask(t *testing.T) {
	fsys := New()
	fsys.SetUmask(0o077)
	mkdir(t, fsys, "db")
	create(t, fsys, "db/a", "hello") // perm 0644
	if got := mode(t, fsys, "db"); got != 0o700 {
		t.Errorf("directory mode %#o, want 0700", got)
	}
	if got := mode(t, fsys, "db/a"); got != 0o600 {
		t.Errorf("file mode %#o, want 0600", got)
	}
	withFile(t, fsys, "db/a", func(f vfs.File) error { return f.Chmod(0o664) })
	if got := mode(t, fsys, "db/a"); got != 0o664 {
		t.Errorf("mode after Chmod %#o, want 0664 (the umask applies only at creation)", got)
	}
	c := fsys.Crash(SyncedOnly, nil)
	f, err := c.OpenFile("b", os.O_RDWR|os.O_CREATE, 0o666)
	if err != nil {
		t.Fatal(err)
	}
	f.Close()
	if got := mode(t, c, "b"); got != 0o600 {
		t.Errorf("mode of a file created after the crash %#o, want 0600", got)
	}
}

// TestStartWritebackMakesNothingDurable: writeback is a hint to a real
// disk; in the crash model the written bytes stay unsynced, and it is not a
// crash point.
func TestStartWritebackMakesNothingDurable(t *testing.T) {
	fsys := durableDB(t)
	durableFile(t, fsys, "a", "hello")
	before := fsys.Ops()
	withFile(t, fsys, "db/a", func(f vfs.File) error {
		if _, err := f.WriteAt([]byte("HELLO, world"), 0); err != nil {
			return err
		}
		fsys.SetCrashAfter(fsys.Ops()) // the write was the last operation
		return f.StartWriteback(0, 12)
	})
	if got := fsys.Ops() - before; got != 1 {
		t.Errorf("%d operations counted, want 1 (the write; StartWriteback is none, so it works past the crash point)", got)
	}
	if got, err := readFile(fsys.Crash(SyncedOnly, nil), "db/a"); err != nil || string(got) != "hello" {
		t.Errorf("after a power loss %q, %v; want the durable \"hello\"", got, err)
	}
}
