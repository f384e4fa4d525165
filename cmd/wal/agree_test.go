package main

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gojournal/journal/checkpoint"
	"github.com/gojournal/journal/recovery"
	"github.com/gojournal/journal/segment"
	"github.com/gojournal/journal/vfs"
	"github.com/gojournal/journal/wal"
)

// These tests pin the operator-facing cases of issue 8: what `wal verify`,
// `wal info`, `wal recover` and salvage say about a directory must be what
// wal.Open then does with it. Each runs the real binary (built by TestMain)
// on a real directory, and wal.Open on the same bytes.

// verifyJSON runs `wal verify --json` and checks its exit code.
func verifyJSON(t *testing.T, code int, dir string) map[string]any {
	t.Helper()
	return decodeJSON(t, want(t, code, "verify", "--json", dir).stdout)
}

// opened is what wal.Open made of a directory.
type opened struct {
	first, last uint64
	err         error
}

// openOnce opens dir with Options.Verify (every record read, as verify
// does), notes the range and closes it.
func openOnce(t *testing.T, dir string) opened {
	t.Helper()
	o := logOptions()
	o.Verify = true
	l, err := wal.Open(dir, o)
	if err != nil {
		return opened{err: err}
	}
	defer l.Close()
	return opened{first: l.FirstIndex(), last: l.LastIndex()}
}

// copyDir copies every regular file of src into a new directory, as a
// process crash leaves them: what was written, synced or not.
func copyDir(t *testing.T, src string) string {
	t.Helper()
	dst := filepath.Join(t.TempDir(), "copy")
	if err := os.Mkdir(dst, 0o755); err != nil {
		t.Fatal(err)
	}
	entries, err := os.ReadDir(src)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if !e.Type().IsRegular() {
			continue
		}
		b, err := os.ReadFile(filepath.Join(src, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dst, e.Name()), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dst
}

// frameOffsets returns the newest segment and the offset of each of its
// record frames, as the walk found them.
func frameOffsets(t *testing.T, dir string) (string, []int64) {
	t.Helper()
	st, err := recovery.Scan(vfs.Default, dir, recovery.Options{})
	if err != nil {
		t.Fatal(err)
	}
	s := st.Segments[len(st.Segments)-1]
	if !s.Sealed {
		return s.Path, s.Offsets
	}
	// Close sealed it: its footer holds the offsets.
	h, err := segment.OpenHandle(vfs.Default, s.Path)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	offs, err := h.Offsets(s.Footer, int(s.Footer.Count))
	if err != nil {
		t.Fatal(err)
	}
	return s.Path, offs
}

// TestAgreeBatchLastOnACleanLog: a log closed cleanly whose last write was
// an AppendBatch is clean everywhere, and every tool counts 4 records.
func TestAgreeBatchLastOnACleanLog(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "log")
	l, err := wal.Open(dir, logOptions())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := l.Append(record(1)); err != nil {
		t.Fatal(err)
	}
	if _, err := l.AppendBatch([][]byte{record(2), record(3), record(4)}); err != nil {
		t.Fatal(err)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}

	r := want(t, 0, "verify", dir)
	if !strings.Contains(r.stdout, "tail:      clean") || !strings.Contains(r.stdout, "records:   1 to 4 (4)") {
		t.Errorf("verify:\n%s", r.stdout)
	}
	for _, cmd := range []string{"verify", "info"} {
		j := decodeJSON(t, want(t, 0, cmd, "--json", dir).stdout)
		if j["status"] != "ok" || j["torn"] != nil || j["records"] != 4.0 {
			t.Errorf("%s --json: status %v, torn %v, records %v", cmd, j["status"], j["torn"], j["records"])
		}
		var sum float64
		for _, s := range j["segments"].([]any) {
			sum += s.(map[string]any)["records"].(float64)
		}
		if sum != 4 {
			t.Errorf("%s --json: the segments hold %v records, the log 4", cmd, sum)
		}
	}
	r = want(t, 0, "info", dir)
	if !strings.Contains(r.stdout, "records:   4, indexes 1 to 4") || !strings.Contains(r.stdout, "tail:      clean") {
		t.Errorf("info:\n%s", r.stdout)
	}
	// The segment table's row for the one segment says 4 records (sealed:
	// Close seals the newest segment).
	row := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(segment.Name(1)) + `\s+1\s+4\s+4\s+\d+\s+sealed$`)
	if !row.MatchString(r.stdout) {
		t.Errorf("info's segment table disagrees with its records line:\n%s", r.stdout)
	}
	r = want(t, 0, "recover", dir)
	if !strings.Contains(r.stdout, "nothing to repair") || strings.Contains(r.stdout, "torn") {
		t.Errorf("recover:\n%s", r.stdout)
	}
	checkLog(t, dir, 1, 4)
}

