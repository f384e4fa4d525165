package wal

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/gojournal/journal/internal/seedtest"
	"github.com/gojournal/journal/recovery"
	"github.com/gojournal/journal/segment"
	"github.com/gojournal/journal/vfs"
	"github.com/gojournal/journal/vfs/crashfs"
)

// operatorRecords is how many records the logs of these tests hold: six or
// so MinSegmentSize segments of manifestRecord.
const operatorRecords = 100

// An operator's tools change a cleanly closed log (its manifest written)
// before the next Open. Whatever they did, a default Open (which trusts a
// manifest that matches the directory) must fail with ErrCorrupt or
// ErrFormat, or open the log whole, [1, 100], every Read and a Reader then
// returning the very record appended at each index or an error satisfying
// errors.Is(err, ErrCorrupt) (ErrFormat); never another record, never a
// gap. recovery.Check (`wal verify`) must judge the directory, finding
// damage exactly when the case damaged a file, and Open with Verify must
// agree with it.
func TestOperatorChangesAfterCleanClose(t *testing.T) {
	seg := func(dir string, k int) string {
		return filepath.Join(dir, segmentNamesOS(dir)[k])
	}
	cases := []struct {
		name string
		// change alters dir; twin is another log closed after the same
		// appends (the same segment names and sizes, other salts).
		change  func(t *testing.T, dir, twin string)
		damaged bool // Check (and Open with Verify) must find damage
	}{
		{"DeleteMiddleSealedSegment", func(t *testing.T, dir, _ string) {
			must(t, os.Remove(seg(dir, 2)))
		}, true},
		{"CutLastByteOfSealedSegment", func(t *testing.T, dir, _ string) {
			p := seg(dir, 1)
			truncate(t, p, fileSize(p)-1)
		}, true},
		{"CutSealedSegmentInHalf", func(t *testing.T, dir, _ string) {
			p := seg(dir, 1)
			truncate(t, p, fileSize(p)/2)
		}, true},
		{"EmptySealedSegment", func(t *testing.T, dir, _ string) { truncate(t, seg(dir, 1), 0) }, true},
		{"GrowSealedSegmentWithZeros", func(t *testing.T, dir, _ string) {
			p := seg(dir, 1)
			truncate(t, p, fileSize(p)+segment.SectorSize)
		}, true},
		{"FlipRecordInSealedSegment", func(t *testing.T, dir, _ string) {
			flip(t, seg(dir, 1), segment.DataStart+1000, 2)
		}, true},
		{"FlipFooterTrailer", func(t *testing.T, dir, _ string) {
			p := seg(dir, 1)
			flip(t, p, fileSize(p)-9, 0)
		}, true},
		{"TwinSegmentUnderSameName", func(t *testing.T, dir, twin string) {
			name := filepath.Base(seg(dir, 1))
			writeFile(t, filepath.Join(dir, name), readFile(t, filepath.Join(twin, name)))
		}, false},
		{"TwinManifest", func(t *testing.T, dir, twin string) {
			writeFile(t, filepath.Join(dir, recovery.ManifestName), readFile(t, filepath.Join(twin, recovery.ManifestName)))
		}, false},
		{"ManifestOfAShorterLog", func(t *testing.T, dir, _ string) {
			// Restored from a backup taken when the log was shorter: it
			// lists fewer segments, so Open ignores it.
			shorter := t.TempDir()
			fillManifestLog(t, shorter, Options{SegmentSize: MinSegmentSize, Logger: quiet}, operatorRecords/2)
			writeFile(t, filepath.Join(dir, recovery.ManifestName), readFile(t, filepath.Join(shorter, recovery.ManifestName)))
		}, false},
		{"GarbageSegmentAfterNewest", func(t *testing.T, dir, _ string) {
			writeFile(t, filepath.Join(dir, segment.Name(operatorRecords+1)), bytes.Repeat([]byte{0xa5}, 4096))
		}, true},
		{"EmptySegmentFileAfterNewest", func(t *testing.T, dir, _ string) {
			writeFile(t, filepath.Join(dir, segment.Name(operatorRecords+1)), nil)
		}, true},
		{"TwinNewestUnderLaterName", func(t *testing.T, dir, twin string) {
			names := segmentNamesOS(twin)
			newest := readFile(t, filepath.Join(twin, names[len(names)-1]))
			writeFile(t, filepath.Join(dir, segment.Name(operatorRecords+1)), newest)
		}, true},
		{"CopiedWithCpA", func(t *testing.T, dir, _ string) {
			copied := filepath.Join(t.TempDir(), "copy")
			if out, err := exec.Command("cp", "-a", dir, copied).CombinedOutput(); err != nil {
				t.Skipf("cp -a: %v: %s", err, out)
			}
			must(t, os.RemoveAll(dir))
			must(t, os.Rename(copied, dir))
		}, false},
		{"FlipFooterIndex", func(t *testing.T, dir, _ string) {
			p := seg(dir, 1)
			flip(t, p, fileSize(p)-segment.TrailerSize-segment.TimesSize-2, 3)
		}, true},
		{"HeaderWithOtherSalt", func(t *testing.T, dir, _ string) {
			rewriteHeader(t, seg(dir, 1), func(h []byte) { h[24] ^= 1 })
		}, true},
		{"OlderCopyOfSealedSegment", func(t *testing.T, dir, _ string) {
			// The same name, size and records; the salt and the append
			// times are not those the manifest records.
			p := seg(dir, 1)
			older := readFile(t, p)
			rewriteSecondSegment(t, dir)
			if n := fileSize(p); n != int64(len(older)) {
				t.Fatalf("%s measures %d bytes after the rewrite, want %d again", p, n, len(older))
			}
			writeFile(t, p, older)
		}, false},
		{"ManifestFromBeforeTruncateBack", func(t *testing.T, dir, _ string) {
			// The listing and the meta file's first index match the
			// manifest saved before: segments from the second on were
			// dropped and written again, under the same names, with
			// other salts.
			saved := readFile(t, filepath.Join(dir, recovery.ManifestName))
			rewriteSecondSegment(t, dir)
			writeFile(t, filepath.Join(dir, recovery.ManifestName), saved)
		}, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			o := Options{SegmentSize: MinSegmentSize, Logger: quiet}
			dir, twin := t.TempDir(), t.TempDir()
			fillManifestLog(t, dir, o, operatorRecords)
			fillManifestLog(t, twin, o, operatorRecords)
			if n := len(segmentNamesOS(dir)); n < 5 {
				t.Fatalf("%d segments, want at least 5", n)
			}
			c.change(t, dir, twin)
			checkAsOperatorLeftIt(t, dir, c.damaged)
		})
	}
}

