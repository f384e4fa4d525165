package main

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/gojournal/journal/checkpoint"
	"github.com/gojournal/journal/cursor"
	"github.com/gojournal/journal/internal/crashtest"
	"github.com/gojournal/journal/recovery"
	"github.com/gojournal/journal/segment"
	"github.com/gojournal/journal/vfs"
	"github.com/gojournal/journal/wal"
)

// These tests build the wal binary once and run it, as an operator would,
// on real log directories written by package wal and then damaged on
// purpose. Outputs are compared with golden files in testdata/ after
// normalisation (temporary paths, times); go test -update rewrites them.

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

// walBinary is the wal command built by TestMain.
var walBinary string

// liveChildEnv names the log directory of the child writer; TestMain does
// not build the wal binary in the child.
const liveChildEnv = "JOURNAL_LIVE_CHILD"

func TestMain(m *testing.M) {
	flag.Parse()
	if os.Getenv(liveChildEnv) != "" {
		// The child writer of the live-log tests needs no wal binary.
		os.Exit(m.Run())
	}
	tmp, err := os.MkdirTemp("", "wal-cli-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	walBinary = filepath.Join(tmp, "wal")
	build := crashtest.GoBuild(walBinary, ".")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "build wal:", err)
		os.RemoveAll(tmp)
		os.Exit(2)
	}
	code := m.Run()
	os.RemoveAll(tmp)
	os.Exit(code)
}

// result is one run of the binary.
type result struct {
	stdout, stderr string
	code           int
}