// salvageAgrees runs `wal recover --salvage --dry-run` on dir, then the
// real salvage (on dir in JSON, and on a copy in text), and checks they
// agree: the same records given up, the same cut, the same resulting
// range, which is what Open then finds. It returns that range.
func salvageAgrees(t *testing.T, dir string) (first, last uint64) {
	t.Helper()
	twin := copyDir(t, dir)
	before := snapshotDir(t, dir)
	dryText := walRun(t, "recover", "--salvage", "--dry-run", dir)
	dryJ := walRun(t, "recover", "--salvage", "--dry-run", "--json", dir)
	delete(before, wal.LockName)
	after := snapshotDir(t, dir)
	delete(after, wal.LockName)
	if fmt.Sprint(before) != fmt.Sprint(after) {
		t.Fatalf("the dry run changed the directory")
	}
	realJ := walRun(t, "recover", "--salvage", "--json", dir)
	realText := walRun(t, "recover", "--salvage", twin)
	t.Logf("dry run:\n%s\nreal run:\n%s", dryText.stdout, realText.stdout)
	if dryText.code != realText.code || dryJ.code != realJ.code || dryText.code != dryJ.code {
		t.Errorf("exit codes: dry run %d (json %d), real run %d (json %d)", dryText.code, dryJ.code, realText.code, realJ.code)
	}
	dj, rj := decodeJSON(t, dryJ.stdout), decodeJSON(t, realJ.stdout)
	for _, k := range []string{"records_given_up", "first_index", "last_index"} {
		if fmt.Sprint(dj[k]) != fmt.Sprint(rj[k]) {
			t.Errorf("%s: dry run %v, real run %v", k, dj[k], rj[k])
		}
	}
	ds, _ := dj["salvage"].(map[string]any)
	rs, _ := rj["salvage"].(map[string]any)
	delete(rs, "quarantine")
	if fmt.Sprint(ds) != fmt.Sprint(rs) {
		t.Errorf("salvage plans differ:\ndry run  %v\nreal run %v", ds, rs)
	}
	if rj["status"] == "damaged" {
		t.Errorf("the real salvage left damage: %s", realJ.stdout)
	}
	// The text reports say the same, word for word where no "would" is
	// involved.
	lines := func(out, dir, prefix string) []string {
		var ls []string
		for _, l := range strings.Split(strings.ReplaceAll(out, dir, "$DIR"), "\n") {
			if strings.Contains(l, prefix) {
				ls = append(ls, l[strings.Index(l, prefix):])
			}
		}
		return ls
	}
	for _, p := range []string{"records given up", "opens cleanly:"} {
		d, r := lines(dryText.stdout, dir, p), lines(realText.stdout, twin, p)
		if fmt.Sprint(d) != fmt.Sprint(r) {
			t.Errorf("%q: dry run says %q, real run %q", p, d, r)
		}
	}
	first, last = uint64(rj["first_index"].(float64)), uint64(rj["last_index"].(float64))
	for _, d := range []string{dir, twin} {
		if o := openOnce(t, d); o.err != nil || o.first != first || o.last != last {
			t.Errorf("Open after salvage of %s: [%d, %d] %v; salvage said [%d, %d]", d, o.first, o.last, o.err, first, last)
		}
	}
	want(t, 0, "verify", dir)
	return first, last
}

