package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

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
	return s.Path, s.Offsets
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
	// The segment table's row for the one segment says 4 records.
	row := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(segment.Name(1)) + `\s+1\s+4\s+4\s+\d+\s+open$`)
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