// rewriteSecondSegment drops dir's log from its second segment on and
// appends the same records again: the segments have the same names and
// sizes as before, other salts and append times, and Close writes a new
// manifest.
func rewriteSecondSegment(t *testing.T, dir string) {
	t.Helper()
	before := segmentNamesOS(dir)
	second, _ := segment.ParseName(before[1])
	l := openT(t, dir, &Options{SegmentSize: MinSegmentSize, Logger: quiet})
	must(t, l.TruncateBack(second-1))
	for i := second; i <= operatorRecords; i++ {
		if _, err := l.Append(manifestRecord(i)); err != nil {
			t.Fatal(err)
		}
	}
	must(t, l.Close())
	if after := segmentNamesOS(dir); !slices.Equal(before, after) {
		t.Fatalf("segments %v after the appends, want %v again", after, before)
	}
}

// checkAsOperatorLeftIt checks a default Open of dir, then Check and Open
// with Verify, as TestOperatorChangesAfterCleanClose says. The default
// Open and its reads must agree with Check (`wal verify`): they report
// damage (Open fails, or a Read or a Reader fails with ErrCorrupt) exactly
// when Check finds some, a manifest that no longer describes the files
// notwithstanding. Then `wal recover --salvage` (the library calls it
// makes) must leave a log that two default Opens in a row read whole.
func checkAsOperatorLeftIt(t *testing.T, dir string, damaged bool) {
	t.Helper()
	st, err := recovery.Check(vfs.Default, dir, recovery.CheckOptions{})
	if err != nil {
		t.Fatalf("Check: %v", err)
	}
	if st.Damaged() != damaged {
		t.Errorf("Check found damage %v, want damaged=%v", st.Damage, damaged)
	}
	if saw := readOperatorLog(t, dir, &Options{SegmentSize: MinSegmentSize, Logger: quiet}); saw != st.Damaged() {
		t.Errorf("a default Open and its reads reported damage: %v; Check found %v", saw, st.Damage)
	}
	defer salvageAndReopen(t, dir)
	l, err := Open(dir, &Options{SegmentSize: MinSegmentSize, Logger: quiet, Verify: true})
	if err == nil {
		if damaged && !hasBadRecord(t, l) {
			t.Errorf("Open with Verify found no damage, Check found %v", st.Damage)
		}
		must(t, l.Close())
	} else if !damaged || !isDamage(err) {
		t.Errorf("Open with Verify: %v (Check found damage %v)", err, st.Damage)
	}
}

