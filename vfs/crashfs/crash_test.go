package crashfs

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/gojournal/journal/internal/seedtest"
	"github.com/gojournal/journal/vfs"
)

// durableDB returns an FS holding a durable, empty directory db.
func durableDB(t *testing.T) *FS {
	t.Helper()
	fsys := New()
	mkdir(t, fsys, "db")
	syncDir(t, fsys, "/")
	return fsys
}

// durableFile makes db/name hold data durably: file and entry synced.
func durableFile(t *testing.T, fsys *FS, name, data string) {
	t.Helper()
	create(t, fsys, "db/"+name, data)
	syncFile(t, fsys, "db/"+name)
	syncDir(t, fsys, "db")
}

// TestSyncedOnly lists what a power loss keeps of each workload when only
// durable state survives.
func TestSyncedOnly(t *testing.T) {
	tests := []struct {
		name string
		run  func(t *testing.T, fsys *FS)
		want map[string]string // besides the durable db directory
	}{
		{
			name: "UnsyncedCreateDisappears",
			run:  func(t *testing.T, fsys *FS) { create(t, fsys, "db/a", "data") },
			want: map[string]string{},
		},
		{
			name: "SyncedFileInUnsyncedDirDisappears",
			run: func(t *testing.T, fsys *FS) {
				create(t, fsys, "db/a", "data")
				syncFile(t, fsys, "db/a")
			},
			want: map[string]string{},
		},
		{
			name: "SyncedDirWithUnsyncedFileKeepsEmptyFile",
			run: func(t *testing.T, fsys *FS) {
				create(t, fsys, "db/a", "data")
				syncDir(t, fsys, "db")
			},
			want: map[string]string{"db/a": ""},
		},
		{
			name: "SyncedFileAndDirSurvive",
			run:  func(t *testing.T, fsys *FS) { durableFile(t, fsys, "a", "data") },
			want: map[string]string{"db/a": "data"},
		},
		{
			name: "DirSyncBeforeFileSyncStillCounts",
			run: func(t *testing.T, fsys *FS) {
				create(t, fsys, "db/a", "data")
				syncDir(t, fsys, "db")
				syncFile(t, fsys, "db/a")
			},
			want: map[string]string{"db/a": "data"},
		},
		{
			name: "RenameWithoutDirSyncReverts",
			run: func(t *testing.T, fsys *FS) {
				durableFile(t, fsys, "a", "data")
				rename(t, fsys, "db/a", "db/b")
			},
			want: map[string]string{"db/a": "data"},
		},
		{
			name: "RenameWithDirSyncSticks",
			run: func(t *testing.T, fsys *FS) {
				durableFile(t, fsys, "a", "data")
				rename(t, fsys, "db/a", "db/b")
				syncDir(t, fsys, "db")
			},
			want: map[string]string{"db/b": "data"},
		},
		{
			name: "RenameOverFileWithoutDirSyncRestoresTarget",
			run: func(t *testing.T, fsys *FS) {
				durableFile(t, fsys, "a", "old")
				durableFile(t, fsys, "tmp", "new")
				rename(t, fsys, "db/tmp", "db/a")
			},
			want: map[string]string{"db/a": "old", "db/tmp": "new"},
		},
		{
			name: "RenameOfUnsyncedFileSyncedDirKeepsNameNotData",
			run: func(t *testing.T, fsys *FS) {
				create(t, fsys, "db/tmp", "new")
				rename(t, fsys, "db/tmp", "db/a")
				syncDir(t, fsys, "db")
			},
			want: map[string]string{"db/a": ""},
		},
		{
			name: "RenameAcrossDirsSyncingOnlyTargetLinksBoth",
			run: func(t *testing.T, fsys *FS) {
				mkdir(t, fsys, "db2")
				syncDir(t, fsys, "/")
				durableFile(t, fsys, "a", "data")
				rename(t, fsys, "db/a", "db2/a")
				syncDir(t, fsys, "db2")
			},
			want: map[string]string{"db/a": "data", "db2": "/", "db2/a": "data"},
		},
		{
			name: "RenameAcrossDirsSyncingOnlySourceLosesFile",
			run: func(t *testing.T, fsys *FS) {
				mkdir(t, fsys, "db2")
				syncDir(t, fsys, "/")
				durableFile(t, fsys, "a", "data")
				rename(t, fsys, "db/a", "db2/a")
				syncDir(t, fsys, "db")
			},
			want: map[string]string{"db2": "/"},
		},
		{
			name: "RemoveWithoutDirSyncReappears",
			run: func(t *testing.T, fsys *FS) {
				durableFile(t, fsys, "a", "data")
				remove(t, fsys, "db/a")
			},
			want: map[string]string{"db/a": "data"},
		},
		{
			name: "RemoveWithDirSyncIsGone",
			run: func(t *testing.T, fsys *FS) {
				durableFile(t, fsys, "a", "data")
				remove(t, fsys, "db/a")
				syncDir(t, fsys, "db")
			},
			want: map[string]string{},
		},
		{
			name: "RecreateWithoutDirSyncBringsBackOldFile",
			run: func(t *testing.T, fsys *FS) {
				durableFile(t, fsys, "a", "old")
				remove(t, fsys, "db/a")
				create(t, fsys, "db/a", "new")
				syncFile(t, fsys, "db/a")
			},
			want: map[string]string{"db/a": "old"},
		},
		{
			name: "AppendAfterSyncIsDropped",
			run: func(t *testing.T, fsys *FS) {
				durableFile(t, fsys, "a", "hello")
				writeAt(t, fsys, "db/a", " world", 5)
			},
			want: map[string]string{"db/a": "hello"},
		},
		{
			name: "OverwriteAfterSyncIsDropped",
			run: func(t *testing.T, fsys *FS) {
				durableFile(t, fsys, "a", "hello")
				writeAt(t, fsys, "db/a", "HE", 0)
			},
			want: map[string]string{"db/a": "hello"},
		},
		{
			name: "FileSyncDoesNotNeedDirSyncForExistingFile",
			run: func(t *testing.T, fsys *FS) {
				durableFile(t, fsys, "a", "hello")
				writeAt(t, fsys, "db/a", " world", 5)
				syncFile(t, fsys, "db/a")
			},
			want: map[string]string{"db/a": "hello world"},
		},
		{
			name: "WritesThroughHandleFollowRename",
			run: func(t *testing.T, fsys *FS) {
				durableFile(t, fsys, "a", "data")
				f, err := fsys.OpenFile("db/a", os.O_RDWR, 0)
				if err != nil {
					t.Fatal(err)
				}
				defer f.Close()
				rename(t, fsys, "db/a", "db/b")
				syncDir(t, fsys, "db")
				if _, err := f.WriteAt([]byte("DATA"), 0); err != nil {
					t.Fatal(err)
				}
				if err := f.Sync(); err != nil {
					t.Fatal(err)
				}
			},
			want: map[string]string{"db/b": "DATA"},
		},
		{
			name: "UnsyncedShrinkReverts",
			run: func(t *testing.T, fsys *FS) {
				durableFile(t, fsys, "a", "hello")
				truncate(t, fsys, "db/a", 2)
			},
			want: map[string]string{"db/a": "hello"},
		},
		{
			name: "SyncedShrinkSticks",
			run: func(t *testing.T, fsys *FS) {
				durableFile(t, fsys, "a", "hello")
				truncate(t, fsys, "db/a", 2)
				syncFile(t, fsys, "db/a")
			},
			want: map[string]string{"db/a": "he"},
		},
		{
			name: "UnsyncedGrowReverts",
			run: func(t *testing.T, fsys *FS) {
				durableFile(t, fsys, "a", "hello")
				truncate(t, fsys, "db/a", 8)
			},
			want: map[string]string{"db/a": "hello"},
		},
		{
			name: "SyncedGrowReadsZeros",
			run: func(t *testing.T, fsys *FS) {
				durableFile(t, fsys, "a", "hello")
				truncate(t, fsys, "db/a", 8)
				syncFile(t, fsys, "db/a")
			},
			want: map[string]string{"db/a": "hello\x00\x00\x00"},
		},
		{
			name: "ShrinkThenGrowSyncedReadsZeros",
			run: func(t *testing.T, fsys *FS) {
				durableFile(t, fsys, "a", "hello")
				truncate(t, fsys, "db/a", 1)
				truncate(t, fsys, "db/a", 5)
				syncFile(t, fsys, "db/a")
			},
			want: map[string]string{"db/a": "h\x00\x00\x00\x00"},
		},
		{
			name: "UnsyncedPreallocateReverts",
			run: func(t *testing.T, fsys *FS) {
				durableFile(t, fsys, "a", "hello")
				preallocate(t, fsys, "db/a", 1000)
			},
			want: map[string]string{"db/a": "hello"},
		},
		{
			name: "SyncedPreallocateReadsZeros",
			run: func(t *testing.T, fsys *FS) {
				durableFile(t, fsys, "a", "hi")
				preallocate(t, fsys, "db/a", 6)
				syncFile(t, fsys, "db/a")
			},
			want: map[string]string{"db/a": "hi\x00\x00\x00\x00"},
		},
		{
			name: "UnsyncedOpenTruncReverts",
			run: func(t *testing.T, fsys *FS) {
				durableFile(t, fsys, "a", "hello")
				f, err := fsys.OpenFile("db/a", os.O_RDWR|os.O_TRUNC, 0)
				if err != nil {
					t.Fatal(err)
				}
				f.Close()
			},
			want: map[string]string{"db/a": "hello"},
		},
		{
			name: "MkdirWithoutParentSyncDisappearsWithContents",
			run: func(t *testing.T, fsys *FS) {
				mkdir(t, fsys, "db/sub")
				create(t, fsys, "db/sub/a", "data")
				syncFile(t, fsys, "db/sub/a")
				syncDir(t, fsys, "db/sub")
			},
			want: map[string]string{},
		},
		{
			name: "MkdirWithParentSyncSurvives",
			run: func(t *testing.T, fsys *FS) {
				mkdir(t, fsys, "db/sub")
				syncDir(t, fsys, "db")
				create(t, fsys, "db/sub/a", "data")
				syncFile(t, fsys, "db/sub/a")
				syncDir(t, fsys, "db/sub")
			},
			want: map[string]string{"db/sub": "/", "db/sub/a": "data"},
		},
		{
			name: "RemoveDirWithoutParentSyncReappearsWithDurableEntries",
			run: func(t *testing.T, fsys *FS) {
				mkdir(t, fsys, "db/sub")
				syncDir(t, fsys, "db")
				create(t, fsys, "db/sub/a", "data")
				syncFile(t, fsys, "db/sub/a")
				syncDir(t, fsys, "db/sub")
				remove(t, fsys, "db/sub/a")
				remove(t, fsys, "db/sub")
			},
			want: map[string]string{"db/sub": "/", "db/sub/a": "data"},
		},
		{
			name: "AtomicReplaceCompleted",
			run: func(t *testing.T, fsys *FS) {
				durableFile(t, fsys, "meta", "old")
				err := vfs.WriteFile(fsys, "db/meta", 0o644, func(w io.Writer) error {
					_, err := w.Write([]byte("new"))
					return err
				})
				if err != nil {
					t.Fatal(err)
				}
			},
			want: map[string]string{"db/meta": "new"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fsys := durableDB(t)
			tt.run(t, fsys)
			want := maps.Clone(tt.want)
			want["db"] = "/"
			got := tree(t, fsys.Crash(SyncedOnly, nil))
			if !maps.Equal(got, want) {
				t.Errorf("after crash:\n got %q\nwant %q\n(before crash: %q)", got, want, tree(t, fsys))
			}
		})
	}
}