// wal runs the binary with args and returns what it printed and its exit
// code.
func walRun(t *testing.T, args ...string) result {
	t.Helper()
	cmd := exec.Command(walBinary, args...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	r := result{stdout: out.String(), stderr: errb.String()}
	if ee, ok := err.(*exec.ExitError); ok {
		r.code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("run wal %v: %v", args, err)
	}
	return r
}

// want runs wal and checks its exit code.
func want(t *testing.T, code int, args ...string) result {
	t.Helper()
	r := walRun(t, args...)
	if r.code != code {
		t.Fatalf("wal %s: exit %d, want %d\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), r.code, code, r.stdout, r.stderr)
	}
	return r
}

var (
	quarantineRE = regexp.MustCompile(`quarantine-\d{8}T\d{6}Z(-\d+)?`)
	timeRE       = regexp.MustCompile(`\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ`)
	ageRE        = regexp.MustCompile(`\((\d+h)?(\d+m)?\d+(\.\d+)?[mµn]?s ago\)|written \S+ ago`)
)

// normalize makes output comparable across runs: the log directory
// becomes $DIR, times and ages placeholders.
func normalize(s, dir string) string {
	s = strings.ReplaceAll(s, dir, "$DIR")
	s = quarantineRE.ReplaceAllString(s, "quarantine-<TIME>")
	s = timeRE.ReplaceAllString(s, "<TIME>")
	return ageRE.ReplaceAllStringFunc(s, func(m string) string {
		if strings.HasPrefix(m, "written") {
			return "written <AGE> ago"
		}
		return "(<AGE> ago)"
	})
}

// golden compares got (normalized) with testdata/name.golden.
func golden(t *testing.T, name, got, dir string) {
	t.Helper()
	got = normalize(got, dir)
	path := filepath.Join("testdata", name+".golden")
	if *update {
		if err := os.MkdirAll("testdata", 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if string(b) != got {
		t.Errorf("output differs from %s (go test -update rewrites it)\n--- got:\n%s\n--- want:\n%s", path, got, b)
	}
}

// Fixtures: logs written by package wal, one record per write, so that
// every run lays them out identically.

var quiet = slog.New(slog.DiscardHandler)

func record(i int) []byte {
	return fmt.Appendf(nil, "record %d %s", i, strings.Repeat(string(rune('a'+i%26)), 100))
}

func logOptions() *wal.Options {
	return &wal.Options{SegmentSize: wal.MinSegmentSize, Logger: quiet}
}

// makeLog writes records 1..n into a new log: with 64 KiB segments, 127
// records per sealed segment.
func makeLog(t *testing.T, n int) string {
	t.Helper()
	return makeLogWith(t, logOptions(), n)
}

// makeLogWith is makeLog with options o.
func makeLogWith(t *testing.T, o *wal.Options, n int) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "log")
	l, err := wal.Open(dir, o)
	if err != nil {
		t.Fatal(err)
	}
	for i := 1; i <= n; i++ {
		if _, err := l.Append(record(i)); err != nil {
			t.Fatal(err)
		}
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	return dir
}

func seg(dir string, first uint64) string { return filepath.Join(dir, segment.Name(first)) }

// recordOffset is where record index starts in the sealed segment path.
func recordOffset(t *testing.T, path string, index uint64) int64 {
	t.Helper()
	h, err := segment.OpenHandle(vfs.Default, path)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	ft, reason, err := h.Footer()
	if err != nil || !ft.Valid() {
		t.Fatalf("footer of %s: %v %s", path, err, reason)
	}
	offs, err := h.Offsets(ft, int(index-h.Header().FirstIndex)+1)
	if err != nil {
		t.Fatal(err)
	}
	return offs[len(offs)-1]
}

// footerOffset is where the footer of the sealed segment path starts.
func footerOffset(t *testing.T, path string) int64 {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return int64(binary.LittleEndian.Uint64(b[len(b)-16:]))
}

// newestEnd is where the next write to the newest segment would go.
func newestEnd(t *testing.T, dir string) (string, int64) {
	t.Helper()
	unsealNewest(t, dir)
	st, err := recovery.Scan(vfs.Default, dir, recovery.Options{})
	if err != nil {
		t.Fatal(err)
	}
	s := st.Segments[len(st.Segments)-1]
	return s.Path, s.End
}

// lastFrame returns the newest segment and the offset of its last record's
// frame.
func lastFrame(t *testing.T, dir string) (string, int64) {
	t.Helper()
	unsealNewest(t, dir)
	st, err := recovery.Scan(vfs.Default, dir, recovery.Options{})
	if err != nil {
		t.Fatal(err)
	}
	s := st.Segments[len(st.Segments)-1]
	return s.Path, s.Offsets[len(s.Offsets)-1]
}

// unsealNewest lifts the footer that the log's Close wrote on the newest
// segment (segment.Unseal), leaving the segment as a crash leaves it: the
// tests that give it a torn tail start from there.
func unsealNewest(t *testing.T, dir string) {
	t.Helper()
	st, err := recovery.Scan(vfs.Default, dir, recovery.Options{})
	if err != nil {
		t.Fatal(err)
	}
	s := st.Segments[len(st.Segments)-1]
	if !s.Sealed {
		return
	}
	f, err := vfs.Default.OpenFile(s.Path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, ok, err := segment.Unseal(f, s.Header, s.Footer); err != nil || !ok {
		t.Fatalf("unseal %s: %v, %v", s.Path, ok, err)
	}
}

func writeAt(t *testing.T, path string, off int64, b []byte) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteAt(b, off); err != nil {
		t.Fatal(err)
	}
}

// flip inverts one byte.
func flip(t *testing.T, path string, off int64) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	writeAt(t, path, off, []byte{^b[off]})
}

func truncateFile(t *testing.T, path string, size int64) {
	t.Helper()
	if err := os.Truncate(path, size); err != nil {
		t.Fatal(err)
	}
}

// snapshotDir records every file's contents, to check a command changed
// nothing.
func snapshotDir(t *testing.T, dir string) map[string]string {
	t.Helper()
	m := map[string]string{}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if e.IsDir() {
			m[e.Name()+"/"] = ""
			continue
		}
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		m[e.Name()] = string(b)
	}
	return m
}

func sameDir(t *testing.T, dir string, before map[string]string) {
	t.Helper()
	after := snapshotDir(t, dir)
	for name, b := range before {
		if a, ok := after[name]; !ok {
			t.Errorf("%s disappeared", name)
		} else if a != b {
			t.Errorf("%s changed", name)
		}
	}
	for name := range after {
		if _, ok := before[name]; !ok {
			t.Errorf("%s appeared", name)
		}
	}
}

// openLog opens the log, checks it holds exactly records first..last as
// written by makeLog, and closes it.
func checkLog(t *testing.T, dir string, first, last uint64) {
	t.Helper()
	l, err := wal.Open(dir, logOptions())
	if err != nil {
		t.Fatalf("Open after the command: %v", err)
	}
	defer l.Close()
	if l.FirstIndex() != first || l.LastIndex() != last {
		t.Fatalf("log holds [%d, %d], want [%d, %d]", l.FirstIndex(), l.LastIndex(), first, last)
	}
	for i := first; i <= last; i++ {
		got, err := l.Read(i)
		if err != nil {
			t.Fatalf("Read(%d): %v", i, err)
		}
		if !bytes.Equal(got, record(int(i))) {
			t.Fatalf("Read(%d) = %q", i, got)
		}
	}
}

func decodeJSON(t *testing.T, s string) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal([]byte(s), &m); err != nil {
		t.Fatalf("not JSON: %v\n%s", err, s)
	}
	return m
}