// salvageAndReopen does what `wal recover --salvage` does to dir (Check,
// plan, apply, then the ordinary repair), then opens the log twice with
// the default options: each time every record left must read as appended.
func salvageAndReopen(t *testing.T, dir string) {
	t.Helper()
	st, err := recovery.Check(vfs.Default, dir, recovery.CheckOptions{})
	if err != nil {
		t.Fatalf("Check before salvage: %v", err)
	}
	plan, err := recovery.PlanSalvageFor(vfs.Default, st, st.Snapshot)
	if err != nil {
		t.Fatalf("PlanSalvageFor: %v", err)
	}
	must(t, plan.Apply(vfs.Default, time.Now()))
	rs, err := recovery.Scan(vfs.Default, dir, recovery.Options{})
	if err != nil || rs.Damaged() {
		t.Fatalf("Scan after salvage: %v, damage %v", err, rs.Damage)
	}
	if !rs.Clean() {
		must(t, rs.Repair(vfs.Default))
	}
	for session := 1; session <= 2; session++ {
		l := openT(t, dir, &Options{SegmentSize: MinSegmentSize, Logger: quiet})
		for i := l.FirstIndex(); i <= l.LastIndex(); i++ {
			if got, err := l.Read(i); err != nil || !bytes.Equal(got, manifestRecord(i)) {
				t.Fatalf("session %d after salvage: Read(%d): %v, or another record", session, i, err)
			}
		}
		must(t, l.Close())
	}
}

// readOperatorLog opens dir with o and reads it as checkAsOperatorLeftIt
// says, reporting whether Open, a Read or the Reader reported damage.
func readOperatorLog(t *testing.T, dir string, o *Options) (damage bool) {
	t.Helper()
	l, err := Open(dir, o)
	if err != nil {
		if !isDamage(err) {
			t.Fatalf("Open: %v, want ErrCorrupt or ErrFormat", err)
		}
		t.Logf("default Open: %v", err)
		return true
	}
	defer l.Close()
	if f, g := l.FirstIndex(), l.LastIndex(); f != 1 || g != operatorRecords {
		t.Fatalf("Open gave [%d, %d], want [1, %d] or an error", f, g, operatorRecords)
	}
	for i := uint64(1); i <= operatorRecords; i++ {
		got, err := l.Read(i)
		switch {
		case err != nil && !isDamage(err):
			t.Fatalf("Read(%d): %v, want a record or ErrCorrupt", i, err)
		case err != nil && !damage:
			t.Logf("default Open: first failed Read(%d): %v", i, err)
			damage = true
		case err == nil && !bytes.Equal(got, manifestRecord(i)):
			t.Fatalf("Read(%d) returned another record", i)
		}
	}
	r := l.NewReader(1)
	defer r.Close()
	want := uint64(1)
	for ; r.Next(); want++ {
		if r.Index() != want || !bytes.Equal(r.Record(), manifestRecord(want)) {
			t.Fatalf("Reader: record %d where %d was due, or another record", r.Index(), want)
		}
	}
	if err := r.Err(); err != nil && !isDamage(err) {
		t.Fatalf("Reader stopped at %d: %v", want, err)
	} else if err == nil && want != operatorRecords+1 {
		t.Fatalf("Reader ended at %d without an error, want %d", want, operatorRecords+1)
	} else if err != nil && !damage {
		t.Fatalf("the Reader stopped at %d with %v where every Read returned its record", want, err)
	}
	return damage
}