// TestAgreeVerifyDamagedWhereOpenRefuses: records the meta file says the
// log holds are missing. Open refuses; verify says DAMAGED and why;
// salvage, dry run and real, makes the log open.
func TestAgreeVerifyDamagedWhereOpenRefuses(t *testing.T) {
	for _, tc := range []struct {
		name   string
		damage func(t *testing.T, dir string)
		reason string
		first  uint64 // after salvage
		last   uint64
		gone   float64 // records salvage reports already missing
	}{
		{"FirstSegmentDeleted", func(t *testing.T, dir string) {
			if err := os.Remove(seg(dir, 1)); err != nil {
				t.Fatal(err)
			}
		}, "records 1 to 127 are missing", 128, 300, 127},
		{"MetaFirstIndexPastTheEnd", func(t *testing.T, dir string) {
			if err := recovery.WriteMeta(vfs.Default, dir, recovery.Meta{FirstIndex: 500}); err != nil {
				t.Fatal(err)
			}
		}, "first index 500 lies past the end of the log", 500, 499, 199},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := makeLog(t, 300)
			tc.damage(t, dir)
			if o := openOnce(t, dir); !errors.Is(o.err, wal.ErrCorrupt) {
				t.Fatalf("Open: %v, want ErrCorrupt", o.err)
			}
			r := want(t, 1, "verify", dir)
			if !strings.Contains(r.stdout, "result:    DAMAGED") || !strings.Contains(r.stdout, tc.reason) {
				t.Errorf("verify:\n%s", r.stdout)
			}
			if j := verifyJSON(t, 1, dir); j["status"] != "damaged" {
				t.Errorf("verify --json: status %v", j["status"])
			}
			j := decodeJSON(t, want(t, 0, "recover", "--salvage", "--dry-run", "--json", dir).stdout)
			if rs, _ := j["salvage"].(map[string]any)["restart"].(map[string]any); rs == nil || rs["records_missing"] != tc.gone {
				t.Errorf("salvage dry run: restart %v, want %v records missing", rs, tc.gone)
			}
			first, last := salvageAgrees(t, dir)
			if first != tc.first || last != tc.last {
				t.Errorf("after salvage the log holds [%d, %d], want [%d, %d]", first, last, tc.first, tc.last)
			}
		})
	}
}

// TestAgreeSalvageRefused: where salvage cannot help (a damaged meta
// file), neither the dry run nor the real run says the log opens, and
// neither changes anything.
func TestAgreeSalvageRefused(t *testing.T) {
	dir := makeLog(t, 300)
	if err := recovery.WriteMeta(vfs.Default, dir, recovery.Meta{FirstIndex: 10}); err != nil {
		t.Fatal(err)
	}
	flip(t, filepath.Join(dir, recovery.MetaName), 20)
	if o := openOnce(t, dir); !errors.Is(o.err, wal.ErrCorrupt) {
		t.Fatalf("Open: %v, want ErrCorrupt", o.err)
	}
	want(t, 1, "verify", dir)
	before := snapshotDir(t, dir)
	delete(before, wal.LockName)
	for _, args := range [][]string{{"--dry-run"}, {}} {
		r := want(t, 1, append([]string{"recover", "--salvage", dir}, args...)...)
		if strings.Contains(r.stdout, "opens cleanly") || !strings.Contains(r.stdout, "refused") {
			t.Errorf("recover --salvage %v:\n%s", args, r.stdout)
		}
	}
	after := snapshotDir(t, dir)
	delete(after, wal.LockName)
	if fmt.Sprint(before) != fmt.Sprint(after) {
		t.Errorf("a refused salvage changed the directory")
	}
}

// TestAgreeSalvageDryRun: on damaged logs, the dry run of salvage predicts
// what the real one does.
func TestAgreeSalvageDryRun(t *testing.T) {
	for _, tc := range []struct {
		name   string
		n      int
		damage func(t *testing.T, dir string)
		last   uint64 // after salvage
	}{
		{"FlippedByteInASealedRecord", 300, func(t *testing.T, dir string) {
			flip(t, seg(dir, 1), recordOffset(t, seg(dir, 1), 5)+40)
		}, 4},
		{"FlippedByteInTheNewestSegmentBeforeDurableData", 300, func(t *testing.T, dir string) {
			path, offs := frameOffsets(t, dir)
			flip(t, path, offs[5]+40) // record 260
		}, 259},
		{"DamagedFooterIntactRecords", 300, func(t *testing.T, dir string) {
			flip(t, seg(dir, 128), footerOffset(t, seg(dir, 128))+40)
		}, 300},
		{"ForeignFileAfterTheLog", 10, func(t *testing.T, dir string) {
			if err := os.WriteFile(seg(dir, 11), []byte(strings.Repeat("not a journal segment\n", 30)), 0o644); err != nil {
				t.Fatal(err)
			}
		}, 10},
		{"ForeignFileInsteadOfASealedSegment", 300, func(t *testing.T, dir string) {
			if err := os.WriteFile(seg(dir, 128), []byte(strings.Repeat("not a journal segment\n", 30)), 0o644); err != nil {
				t.Fatal(err)
			}
		}, 127},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := makeLog(t, tc.n)
			tc.damage(t, dir)
			o := openOnce(t, dir)
			if o.err == nil {
				t.Fatalf("Open accepted the damaged log: [%d, %d]", o.first, o.last)
			}
			want(t, 1, "verify", dir)
			first, last := salvageAgrees(t, dir)
			if first != 1 || last != tc.last {
				t.Errorf("after salvage the log holds [%d, %d], want [1, %d]", first, last, tc.last)
			}
			checkLog(t, dir, 1, tc.last)
		})
	}
}

