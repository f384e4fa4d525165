package wal

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gojournal/journal/internal/seedtest"
	"github.com/gojournal/journal/internal/vfstest"
	"github.com/gojournal/journal/recovery"
	"github.com/gojournal/journal/segment"
	"github.com/gojournal/journal/vfs"
	"github.com/gojournal/journal/vfs/crashfs"
	"github.com/gojournal/journal/vfs/errorfs"
)

// manifestRecord is record i of these tests: 3000 bytes, so that a
// MinSegmentSize segment holds about 20.
func manifestRecord(i uint64) []byte { return payload(i, 3000) }

// fillManifestLog opens a log in dir, appends records 1 to n and closes it
// cleanly (writing the manifest).
func fillManifestLog(t *testing.T, dir string, o Options, n uint64) {
	t.Helper()
	l := openT(t, dir, &o)
	for i := uint64(1); i <= n; i++ {
		if _, err := l.Append(manifestRecord(i)); err != nil {
			t.Fatal(err)
		}
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
}

// A clean Open takes the sealed segments from the manifest: it opens none
// of them, removes the manifest, and opens each on its first read; Close
// writes the manifest again. With Verify it opens every one.
func TestCleanOpenTakesSealedSegmentsFromTheManifest(t *testing.T) {
	dir := t.TempDir()
	o := Options{SegmentSize: MinSegmentSize, Logger: quiet}
	fillManifestLog(t, dir, o, 100)
	if !exists(t, filepath.Join(dir, recovery.ManifestName)) {
		t.Fatal("Close wrote no manifest")
	}
	cfs := &vfstest.CountFS{FS: vfs.Default}
	o.FS = cfs
	l := openT(t, dir, &o)
	segs := segmentNames(t, dir)
	if len(segs) < 4 {
		t.Fatalf("want several sealed segments, have %v", segs)
	}
	opened := cfs.Opened()
	for _, name := range segs[:len(segs)-1] {
		if opened[name] != 0 {
			t.Errorf("Open opened sealed segment %s %d times; the manifest describes it", name, opened[name])
		}
	}
	if exists(t, filepath.Join(dir, recovery.ManifestName)) {
		t.Error("the manifest is still there after Open")
	}
	// The files open now: the newest segment and the tail file, not one
	// per sealed segment.
	if n := cfs.OpenNow(); n > 2 {
		t.Errorf("%d files open after Open, want at most 2", n)
	}
	for i := uint64(1); i <= 100; i++ {
		got, err := l.Read(i)
		if err != nil || !bytes.Equal(got, manifestRecord(i)) {
			t.Fatalf("Read(%d) = %d bytes, %v", i, len(got), err)
		}
	}
	opened = cfs.Opened()
	for _, name := range segs[:len(segs)-1] {
		if opened[name] != 1 {
			t.Errorf("reading every record opened %s %d times, want once", name, opened[name])
		}
	}
	must(t, l.Close())
	if n := cfs.OpenNow(); n != 0 {
		t.Errorf("%d files open after Close", n)
	}
	if !exists(t, filepath.Join(dir, recovery.ManifestName)) {
		t.Fatal("the second Close wrote no manifest")
	}

	cfs = &vfstest.CountFS{FS: vfs.Default}
	o.FS, o.Verify = cfs, true
	l = openT(t, dir, &o)
	opened = cfs.Opened()
	for _, name := range segs[:len(segs)-1] {
		if opened[name] == 0 {
			t.Errorf("Open with Verify did not open %s", name)
		}
	}
	must(t, l.Close())
}

// A sealed segment damaged after a clean Close (its footer, its header, or
// its header rewritten by a newer version): Open takes it from the
// manifest and succeeds; the first read from it (Read, a Reader, a
// TruncateBack into it) reports the damage, naming the file, as Open would
// have (ErrCorrupt, or ErrFormat for a file this build does not read);
// Open with Verify and recovery.Check (`wal verify`) report it at once.
func TestDamagedSealedSegmentIsReportedOnFirstUse(t *testing.T) {
	footerEntry := func(t *testing.T, path string) {
		h, err := segment.OpenHandle(vfs.Default, path)
		must(t, err)
		ft, _, err := h.Footer()
		h.Close()
		must(t, err)
		flip(t, path, ft.Offset+segment.FrameHeader+4, 3) // the second record's offset
	}
	cases := []struct {
		name   string
		damage func(t *testing.T, path string)
		want   error
	}{
		{"FooterEntry", footerEntry, ErrCorrupt},
		{"HeaderSalt", func(t *testing.T, path string) { flip(t, path, 24, 5) }, ErrCorrupt},
		{"HeaderMagic", func(t *testing.T, path string) { flip(t, path, 2, 1) }, ErrFormat},
		{"NewerVersion", func(t *testing.T, path string) {
			rewriteHeader(t, path, func(h []byte) { binary.LittleEndian.PutUint32(h[8:], segment.Version+1) })
		}, ErrFormat},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			o := Options{SegmentSize: MinSegmentSize, Logger: quiet}
			fillManifestLog(t, dir, o, 100)
			segs := segmentNames(t, dir)
			damaged := filepath.Join(dir, segs[1])
			first, _ := segment.ParseName(segs[1])
			next, _ := segment.ParseName(segs[2])
			c.damage(t, damaged)

			l := openT(t, dir, &o)
			_, err := l.Read(first)
			wantNamed(t, err, c.want, damaged)
			if got, err := l.Read(next); err != nil || !bytes.Equal(got, manifestRecord(next)) {
				t.Errorf("Read(%d) of the next segment = %v", next, err)
			}
			r := l.NewReader(first + 1)
			for r.Next() {
			}
			wantNamed(t, r.Err(), c.want, damaged)
			r.Close()
			wantNamed(t, l.TruncateBack(first+2), c.want, damaged)
			if got := l.LastIndex(); got != 100 {
				t.Errorf("after the refused TruncateBack LastIndex = %d, want 100", got)
			}
			must(t, l.Close())

			o.Verify = true
			_, err = Open(dir, &o)
			wantNamed(t, err, c.want, damaged)
			st, err := recovery.Check(vfs.Default, dir, recovery.CheckOptions{})
			must(t, err)
			if !st.Damaged() || st.Damage[0].Path != damaged {
				t.Errorf("Check found %v, want damage in %s", st.Damage, damaged)
			}
		})
	}
}