func TestVerifyClean(t *testing.T) {
	dir := makeLog(t, 300)
	before := snapshotDir(t, dir)
	r := want(t, 0, "verify", dir)
	golden(t, "verify_clean", r.stdout, dir)
	j := decodeJSON(t, want(t, 0, "verify", "--json", dir).stdout)
	if j["status"] != "ok" || j["records"] != 300.0 || len(j["damage"].([]any)) != 0 {
		t.Errorf("verify --json: %v", j)
	}
	sameDir(t, dir, before)
}

func TestVerifyTornTail(t *testing.T) {
	t.Run("JunkAfterTheValidData", func(t *testing.T) {
		dir := makeLog(t, 300)
		path, end := newestEnd(t, dir)
		writeAt(t, path, end, bytes.Repeat([]byte("junk"), 30))
		r := want(t, 0, "verify", dir)
		golden(t, "verify_torn", r.stdout, dir)
		j := decodeJSON(t, want(t, 0, "verify", "--json", dir).stdout)
		if j["status"] != "torn" || j["torn"] == nil {
			t.Errorf("verify --json: %v", j)
		}
	})
	t.Run("FileCutInTheLastRecord", func(t *testing.T) {
		dir := makeLog(t, 300)
		path, last := lastFrame(t, dir)
		truncateFile(t, path, last+60) // inside the last record's frame (and before the sync frame Close wrote)
		r := want(t, 0, "verify", dir)
		if !strings.Contains(r.stdout, "tail:      torn") || !strings.Contains(r.stdout, "records:   1 to 299") {
			t.Errorf("verify:\n%s", r.stdout)
		}
	})
}

// corruptTwice flips a payload byte of records 5 and 100, in the first
// (sealed) segment.
func corruptTwice(t *testing.T, dir string) {
	p := seg(dir, 1)
	flip(t, p, recordOffset(t, p, 5)+40)
	flip(t, p, recordOffset(t, p, 100)+40)
}

func TestVerifyCorruption(t *testing.T) {
	dir := makeLog(t, 300)
	corruptTwice(t, dir)
	before := snapshotDir(t, dir)
	r := want(t, 1, "verify", dir)
	golden(t, "verify_corrupt", r.stdout, dir)
	j := decodeJSON(t, want(t, 1, "verify", "--json", dir).stdout)
	damage := j["damage"].([]any)
	if j["status"] != "damaged" || len(damage) != 2 {
		t.Fatalf("verify --json: want 2 damaged places: %v", j)
	}
	d := damage[1].(map[string]any)
	if d["file"] != segment.Name(1) || d["index"] != 100.0 || d["offset"] != float64(recordOffset(t, seg(dir, 1), 100)) {
		t.Errorf("second damage: %v", d)
	}
	sameDir(t, dir, before)
}

func TestVerifyMissingFooter(t *testing.T) {
	dir := makeLog(t, 300)
	p := seg(dir, 1)
	truncateFile(t, p, footerOffset(t, p))
	r := want(t, 1, "verify", dir)
	golden(t, "verify_missing_footer", r.stdout, dir)
	// Every record is intact: salvage reseals the segment and gives up
	// nothing.
	r = want(t, 0, "recover", "--salvage", dir)
	golden(t, "recover_reseal", r.stdout, dir)
	want(t, 0, "verify", dir)
	checkLog(t, dir, 1, 300)
}

func TestVerifyLeftoversAndForeignFiles(t *testing.T) {
	dir := makeLog(t, 10)
	os.WriteFile(filepath.Join(dir, vfs.TempPrefix+segment.Name(11)), []byte("half a segment"), 0o644)
	os.WriteFile(filepath.Join(dir, "notes.txt"), []byte("hello"), 0o644)
	r := want(t, 0, "verify", dir)
	golden(t, "verify_leftovers", r.stdout, dir)

	// A foreign file under a segment's name is damage: Open refuses it.
	os.WriteFile(seg(dir, 11), bytes.Repeat([]byte("not a journal segment\n"), 30), 0o644)
	r = want(t, 1, "verify", dir)
	golden(t, "verify_foreign_segment", r.stdout, dir)
	// Salvage reseals the first segment and moves the foreign file to
	// quarantine, giving up nothing.
	r = want(t, 0, "recover", "--salvage", dir)
	golden(t, "recover_foreign_segment", r.stdout, dir)
	want(t, 0, "verify", dir)
	checkLog(t, dir, 1, 10)
}

