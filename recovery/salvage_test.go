package recovery_test

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cespare/xxhash/v2"

	"github.com/gojournal/journal/checkpoint"
	"github.com/gojournal/journal/internal/errs"
	"github.com/gojournal/journal/recovery"
	"github.com/gojournal/journal/segment"
	"github.com/gojournal/journal/vfs"
	"github.com/gojournal/journal/vfs/crashfs"
	"github.com/gojournal/journal/wal"
)

// The salvage scenarios build a log of 300 records in 64 KiB segments
// (127 records per sealed segment: 1-127, 128-254, 255-300, one record per
// write) on an in-memory file system, damage it, salvage it, and check
// that the log then opens holding exactly the records salvage kept. Each
// is also interrupted by a simulated power loss after every mutating
// operation of the salvage, and salvaged again: it must end the same.

const dir = "/log"

var now = time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)

func record(i uint64) []byte {
	return fmt.Appendf(nil, "record %d %s", i, strings.Repeat(string(rune('a'+i%26)), 100))
}

func options(fsys vfs.FS) *wal.Options {
	return &wal.Options{SegmentSize: wal.MinSegmentSize, FS: fsys, Logger: slog.New(slog.DiscardHandler)}
}

// build writes records 1..300, and a snapshot at index snap if not 0.
func build(t *testing.T, snap uint64) *crashfs.FS {
	t.Helper()
	fsys := crashfs.New()
	l, err := wal.Open(dir, options(fsys))
	if err != nil {
		t.Fatal(err)
	}
	for i := uint64(1); i <= 300; i++ {
		if _, err := l.Append(record(i)); err != nil {
			t.Fatal(err)
		}
	}
	if snap != 0 {
		err := checkpoint.Write(fsys, dir, snap, checkpoint.WriteOptions{}, func(w io.Writer) error {
			_, err := io.WriteString(w, "state")
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	return fsys
}

func path(first uint64) string { return filepath.Join(dir, segment.Name(first)) }

func mutate(t *testing.T, fsys vfs.FS, name string, edit func(f vfs.File) error) {
	t.Helper()
	f, err := fsys.OpenFile(name, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	err = edit(f)
	if err == nil {
		err = f.Sync()
	}
	if err != nil {
		t.Fatal(err)
	}
	f.Close()
}

// flipRecord damages the payload of a record of a full segment (record i
// of a segment starting at first sits at 512 * (i - first + 1)).
func flipRecord(first, i uint64) func(t *testing.T, fsys vfs.FS) {
	return func(t *testing.T, fsys vfs.FS) {
		mutate(t, fsys, path(first), func(f vfs.File) error {
			_, err := f.WriteAt([]byte{0xff}, int64(512*(i-first+1)+40))
			return err
		})
	}
}

type scenario struct {
	name   string
	snap   uint64
	damage func(t *testing.T, fsys vfs.FS)
	// What salvage must do.
	reseal      int
	cutFile     uint64 // first index of the segment cut (0: no cut)
	cutOffset   int64
	givenUp     uint64
	first, last uint64 // the log afterwards
}

var scenarios = []scenario{
	{
		name: "SealedRecordDamaged", damage: flipRecord(1, 5),
		cutFile: 1, cutOffset: 512 * 5, givenUp: 296, first: 1, last: 4,
	},
	{
		name: "NewestSegmentDamagedBeforeDurableData", damage: flipRecord(255, 260),
		cutFile: 255, cutOffset: 512 * 6, givenUp: 41, first: 1, last: 259,
	},
	{
		name: "SecondSegmentDamagedFirstRecord", damage: flipRecord(128, 128),
		cutFile: 128, cutOffset: 512, givenUp: 173, first: 1, last: 127,
	},
	{
		name: "MissingFooterIsResealed", reseal: 1,
		damage: func(t *testing.T, fsys vfs.FS) {
			mutate(t, fsys, path(1), func(f vfs.File) error { return f.Truncate(512 * 128) })
		},
		first: 1, last: 300,
	},
	{
		name: "FirstSegmentHeaderDamaged",
		damage: func(t *testing.T, fsys vfs.FS) {
			mutate(t, fsys, path(1), func(f vfs.File) error {
				_, err := f.WriteAt([]byte{0xff}, 17) // first index, under the checksum
				return err
			})
		},
		cutFile: 1, cutOffset: 0, givenUp: 300, first: 1, last: 0,
	},
	{
		name: "DamageBeforeTheSnapshotContinuesAfterIt", snap: 200, damage: flipRecord(128, 150),
		cutFile: 128, cutOffset: 0, givenUp: 100, first: 201, last: 200,
	},
	{
		name: "DamageAfterTheSnapshot", snap: 100, damage: flipRecord(128, 150),
		cutFile: 128, cutOffset: 512 * 23, givenUp: 151, first: 1, last: 149,
	},
}

// salvage plans and applies a salvage of fsys's log.
func salvage(fsys vfs.FS) (*recovery.SalvagePlan, error) {
	var snap uint64
	if h, err := checkpoint.ReadHeader(fsys, dir); err == nil {
		snap = h.Index
	}
	p, err := recovery.PlanSalvage(fsys, dir, recovery.SalvageOptions{Snapshot: snap})
	if err != nil {
		return nil, err
	}
	return p, p.Apply(fsys, now)
}

// check opens the log and compares it with what the scenario keeps.
func (sc scenario) check(t *testing.T, fsys vfs.FS) {
	t.Helper()
	rep, err := recovery.Check(fsys, dir, recovery.CheckOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Damage) > 0 {
		t.Fatalf("damage left after salvage: %v", rep.Damage)
	}
	l, err := wal.Open(dir, options(fsys))
	if err != nil {
		t.Fatalf("Open after salvage: %v", err)
	}
	defer l.Close()
	if l.FirstIndex() != sc.first || l.LastIndex() != sc.last {
		t.Fatalf("log holds [%d, %d], want [%d, %d]", l.FirstIndex(), l.LastIndex(), sc.first, sc.last)
	}
	for i := sc.first; i <= sc.last; i++ {
		if got, err := l.Read(i); err != nil || !bytes.Equal(got, record(i)) {
			t.Fatalf("Read(%d) = %q, %v", i, got, err)
		}
	}
	if i, err := l.Append([]byte("after")); err != nil || i != sc.last+1 {
		t.Fatalf("Append after salvage = %d, %v; want index %d", i, err, sc.last+1)
	}
}

func TestSalvage(t *testing.T) {
	for _, sc := range scenarios {
		t.Run(sc.name, func(t *testing.T) {
			fsys := build(t, sc.snap)
			sc.damage(t, fsys)
			orig := readAll(t, fsys, dir)
			p, err := salvage(fsys)
			if err != nil {
				t.Fatal(err)
			}
			if len(p.Reseal) != sc.reseal {
				t.Errorf("resealed %v, want %d segments", p.Reseal, sc.reseal)
			}
			switch c := p.Cut; {
			case sc.cutFile == 0 && c != nil:
				t.Errorf("cut %+v, want none", c)
			case sc.cutFile != 0 && c == nil:
				t.Fatalf("no cut, want one in %s", segment.Name(sc.cutFile))
			case c != nil:
				if c.Path != path(sc.cutFile) || c.Offset != sc.cutOffset || c.Records != sc.givenUp {
					t.Errorf("cut %s at %d giving up %d; want %s at %d giving up %d",
						c.Path, c.Offset, c.Records, path(sc.cutFile), sc.cutOffset, sc.givenUp)
				}
			}
			// Every file that changed or went is in quarantine, whole.
			q := readAll(t, fsys, p.Quarantine)
			for name, b := range orig {
				if got, ok := readFile(fsys, filepath.Join(dir, name)); ok && got == b {
					continue // unchanged
				}
				if name == recovery.MetaName || name == checkpoint.FileName {
					continue
				}
				if q[name] != b {
					t.Errorf("%s changed or went, but quarantine has no copy of it", name)
				}
			}
			if !strings.Contains(q["README"], "journal salvage of "+dir) {
				t.Errorf("README: %q", q["README"])
			}
			sc.check(t, fsys)
		})
	}
}

// TestSalvageInterrupted crashes each salvage after every mutating
// operation, in two crash modes, salvages again and checks the result.
func TestSalvageInterrupted(t *testing.T) {
	if testing.Short() {
		t.Skip("crash-point enumeration")
	}
	for _, sc := range scenarios {
		t.Run(sc.name, func(t *testing.T) {
			fsys := build(t, sc.snap)
			sc.damage(t, fsys)
			start := fsys.Ops()
			if _, err := salvage(fsys); err != nil {
				t.Fatal(err)
			}
			end := fsys.Ops()
			rng := rand.New(rand.NewPCG(1, 2))
			for k := start + 1; k <= end; k++ {
				for _, mode := range []crashfs.CrashMode{crashfs.SyncedOnly, crashfs.RandomSectors} {
					fsys := build(t, sc.snap)
					sc.damage(t, fsys)
					fsys.SetCrashAfter(fsys.Ops() + (k - start))
					_, err := salvage(fsys)
					if err != nil && !errors.Is(err, crashfs.ErrCrashed) {
						t.Fatalf("crash after op %d: salvage: %v", k-start, err)
					}
					after := fsys.Crash(mode, rng)
					if _, err := salvage(after); err != nil {
						t.Fatalf("crash after op %d (%v): second salvage: %v", k-start, mode, err)
					}
					t.Run(fmt.Sprintf("op%d-%v", k-start, mode), func(t *testing.T) { sc.check(t, after) })
				}
			}
		})
	}
}

func TestSalvageRefuses(t *testing.T) {
	t.Run("DamageInReleasedRecords", func(t *testing.T) {
		fsys := build(t, 0)
		l, err := wal.Open(dir, options(fsys))
		if err != nil {
			t.Fatal(err)
		}
		// Record 258 lies in the newest segment, which Open scans from
		// its start.
		if err := l.TruncateFront(260); err != nil {
			t.Fatal(err)
		}
		l.Close()
		flipRecord(255, 258)(t, fsys)
		// Damage in released records is not damage to the log: Open
		// steps over it, salvage has nothing to do, Check lists it
		// apart.
		p, err := recovery.PlanSalvage(fsys, dir, recovery.SalvageOptions{})
		if err != nil || !p.Empty() {
			t.Fatalf("PlanSalvage: %+v, %v; want an empty plan", p, err)
		}
		if len(p.Report.Damage) != 0 || len(p.Report.Released) != 1 || p.Report.Released[0].Index != 258 {
			t.Fatalf("Check: damage %v, released %v; want record 258 released", p.Report.Damage, p.Report.Released)
		}
		l, err = wal.Open(dir, options(fsys))
		if err != nil {
			t.Fatalf("Open: %v", err)
		}
		defer l.Close()
		if l.FirstIndex() != 260 || l.LastIndex() != 300 {
			t.Fatalf("log holds [%d, %d], want [260, 300]", l.FirstIndex(), l.LastIndex())
		}
		for i := uint64(260); i <= 300; i++ {
			if rec, err := l.Read(i); err != nil || string(rec) != string(record(i)) {
				t.Fatalf("Read(%d) = %q, %v", i, rec, err)
			}
		}
	})
	t.Run("NewerFormatVersion", func(t *testing.T) {
		fsys := build(t, 0)
		mutate(t, fsys, path(128), func(f vfs.File) error {
			// A version after this build's, with a valid header checksum.
			h := make([]byte, segment.HeaderSize)
			f.ReadAt(h, 0)
			binary.LittleEndian.PutUint32(h[8:], segment.Version+1)
			binary.LittleEndian.PutUint64(h[32:], xxhash.Sum64(h[:32]))
			_, err := f.WriteAt(h, 0)
			return err
		})
		_, err := recovery.PlanSalvage(fsys, dir, recovery.SalvageOptions{})
		if !errors.Is(err, recovery.ErrNoSalvage) || !strings.Contains(err.Error(), "newer version") {
			t.Fatalf("PlanSalvage: %v, want ErrNoSalvage (newer version)", err)
		}
	})
	t.Run("NothingToDo", func(t *testing.T) {
		fsys := build(t, 0)
		p, err := recovery.PlanSalvage(fsys, dir, recovery.SalvageOptions{})
		if err != nil || !p.Empty() {
			t.Fatalf("PlanSalvage of a clean log: %+v, %v", p, err)
		}
	})
}

// TestCheckReportsAllDamage damages three records in three segments:
// Check lists all three, Scan stops at the first.
func TestCheckReportsAllDamage(t *testing.T) {
	fsys := build(t, 0)
	flipRecord(1, 10)(t, fsys)
	flipRecord(128, 200)(t, fsys)
	flipRecord(255, 270)(t, fsys)
	rep, err := recovery.Check(fsys, dir, recovery.CheckOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var got []uint64
	for _, d := range rep.Damage {
		got = append(got, d.Index)
	}
	if fmt.Sprint(got) != "[10 200 270]" {
		t.Errorf("damage at records %v, want [10 200 270]: %v", got, rep.Damage)
	}
	if rep.FirstIndex != 1 || rep.NextIndex() != 301 || rep.Torn != nil {
		t.Errorf("report: first %d next %d torn %v", rep.FirstIndex, rep.NextIndex(), rep.Torn)
	}
	if _, err := recovery.Scan(fsys, dir, recovery.Options{Verify: true}); !errors.Is(err, errs.ErrCorrupt) {
		t.Errorf("Scan: %v", err)
	}
}

func readFile(fsys vfs.FS, name string) (string, bool) {
	f, err := fsys.OpenFile(name, os.O_RDONLY, 0)
	if err != nil {
		return "", false
	}
	defer f.Close()
	size, _ := f.Size()
	b := make([]byte, size)
	f.ReadAt(b, 0)
	return string(b), true
}

func readAll(t *testing.T, fsys vfs.FS, d string) map[string]string {
	t.Helper()
	names, err := fsys.ReadDir(d)
	if err != nil {
		t.Fatal(err)
	}
	m := map[string]string{}
	for _, name := range names {
		if b, ok := readFile(fsys, filepath.Join(d, name)); ok {
			m[name] = b
		}
	}
	return m
}