// lastFrameEnd returns the newest segment and the end of its last frame
// (record or sync frame, without its alignment padding... the zeros
// after it are the write's padding).
func lastDataEnd(t *testing.T, dir string) (string, int64) {
	t.Helper()
	path, _ := frameOffsets(t, dir)
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	end := int64(len(b))
	for end > segment.DataStart && b[end-1] == 0 {
		end--
	}
	return path, end
}

// writeLog appends records 1..n to a new log with opts; it returns the
// directory and, when crash is set, a copy of it taken while the log was
// still open (after a Sync), as a killed process leaves it.
func writeLog(t *testing.T, n int, noSync, crash bool) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "log")
	o := logOptions()
	o.NoSync = noSync
	l, err := wal.Open(dir, o)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	for i := 1; i <= n; i++ {
		if _, err := l.Append(record(i)); err != nil {
			t.Fatal(err)
		}
	}
	if crash {
		if err := l.Sync(); err != nil {
			t.Fatal(err)
		}
		return copyDir(t, dir)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	return dir
}

// TestAgreeJunkInThePaddingKeepsTheRecord: junk in the zeros that pad the
// last write to its sector (the frame before it intact) costs no record,
// whether the log was closed or left as a crash leaves it.
func TestAgreeJunkInThePaddingKeepsTheRecord(t *testing.T) {
	const n = 30
	for _, mode := range []struct {
		name          string
		noSync, crash bool
	}{{"Closed", false, false}, {"Crashed", false, true}, {"NoSyncClosed", true, false}, {"NoSyncCrashed", true, true}} {
		for _, junk := range []struct {
			name string
			at   func(end int64) int64 // where the junk goes, from the end of the data
		}{
			{"RightAfterTheLastFrame", func(end int64) int64 { return (end + 7) &^ 7 }},
			{"InTheFramesAlignmentPadding", func(end int64) int64 { return end }},
			{"AtTheEndOfTheSector", func(end int64) int64 { return segment.AlignSector(end) - 8 }},
		} {
			t.Run(mode.name+"/"+junk.name, func(t *testing.T) {
				dir := writeLog(t, n, mode.noSync, mode.crash)
				path, end := lastDataEnd(t, dir)
				at := junk.at(end)
				if at < end || at+8 > segment.AlignSector(end+1) {
					t.Fatalf("no room for junk after offset %d in its sector", end)
				}
				writeAt(t, path, at, []byte("JUNKjunk")[:min(8, segment.AlignSector(end+1)-at)])
				j := verifyJSON(t, 0, dir)
				if j["records"] != float64(n) || j["status"] == "damaged" {
					t.Errorf("verify --json: status %v, records %v, torn %v; want %d records", j["status"], j["records"], j["torn"], n)
				}
				checkLog(t, dir, 1, n)
				if j := verifyJSON(t, 0, dir); j["records"] != float64(n) || j["status"] != "ok" {
					t.Errorf("verify after Open: status %v, records %v", j["status"], j["records"])
				}
			})
		}
	}
}