// TestCrashLeavesOriginalUntouched checks that Crash copies: neither the
// original nor the crash state sees the other's later changes.
func TestCrashLeavesOriginalUntouched(t *testing.T) {
	rng := seedtest.Rand(t)
	fsys := durableDB(t)
	durableFile(t, fsys, "a", strings.Repeat("a", 3000))
	durableFile(t, fsys, "b", "bbb")
	writeAt(t, fsys, "db/a", strings.Repeat("x", 1500), 1000)
	create(t, fsys, "db/c", "ccc")
	rename(t, fsys, "db/b", "db/d")
	f, err := fsys.OpenFile("db/a", os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()

	before := tree(t, fsys)
	durableBefore := tree(t, fsys.Crash(SyncedOnly, nil))
	opsBefore := fsys.Ops()
	var crashes []*FS
	for _, mode := range []CrashMode{SyncedOnly, RandomSectors, Garbled} {
		for range 10 {
			crashes = append(crashes, fsys.Crash(mode, rng))
		}
	}
	if got := tree(t, fsys); !maps.Equal(got, before) {
		t.Fatalf("Crash changed the current state:\n got %q\nwant %q", got, before)
	}
	if got := tree(t, fsys.Crash(SyncedOnly, nil)); !maps.Equal(got, durableBefore) {
		t.Fatalf("Crash changed the durable state:\n got %q\nwant %q", got, durableBefore)
	}
	if fsys.Ops() != opsBefore {
		t.Fatalf("Ops went from %d to %d across Crash", opsBefore, fsys.Ops())
	}

	// Changing a crash state, or the original through a handle opened
	// before the crash, shows in neither of the others.
	c := crashes[len(crashes)-1]
	cBefore := tree(t, c)
	writeAt(t, c, "db/a", "crash", 0)
	create(t, c, "db/new", "new")
	if got := tree(t, fsys); !maps.Equal(got, before) {
		t.Fatalf("writing to a crash state changed the original:\n got %q\nwant %q", got, before)
	}
	if _, err := f.WriteAt([]byte("orig"), 0); err != nil {
		t.Fatal(err)
	}
	if err := f.Sync(); err != nil {
		t.Fatal(err)
	}
	cBefore["db/new"] = "new"
	cBefore["db/a"] = "crash" + cBefore["db/a"][5:]
	if got := tree(t, c); !maps.Equal(got, cBefore) {
		t.Fatalf("writing to the original changed a crash state:\n got %q\nwant %q", got, cBefore)
	}
}

// TestCrashStateIsDurable checks that a crash state has nothing unsynced:
// crashing it again changes nothing, in any mode.
func TestCrashStateIsDurable(t *testing.T) {
	rng := seedtest.Rand(t)
	fsys := durableDB(t)
	durableFile(t, fsys, "a", strings.Repeat("a", 2000))
	writeAt(t, fsys, "db/a", strings.Repeat("x", 2000), 1500)
	create(t, fsys, "db/b", "b")
	mkdir(t, fsys, "db/sub")
	for _, mode := range []CrashMode{SyncedOnly, RandomSectors, Garbled} {
		c := fsys.Crash(mode, rng)
		want := tree(t, c)
		for _, again := range []CrashMode{SyncedOnly, RandomSectors, Garbled} {
			if got := tree(t, c.Crash(again, rng)); !maps.Equal(got, want) {
				t.Errorf("%v then %v:\n got %q\nwant %q", mode, again, got, want)
			}
		}
	}
}

// TestCrashIsDeterministic checks that the same state and seed give the
// same crash state.
func TestCrashIsDeterministic(t *testing.T) {
	s := seedtest.Seed(t)
	fsys := durableDB(t)
	for i := range 5 {
		name := fmt.Sprintf("db/f%d", i)
		create(t, fsys, name, strings.Repeat(string(rune('a'+i)), 700*i))
		if i%2 == 0 {
			syncFile(t, fsys, name)
		}
	}
	syncDir(t, fsys, "db")
	for i := range 5 {
		writeAt(t, fsys, fmt.Sprintf("db/f%d", i), strings.Repeat("z", 1200), int64(300*i))
	}
	create(t, fsys, "db/g", "g")
	rename(t, fsys, "db/f1", "db/h")
	for _, mode := range []CrashMode{RandomSectors, Garbled} {
		a := tree(t, fsys.Crash(mode, seedtest.New(s)))
		b := tree(t, fsys.Crash(mode, seedtest.New(s)))
		if !maps.Equal(a, b) {
			t.Errorf("%v: two crashes with seed %d differ:\n%q\n%q", mode, s, a, b)
		}
	}
}

// Sector classes, for checking crash states sector by sector.
const (
	classOld  = 'o' // the durable bytes (zeros past the durable size)
	classNew  = 'n' // the bytes written since
	classJunk = 'j' // neither
)

// classify returns, per sector of got, whether it holds old, new or other
// bytes. old and cur must differ in every changed sector.
func classify(got, old, cur []byte) string {
	var b strings.Builder
	for lo := 0; lo < len(got); lo += SectorSize {
		hi := min(lo+SectorSize, len(got))
		switch {
		case bytes.Equal(got[lo:hi], padded(old, lo, hi)):
			b.WriteByte(classOld)
		case bytes.Equal(got[lo:hi], padded(cur, lo, hi)):
			b.WriteByte(classNew)
		default:
			b.WriteByte(classJunk)
		}
	}
	return b.String()
}

// padded returns b[lo:hi], reading zeros past the end of b.
func padded(b []byte, lo, hi int) []byte {
	out := make([]byte, hi-lo)
	if lo < len(b) {
		copy(out, b[lo:min(hi, len(b))])
	}
	return out
}

// TestRandomSectorsKeepsSomeUnsyncedSectors checks the sector and size
// rules of RandomSectors and Garbled on a file with an overwrite and an
// append past a durable size that ends mid-sector.
func TestRandomSectorsKeepsSomeUnsyncedSectors(t *testing.T) {
	s := seedtest.Seed(t)
	const dsize, csize = 1000, 2600 // durable size ends inside sector 1
	// Garbled loses all 5 changed sectors once in 243 crashes; this many
	// miss it with probability about 1e-5.
	const trials = 3000
	old := bytes.Repeat([]byte{'o'}, dsize)
	cur := bytes.Repeat([]byte{'n'}, csize)
	copy(cur, old[:512]) // sector 0 is unchanged

	for _, mode := range []CrashMode{RandomSectors, Garbled} {
		t.Run(mode.String(), func(t *testing.T) {
			rng := seedtest.New(s)
			fsys := durableDB(t)
			durableFile(t, fsys, "a", string(old))
			writeAt(t, fsys, "db/a", string(cur[512:]), 512)
			seen := make(map[string]bool)
			for range trials {
				got, err := readFile(fsys.Crash(mode, rng), "db/a")
				if err != nil {
					t.Fatal(err)
				}
				classes := classify(got, old, cur)
				seen[fmt.Sprint(len(got))] = true
				for _, c := range classes {
					seen[string(c)] = true
				}
				if classes[0] != classOld {
					t.Fatalf("unchanged sector 0 is %c: %s", classes[0], classes)
				}
				if mode == RandomSectors && strings.ContainsRune(classes, classJunk) {
					t.Fatalf("RandomSectors garbled a sector: %s", classes)
				}
				switch len(got) {
				case dsize:
					// Sector 1 straddles the durable end: had it survived,
					// the size would be the current one.
					if classes[1] != classOld {
						t.Fatalf("size %d with sector 1 %c: %s", len(got), classes[1], classes)
					}
				case csize:
					if !strings.ContainsAny(classes[1:], string([]byte{classNew, classJunk})) {
						t.Fatalf("size %d with no sector past the durable size surviving: %s", len(got), classes)
					}
				default:
					t.Fatalf("size %d, want %d or %d", len(got), dsize, csize)
				}
			}
			want := []string{fmt.Sprint(dsize), fmt.Sprint(csize), string(rune(classOld)), string(rune(classNew))}
			if mode == Garbled {
				want = append(want, string(rune(classJunk)))
			}
			for _, w := range want {
				if !seen[w] {
					t.Errorf("in %d crashes never saw %q (saw %v)", trials, w, slices.Sorted(maps.Keys(seen)))
				}
			}
		})
	}
}

// TestRandomSectorsUnsyncedShrink checks that an unsynced truncation
// survives whole or not at all.
func TestRandomSectorsUnsyncedShrink(t *testing.T) {
	rng := seedtest.Rand(t)
	fsys := durableDB(t)
	old := strings.Repeat("0123456789", 200)
	durableFile(t, fsys, "a", old)
	truncate(t, fsys, "db/a", 700)
	seen := make(map[int]bool)
	for range 100 {
		got, err := readFile(fsys.Crash(RandomSectors, rng), "db/a")
		if err != nil {
			t.Fatal(err)
		}
		if string(got) != old && string(got) != old[:700] {
			t.Fatalf("got %d bytes, not the old file nor its truncation", len(got))
		}
		seen[len(got)] = true
	}
	if !seen[700] || !seen[len(old)] {
		t.Errorf("sizes seen %v, want both 700 and %d", seen, len(old))
	}
}

// TestRandomDirectoryPrefix checks that a random crash keeps a prefix of a
// directory's unsynced entry changes, a Rename being one change.
func TestRandomDirectoryPrefix(t *testing.T) {
	rng := seedtest.Rand(t)
	fsys := durableDB(t)
	create(t, fsys, "db/a", "a")
	syncFile(t, fsys, "db/a")
	create(t, fsys, "db/b", "b")
	syncFile(t, fsys, "db/b")
	rename(t, fsys, "db/a", "db/c")
	remove(t, fsys, "db/b")
	// The changes to db: +a, +b, a->c, -b.
	states := []string{"", "a=a", "a=a b=b", "b=b c=a", "c=a"}
	seen := make(map[string]bool)
	for range 200 {
		got := tree(t, fsys.Crash(RandomSectors, rng))
		var parts []string
		for _, name := range slices.Sorted(maps.Keys(got)) {
			if name != "db" {
				parts = append(parts, strings.TrimPrefix(name, "db/")+"="+got[name])
			}
		}
		state := strings.Join(parts, " ")
		if !slices.Contains(states, state) {
			t.Fatalf("crash state %q is not a prefix of the changes %q", state, states)
		}
		seen[state] = true
	}
	for _, s := range states {
		if !seen[s] {
			t.Errorf("in 200 crashes never saw state %q", s)
		}
	}
}

// TestSingleFileModel runs random operations on one file against a plain
// model of its current and durable bytes, and checks every crash state
// against the model.
func TestSingleFileModel(t *testing.T) {
	s := seedtest.Seed(t)
	rng := seedtest.New(s)
	for round := range 50 {
		fsys := durableDB(t)
		durableFile(t, fsys, "a", "")
		f, err := fsys.OpenFile("db/a", os.O_RDWR, 0)
		if err != nil {
			t.Fatal(err)
		}
		var cur, durable []byte
		for step := range 30 {
			switch op := rng.IntN(10); {
			case op < 5:
				off := rng.Int64N(4000)
				p := make([]byte, rng.IntN(1200)+1)
				for i := range p {
					p[i] = byte(rng.IntN(255) + 1) // never zero: zeros mean "not written"
				}
				if _, err := f.WriteAt(p, off); err != nil {
					t.Fatal(err)
				}
				if end := off + int64(len(p)); end > int64(len(cur)) {
					cur = append(cur, make([]byte, end-int64(len(cur)))...)
				}
				copy(cur[off:], p)
			case op < 7:
				size := rng.Int64N(4000)
				if err := f.Truncate(size); err != nil {
					t.Fatal(err)
				}
				if size < int64(len(cur)) {
					cur = cur[:size:size]
				} else {
					cur = append(cur, make([]byte, size-int64(len(cur)))...)
				}
			case op < 8:
				size := rng.Int64N(5000)
				if err := f.Preallocate(size); err != nil {
					t.Fatal(err)
				}
				if size > int64(len(cur)) {
					cur = append(cur, make([]byte, size-int64(len(cur)))...)
				}
			default:
				if err := f.Sync(); err != nil {
					t.Fatal(err)
				}
				durable = slices.Clone(cur)
			}
			got, err := readFile(fsys, "db/a")
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, cur) {
				t.Fatalf("round %d step %d: file differs from the model", round, step)
			}
			got, err = readFile(fsys.Crash(SyncedOnly, nil), "db/a")
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, durable) {
				t.Fatalf("round %d step %d: SyncedOnly crash kept %d bytes, want the %d durable ones", round, step, len(got), len(durable))
			}
			got, err = readFile(fsys.Crash(RandomSectors, rng), "db/a")
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != len(durable) && len(got) != len(cur) {
				t.Fatalf("round %d step %d: RandomSectors crash size %d, want %d or %d", round, step, len(got), len(durable), len(cur))
			}
			for lo := 0; lo < len(got); lo += SectorSize {
				hi := min(lo+SectorSize, len(got))
				if !bytes.Equal(got[lo:hi], padded(durable, lo, hi)) && !bytes.Equal(got[lo:hi], padded(cur, lo, hi)) {
					t.Fatalf("round %d step %d: RandomSectors crash sector %d is neither durable nor current", round, step, lo/SectorSize)
				}
			}
		}
		f.Close()
	}
}

