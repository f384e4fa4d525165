package wal

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/gojournal/journal/recovery"
	"github.com/gojournal/journal/segment"
	"github.com/gojournal/journal/vfs"
)

// TestDamageBeforeProvenDataIsCorruption flips one byte in a record that
// Close, or Sync in NoSync mode, made durable, with nothing appended after
// it: Open must refuse with ErrCorrupt naming that file and offset, never
// cut the records after it as a torn tail, and `wal verify` (recovery.Check)
// must report the same place first. After Close the newest segment is
// sealed like the others, and Open reads no record of it: there Open with
// Options.Verify must refuse, a quick Open must open (and Read the damaged
// record must fail), and once that Open has lifted the footer to append
// again, a crash must leave a log whose Open refuses, as before.
func TestDamageBeforeProvenDataIsCorruption(t *testing.T) {
	for _, tc := range []struct {
		name   string
		noSync bool
		end    func(l *Log) error // how the records were made durable
	}{
		{"SyncModeClose", false, (*Log).Close},
		{"NoSyncClose", true, (*Log).Close},
		{"NoSyncSyncThenCrash", true, (*Log).Sync},
	} {
		for _, victim := range []uint64{41, 100} {
			t.Run(fmt.Sprintf("%s/record%d", tc.name, victim), func(t *testing.T) {
				dir := t.TempDir()
				l, err := Open(dir, &Options{NoSync: tc.noSync, Logger: quiet})
				if err != nil {
					t.Fatal(err)
				}
				for i := 1; i <= 100; i++ {
					if _, err := l.Append(fmt.Appendf(nil, "record %03d", i)); err != nil {
						t.Fatal(err)
					}
				}
				if err := tc.end(l); err != nil {
					t.Fatal(err)
				}
				if l.LastIndex() == 100 && !errors.Is(l.Sync(), ErrClosed) {
					// Still open: what a process crash leaves is the
					// files as they are now, copied.
					crashed := t.TempDir()
					for _, name := range listDir(t, dir) {
						writeFile(t, filepath.Join(crashed, name), readFile(t, filepath.Join(dir, name)))
					}
					l.Close()
					dir = crashed
				}
				path := filepath.Join(dir, segment.Name(1))
				off := frameOffset(t, path, victim)
				flipByte(t, path, off+segment.FrameHeader+2)

				st, err := recovery.Check(vfs.Default, dir, recovery.CheckOptions{})
				if err != nil {
					t.Fatal(err)
				}
				if len(st.Damage) == 0 || st.Damage[0].Path != path || st.Damage[0].Offset != off {
					t.Fatalf("verify: damage %v, want the first at %s offset %d", st.Damage, path, off)
				}
				closed := !tc.noSync || tc.name == "NoSyncClose"
				if closed {
					_, err = Open(dir, &Options{NoSync: tc.noSync, Logger: quiet, Verify: true})
					wantCorruptAt(t, "Open with Verify", err, path, off, victim)
					dir = openedThenKilled(t, dir, tc.noSync, victim)
				}
				_, err = Open(dir, &Options{NoSync: tc.noSync, Logger: quiet})
				wantCorruptAt(t, "Open", err, filepath.Join(dir, segment.Name(1)), off, victim)
			})
		}
	}
}

// wantCorruptAt fails the test unless err is a *CorruptionError at path, off,
// index.
func wantCorruptAt(t *testing.T, what string, err error, path string, off int64, index uint64) {
	t.Helper()
	var ce *CorruptionError
	if !errors.As(err, &ce) || ce.Path != path || ce.Offset != off || ce.Index != index {
		t.Fatalf("%s: %v; want ErrCorrupt in %s at offset %d (record %d)", what, err, path, off, index)
	}
}

// openedThenKilled opens the closed log in dir quickly (which lifts the
// newest segment's footer), checks that reading the damaged record fails,
// and returns a copy of the directory as a SIGKILL then leaves it.
func openedThenKilled(t *testing.T, dir string, noSync bool, victim uint64) string {
	t.Helper()
	l, err := Open(dir, &Options{NoSync: noSync, Logger: quiet})
	if err != nil {
		t.Fatalf("quick Open of a closed log: %v", err)
	}
	defer l.Close()
	if _, err := l.Read(victim); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("Read(%d) of the damaged record: %v, want ErrCorrupt", victim, err)
	}
	crashed := t.TempDir()
	for _, name := range listDir(t, dir) {
		writeFile(t, filepath.Join(crashed, name), readFile(t, filepath.Join(dir, name)))
	}
	return crashed
}

// frameOffset finds the frame of record index in a segment file.
func frameOffset(t *testing.T, path string, index uint64) int64 {
	t.Helper()
	h, err := segment.OpenHandle(vfs.Default, path)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	sc := h.Scan()
	for sc.Next() {
		if sc.Frame().Index == index {
			return sc.Frame().Offset
		}
	}
	t.Fatalf("record %d not in %s (%s)", index, path, sc.Why())
	return 0
}

func flipByte(t *testing.T, path string, off int64) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	b := []byte{0}
	if _, err := f.ReadAt(b, off); err != nil {
		t.Fatal(err)
	}
	b[0] ^= 0x10
	if _, err := f.WriteAt(b, off); err != nil {
		t.Fatal(err)
	}
}