// hasBadRecord reports whether a Read of some record of l fails as
// damage.
func hasBadRecord(t *testing.T, l *Log) bool {
	for i := l.FirstIndex(); i <= l.LastIndex(); i++ {
		if _, err := l.Read(i); isDamage(err) {
			return true
		} else if err != nil {
			t.Fatalf("Read(%d): %v", i, err)
		}
	}
	return false
}

func isDamage(err error) bool { return errors.Is(err, ErrCorrupt) || errors.Is(err, ErrFormat) }

// segmentNamesOS lists dir's segment files, oldest first.
func segmentNamesOS(dir string) []string {
	names, _ := vfs.Default.ReadDir(dir)
	var segs []string
	for _, n := range names {
		if _, ok := segment.ParseName(n); ok {
			segs = append(segs, n)
		}
	}
	return segs
}

// A sealed segment the manifest described, removed after the clean Open
// and before the log's first read from it (by an operator, or a cleaner of
// old files: the log holds no file of such a segment open until then), is
// damage, as Open's walk would have called a segment missing between two
// others: Read, a Reader and a TruncateBack into it report ErrCorrupt
// naming the file, not a bare "no such file", and the log stays usable
// (the truncation is refused before it commits); the next Open fails with
// ErrCorrupt.
func TestSealedSegmentRemovedAfterCleanOpen(t *testing.T) {
	dir := t.TempDir()
	o := Options{SegmentSize: MinSegmentSize, Logger: quiet}
	fillManifestLog(t, dir, o, operatorRecords)
	l := openT(t, dir, &o)
	segs := segmentNamesOS(dir)
	gone := filepath.Join(dir, segs[1])
	first, _ := segment.ParseName(segs[1])
	next, _ := segment.ParseName(segs[2])
	must(t, os.Remove(gone))

	_, err := l.Read(first + 1)
	wantNamed(t, err, ErrCorrupt, gone)
	r := l.NewReader(1)
	for r.Next() {
	}
	if r.Index() != first-1 {
		t.Errorf("the Reader stopped after %d, want %d", r.Index(), first-1)
	}
	wantNamed(t, r.Err(), ErrCorrupt, gone)
	r.Close()
	wantNamed(t, l.TruncateBack(first+2), ErrCorrupt, gone)
	if got := l.LastIndex(); got != operatorRecords {
		t.Errorf("after the refused TruncateBack LastIndex = %d, want %d", got, operatorRecords)
	}
	if got, err := l.Read(next); err != nil || !bytes.Equal(got, manifestRecord(next)) {
		t.Errorf("Read(%d) of the next segment: %v", next, err)
	}
	if _, err := l.Append(manifestRecord(operatorRecords + 1)); err != nil {
		t.Errorf("Append after the damage was found: %v", err)
	}
	must(t, l.Close())
	_, err = Open(dir, &o)
	if !errors.Is(err, ErrCorrupt) {
		t.Fatalf("Open after the segment went: %v, want ErrCorrupt", err)
	}
}