// TestCrashAfter checks the crash point: the k-th mutating operation is
// the last to run.
func TestCrashAfter(t *testing.T) {
	fsys := durableDB(t) // 2 operations
	fsys.SetCrashAfter(5)
	f, err := fsys.OpenFile("db/a", os.O_RDWR|os.O_CREATE, 0o644) // 3
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt([]byte("hello"), 0); err != nil { // 4
		t.Fatal(err)
	}
	if err := f.Sync(); err != nil { // 5: the last
		t.Fatal(err)
	}
	if !fsys.Crashed() {
		t.Fatal("not crashed after the 5th operation")
	}
	if _, err := f.WriteAt([]byte("world"), 5); !errors.Is(err, ErrCrashed) {
		t.Errorf("WriteAt after the crash point: %v, want ErrCrashed", err)
	}
	for name, call := range map[string]func() error{
		"Sync":        f.Sync,
		"Truncate":    func() error { return f.Truncate(0) },
		"Preallocate": func() error { return f.Preallocate(4096) },
		"Chmod":       func() error { return f.Chmod(0o600) },
		"SyncDir":     func() error { return fsys.SyncDir("db") },
		"Rename":      func() error { return fsys.Rename("db/a", "db/b") },
		"Remove":      func() error { return fsys.Remove("db/a") },
		"MkdirAll":    func() error { return fsys.MkdirAll("db/sub", 0o755) },
		"Lock":        func() error { _, err := fsys.Lock("db/LOCK"); return err },
		"Create": func() error {
			_, err := fsys.OpenFile("db/b", os.O_RDWR|os.O_CREATE, 0o644)
			return err
		},
		"OpenTrunc": func() error {
			_, err := fsys.OpenFile("db/a", os.O_RDWR|os.O_TRUNC, 0)
			return err
		},
	} {
		if err := call(); !errors.Is(err, ErrCrashed) {
			t.Errorf("%s after the crash point: %v, want ErrCrashed", name, err)
		}
	}
	if fsys.Ops() != 5 {
		t.Errorf("Ops = %d, want 5", fsys.Ops())
	}
	// Reads still see the state at the crash point.
	if got, err := readFile(fsys, "db/a"); err != nil || string(got) != "hello" {
		t.Errorf("read after the crash point: %q, %v", got, err)
	}
	if names, err := fsys.ReadDir("db"); err != nil || !slices.Equal(names, []string{"a"}) {
		t.Errorf("ReadDir after the crash point: %q, %v", names, err)
	}
	if err := f.Close(); err != nil {
		t.Errorf("Close after the crash point: %v", err)
	}
	// The file's data was synced but its entry never was.
	if got := tree(t, fsys.Crash(SyncedOnly, nil)); !maps.Equal(got, map[string]string{"db": "/"}) {
		t.Errorf("crash state %q", got)
	}
	// A crashed FS stays crashed; its crash state works.
	fsys.SetCrashAfter(-1)
	if err := fsys.SyncDir("db"); !errors.Is(err, ErrCrashed) {
		t.Errorf("SyncDir after removing the crash point: %v, want ErrCrashed", err)
	}
	c := fsys.Crash(SyncedOnly, nil)
	if c.Crashed() || c.Ops() != 0 {
		t.Errorf("crash state: Crashed %v, Ops %d", c.Crashed(), c.Ops())
	}
	create(t, c, "db/b", "b")
}