// TestReadOnlyCommandsOnALockedLog runs the inspection commands while a
// Log holds the directory: they must not need (or take) the lock.
func TestReadOnlyCommandsOnALockedLog(t *testing.T) {
	dir := makeLog(t, 300)
	l, err := wal.Open(dir, logOptions())
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if _, err := l.Append(record(301)); err != nil {
		t.Fatal(err)
	}
	r := want(t, 0, "verify", dir)
	if !strings.Contains(r.stdout, "records:   1 to 301") {
		t.Errorf("verify on a locked log:\n%s", r.stdout)
	}
	want(t, 0, "info", dir)
	if r := want(t, 0, "dump", dir, "--from", "301"); !strings.HasPrefix(r.stdout, "301\t") {
		t.Errorf("dump on a locked log: %q", r.stdout)
	}
	want(t, 0, "checkpoint", dir)
	// recover and truncate need the log to themselves.
	r = want(t, 2, "recover", dir)
	if !strings.Contains(r.stderr, "is locked") {
		t.Errorf("recover on a locked log: %s", r.stderr)
	}
	want(t, 2, "recover", "--dry-run", dir)
	r = want(t, 2, "truncate", dir, "--front", "5")
	if !strings.Contains(r.stderr, "is locked") {
		t.Errorf("truncate on a locked log: %s", r.stderr)
	}
	// Still appendable: nothing was disturbed.
	if _, err := l.Append(record(302)); err != nil {
		t.Fatal(err)
	}
}

// TestReadOnlyFileSystem verifies a log on a read-only bind mount (as
// root) and in a directory without write permission.
func TestReadOnlyFileSystem(t *testing.T) {
	t.Run("Permissions", func(t *testing.T) {
		dir := makeLog(t, 300)
		path, end := newestEnd(t, dir)
		writeAt(t, path, end, []byte("torn"))
		entries, _ := os.ReadDir(dir)
		for _, e := range entries {
			os.Chmod(filepath.Join(dir, e.Name()), 0o444)
		}
		os.Chmod(dir, 0o555)
		t.Cleanup(func() { os.Chmod(dir, 0o755) })
		want(t, 0, "verify", dir)
		want(t, 0, "info", dir)
		want(t, 0, "dump", dir, "--to", "3")
		want(t, 0, "recover", "--dry-run", dir)
		if os.Geteuid() != 0 {
			// root ignores permission bits.
			want(t, 2, "recover", dir)
		}
	})
	t.Run("ReadOnlyBindMount", func(t *testing.T) {
		if os.Geteuid() != 0 {
			t.Skip("bind mounts need root")
		}
		dir := makeLog(t, 300)
		path, end := newestEnd(t, dir)
		writeAt(t, path, end, []byte("torn"))
		ro := filepath.Join(t.TempDir(), "ro")
		os.Mkdir(ro, 0o755)
		if out, err := exec.Command("mount", "--bind", dir, ro).CombinedOutput(); err != nil {
			t.Skipf("mount --bind not permitted here: %v %s", err, out)
		}
		t.Cleanup(func() { exec.Command("umount", ro).Run() })
		if out, err := exec.Command("mount", "-o", "remount,bind,ro", ro).CombinedOutput(); err != nil {
			t.Skipf("remount read-only not permitted here: %v %s", err, out)
		}
		if err := os.WriteFile(filepath.Join(ro, "probe"), nil, 0o644); err == nil {
			t.Fatal("the read-only mount is writable")
		}
		r := want(t, 0, "verify", ro)
		if !strings.Contains(r.stdout, "tail:      torn") {
			t.Errorf("verify on a read-only mount:\n%s", r.stdout)
		}
		want(t, 0, "info", ro)
		want(t, 0, "dump", ro, "--from", "299")
		want(t, 0, "checkpoint", ro)
		want(t, 0, "recover", "--dry-run", ro)
		want(t, 2, "recover", ro)
	})
}

func TestInfo(t *testing.T) {
	dir := makeLog(t, 300)
	r := want(t, 0, "info", dir)
	golden(t, "info", r.stdout, dir)
	j := decodeJSON(t, want(t, 0, "info", "--json", dir).stdout)
	if j["first_index"] != 1.0 || j["last_index"] != 300.0 || len(j["segments"].([]any)) != 3 {
		t.Errorf("info --json: %v", j)
	}

	// Compressed records: stored bytes shrink, decoded bytes do not.
	zdir := filepath.Join(t.TempDir(), "zlog")
	o := logOptions()
	o.Compression = wal.Zstd
	l, err := wal.Open(zdir, o)
	if err != nil {
		t.Fatal(err)
	}
	for i := 1; i <= 20; i++ {
		l.Append(record(i))
	}
	l.Close()
	r = want(t, 0, "info", zdir)
	golden(t, "info_zstd", r.stdout, zdir)
}