// TestAgreeShortSegmentFile: a file under a segment's name too short to
// hold a header is damage (ErrCorrupt, "shorter than its header"), never
// a foreign file; a file long enough without the magic is foreign
// (ErrFormat).
func TestAgreeShortSegmentFile(t *testing.T) {
	// The first 24 bytes of a header: magic, version, flags, first index.
	magic24 := binary.LittleEndian.AppendUint64(
		binary.LittleEndian.AppendUint32(binary.LittleEndian.AppendUint32([]byte(segment.Magic), segment.Version), 0), 1)
	for _, where := range []struct {
		name string
		n    int    // records written before
		at   uint64 // the file's first index
	}{{"Alone", 0, 1}, {"AfterALog", 300, 301}} {
		for _, tc := range []struct {
			name    string
			content []byte
			format  bool // ErrFormat rather than ErrCorrupt
		}{
			{"Empty", nil, false},
			{"OneByte", []byte{'x'}, false},
			{"24Bytes", []byte(strings.Repeat("z", 24)), false},
			{"24BytesStartingWithTheMagic", magic24, false},
			{"Newline", []byte("\n"), false},
			{"40BytesWithoutTheMagic", []byte(strings.Repeat("no magic ", 5)), true},
			{"100BytesWithoutTheMagic", []byte(strings.Repeat("not a segment ", 8)), true},
		} {
			t.Run(where.name+"/"+tc.name, func(t *testing.T) {
				dir := filepath.Join(t.TempDir(), "log")
				if where.n > 0 {
					dir = makeLog(t, where.n)
				} else if err := os.Mkdir(dir, 0o755); err != nil {
					t.Fatal(err)
				}
				path := seg(dir, where.at)
				if err := os.WriteFile(path, tc.content, 0o644); err != nil {
					t.Fatal(err)
				}
				r := want(t, 1, "verify", dir)
				if !strings.Contains(r.stdout, "what now:  "+segment.Name(where.at)+" is damaged") {
					t.Errorf("verify does not name %s first:\n%s", segment.Name(where.at), r.stdout)
				}
				o := openOnce(t, dir)
				switch {
				case tc.format && !errors.Is(o.err, wal.ErrFormat):
					t.Fatalf("Open: %v, want ErrFormat", o.err)
				case tc.format && errors.Is(o.err, wal.ErrCorrupt):
					t.Fatalf("Open: %v is both ErrFormat and ErrCorrupt", o.err)
				case !tc.format && (!errors.Is(o.err, wal.ErrCorrupt) || errors.Is(o.err, wal.ErrFormat)):
					t.Fatalf("Open: %v, want ErrCorrupt alone", o.err)
				case !tc.format && !strings.Contains(o.err.Error(), "shorter than its 40-byte header"):
					t.Errorf("Open: %v, want a message saying the file is shorter than its header", o.err)
				}
				if !strings.Contains(o.err.Error(), path) {
					t.Errorf("Open: %v does not name %s", o.err, path)
				}
				if !tc.format && !strings.Contains(r.stdout, "shorter than its 40-byte header") {
					t.Errorf("verify does not say the file is too short:\n%s", r.stdout)
				}
				// Salvage drops the file (into quarantine), giving up no
				// record: it held none.
				if first, last := salvageAgrees(t, dir); first != 1 || last != uint64(where.n) {
					t.Errorf("after salvage the log holds [%d, %d], want [1, %d]", first, last, where.n)
				}
			})
		}
	}
}

// TestAgreeNoSyncDamageBeforeSyncedData: with NoSync, once Close or Sync
// made 100 records durable, a flipped byte in record 41 is corruption
// (Open fails naming file and offset, verify says the same), never a torn
// tail that silently drops records 41 to 100.
func TestAgreeNoSyncDamageBeforeSyncedData(t *testing.T) {
	for _, crash := range []bool{false, true} {
		t.Run(map[bool]string{false: "Closed", true: "SyncedThenCrashed"}[crash], func(t *testing.T) {
			dir := writeLog(t, 100, true, crash)
			path, offs := frameOffsets(t, dir)
			off := offs[40]
			flip(t, path, off+40)
			o := openOnce(t, dir)
			var ce *wal.CorruptionError
			if !errors.As(o.err, &ce) || !errors.Is(o.err, wal.ErrCorrupt) {
				t.Fatalf("Open: [%d, %d] %v, want a *CorruptionError", o.first, o.last, o.err)
			}
			if ce.Path != path || ce.Offset != off || ce.Index != 41 {
				t.Errorf("Open: %v; want %s offset %d record 41", ce, path, off)
			}
			j := verifyJSON(t, 1, dir)
			if j["torn"] != nil {
				t.Errorf("verify calls it a torn tail: %v", j["torn"])
			}
			d := j["damage"].([]any)[0].(map[string]any)
			if d["file"] != filepath.Base(path) || d["offset"] != float64(off) || d["index"] != 41.0 {
				t.Errorf("verify's first damage: %v; want %s offset %d record 41", d, filepath.Base(path), off)
			}
			r := want(t, 1, "verify", dir)
			if !strings.Contains(r.stdout, fmt.Sprintf("%s is damaged at offset %d (record 41)", filepath.Base(path), off)) {
				t.Errorf("verify:\n%s", r.stdout)
			}
		})
	}
}