// After a clean Close (manifest written) and a reopen, each way the log
// changes its directory, then a power loss without Close: the next Open
// finds the log as it really is, never as the manifest described it.
func TestMutationAfterCleanCloseThenCrash(t *testing.T) {
	write := func(l *Log, i uint64) error {
		_, err := l.Append(manifestRecord(i))
		return err
	}
	cases := []struct {
		name   string
		opts   Options
		mutate func(t *testing.T, l *Log)
	}{
		{"append and rotate", Options{}, func(t *testing.T, l *Log) {
			for i := uint64(61); i <= 120; i++ {
				must(t, write(l, i))
			}
		}},
		{"TruncateFront", Options{}, func(t *testing.T, l *Log) { must(t, l.TruncateFront(35)) }},
		{"TruncateBack into a sealed segment", Options{}, func(t *testing.T, l *Log) {
			must(t, l.TruncateBack(7))
			for i := uint64(8); i <= 10; i++ {
				must(t, write(l, i+1000))
			}
		}},
		{"retention", Options{Retention: RetentionOptions{MaxBytes: 2 * MinSegmentSize, Interval: time.Millisecond}},
			func(t *testing.T, l *Log) {
				for deadline := time.Now().Add(10 * time.Second); l.FirstIndex() == 1; time.Sleep(time.Millisecond) {
					if time.Now().After(deadline) {
						t.Fatal("retention released nothing")
					}
				}
			}},
		{"checkpoint release", Options{}, func(t *testing.T, l *Log) {
			must(t, l.Checkpoint(45, func(w io.Writer) error { _, err := w.Write([]byte("state")); return err }))
		}},
	}
	seed := seedtest.Seed(t)
	for _, c := range cases {
		t.Run(strings.ReplaceAll(c.name, " ", "_"), func(t *testing.T) {
			mem := crashfs.New()
			o := c.opts
			o.FS, o.SegmentSize, o.Logger = mem, MinSegmentSize, quiet
			o.Checkpoint.MaxRate = -1
			fillManifestLog(t, "/log", Options{FS: mem, SegmentSize: MinSegmentSize, Logger: quiet}, 60)
			l := openT(t, "/log", &o)
			c.mutate(t, l)
			first, last := l.FirstIndex(), l.LastIndex()
			want := map[uint64][]byte{}
			for i := first; i <= last; i++ {
				rec, err := l.Read(i)
				must(t, err)
				want[i] = rec
			}
			rng := rand.New(rand.NewPCG(seed, 1))
			for _, mode := range []crashfs.CrashMode{crashfs.SyncedOnly, crashfs.RandomSectors, crashfs.Garbled} {
				after := mem.Crash(mode, rng)
				l2 := openT(t, "/log", &Options{FS: after, SegmentSize: MinSegmentSize, Logger: quiet})
				if f, g := l2.FirstIndex(), l2.LastIndex(); f != first || g != last {
					t.Fatalf("%v: reopened [%d, %d], want [%d, %d]", mode, f, g, first, last)
				}
				for i := first; i <= last; i++ {
					if got, err := l2.Read(i); err != nil || !bytes.Equal(got, want[i]) {
						t.Fatalf("%v: Read(%d): %v", mode, i, err)
					}
				}
				must(t, l2.Close())
			}
			l.Close()
		})
	}
}

