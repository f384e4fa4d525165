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
	unsealNewest(t, fsys)
	return fsys
}

// unsealNewest lifts the footer that the log's Close wrote on the newest
// segment (segment.Unseal), so the segment is read frame by frame, as a
// crash leaves it: the scenarios here damage the newest segment's frames.
func unsealNewest(t *testing.T, fsys vfs.FS) {
	t.Helper()
	live, err := recovery.Live(fsys, dir)
	if err != nil || len(live) == 0 {
		t.Fatalf("live segments: %v, %v", live, err)
	}
	newest := live[len(live)-1]
	h, err := segment.OpenHandle(fsys, newest)
	if err != nil {
		t.Fatal(err)
	}
	ft, _, err := h.Footer()
	h.Close()
	if err != nil {
		t.Fatal(err)
	}
	mutate(t, fsys, newest, func(f vfs.File) error {
		_, _, err := segment.Unseal(f, h.Header(), ft)
		return err
	})
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
	{
		// Check used to skip the missing start once it had found other
		// damage, and salvage cut at the damage only: the log still did
		// not open.
		name: "FirstSegmentRemovedAndLaterDamage",
		damage: func(t *testing.T, fsys vfs.FS) {
			remove(t, fsys, path(1))
			flipRecord(128, 150)(t, fsys)
		},
		cutFile: 128, cutOffset: 512 * 23, givenUp: 151, first: 128, last: 149,
	},
	{
		// The header damage comes first in log order: the restart must
		// be planned all the same.
		name: "FirstSegmentRemovedAndNextHeaderDamaged",
		damage: func(t *testing.T, fsys vfs.FS) {
			remove(t, fsys, path(1))
			mutate(t, fsys, path(128), func(f vfs.File) error {
				_, err := f.WriteAt([]byte{0xff}, 17)
				return err
			})
		},
		cutFile: 128, cutOffset: 0, givenUp: 173, first: 128, last: 127,
	},
	{
		// The footer's segment holds damage in records TruncateFront
		// released, which the walk steps over: reseal used to scan on its
		// own, stop there and seal too few records.
		name: "ResealStepsOverDamageInReleasedRecords", reseal: 1,
		damage: func(t *testing.T, fsys vfs.FS) {
			truncateFront(t, fsys, 50)
			flipRecord(1, 10)(t, fsys)
			mutate(t, fsys, path(1), func(f vfs.File) error { return f.Truncate(512 * 128) })
		},
		first: 50, last: 300,
	},
	{
		// The log ends before the snapshot, and a footer is missing too:
		// Check leaves the snapshot unjudged after damage, and salvage
		// used to reseal only, leaving a log that ends before it.
		name: "ResealAndLogEndsBeforeTheSnapshot", snap: 310, reseal: 1,
		damage: func(t *testing.T, fsys vfs.FS) {
			mutate(t, fsys, path(1), func(f vfs.File) error { return f.Truncate(512 * 128) })
		},
		cutFile: 255, cutOffset: 0, givenUp: 0, first: 311, last: 310,
	},
	{
		// A foreign file under a later segment's name: its name proves
		// no record, and salvage used to count records 301 to 999 as
		// given up.
		name: "ForeignFileUnderALaterSegmentName",
		damage: func(t *testing.T, fsys vfs.FS) {
			f, err := fsys.OpenFile(path(1000), os.O_RDWR|os.O_CREATE, 0o644)
			if err != nil {
				t.Fatal(err)
			}
			f.WriteAt([]byte("not a journal segment\n"), 0)
			f.Sync()
			f.Close()
			if err := fsys.SyncDir(dir); err != nil {
				t.Fatal(err)
			}
		},
		cutFile: 255, cutOffset: 512 * 48, givenUp: 0, first: 1, last: 300, // after the sync frame Close wrote
	},
}