func TestCrashAfterImmediate(t *testing.T) {
	for _, k := range []int{0, 1, 2} {
		fsys := New()
		mkdir(t, fsys, "a") // 1
		fsys.SetCrashAfter(k)
		if got, want := fsys.Crashed(), k <= 1; got != want {
			t.Errorf("SetCrashAfter(%d) after 1 op: Crashed %v, want %v", k, got, want)
		}
		err := fsys.MkdirAll("b", 0o755)
		if k <= 1 && !errors.Is(err, ErrCrashed) || k == 2 && err != nil {
			t.Errorf("SetCrashAfter(%d): MkdirAll: %v", k, err)
		}
	}
}

// atomicReplace is a workload for crash-point enumeration: replace db/meta
// ("old") with "new" through vfs.WriteFile.
func atomicReplace(fsys *FS) error {
	return vfs.WriteFile(fsys, "db/meta", 0o644, func(w io.Writer) error {
		_, err := w.Write([]byte("new"))
		return err
	})
}

// TestCrashPointEnumeration crashes an atomic replace after every one of
// its operations, and checks every crash state holds the old or the new
// file, never a mix, and the new one once WriteFile returned.
func TestCrashPointEnumeration(t *testing.T) {
	rng := seedtest.Rand(t)
	setup := func() *FS {
		fsys := durableDB(t)
		durableFile(t, fsys, "meta", "old")
		return fsys
	}
	clean := setup()
	base := clean.Ops()
	if err := atomicReplace(clean); err != nil {
		t.Fatal(err)
	}
	total := clean.Ops()
	if total-base < 5 {
		t.Fatalf("WriteFile took %d operations, expected at least 5", total-base)
	}
	for k := base; k <= total; k++ {
		fsys := setup()
		fsys.SetCrashAfter(k)
		err := atomicReplace(fsys)
		if k < total && !errors.Is(err, ErrCrashed) {
			t.Fatalf("crash after %d: WriteFile returned %v, want ErrCrashed", k, err)
		}
		if fsys.Ops() != k {
			t.Fatalf("crash after %d: Ops = %d", k, fsys.Ops())
		}
		for _, mode := range []CrashMode{SyncedOnly, RandomSectors, Garbled} {
			for range 5 {
				c := fsys.Crash(mode, rng)
				got, err := readFile(c, "db/meta")
				if err != nil {
					t.Fatalf("crash after %d (%v): %v", k, mode, err)
				}
				if string(got) != "old" && string(got) != "new" {
					t.Fatalf("crash after %d (%v): meta holds %q", k, mode, got)
				}
				if k == total && string(got) != "new" {
					t.Fatalf("crash after WriteFile returned (%v): meta holds %q", mode, got)
				}
			}
		}
	}
}