// segmentNames lists dir's segment files, oldest first.
func segmentNames(t *testing.T, dir string) []string {
	t.Helper()
	var names []string
	for _, name := range listDir(t, dir) {
		if _, ok := segment.ParseName(name); ok {
			names = append(names, name)
		}
	}
	return names
}

// The manifest describes segments of every format version: each golden
// directory, opened and closed by this build (which writes a manifest),
// reopens from the manifest without opening its sealed segments, with
// every record as the golden case says, and a second manifest-less Open
// with Verify agrees.
func TestManifestOverEveryGoldenFormat(t *testing.T) {
	for _, root := range goldenRoots {
		for _, c := range goldenCases {
			t.Run(filepath.Base(root)+"/"+c.name, func(t *testing.T) {
				src := filepath.Join(root, c.name)
				exp := readGoldenExpect(t, src)
				dir := t.TempDir()
				copyDir(t, src, dir)
				must(t, os.Remove(filepath.Join(dir, "expect.json")))
				l := openT(t, dir, &Options{Logger: quiet})
				must(t, l.Close())
				cfs := &vfstest.CountFS{FS: vfs.Default}
				l = openT(t, dir, &Options{Logger: quiet, FS: cfs})
				segs := segmentNames(t, dir)
				opened := cfs.Opened()
				for _, name := range segs[:len(segs)-1] {
					if opened[name] != 0 {
						t.Errorf("Open opened sealed segment %s: the manifest describes it", name)
					}
				}
				checkGoldenLog(t, l, exp)
				must(t, l.Close())
				l = openT(t, dir, &Options{Logger: quiet, Verify: true})
				checkGoldenLog(t, l, exp)
				must(t, l.Close())
			})
		}
	}
}

func TestOpenBenchManifestName(t *testing.T) {
	if openBenchManifest != recovery.ManifestName {
		t.Fatalf("BenchmarkOpen skips %q, the manifest is %q", openBenchManifest, recovery.ManifestName)
	}
}

// A manifest Close cannot write (an I/O error at any of its steps) is
// Close's error, as every failed write is; the records are durable all the
// same: the next Open finds every one, and no partial manifest is
// believed.
func TestCloseWithoutItsManifest(t *testing.T) {
	for _, op := range []errorfs.Op{errorfs.OpCreate, errorfs.OpWrite, errorfs.OpSync, errorfs.OpRename, errorfs.OpSyncDir} {
		t.Run(op.String(), func(t *testing.T) {
			dir := t.TempDir()
			fillManifestLog(t, dir, Options{SegmentSize: MinSegmentSize, Logger: quiet}, 60)
			efs := errorfs.Wrap(vfs.Default)
			o := Options{SegmentSize: MinSegmentSize, Logger: quiet, FS: efs}
			l := openT(t, dir, &o)
			for i := uint64(61); i <= 100; i++ {
				if _, err := l.Append(manifestRecord(i)); err != nil {
					t.Fatal(err)
				}
			}
			efs.Add(errorfs.Rule{Op: op, Match: func(path string) bool {
				return strings.Contains(path, recovery.ManifestName) || op == errorfs.OpSyncDir
			}})
			if err := l.Close(); !errors.Is(err, errorfs.ErrInjected) {
				t.Fatalf("Close with the manifest's %v failing: %v, want the injected error", op, err)
			}
			l = openT(t, dir, &Options{SegmentSize: MinSegmentSize, Logger: quiet})
			checkManifestRecords(t, l, 100)
			must(t, l.Close())
		})
	}
}