// info lists the consumers of a cursors subdirectory with how far behind
// each is; verify is not troubled by the subdirectory.
func TestInfoCursors(t *testing.T) {
	dir := makeLog(t, 300)
	s, err := cursor.Open(cursor.Dir(dir), &cursor.Options{Log: wal.Options{Logger: slog.New(slog.DiscardHandler)}})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []cursor.Cursor{{Name: "billing", Index: 280}, {Name: "audit", Index: 300}, {Name: "billing", Index: 290}} {
		if err := s.Ack(c.Name, c.Index); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	r := want(t, 0, "info", dir)
	golden(t, "info_cursors", r.stdout, dir)
	j := decodeJSON(t, want(t, 0, "info", "--json", dir).stdout)
	cs, _ := j["cursors"].([]any)
	if len(cs) != 2 || cs[1].(map[string]any)["behind"] != 10.0 {
		t.Errorf("info --json cursors: %v", j["cursors"])
	}
	want(t, 0, "verify", dir)
}

func TestDump(t *testing.T) {
	dir := makeLog(t, 300)
	for _, tc := range []struct {
		name string
		args []string
	}{
		{"dump_text", []string{"--from", "126", "--to", "129"}},
		{"dump_json", []string{"--from", "299", "--format", "json"}},
		{"dump_hex", []string{"--from", "7", "--to", "7", "--format", "hex"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := want(t, 0, append([]string{"dump", dir}, tc.args...)...)
			golden(t, tc.name, r.stdout, dir)
		})
	}
	t.Run("All", func(t *testing.T) {
		r := want(t, 0, "dump", dir)
		if n := strings.Count(r.stdout, "\n"); n != 300 {
			t.Errorf("dump printed %d lines, want 300", n)
		}
	})
	t.Run("BinaryPayloadAsHex", func(t *testing.T) {
		bdir := filepath.Join(t.TempDir(), "b")
		l, _ := wal.Open(bdir, logOptions())
		l.Append([]byte{0, 1, 2, 0xff})
		l.Close()
		r := want(t, 0, "dump", bdir)
		if r.stdout != "1\t4\thex:000102ff\n" {
			t.Errorf("dump: %q", r.stdout)
		}
	})
	t.Run("StopsAtDamage", func(t *testing.T) {
		cdir := makeLog(t, 300)
		corruptTwice(t, cdir)
		r := want(t, 1, "dump", cdir, "--from", "3", "--to", "10")
		if r.stdout != string(append(append([]byte("3\t109\t"), record(3)...), "\n4\t109\t"+string(record(4))+"\n"...)) {
			t.Errorf("dump printed %q", r.stdout)
		}
		if !strings.Contains(r.stderr, "00000000000000000001.wal is damaged at offset 2560 (record 5)") {
			t.Errorf("dump: %s", r.stderr)
		}
		// Before the damage, dump is fine.
		want(t, 0, "dump", cdir, "--to", "4")
	})
	// Damage that ends the log at a segment's first record (here records
	// missing before it) stops dump with exit 1, even for a --from in that
	// segment: it used to print nothing and exit 0, as on a salvage's
	// quarantine directory.
	t.Run("StopsAtDamageAtASegmentsStart", func(t *testing.T) {
		mdir := makeLog(t, 300)
		if err := os.Remove(seg(mdir, 1)); err != nil {
			t.Fatal(err)
		}
		for _, args := range [][]string{{}, {"--from", "130", "--to", "131"}, {"--from", "260"}} {
			r := want(t, 1, append([]string{"dump", mdir}, args...)...)
			if r.stdout != "" || !strings.Contains(r.stderr, "are missing") {
				t.Errorf("dump %v: stdout %q, stderr %q", args, r.stdout, r.stderr)
			}
		}
	})
}

func TestRecoverDryRunThenReal(t *testing.T) {
	dir := makeLog(t, 300)
	path, end := newestEnd(t, dir)
	writeAt(t, path, end, bytes.Repeat([]byte("junk"), 30))
	os.WriteFile(filepath.Join(dir, vfs.TempPrefix+"journal.meta-x1"), []byte("half a meta file"), 0o644)
	before := snapshotDir(t, dir)
	r := want(t, 0, "recover", "--dry-run", dir)
	golden(t, "recover_dry_run", r.stdout, dir)
	delete(before, wal.LockName)
	after := snapshotDir(t, dir)
	delete(after, wal.LockName)
	if fmt.Sprint(before) != fmt.Sprint(after) {
		t.Errorf("recover --dry-run changed the directory")
	}
	r = want(t, 0, "recover", dir)
	golden(t, "recover", r.stdout, dir)
	if _, err := os.Stat(filepath.Join(dir, vfs.TempPrefix+"journal.meta-x1")); err == nil {
		t.Errorf("the leftover temporary file is still there")
	}
	r = want(t, 0, "verify", dir)
	if !strings.Contains(r.stdout, "tail:      clean") {
		t.Errorf("verify after recover:\n%s", r.stdout)
	}
	r = want(t, 0, "recover", "--json", dir)
	if j := decodeJSON(t, r.stdout); j["status"] != "clean" {
		t.Errorf("second recover: %v", j)
	}
	checkLog(t, dir, 1, 300)
}

func TestRecoverCorruptionWithoutSalvage(t *testing.T) {
	// Damage in the newest segment followed by durable data, as a crash
	// leaves it (not sealed): Open refuses; recover reports it and
	// changes nothing.
	dir := makeLog(t, 300)
	unsealNewest(t, dir)
	flip(t, seg(dir, 255), 512*5+40)
	before := snapshotDir(t, dir)
	r := want(t, 1, "recover", dir)
	golden(t, "recover_corrupt", r.stdout, dir)
	delete(before, wal.LockName)
	after := snapshotDir(t, dir)
	delete(after, wal.LockName)
	if fmt.Sprint(before) != fmt.Sprint(after) {
		t.Errorf("recover without --salvage changed the directory")
	}
	if _, err := wal.Open(dir, logOptions()); err == nil {
		t.Fatal("Open accepted the damaged log")
	}
}

func TestRecoverSalvage(t *testing.T) {
	dir := makeLog(t, 300)
	corruptTwice(t, dir)
	orig := snapshotDir(t, dir)
	r := want(t, 1, "recover", "--salvage", "--dry-run", dir)
	golden(t, "recover_salvage_dry_run", r.stdout, dir)
	r = want(t, 1, "recover", "--salvage", dir)
	golden(t, "recover_salvage", r.stdout, dir)

	want(t, 0, "verify", dir)
	checkLog(t, dir, 1, 4)

	// The quarantine directory holds whole copies of every file that
	// changed or went, and a README.
	qs, _ := filepath.Glob(filepath.Join(dir, recovery.QuarantinePrefix+"*"))
	if len(qs) != 1 {
		t.Fatalf("quarantine directories: %v", qs)
	}
	q := snapshotDir(t, qs[0])
	for _, name := range []string{segment.Name(1), segment.Name(128), segment.Name(255)} {
		if q[name] != orig[name] {
			t.Errorf("quarantine copy of %s differs from the original", name)
		}
	}
	if !strings.Contains(q["README"], "records given up: 296") {
		t.Errorf("README:\n%s", q["README"])
	}
	// The quarantine directory is itself readable by the tools.
	r = want(t, 1, "verify", qs[0])
	if !strings.Contains(r.stdout, "record 5") {
		t.Errorf("verify of the quarantine directory:\n%s", r.stdout)
	}
	// Appends continue after the cut.
	l, err := wal.Open(dir, logOptions())
	if err != nil {
		t.Fatal(err)
	}
	if i, err := l.Append(record(5)); err != nil || i != 5 {
		t.Fatalf("Append after salvage: %d, %v", i, err)
	}
	l.Close()
	want(t, 0, "verify", dir)
}

// TestRecoverSalvageContinuesAfterTheSnapshot salvages a log whose damage
// lies before the snapshot's index: the log continues after the snapshot,
// and only records after it are given up.
func TestRecoverSalvageContinuesAfterTheSnapshot(t *testing.T) {
	dir := makeLog(t, 300)
	if err := checkpoint.Write(vfs.Default, dir, 200, checkpoint.WriteOptions{}, func(w io.Writer) error {
		_, err := io.WriteString(w, "state as of 200")
		return err
	}); err != nil {
		t.Fatal(err)
	}
	flip(t, seg(dir, 128), recordOffset(t, seg(dir, 128), 150)+40)
	r := want(t, 1, "recover", "--salvage", dir)
	golden(t, "recover_salvage_snapshot", r.stdout, dir)
	want(t, 0, "verify", dir)
	l, err := wal.Open(dir, logOptions())
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if l.FirstIndex() != 201 || l.LastIndex() != 200 {
		t.Fatalf("log holds [%d, %d], want empty from 201", l.FirstIndex(), l.LastIndex())
	}
}

func TestTruncate(t *testing.T) {
	dir := makeLog(t, 300)
	r := want(t, 0, "truncate", dir, "--front", "150", "--segment-size", "65536")
	golden(t, "truncate_front", r.stdout, dir)
	r = want(t, 0, "truncate", dir, "--back", "200", "--segment-size", "65536")
	golden(t, "truncate_back", r.stdout, dir)
	checkLog(t, dir, 150, 200)
	want(t, 0, "verify", dir)
	r = want(t, 2, "truncate", dir, "--front", "10")
	if !strings.Contains(r.stderr, "out of range") {
		t.Errorf("truncate out of range: %s", r.stderr)
	}
	want(t, 2, "truncate", dir, "--front", "1", "--back", "2")
	want(t, 2, "truncate", dir)
	// Past the end: the log is empty and continues at 500.
	want(t, 0, "truncate", dir, "--front", "500")
	want(t, 0, "verify", dir)
	checkLog(t, dir, 500, 499)
	// A damaged log cannot be opened: exit 1 and advice. (Damage before
	// durable data in a newest segment a crash left unsealed.)
	cdir := makeLog(t, 300)
	unsealNewest(t, cdir)
	flip(t, seg(cdir, 255), 512*5+40)
	r = want(t, 1, "truncate", cdir, "--back", "10")
	if !strings.Contains(r.stderr, "wal recover --salvage") {
		t.Errorf("truncate on a damaged log: %s", r.stderr)
	}
}

func TestCheckpoint(t *testing.T) {
	dir := makeLog(t, 300)
	r := want(t, 0, "checkpoint", dir)
	golden(t, "checkpoint_none", r.stdout, dir)
	l, err := wal.Open(dir, logOptions())
	if err != nil {
		t.Fatal(err)
	}
	if err := l.Checkpoint(250, func(w io.Writer) error {
		_, err := w.Write(bytes.Repeat([]byte("state "), 1000))
		return err
	}); err != nil {
		t.Fatal(err)
	}
	l.Close()
	r = want(t, 0, "checkpoint", dir)
	golden(t, "checkpoint", r.stdout, dir)
	r = want(t, 0, "info", dir)
	golden(t, "info_snapshot", r.stdout, dir)
	want(t, 0, "verify", dir)

	// A damaged snapshot: checkpoint and verify say so.
	flip(t, filepath.Join(dir, checkpoint.FileName), 100)
	want(t, 0, "checkpoint", dir) // the header and trailer are intact
	r = want(t, 1, "verify", dir)
	golden(t, "verify_snapshot_damaged", r.stdout, dir)
	flip(t, filepath.Join(dir, checkpoint.FileName), 16) // the index
	want(t, 1, "checkpoint", dir)
}

func TestBench(t *testing.T) {
	r := want(t, 0, "bench", "--duration", "300ms", "--writers", "4", "--size", "64")
	for _, h := range []string{"appends/s", "MB/s", "p50", "p99", "fdatasyncs/s", "records/fdatasync"} {
		if !strings.Contains(r.stdout, h) {
			t.Errorf("bench output lacks %q:\n%s", h, r.stdout)
		}
	}
	if r.stderr != "" {
		t.Errorf("bench drew progress into a pipe: %q", r.stderr)
	}
}

// TestBenchNoSync: without fdatasyncs there is no records-per-fdatasync
// figure; it used to print every record as one batch (300854.0).
func TestBenchNoSync(t *testing.T) {
	r := want(t, 0, "bench", "--duration", "100ms", "--writers", "2", "--size", "64", "--sync=false")
	lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
	fields := strings.Fields(lines[len(lines)-1])
	if len(fields) != 7 || fields[5] != "0" || fields[6] != "-" {
		t.Errorf("bench --sync=false: want 0 fdatasyncs/s and records/fdatasync \"-\", got:\n%s", r.stdout)
	}
}

func TestDemo(t *testing.T) {
	r := want(t, 0, "demo", "--records", "1000", "--kill-after", "200")
	for _, s := range []string{"SIGKILL", "checkpoint at index 500", "verified all", "Recovered()", "no damage"} {
		if !strings.Contains(r.stdout, s) {
			t.Errorf("demo output lacks %q:\n%s", s, r.stdout)
		}
	}
}

func TestUsageErrors(t *testing.T) {
	dir := makeLog(t, 3)
	for _, args := range [][]string{
		{},
		{"verify"},
		{"verify", dir, dir},
		{"verify", "--bogus", dir},
		{"frobnicate", dir},
		{"verify", filepath.Join(dir, "missing")},
		{"verify", filepath.Join(dir, segment.Name(1))},
		{"dump", dir, "--format", "xml"},
		{"dump", dir, "--from", "5", "--to", "2"},
		{"bench", "--writers", "0"},
	} {
		r := walRun(t, args...)
		if r.code != 2 {
			t.Errorf("wal %s: exit %d, want 2\n%s%s", strings.Join(args, " "), r.code, r.stdout, r.stderr)
		}
	}
	if r := walRun(t); !strings.Contains(r.stdout+r.stderr, "verify") {
		t.Errorf("wal with no command shows no help: %s", r.stdout+r.stderr)
	}
}

// TestHelp checks every command has help with an example.
func TestHelp(t *testing.T) {
	for _, c := range []string{"verify", "info", "dump", "recover", "truncate", "checkpoint", "bench", "demo"} {
		r := want(t, 0, c, "--help")
		if !strings.Contains(r.stdout, "Examples:") || !strings.Contains(r.stdout, "wal "+c) {
			t.Errorf("wal %s --help:\n%s", c, r.stdout)
		}
	}
}

// TestRecoverPendingRestart: a crash right after a TruncateFront past the
// end committed (journal.meta has EmptyPending): verify accepts the
// directory, recover finishes the restart and says so, and the log is
// empty at the new index.
func TestRecoverPendingRestart(t *testing.T) {
	dir := makeLog(t, 300)
	if err := recovery.WriteMeta(vfs.Default, dir, recovery.Meta{FirstIndex: 500, EmptyPending: true}); err != nil {
		t.Fatal(err)
	}
	want(t, 0, "verify", dir)
	r := want(t, 0, "recover", "--dry-run", dir)
	if !strings.Contains(r.stdout, "TruncateFront past the end, to an empty log at 500, would be finished") {
		t.Errorf("recover --dry-run:\n%s", r.stdout)
	}
	r = want(t, 0, "recover", dir)
	if !strings.Contains(r.stdout, "to an empty log at 500, was finished") {
		t.Errorf("recover:\n%s", r.stdout)
	}
	want(t, 0, "verify", dir)
	checkLog(t, dir, 500, 499)
}

// A cleanly closed log has a manifest (recovery.ManifestName) that a
// default Open believes: `wal verify` never does, so a sealed footer
// damaged since is reported; and `wal recover`, which changes the
// directory, removes the manifest first.
func TestManifestVerifyAndRecover(t *testing.T) {
	dir := makeLog(t, 300)
	manifest := filepath.Join(dir, recovery.ManifestName)
	if _, err := os.Stat(manifest); err != nil {
		t.Fatalf("Close wrote no manifest: %v", err)
	}
	p := seg(dir, 1)
	flip(t, p, footerOffset(t, p)+int64(segment.FrameHeader)+8) // an entry of the footer's index
	j := decodeJSON(t, want(t, 1, "verify", "--json", dir).stdout)
	damage, _ := j["damage"].([]any)
	if len(damage) == 0 || damage[0].(map[string]any)["file"] != segment.Name(1) {
		t.Fatalf("verify --json: want damage in %s: %v", segment.Name(1), j)
	}
	flip(t, p, footerOffset(t, p)+int64(segment.FrameHeader)+8) // repaired

	// A crash-like newest segment (unsealed, a torn tail after it) beside
	// the manifest: recover cuts the tail, and the manifest goes first.
	path, end := newestEnd(t, dir)
	writeAt(t, path, end, bytes.Repeat([]byte{0xa5}, 100))
	want(t, 0, "recover", dir)
	if _, err := os.Stat(manifest); err == nil {
		t.Fatal("recover changed the directory and left the manifest")
	}
	want(t, 0, "verify", dir)
	checkLog(t, dir, 1, 300)
}

// A damaged record inside a sealed segment does not stop a default Open,
// but Read fails there: recover, dry run or not, reports it as verify does
// (exit 1) and leaves it to --salvage. The dry run used to say "nothing to
// repair" (exit 0) where the real run and verify said damaged.
func TestRecoverReportsDamageInsideASealedSegment(t *testing.T) {
	dir := makeLog(t, 300)
	flip(t, seg(dir, 1), recordOffset(t, seg(dir, 1), 40)+40)
	want(t, 1, "verify", dir)
	before := snapshotDir(t, dir)
	for _, args := range [][]string{{"--dry-run"}, {}} {
		r := want(t, 1, append([]string{"recover"}, append(args, dir)...)...)
		if !strings.Contains(r.stdout, "inside it are damaged") || !strings.Contains(r.stdout, "record 40") {
			t.Errorf("recover %v:\n%s", args, r.stdout)
		}
		j := decodeJSON(t, want(t, 1, append([]string{"recover", "--json"}, append(args, dir)...)...).stdout)
		if j["status"] != "damaged" {
			t.Errorf("recover --json %v: status %v, want damaged", args, j["status"])
		}
	}
	delete(before, wal.LockName)
	after := snapshotDir(t, dir)
	delete(after, wal.LockName)
	if fmt.Sprint(before) != fmt.Sprint(after) {
		t.Errorf("recover without --salvage changed a log whose only damage is inside a sealed segment")
	}
}