// A power loss at every step after a clean Close: the reopen from the
// manifest (which removes it), retention releasing segments in the
// background (its first change of the directory), appends across a
// rotation, and Close writing the manifest again. Each crash state, in
// each mode, must open with every record appended, its first index no
// lower than the log said before Close (a release retention began may
// have committed), every Read the record appended.
func TestCrashAfterCleanCloseWithRetention(t *testing.T) {
	seed := seedtest.Rand(t).Uint64()
	const filled, more = 60, 25
	base := func() *crashfs.FS {
		mem := crashfs.New()
		fillManifestLog(t, "/log", Options{FS: mem, SegmentSize: MinSegmentSize, Logger: quiet}, filled)
		return mem
	}
	start := base().Ops()
	points := 0
	for k := start + 1; ; k++ {
		mem := base()
		mem.SetCrashAfter(k)
		o := Options{FS: mem, SegmentSize: MinSegmentSize, Logger: quiet,
			Retention: RetentionOptions{MaxBytes: 2 * MinSegmentSize, Interval: time.Millisecond}}
		released, appended := uint64(1), uint64(filled)
		if l, err := Open("/log", &o); err == nil {
			for deadline := time.Now().Add(10 * time.Second); l.FirstIndex() == 1 && !mem.Crashed(); time.Sleep(time.Millisecond) {
				if time.Now().After(deadline) {
					t.Fatal("retention released nothing")
				}
			}
			for i := uint64(filled + 1); i <= filled+more; i++ {
				if _, err := l.Append(manifestRecord(i)); err != nil {
					break
				}
				appended = i
			}
			released = l.FirstIndex() // durable once FirstIndex says so
			l.Close()
		}
		points++
		rng := rand.New(rand.NewPCG(seed, uint64(k)))
		for _, mode := range []crashfs.CrashMode{crashfs.SyncedOnly, crashfs.RandomSectors, crashfs.Garbled} {
			after := mem.Crash(mode, rng)
			l, err := Open("/log", &Options{FS: after, SegmentSize: MinSegmentSize, Logger: quiet})
			if err != nil {
				t.Fatalf("crash after op %d, %v: Open: %v", k, mode, err)
			}
			first, last := l.FirstIndex(), l.LastIndex()
			// An Append that failed may have left its record: the
			// reads below check it is the one appended.
			if first < released || first > appended+1 || last < appended {
				t.Fatalf("crash after op %d, %v: [%d, %d], want a first index from %d on, every record to %d", k, mode, first, last, released, appended)
			}
			for i := first; i <= last; i++ {
				if got, err := l.Read(i); err != nil || !bytes.Equal(got, manifestRecord(i)) {
					t.Fatalf("crash after op %d, %v: Read(%d): %v", k, mode, i, err)
				}
			}
			must(t, l.Close())
		}
		if !mem.Crashed() {
			break
		}
	}
	t.Logf("%d crash points, 3 states each", points)
}

// A log that found a sealed segment damaged writes no manifest at Close:
// one repeating the old entries would make every later Open trust them
// again. The next default Open judges the directory as Open with Verify
// and `wal verify` do, and fails on the damaged footer. A segment replaced
// by another sound one holding the same records (a twin) is no damage:
// the first read takes the file's own header and footer, as `wal verify`
// judges it, and Close's manifest describes the file, so the next Open
// reads it too.
func TestCloseAfterAFailedCheckWritesNoManifest(t *testing.T) {
	cases := []struct {
		name    string
		change  func(t *testing.T, path, twin string)
		damaged bool
	}{
		{"FooterDamaged", func(t *testing.T, path, _ string) { flip(t, path, fileSize(path)-9, 0) }, true},
		{"ReplacedByTwin", func(t *testing.T, path, twin string) {
			writeFile(t, path, readFile(t, filepath.Join(twin, filepath.Base(path))))
		}, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			o := Options{SegmentSize: MinSegmentSize, Logger: quiet}
			dir, twin := t.TempDir(), t.TempDir()
			fillManifestLog(t, dir, o, operatorRecords)
			fillManifestLog(t, twin, o, operatorRecords)
			segs := segmentNamesOS(dir)
			changed := filepath.Join(dir, segs[1])
			first, _ := segment.ParseName(segs[1])
			c.change(t, changed, twin)

			l := openT(t, dir, &o)
			got, err := l.Read(first)
			if c.damaged {
				wantNamed(t, err, ErrCorrupt, changed)
			} else if err != nil || !bytes.Equal(got, manifestRecord(first)) {
				t.Fatalf("Read(%d) of the twin: %v, or another record", first, err)
			}
			must(t, l.Close())
			if exists(t, filepath.Join(dir, recovery.ManifestName)) == c.damaged {
				t.Errorf("Close wrote a manifest: %v; want one exactly when the segment read was sound",
					!c.damaged)
			}
			l, err = Open(dir, &o)
			if c.damaged {
				wantNamed(t, err, ErrCorrupt, changed)
				return
			}
			must(t, err)
			checkManifestRecords(t, l, operatorRecords)
			must(t, l.Close())
		})
	}
}