// TestAgreeDamageInReleasedRecords: a flipped bit in records that
// Checkpoint or TruncateFront released, still inside the newest segment,
// costs no live record: Open and verify accept the log (verify lists the
// damage apart when it reads it: in a newest segment a crash left
// unsealed), and salvage leaves one that opens.
func TestAgreeDamageInReleasedRecords(t *testing.T) {
	release := map[string]func(l *wal.Log, first uint64) error{
		"TruncateFront": func(l *wal.Log, first uint64) error { return l.TruncateFront(first) },
		"Checkpoint": func(l *wal.Log, first uint64) error {
			return l.Checkpoint(first-1, func(w io.Writer) error {
				_, err := fmt.Fprintf(w, "state as of %d", first-1)
				return err
			})
		},
	}
	for name, rel := range release {
		for _, tc := range []struct {
			name    string
			damaged uint64 // the record whose frame gets a flipped bit
			crash   bool
		}{
			{"FirstRecord", 1, false},
			{"Middle", 12, false},
			{"JustBeforeTheFirstLive", 29, false},
			{"MiddleCrashed", 12, true},
		} {
			t.Run(name+"/"+tc.name, func(t *testing.T) {
				const n, first = 50, 30
				dir := filepath.Join(t.TempDir(), "log")
				l, err := wal.Open(dir, logOptions())
				if err != nil {
					t.Fatal(err)
				}
				for i := 1; i <= n; i++ {
					if _, err := l.Append(record(i)); err != nil {
						t.Fatal(err)
					}
				}
				if err := rel(l, first); err != nil {
					t.Fatal(err)
				}
				if tc.crash {
					dir = copyDir(t, dir)
				}
				if err := l.Close(); err != nil {
					t.Fatal(err)
				}
				path, offs := frameOffsets(t, dir)
				if len(offs) != n {
					t.Fatalf("the newest segment holds %d frames, want all %d", len(offs), n)
				}
				b, _ := os.ReadFile(path)
				writeAt(t, path, offs[tc.damaged-1]+45, []byte{b[offs[tc.damaged-1]+45] ^ 0x10})

				j := verifyJSON(t, 0, dir)
				if j["status"] == "damaged" || j["first_index"] != float64(first) || j["last_index"] != float64(n) {
					t.Errorf("verify --json: status %v, [%v, %v]", j["status"], j["first_index"], j["last_index"])
				}
				// After a clean Close the newest segment is sealed: like
				// any sealed segment, verify reads its live records only,
				// located through its footer, and never meets the damage.
				// After a crash it reads the frames from the first.
				wantReleased := 0
				if tc.crash {
					wantReleased = 1
				}
				if rd, _ := j["released_damage"].([]any); len(rd) != wantReleased {
					t.Errorf("verify --json: released_damage %v, want %d damaged places", j["released_damage"], wantReleased)
				}
				if r := want(t, 0, "verify", dir); tc.crash && !strings.Contains(r.stdout, "released:  1 place damaged (not part of the log; Open steps over it): ") {
					t.Errorf("verify does not mention the released damage:\n%s", r.stdout)
				}
				if o := openOnce(t, dir); o.err != nil || o.first != first || o.last != n {
					t.Fatalf("Open: [%d, %d] %v", o.first, o.last, o.err)
				}
				checkLog(t, dir, first, n)
				want(t, 0, "recover", "--salvage", dir)
				checkLog(t, dir, first, n)
				want(t, 0, "verify", dir)
			})
		}
	}
}