// TestOpsCounting lists which calls are mutating operations.
func TestOpsCounting(t *testing.T) {
	fsys := durableDB(t)
	durableFile(t, fsys, "a", "hello")
	f, err := fsys.OpenFile("db/a", os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	tests := []struct {
		name string
		call func() error
		ops  int
	}{
		{"ReadAt", func() error { _, err := f.ReadAt(make([]byte, 2), 0); return err }, 0},
		{"Size", func() error { _, err := f.Size(); return err }, 0},
		{"StartWriteback", func() error { return f.StartWriteback(0, 5) }, 0},
		{"Stat", func() error { _, err := fsys.Stat("db/a"); return err }, 0},
		{"ReadDir", func() error { _, err := fsys.ReadDir("db"); return err }, 0},
		{"OpenReadOnly", func() error {
			g, err := fsys.OpenFile("db/a", os.O_RDONLY, 0)
			if err == nil {
				g.Close()
			}
			return err
		}, 0},
		{"OpenReadWrite", func() error {
			g, err := fsys.OpenFile("db/a", os.O_RDWR, 0)
			if err == nil {
				g.Close()
			}
			return err
		}, 0},
		{"OpenCreateExisting", func() error {
			g, err := fsys.OpenFile("db/a", os.O_RDWR|os.O_CREATE, 0o644)
			if err == nil {
				g.Close()
			}
			return err
		}, 1},
		{"WriteAt", func() error { _, err := f.WriteAt([]byte("x"), 0); return err }, 1},
		{"Sync", f.Sync, 1},
		{"Truncate", func() error { return f.Truncate(5) }, 1},
		{"PreallocateNoGrowth", func() error { return f.Preallocate(1) }, 1},
		{"Chmod", func() error { return f.Chmod(0o644) }, 1},
		{"SyncDir", func() error { return fsys.SyncDir("db") }, 1},
		{"MkdirAllExisting", func() error { return fsys.MkdirAll("db", 0o755) }, 1},
		{"Rename", func() error { return fsys.Rename("db/a", "db/b") }, 1},
		{"FailedRemove", func() error {
			if err := fsys.Remove("db/missing"); err == nil {
				return errors.New("removed a missing file")
			}
			return nil
		}, 1},
		{"Lock", func() error {
			l, err := fsys.Lock("db/LOCK")
			if err == nil {
				l.Close()
			}
			return err
		}, 1},
	}
	for _, tt := range tests {
		before := fsys.Ops()
		if err := tt.call(); err != nil {
			t.Errorf("%s: %v", tt.name, err)
		}
		if got := fsys.Ops() - before; got != tt.ops {
			t.Errorf("%s counted %d operations, want %d", tt.name, got, tt.ops)
		}
	}
}

// TestConcurrentUse runs writers, syncers and crashes at once, for the
// race detector.
func TestConcurrentUse(t *testing.T) {
	fsys := durableDB(t)
	s := seedtest.Seed(t)
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Go(func() {
			name := fmt.Sprintf("db/f%d", g)
			f, err := fsys.OpenFile(name, os.O_RDWR|os.O_CREATE, 0o644)
			if err != nil {
				t.Error(err)
				return
			}
			defer f.Close()
			for i := range 100 {
				if _, err := f.WriteAt(bytes.Repeat([]byte{byte(i)}, 100), int64(i*100)); err != nil {
					t.Error(err)
					return
				}
				if i%10 == 0 {
					if err := f.Sync(); err != nil {
						t.Error(err)
					}
					if err := fsys.SyncDir("db"); err != nil {
						t.Error(err)
					}
				}
			}
		})
	}
	wg.Go(func() {
		rng := seedtest.New(s)
		for range 50 {
			c := fsys.Crash(Garbled, rng)
			if _, err := c.ReadDir("db"); err != nil {
				t.Error(err)
			}
		}
	})
	wg.Wait()
	for g := range 4 {
		if fi, err := fsys.Stat(fmt.Sprintf("db/f%d", g)); err != nil || fi.Size() != 10000 {
			t.Errorf("f%d: %v, %v", g, fi, err)
		}
	}
}