// checkManifestRecords checks that l holds records 1 to last of these tests.
func checkManifestRecords(t *testing.T, l *Log, last uint64) {
	t.Helper()
	if f, g := l.FirstIndex(), l.LastIndex(); f != 1 || g != last {
		t.Fatalf("log holds [%d, %d], want [1, %d]", f, g, last)
	}
	for i := uint64(1); i <= last; i++ {
		if got, err := l.Read(i); err != nil || !bytes.Equal(got, manifestRecord(i)) {
			t.Fatalf("Read(%d): %v", i, err)
		}
	}
}

// TestFirstReadsOfManifestSegmentsRace: after a clean Open every sealed
// segment is unchecked and has no file, so first reads open and check them
// while other calls run: Reads and Readers on many goroutines, appends
// (rotations) and TruncateFront releasing the very segments being opened.
// In odd rounds the manifest is another log's, so that every check takes
// the file's own header and footer. Every record read is the one appended
// at its index; the only errors are those of records truncated away. Run
// it with -race.
func TestFirstReadsOfManifestSegmentsRace(t *testing.T) {
	seed := seedtest.Seed(t) // one PCG stream a round, as before, so old seeds replay
	const filled, appended = 400, 200
	for round := range 5 {
		dir := t.TempDir()
		o := Options{SegmentSize: MinSegmentSize, Logger: quiet}
		fillManifestLog(t, dir, o, filled)
		if round%2 == 1 {
			// Another log's manifest (the same names, other salts and
			// times): every first read takes its file's own header and
			// footer while other calls read the segment.
			twin := t.TempDir()
			fillManifestLog(t, twin, o, filled)
			writeFile(t, filepath.Join(dir, recovery.ManifestName), readFile(t, filepath.Join(twin, recovery.ManifestName)))
		}
		l := openT(t, dir, &o)
		rng := rand.New(rand.NewPCG(seed, uint64(round)))
		var wg sync.WaitGroup
		stop := make(chan struct{})
		truncated := func(err error) bool { return errors.Is(err, ErrNotFound) || errors.Is(err, ErrCompacted) }
		for g := range 3 { // random Reads
			r := rand.New(rand.NewPCG(seed, uint64(round*10+g)))
			wg.Go(func() {
				for {
					select {
					case <-stop:
						return
					default:
					}
					i := 1 + r.Uint64N(filled+appended)
					got, err := l.Read(i)
					if err == nil && !bytes.Equal(got, manifestRecord(i)) {
						t.Errorf("Read(%d) returned another record", i)
					} else if err != nil && !truncated(err) && i <= filled {
						t.Errorf("Read(%d): %v", i, err)
					}
				}
			})
		}
		for g := range 2 { // Readers from random starts to the end
			from := 1 + rng.Uint64N(filled)
			wg.Go(func() {
				r := l.NewReader(from)
				defer r.Close()
				for r.Next() {
					if !bytes.Equal(r.Record(), manifestRecord(r.Index())) {
						t.Errorf("Reader %d from %d: record %d is another record", g, from, r.Index())
						return
					}
				}
				if err := r.Err(); err != nil && !errors.Is(err, ErrCompacted) {
					t.Errorf("Reader %d from %d: %v", g, from, err)
				}
			})
		}
		wg.Go(func() { // appends across rotations
			for i := uint64(filled + 1); i <= filled+appended; i++ {
				if _, err := l.Append(manifestRecord(i)); err != nil {
					t.Error(err)
					return
				}
			}
		})
		for cut := uint64(0); cut < filled; { // releases the segments being opened
			cut += 1 + rng.Uint64N(80)
			if err := l.TruncateFront(min(cut, filled)); err != nil {
				t.Fatal(err)
			}
			time.Sleep(time.Duration(rng.IntN(2000)) * time.Microsecond)
		}
		close(stop)
		wg.Wait()
		if err := l.Close(); err != nil {
			t.Fatal(err)
		}
		if t.Failed() {
			return
		}
	}
}