// TestAgreeRecycledSegmentAfterACrash: a crash while the active segment
// is a recycled file leaves the old segment's bytes after the records;
// verify and info call them a torn tail and count the records Open keeps,
// and a bit flip in a durable record there is damage to all of them.
func TestAgreeRecycledSegmentAfterACrash(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "log")
	o := logOptions()
	o.RecycleSegments = true
	l, err := wal.Open(dir, o)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	appendTo := func(n int) {
		for range n {
			if _, err := l.Append(record(int(l.LastIndex() + 1))); err != nil {
				t.Fatal(err)
			}
		}
	}
	appendTo(400) // three sealed segments
	if err := l.TruncateFront(300); err != nil {
		t.Fatal(err)
	}
	for r := l.Metrics().Rotations; l.Metrics().Rotations == r; {
		appendTo(1) // into the recycled file, once the active one is full
	}
	appendTo(10)
	if m := l.Metrics(); m.SegmentsRecycled == 0 {
		t.Fatalf("no segment recycled: %+v", m)
	}
	crashed := copyDir(t, dir) // as a crash leaves it: the log is not closed
	last := float64(l.LastIndex())
	for _, cmd := range []string{"verify", "info"} {
		j := decodeJSON(t, want(t, 0, cmd, "--json", crashed).stdout)
		torn, _ := j["torn"].(map[string]any)
		if j["status"] != "torn" || torn == nil || torn["bytes"].(float64) < wal.MinSegmentSize/4 || j["last_index"] != last {
			t.Errorf("%s --json on a recycled segment after a crash: status %v, torn %v, last %v; want torn, the old bytes, last %v",
				cmd, j["status"], torn, j["last_index"], last)
		}
	}
	if o := openOnce(t, crashed); o.err != nil || float64(o.last) != last || o.first != 300 {
		t.Fatalf("Open: [%d, %d], %v; want [300, %v]", o.first, o.last, o.err, last)
	}
	damaged := copyDir(t, dir)
	path, offs := frameOffsets(t, damaged)
	flip(t, path, offs[len(offs)-5]+40) // a record before the last write
	if o := openOnce(t, damaged); !errors.Is(o.err, wal.ErrCorrupt) {
		t.Fatalf("Open after a bit flip in a recycled segment: %v, want ErrCorrupt", o.err)
	}
	if j := verifyJSON(t, 1, damaged); j["status"] != "damaged" {
		t.Errorf("verify --json after a bit flip in a recycled segment: status %v", j["status"])
	}
}

// TestAgreeOnALiveLog runs verify, info and dump, each at least 50 times,
// on a log this process keeps appending to (several writers, small
// segments so that it rotates): a write in flight is never damage.
func TestAgreeOnALiveLog(t *testing.T) {
	const runs = 50
	for _, mode := range []struct {
		name                        string
		noSync, checkpoint, recycle bool
	}{
		{"Sync", false, false, false},
		{"NoSyncPeriodicSync", true, false, false},
		{"SyncWithCheckpoints", false, true, false},
		// Released segments become later ones: the active segment holds
		// an old segment's bytes past the frames being written.
		{"NoSyncWithCheckpointsRecycling", true, true, true},
	} {
		t.Run(mode.name, func(t *testing.T) {
			noSync := mode.noSync
			dir := filepath.Join(t.TempDir(), "log")
			o := logOptions()
			o.NoSync, o.RecycleSegments = noSync, mode.recycle
			l, err := wal.Open(dir, o)
			if err != nil {
				t.Fatal(err)
			}
			stop := make(chan struct{})
			var wg sync.WaitGroup
			var appended atomic.Int64
			work := func(f func(i int) error) {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for i := 0; ; i++ {
						select {
						case <-stop:
							return
						default:
						}
						if err := f(i); err != nil {
							t.Error(err)
							return
						}
					}
				}()
			}
			// A short pause every few appends keeps a NoSync log from
			// growing faster than the tools read it (it still rotates
			// many times a second).
			pause := func(i int) {
				if i%4 == 3 {
					time.Sleep(time.Millisecond)
				}
			}
			for w := 0; w < 3; w++ {
				work(func(i int) error {
					_, err := l.Append(record(i))
					appended.Add(1)
					pause(i)
					return err
				})
			}
			work(func(i int) error { // batches too: a torn batch is a torn tail
				_, err := l.AppendBatch([][]byte{record(i), record(i + 1), record(i + 2)})
				appended.Add(3)
				pause(i)
				return err
			})
			if mode.checkpoint {
				// Releases records, and removes their segments, while the
				// tools read them.
				work(func(int) error {
					time.Sleep(20 * time.Millisecond)
					last := l.LastIndex()
					if last < 1100 {
						return nil
					}
					return l.Checkpoint(last-1000, func(w io.Writer) error {
						_, err := fmt.Fprintf(w, "state as of %d", last-1000)
						return err
					})
				})
			}
			if noSync {
				work(func(int) error {
					time.Sleep(2 * time.Millisecond)
					return l.Sync()
				})
			}
			counts := map[string]int{}
			check := func(name string, r result, status string) {
				key := fmt.Sprintf("%s exit %d", name, r.code)
				if status != "" {
					key += " " + status
				}
				counts[key]++
				if r.code != 0 || status == "damaged" {
					t.Errorf("wal %s on a live log: exit %d, status %q\n%s%s", name, r.code, status, r.stdout, r.stderr)
				}
			}
			status := func(r result) string {
				var j map[string]any
				if json.Unmarshal([]byte(r.stdout), &j) != nil {
					return "no JSON"
				}
				s, _ := j["status"].(string)
				return s
			}
			for i := 0; i < runs && !t.Failed(); i++ {
				r := walRun(t, "verify", "--json", dir)
				check("verify", r, status(r))
				r = walRun(t, "info", "--json", dir)
				check("info", r, status(r))
				r = walRun(t, "dump", dir, "--from", fmt.Sprint(max(l.LastIndex(), 20)-20))
				check("dump", r, "")
			}
			close(stop)
			wg.Wait()
			if err := l.Close(); err != nil {
				t.Fatal(err)
			}
			segs, _ := filepath.Glob(filepath.Join(dir, "*"+segment.Ext))
			t.Logf("%d records appended in %d segments while the tools ran; %v", appended.Load(), len(segs), counts)
			fmt.Printf("live log (%s): %d records, %d segments: %v\n", t.Name(), appended.Load(), len(segs), counts)
			want(t, 0, "verify", dir)
		})
	}
}