// Retention by age goes by the append times in a sealed segment's footer;
// after a clean Open those come from the manifest. A manifest whose times
// are not the files' (restored from an older copy of the directory, whose
// segments of the same names were written earlier) must not release
// records early: a segment is checked against its file before its age
// releases it, and takes the file's times (one that fails its check has
// no known age, and retention stops there). Here the manifest says every
// segment was appended to an hour ago; the files say now.
func TestRetentionByAgeChecksManifestTimes(t *testing.T) {
	dir := t.TempDir()
	o := Options{SegmentSize: MinSegmentSize, Logger: quiet}
	fillManifestLog(t, dir, o, operatorRecords)
	names := segmentNamesOS(dir)
	hourAgo := time.Now().Add(-time.Hour).UnixNano()
	var segs []recovery.Segment
	for _, name := range names[:len(names)-1] {
		h, err := segment.OpenHandle(vfs.Default, filepath.Join(dir, name))
		must(t, err)
		ft, _, err := h.Footer()
		must(t, err)
		ft.Times = segment.Times{First: hourAgo, Last: hourAgo}
		segs = append(segs, recovery.Segment{First: h.Header().FirstIndex, Header: h.Header(), Footer: ft, Size: h.Size()})
		h.Close()
	}
	newest, _ := segment.ParseName(names[len(names)-1])
	segs = append(segs, recovery.Segment{First: newest})
	must(t, recovery.WriteManifest(vfs.Default, dir, 0, segs))

	for range 2 {
		// The first Open takes the files' times as it checks them, and
		// Close's manifest records those; the second reads them from it.
		l, err := Open(dir, retentionOpts(RetentionOptions{MaxAge: time.Minute}))
		must(t, err)
		stays(t, "no release by the manifest's times", func() bool { return l.FirstIndex() == 1 })
		checkManifestRecords(t, l, operatorRecords)
		must(t, l.Close())
	}
}

// A read-only Log opened on a cleanly closed log (manifest written, which
// it never reads) goes on following as a writer reopens from the manifest
// and cuts back into a sealed segment it took from there, unread, then
// appends other records: the follower's Reader learns that its record was
// dropped, a new one reads the records kept and the new ones, and Read
// agrees.
func TestReadOnlyFollowsReopenFromManifest(t *testing.T) {
	dir := t.TempDir()
	o := Options{SegmentSize: MinSegmentSize, Logger: quiet}
	fillManifestLog(t, dir, o, operatorRecords)
	f, ro := openFollower(t, dir)
	defer f.Close()
	r := f.NewReader(1)
	defer r.Close()
	for i := uint64(1); i <= operatorRecords; i++ {
		if got, rec := nextWithin(t, r); got != i || rec != string(manifestRecord(i)) {
			t.Fatalf("follower: record %d, want %d", got, i)
		}
	}
	w := openT(t, dir, &o)
	defer func() { w.Close() }()
	if w.sealed[1].f != nil || !w.sealed[1].unchecked.Load() {
		t.Fatal("the writer did not take its sealed segments from the manifest")
	}
	cut := w.sealed[1].first() + 3
	must(t, w.TruncateBack(cut))
	for i := cut + 1; i <= cut+30; i++ { // across a rotation
		if _, err := w.Append([]byte(fmt.Sprintf("new-%d", i))); err != nil {
			t.Fatal(err)
		}
	}
	wantStop(t, r, ErrTruncated, "record 100")
	again := f.NewReader(cut - 1)
	defer again.Close()
	for i := cut - 1; i <= cut+30; i++ {
		want := string(manifestRecord(i))
		if i > cut {
			want = fmt.Sprintf("new-%d", i)
		}
		if got, rec := nextWithin(t, again); got != i || rec != want {
			t.Fatalf("follower after the cut: record %d %.12q, want %d %.12q", got, rec, i, want)
		}
		if got, err := f.Read(i); err != nil || string(got) != want {
			t.Fatalf("follower Read(%d): %.12q, %v", i, got, err)
		}
	}
	must(t, w.Close())
	if n := ro.tried.Load(); n != 0 {
		t.Fatalf("the read-only Log tried %d changes", n)
	}
}