func remove(t *testing.T, fsys vfs.FS, name string) {
	t.Helper()
	if err := fsys.Remove(name); err != nil {
		t.Fatal(err)
	}
	if err := fsys.SyncDir(dir); err != nil {
		t.Fatal(err)
	}
}

func truncateFront(t *testing.T, fsys vfs.FS, i uint64) {
	t.Helper()
	l, err := wal.Open(dir, options(fsys))
	if err != nil {
		t.Fatal(err)
	}
	if err := l.TruncateFront(i); err != nil {
		t.Fatal(err)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
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
		unsealNewest(t, fsys)
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
	t.Run("DamagedSnapshotBehindSegmentDamage", func(t *testing.T) {
		// Salvage used to cut at the segment damage and leave the
		// damaged snapshot, and with it a log Open refuses.
		fsys := build(t, 100)
		flipRecord(128, 150)(t, fsys)
		mutate(t, fsys, filepath.Join(dir, checkpoint.FileName), func(f vfs.File) error {
			_, err := f.WriteAt([]byte{0xff}, 30) // in the contents
			return err
		})
		_, err := recovery.PlanSalvage(fsys, dir, recovery.SalvageOptions{Snapshot: 100})
		if !errors.Is(err, recovery.ErrNoSalvage) || !strings.Contains(err.Error(), "snapshot") {
			t.Fatalf("PlanSalvage: %v, want ErrNoSalvage (snapshot)", err)
		}
	})
	t.Run("DamagedSnapshotBehindARestart", func(t *testing.T) {
		// The meta file names a first index past the end of the log
		// (salvage restarts it there, in an empty segment) and the
		// snapshot is damaged: salvage used to plan the restart alone and
		// leave a log Open refuses.
		fsys := build(t, 0)
		m, err := recovery.ReadMeta(fsys, dir)
		if err != nil {
			t.Fatal(err)
		}
		m.FirstIndex = 260
		if err := recovery.WriteMeta(fsys, dir, m); err != nil {
			t.Fatal(err)
		}
		remove(t, fsys, path(255)) // the log now ends at 254, before its first index
		if err := checkpoint.Write(fsys, dir, 259, checkpoint.WriteOptions{}, func(w io.Writer) error {
			_, err := w.Write(bytes.Repeat([]byte("state "), 500))
			return err
		}); err != nil {
			t.Fatal(err)
		}
		mutate(t, fsys, filepath.Join(dir, checkpoint.FileName), func(f vfs.File) error {
			_, err := f.WriteAt([]byte{0xff}, 1000) // in the contents
			return err
		})
		_, err = recovery.PlanSalvage(fsys, dir, recovery.SalvageOptions{Snapshot: 259})
		if !errors.Is(err, recovery.ErrNoSalvage) || !strings.Contains(err.Error(), "restore the snapshot") {
			t.Fatalf("PlanSalvage: %v, want ErrNoSalvage (restore the snapshot)", err)
		}
	})
	t.Run("MissingStartAfterTheSnapshot", func(t *testing.T) {
		// Starting the log at its first segment (128) would leave records
		// 101-127 missing between it and the snapshot.
		fsys := build(t, 100)
		remove(t, fsys, path(1))
		_, err := recovery.PlanSalvage(fsys, dir, recovery.SalvageOptions{Snapshot: 100})
		if !errors.Is(err, recovery.ErrNoSalvage) || !strings.Contains(err.Error(), "after the snapshot") {
			t.Fatalf("PlanSalvage: %v, want ErrNoSalvage (after the snapshot)", err)
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

// TestSalvageCutAmongReleasedRecords damages a batch that TruncateFront
// released in part: the cut falls before the batch, among released
// records, and salvage used to report them as given up and the log as
// ending at 1. The records given up start at the first live one.
func TestSalvageCutAmongReleasedRecords(t *testing.T) {
	fsys := crashfs.New()
	l, err := wal.Open(dir, options(fsys))
	if err != nil {
		t.Fatal(err)
	}
	must := func(_ uint64, err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(l.Append(record(1)))
	must(l.AppendBatch([][]byte{record(2), record(3), record(4), record(5)}))
	must(0, l.TruncateFront(4))
	must(l.Append(record(6))) // proves the batch durable
	must(0, l.Close())
	h, err := segment.OpenHandle(fsys, path(1))
	if err != nil {
		t.Fatal(err)
	}
	sc := h.Scan()
	var at int64
	for sc.Next() {
		if sc.Frame().Index == 5 {
			at = sc.Frame().Offset
		}
	}
	h.Close()
	mutate(t, fsys, path(1), func(f vfs.File) error {
		_, err := f.WriteAt([]byte{0xff}, at+40) // record 5's payload
		return err
	})
	p, err := salvage(fsys)
	if err != nil {
		t.Fatal(err)
	}
	if c := p.Cut; c == nil || c.Index != 4 || c.Records != 3 {
		t.Fatalf("cut %+v, want one giving up records 4 to 6", c)
	}
	scenario{first: 4, last: 3}.check(t, fsys)
}

// TestCheckReadsRecordsAPendingTruncateBackKeeps damages a record that a
// committed but unfinished TruncateBack keeps, in a sealed segment: Check
// and Open with Verify must report it (Repair would seal the segment after
// it, and Readers stop there). They used to take the kept records' offsets
// from the footer unread.
func TestCheckReadsRecordsAPendingTruncateBackKeeps(t *testing.T) {
	fsys := build(t, 0)
	if err := recovery.WriteMeta(fsys, dir, recovery.Meta{BackPending: true, Back: 200}); err != nil {
		t.Fatal(err)
	}
	flipRecord(128, 150)(t, fsys)
	rep, err := recovery.Check(fsys, dir, recovery.CheckOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Damage) != 1 || rep.Damage[0].Index != 150 || rep.Damage[0].Path != path(128) {
		t.Fatalf("Check: damage %v, want record 150 in %s", rep.Damage, path(128))
	}
	_, err = recovery.Scan(fsys, dir, recovery.Options{Verify: true})
	var ce *errs.CorruptionError
	if !errors.As(err, &ce) || ce.Path != rep.Damage[0].Path || ce.Offset != rep.Damage[0].Offset {
		t.Fatalf("Scan with Verify: %v, want the damage Check found (%s)", err, rep.Damage[0])
	}
}

// TestPendingTruncateBackStepsOverReleasedDamage damages a record that
// TruncateFront released, in the newest segment, while a committed
// TruncateBack is pending there: the walk that finds the records the
// TruncateBack keeps must step over it as the ordinary walk does, not
// refuse the log. It used to report the kept records damaged.
func TestPendingTruncateBackStepsOverReleasedDamage(t *testing.T) {
	fsys := build(t, 0)
	truncateFront(t, fsys, 270)
	if err := recovery.WriteMeta(fsys, dir, recovery.Meta{FirstIndex: 270, BackPending: true, Back: 290}); err != nil {
		t.Fatal(err)
	}
	flipRecord(255, 260)(t, fsys)
	rep, err := recovery.Check(fsys, dir, recovery.CheckOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Damage) != 0 || len(rep.Released) != 1 || rep.Released[0].Index != 260 {
		t.Fatalf("Check: damage %v, released %v; want record 260 released, no damage", rep.Damage, rep.Released)
	}
	opts := options(fsys)
	opts.Verify = true
	l, err := wal.Open(dir, opts)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	defer l.Close()
	if l.FirstIndex() != 270 || l.LastIndex() != 290 {
		t.Fatalf("log holds [%d, %d], want [270, 290]", l.FirstIndex(), l.LastIndex())
	}
	for i := uint64(270); i <= 290; i++ {
		if rec, err := l.Read(i); err != nil || !bytes.Equal(rec, record(i)) {
			t.Fatalf("Read(%d) = %q, %v", i, rec, err)
		}
	}
}