// TestAgreeOnUndetectableDamage pins what recovery's package doc says the
// directory cannot prove: for each of these, verify and Open agree that
// the log is whole, and hold the same (shorter) range.
func TestAgreeOnUndetectableDamage(t *testing.T) {
	for _, tc := range []struct {
		name        string
		setup       func(t *testing.T) string
		first, last uint64
	}{
		{"DeletedNewestSegment", func(t *testing.T) string {
			// The log then ends at the previous, sealed segment, as after
			// a crash between sealing it and creating the next.
			dir := makeLog(t, 300)
			if err := os.Remove(seg(dir, 255)); err != nil {
				t.Fatal(err)
			}
			return dir
		}, 1, 254},
		{"DeletedSnapshotFile", func(t *testing.T) string {
			// The meta file records the first index, not that a snapshot
			// exists: the log from 201 looks whole.
			dir := makeLog(t, 300)
			l, err := wal.Open(dir, logOptions())
			if err != nil {
				t.Fatal(err)
			}
			if err := l.Checkpoint(200, func(w io.Writer) error {
				_, err := io.WriteString(w, "state as of 200")
				return err
			}); err != nil {
				t.Fatal(err)
			}
			if err := l.Close(); err != nil {
				t.Fatal(err)
			}
			if err := os.Remove(filepath.Join(dir, checkpoint.FileName)); err != nil {
				t.Fatal(err)
			}
			return dir
		}, 201, 300},
		{"NewestSegmentCutAtAFrameBoundary", func(t *testing.T) string {
			// Each write's frames prove only the writes before it durable:
			// nothing proves records 290 to 300 were ever written.
			dir := makeLog(t, 300)
			path, offs := frameOffsets(t, dir)
			truncateFile(t, path, offs[290-255])
			return dir
		}, 1, 289},
		{"NoSyncNewestSegmentCutAtAFrameBoundary", func(t *testing.T) string {
			// Close's sync frame goes with the cut: nothing proves the
			// records after it.
			dir := writeLog(t, 100, true, false)
			path, offs := frameOffsets(t, dir)
			truncateFile(t, path, offs[60])
			return dir
		}, 1, 60},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := tc.setup(t)
			j := verifyJSON(t, 0, dir)
			o := openOnce(t, dir)
			if o.err != nil {
				t.Fatalf("Open: %v; verify: %v", o.err, j)
			}
			if j["status"] != "ok" || j["first_index"] != float64(o.first) || j["last_index"] != float64(o.last) {
				t.Errorf("verify says %v [%v, %v], Open [%d, %d]", j["status"], j["first_index"], j["last_index"], o.first, o.last)
			}
			if o.first != tc.first || o.last != tc.last {
				t.Errorf("the log holds [%d, %d], want [%d, %d]", o.first, o.last, tc.first, tc.last)
			}
			if j["snapshot"] != nil {
				t.Errorf("verify reports a snapshot: %v", j["snapshot"])
			}
		})
	}
}
