package main

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gojournal/journal/checkpoint"
	"github.com/gojournal/journal/recovery"
	"github.com/gojournal/journal/segment"
	"github.com/gojournal/journal/vfs"
	"github.com/gojournal/journal/wal"
)

// These tests play the operator at 3 a.m. and an outside checker: they build
// damaged directories of kinds the random agreement battery (fuzz/agree_test.go)
// does not make (file kinds other than regular files, headers cut short,
// overlapping segments, leftovers of every file the log writes, a log
// directory reached through a symlink) and check that every command of wal
// and wal.Open agree on each, that none panics or hangs, and that recover
// leaves a log that opens.

// operatorTimeout bounds each command: a tool that blocks (on a FIFO, say)
// fails the test instead of hanging it.
const operatorTimeout = 20 * time.Second

// walRunTimed runs the binary with a deadline and reports a hang as a
// failure.
func walRunTimed(t *testing.T, args ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), operatorTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, walBinary, args...)
	var out, errb strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	if ctx.Err() != nil {
		t.Fatalf("wal %s: still running after %v (blocked?)", strings.Join(args, " "), operatorTimeout)
	}
	r := result{stdout: out.String(), stderr: errb.String()}
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		r.code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("run wal %v: %v", args, err)
	}
	if strings.Contains(r.stderr, "panic:") || strings.Contains(r.stderr, "goroutine ") || r.code > exitError {
		t.Fatalf("wal %s crashed (exit %d):\n%s", strings.Join(args, " "), r.code, r.stderr)
	}
	return r
}

// openTimed is openOnce (Options.Verify) with a deadline; verify false
// opens as an application does by default.
func openTimed(t *testing.T, dir string, verify bool) opened {
	t.Helper()
	done := make(chan opened, 1)
	go func() {
		o := logOptions()
		o.Verify = verify
		l, err := wal.Open(dir, o)
		if err != nil {
			done <- opened{err: err}
			return
		}
		res := opened{first: l.FirstIndex(), last: l.LastIndex()}
		if err := l.Close(); err != nil {
			res.err = err
		}
		done <- res
	}()
	select {
	case o := <-done:
		return o
	case <-time.After(operatorTimeout):
		t.Fatalf("Open(%s) still running after %v (blocked?)", dir, operatorTimeout)
		return opened{}
	}
}

// A damage case makes its directory afresh for each judge, so that no
// command sees what another changed (file kinds such as FIFOs and symlinks
// do not copy as bytes).
type operatorCase struct {
	name   string
	damage func(t *testing.T, dir string)
}

func mkdir(t *testing.T, path string) {
	t.Helper()
	os.Remove(path)
	if err := os.Mkdir(path, 0o755); err != nil {
		t.Fatal(err)
	}
	// Not empty, so that no Remove of a file takes it away by accident.
	if err := os.WriteFile(filepath.Join(path, "x"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
}

func symlink(t *testing.T, target, path string) {
	t.Helper()
	os.Remove(path)
	if err := os.Symlink(target, path); err != nil {
		t.Fatal(err)
	}
}

func writeFile(t *testing.T, path string, b []byte) {
	t.Helper()
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

// checkpointed makes the log of makeLog(300) with a snapshot at 200.
func checkpointed(t *testing.T, dir string) {
	t.Helper()
	l, err := wal.Open(dir, logOptions())
	if err != nil {
		t.Fatal(err)
	}
	if err := l.Checkpoint(200, func(w io.Writer) error { _, err := w.Write([]byte("state at 200")); return err }); err != nil {
		t.Fatal(err)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
}

func operatorCases() []operatorCase {
	return []operatorCase{
		{"HeaderCutInsideMiddleSegment", func(t *testing.T, dir string) { truncateFile(t, seg(dir, 128), 20) }},
		{"HeaderCutInsideNewestSegment", func(t *testing.T, dir string) { truncateFile(t, seg(dir, 255), 33) }},
		{"ZeroLengthMiddleSegment", func(t *testing.T, dir string) { truncateFile(t, seg(dir, 128), 0) }},
		{"ZeroLengthNewestSegment", func(t *testing.T, dir string) { truncateFile(t, seg(dir, 255), 0) }},
		{"ZeroLengthFirstSegment", func(t *testing.T, dir string) { truncateFile(t, seg(dir, 1), 0) }},
		{"HeaderOnlyNewestSegment", func(t *testing.T, dir string) { truncateFile(t, seg(dir, 255), segment.DataStart) }},
		{"SegmentFromAnotherLog", func(t *testing.T, dir string) {
			// A healthy segment of another log, with its own salt, under the
			// same name: every checksum holds, and the records are not
			// this log's. The index chain still holds, so nothing can tell.
			other := makeLog(t, 300)
			b, err := os.ReadFile(seg(other, 128))
			if err != nil {
				t.Fatal(err)
			}
			writeFile(t, seg(dir, 128), b)
		}},
		{"OverlappingSegment", func(t *testing.T, dir string) {
			// A copy of segment 128 named as if it started at 100.
			b, err := os.ReadFile(seg(dir, 128))
			if err != nil {
				t.Fatal(err)
			}
			writeFile(t, seg(dir, 100), b)
		}},
		{"DuplicateSegmentAfterTheEnd", func(t *testing.T, dir string) {
			b, err := os.ReadFile(seg(dir, 128))
			if err != nil {
				t.Fatal(err)
			}
			writeFile(t, seg(dir, 400), b)
		}},
		{"MiddleSegmentMissing", func(t *testing.T, dir string) { os.Remove(seg(dir, 128)) }},
		{"NewestSegmentMissing", func(t *testing.T, dir string) { os.Remove(seg(dir, 255)) }},
		{"MetaCutShort", func(t *testing.T, dir string) {
			recovery.WriteMeta(vfs.Default, dir, recovery.Meta{FirstIndex: 50})
			truncateFile(t, filepath.Join(dir, recovery.MetaName), 5)
		}},
		{"MetaEmpty", func(t *testing.T, dir string) { writeFile(t, filepath.Join(dir, recovery.MetaName), nil) }},
		{"MetaLeftAsTemporary", func(t *testing.T, dir string) {
			writeFile(t, filepath.Join(dir, vfs.TempPrefix+recovery.MetaName+"-x1"), []byte("half a meta"))
		}},
		{"MetaIsADirectory", func(t *testing.T, dir string) { mkdir(t, filepath.Join(dir, recovery.MetaName)) }},
		{"MetaIsAFIFO", func(t *testing.T, dir string) { mkfifo(t, filepath.Join(dir, recovery.MetaName)) }},
		{"MetaIsADanglingSymlink", func(t *testing.T, dir string) {
			symlink(t, filepath.Join(dir, "nowhere"), filepath.Join(dir, recovery.MetaName))
		}},
		{"ManifestGarbage", func(t *testing.T, dir string) {
			writeFile(t, filepath.Join(dir, recovery.ManifestName), []byte("garbage"))
		}},
		{"ManifestIsADirectory", func(t *testing.T, dir string) { mkdir(t, filepath.Join(dir, recovery.ManifestName)) }},
		{"ManifestIsAFIFO", func(t *testing.T, dir string) { mkfifo(t, filepath.Join(dir, recovery.ManifestName)) }},
		{"TailFileGarbage", func(t *testing.T, dir string) {
			writeFile(t, filepath.Join(dir, recovery.TailName), []byte("garbage"))
		}},
		{"TailIsAFIFO", func(t *testing.T, dir string) { mkfifo(t, filepath.Join(dir, recovery.TailName)) }},
		{"SnapshotCutShort", func(t *testing.T, dir string) {
			checkpointed(t, dir)
			truncateFile(t, filepath.Join(dir, checkpoint.FileName), 10)
		}},
		{"SnapshotLeftAsTemporary", func(t *testing.T, dir string) {
			writeFile(t, filepath.Join(dir, vfs.TempPrefix+checkpoint.FileName+"-x1"), []byte("half a snapshot"))
		}},
		{"SnapshotIsADirectory", func(t *testing.T, dir string) { mkdir(t, filepath.Join(dir, checkpoint.FileName)) }},
		{"SnapshotIsAFIFO", func(t *testing.T, dir string) { mkfifo(t, filepath.Join(dir, checkpoint.FileName)) }},
		{"SegmentIsADirectory", func(t *testing.T, dir string) { mkdir(t, seg(dir, 128)) }},
		{"NewestSegmentIsADirectory", func(t *testing.T, dir string) { mkdir(t, seg(dir, 255)) }},
		{"SegmentIsAFIFO", func(t *testing.T, dir string) { mkfifo(t, seg(dir, 128)) }},
		{"NewestSegmentIsAFIFO", func(t *testing.T, dir string) { mkfifo(t, seg(dir, 255)) }},
		{"SegmentIsADanglingSymlink", func(t *testing.T, dir string) {
			symlink(t, filepath.Join(dir, "nowhere"), seg(dir, 128))
		}},
		{"SegmentIsASymlinkToAnother", func(t *testing.T, dir string) { symlink(t, segment.Name(1), seg(dir, 128)) }},
		{"SegmentIsASymlinkToDevNull", func(t *testing.T, dir string) { symlink(t, os.DevNull, seg(dir, 128)) }},
		{"TemporaryIsADirectory", func(t *testing.T, dir string) { mkdir(t, filepath.Join(dir, vfs.TempPrefix+"spare")) }},
		{"TemporaryIsAFIFO", func(t *testing.T, dir string) { mkfifo(t, filepath.Join(dir, vfs.TempPrefix+"spare")) }},
		{"ForeignFilesAndDirectories", func(t *testing.T, dir string) {
			writeFile(t, filepath.Join(dir, "notes.txt"), []byte("hello"))
			mkdir(t, filepath.Join(dir, "backup"))
			mkfifo(t, filepath.Join(dir, "pipe"))
			symlink(t, "/nowhere", filepath.Join(dir, "dangling"))
		}},
		{"LockIsADirectory", func(t *testing.T, dir string) { mkdir(t, filepath.Join(dir, wal.LockName)) }},
		{"LockIsAFIFO", func(t *testing.T, dir string) { mkfifo(t, filepath.Join(dir, wal.LockName)) }},
	}
}

// makeOperatorDir is makeLog(300) (segments 1, 128 and 255, the newest
// sealed by Close) damaged by c.
func makeOperatorDir(t *testing.T, c operatorCase) string {
	dir := makeLog(t, 300)
	c.damage(t, dir)
	return dir
}

// TestOperatorAgreement: on each damaged directory, `wal verify` and Open
// (with Options.Verify) agree in kind: exit 0 and Open succeeds with the
// records verify lists; exit 1 and Open fails with ErrCorrupt or ErrFormat;
// exit 2 (an I/O error) and Open fails too, with neither sentinel. A
// default Open succeeds wherever verify found no damage. The other
// commands neither panic nor hang, and recover (with --salvage where
// verify found damage) leaves a directory that verify passes, Open opens,
// and a second recover leaves unchanged.
func TestOperatorAgreement(t *testing.T) {
	for _, c := range operatorCases() {
		t.Run(c.name, func(t *testing.T) {
			dir := makeOperatorDir(t, c)
			v := walRunTimed(t, "verify", "--json", dir)
			o := openTimed(t, makeOperatorDir(t, c), true)
			t.Logf("verify exit %d: %s\nstderr: %s\nOpen: %v", v.code, v.stdout, v.stderr, o.err)
			switch v.code {
			case exitOK:
				if o.err != nil {
					t.Fatalf("verify exit 0, Open with Verify: %v", o.err)
				}
				j := decodeJSON(t, v.stdout)
				if j["first_index"] != float64(o.first) || j["last_index"] != float64(o.last) {
					t.Errorf("verify lists [%v, %v], Open holds [%d, %d]", j["first_index"], j["last_index"], o.first, o.last)
				}
				if d := openTimed(t, makeOperatorDir(t, c), false); d.err != nil {
					t.Errorf("verify exit 0, a default Open: %v", d.err)
				}
			case exitDamage:
				if !errors.Is(o.err, wal.ErrCorrupt) && !errors.Is(o.err, wal.ErrFormat) {
					t.Fatalf("verify exit 1, Open with Verify: %v (want ErrCorrupt or ErrFormat)", o.err)
				}
			case exitError:
				if o.err == nil || errors.Is(o.err, wal.ErrCorrupt) || errors.Is(o.err, wal.ErrFormat) {
					t.Fatalf("verify exit 2 (%s), Open with Verify: %v (want an I/O error)", strings.TrimSpace(v.stderr), o.err)
				}
				if !strings.Contains(v.stderr, dir) {
					t.Errorf("verify's error does not name the directory or file: %s", v.stderr)
				}
			}
			for _, args := range [][]string{{"info"}, {"dump", "--format", "json"}, {"checkpoint"}, {"recover", "--dry-run"}, {"recover", "--salvage", "--dry-run"}} {
				walRunTimed(t, append(args, dir)...)
			}
			sameDirIgnoringLock(t, dir, makeOperatorDir(t, c))
			operatorRecover(t, c, v.code)
		})
	}
}

// operatorRecover runs recover (with --salvage after damage) on a fresh
// copy of the case and checks what it leaves.
func operatorRecover(t *testing.T, c operatorCase, verifyCode int) {
	t.Helper()
	dir := makeOperatorDir(t, c)
	args := []string{"recover", dir}
	if verifyCode == exitDamage {
		args = []string{"recover", "--salvage", dir}
	}
	r := walRunTimed(t, args...)
	t.Logf("%s: exit %d\n%s%s", strings.Join(args, " "), r.code, r.stdout, r.stderr)
	if r.code == exitError {
		if verifyCode != exitError {
			t.Errorf("recover exit 2 where verify exited %d", verifyCode)
		}
		return
	}
	if strings.Contains(r.stdout, "refused") {
		return // salvage refuses some kinds of damage, and says so
	}
	if v := walRunTimed(t, "verify", dir); v.code != exitOK {
		t.Fatalf("after %s, verify exit %d:\n%s%s", strings.Join(args, " "), v.code, v.stdout, v.stderr)
	}
	if o := openTimed(t, dir, true); o.err != nil {
		t.Fatalf("after %s, Open: %v", strings.Join(args, " "), o.err)
	}
	before := regularFiles(t, dir)
	again := walRunTimed(t, args...)
	if again.code != exitOK || !strings.Contains(again.stdout, "nothing to repair") {
		t.Errorf("a second %s: exit %d\n%s", strings.Join(args, " "), again.code, again.stdout)
	}
	delete(before, wal.LockName)
	after := regularFiles(t, dir)
	delete(after, wal.LockName)
	if len(before) != len(after) {
		t.Errorf("a second recover changed the directory: %v -> %v", keys(before), keys(after))
	}
	for k, b := range before {
		if after[k] != b {
			t.Errorf("a second recover changed %s", k)
		}
	}
}

func keys(m map[string]string) []string {
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	return ks
}

// sameDirIgnoringLock checks that the read-only commands and dry runs left
// dir as a fresh copy of the case is: the same names, kinds and, for
// regular files, contents.
func sameDirIgnoringLock(t *testing.T, dir, fresh string) {
	t.Helper()
	got, wantKinds := dirKinds(t, dir), dirKinds(t, fresh)
	delete(got, wal.LockName)
	delete(wantKinds, wal.LockName)
	for name, k := range wantKinds {
		if got[name] != k {
			t.Errorf("%s: %q after the read-only commands, %q in a fresh copy", name, got[name], k)
		}
	}
	for name := range got {
		if _, ok := wantKinds[name]; !ok {
			t.Errorf("%s appeared", name)
		}
	}
}

// dirKinds maps each name in dir to its kind and, for a regular file, its
// size (contents differ between copies: each log has its own salts).
func dirKinds(t *testing.T, dir string) map[string]string {
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	m := map[string]string{}
	for _, e := range entries {
		fi, err := os.Lstat(filepath.Join(dir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		m[e.Name()] = fi.Mode().Type().String()
		if fi.Mode().IsRegular() {
			m[e.Name()] += " " + strconv.FormatInt(fi.Size(), 10)
		}
	}
	return m
}

// regularFiles is snapshotDir for a directory that may hold FIFOs (which
// reading would block on): the contents of its regular files, and the kind
// of everything else.
func regularFiles(t *testing.T, dir string) map[string]string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	m := map[string]string{}
	for _, e := range entries {
		if !e.Type().IsRegular() {
			m[e.Name()] = e.Type().String()
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

// TestVerifyMisnamedSegment: a sealed segment under another segment's name
// (a copy an operator left beside the log, after its end or overlapping
// it) is one damaged file: verify reports its header, and does not go on to
// read its frames under the name's indexes, which made up a damage line per
// record ("frame carries index 128, expected 100"), one whose reason was
// "valid", and a record range ending where the copy's footer ends rather
// than where the log does.
func TestVerifyMisnamedSegment(t *testing.T) {
	for _, tc := range []struct {
		name string
		at   uint64 // the copy of segment 128 is named as if it started here
	}{{"AfterTheEnd", 400}, {"Overlapping", 100}} {
		t.Run(tc.name, func(t *testing.T) {
			dir := makeLog(t, 300)
			b, err := os.ReadFile(seg(dir, 128))
			if err != nil {
				t.Fatal(err)
			}
			writeFile(t, seg(dir, tc.at), b)
			j := verifyJSON(t, 1, dir)
			t.Logf("verify: %v", j)
			if j["first_index"] != 1.0 || j["last_index"] != 300.0 {
				t.Errorf("verify lists records [%v, %v], the log's segments hold [1, 300]", j["first_index"], j["last_index"])
			}
			damage, _ := j["damage"].([]any)
			if len(damage) > 2 {
				t.Errorf("verify reports %d damaged places for one misnamed file", len(damage))
			}
			for _, d := range damage {
				m := d.(map[string]any)
				if m["file"] != segment.Name(tc.at) || m["reason"] == "valid" {
					t.Errorf("damage %v: want the misnamed file %s, with a reason", m, segment.Name(tc.at))
				}
			}
			if o := openTimed(t, dir, true); !errors.Is(o.err, wal.ErrCorrupt) {
				t.Errorf("Open: %v, want ErrCorrupt", o.err)
			}
		})
	}
}

// TestJSONOnErrors: with --json, a command that ends in an error (exit 2)
// still prints one JSON object on stdout, with status "error" and the
// message naming the file, so a script that parses stdout never meets an
// empty document; the message goes to stderr as well.
func TestJSONOnErrors(t *testing.T) {
	dir := makeLog(t, 10)
	notDir := seg(dir, 1)
	lockDir := makeLog(t, 10)
	mkdir(t, filepath.Join(lockDir, wal.LockName))
	held := makeLog(t, 10)
	l, err := wal.Open(held, logOptions())
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	for _, tc := range []struct {
		args []string
		file string // the path the message must name
	}{
		{[]string{"verify", "--json", notDir}, notDir},
		{[]string{"info", "--json", filepath.Join(dir, "missing")}, filepath.Join(dir, "missing")},
		{[]string{"verify", "--json", lockDir}, filepath.Join(lockDir, wal.LockName)},
		{[]string{"recover", "--json", lockDir}, filepath.Join(lockDir, wal.LockName)},
		{[]string{"recover", "--json", held}, held},
		{[]string{"recover", "--salvage", "--dry-run", "--json", notDir}, notDir},
	} {
		r := walRunTimed(t, tc.args...)
		if r.code != exitError {
			t.Errorf("wal %s: exit %d, want 2\n%s%s", strings.Join(tc.args, " "), r.code, r.stdout, r.stderr)
			continue
		}
		var j struct {
			Status string `json:"status"`
			Error  string `json:"error"`
		}
		if err := json.Unmarshal([]byte(r.stdout), &j); err != nil {
			t.Errorf("wal %s: stdout is not JSON (%v): %q", strings.Join(tc.args, " "), err, r.stdout)
			continue
		}
		if j.Status != "error" || !strings.Contains(j.Error, tc.file) || !strings.Contains(r.stderr, j.Error) {
			t.Errorf("wal %s: %+v, want status error naming %s (stderr %q)", strings.Join(tc.args, " "), j, tc.file, r.stderr)
		}
	}
}

// TestTruncateRefusesADamagedLog: a cleanly closed log (with its manifest)
// whose sealed segment was damaged since: verify and recover call it
// damaged (exit 1), and truncate, whose help promises exit 1 for a log
// Open refuses, must not go ahead and report success on it (a default
// Open believes the manifest and opens no sealed segment). The directory
// is left as it was.
func TestTruncateRefusesADamagedLog(t *testing.T) {
	for _, args := range [][]string{{"--front", "5"}, {"--back", "100"}} {
		dir := makeLog(t, 300)
		truncateFile(t, seg(dir, 128), 20)
		want(t, exitDamage, "verify", dir)
		want(t, exitDamage, "recover", "--dry-run", dir)
		before := snapshotDir(t, dir)
		r := want(t, exitDamage, append([]string{"truncate", dir}, args...)...)
		if !strings.Contains(r.stderr, segment.Name(128)) || !strings.Contains(r.stderr, "wal recover --salvage") {
			t.Errorf("truncate %v: the message names neither the file nor what to do: %s", args, r.stderr)
		}
		sameDir(t, dir, before)
	}
}

// TestBenchRefusesRecordsTooLarge: `wal bench --size` beyond what a record
// may hold is a usage error (exit 2) naming the limit; it made every writer
// allocate a record of that size first, and a size in the hundreds of
// gigabytes ended the process with a fatal out-of-memory error.
func TestBenchRefusesRecordsTooLarge(t *testing.T) {
	for _, size := range []string{strconv.Itoa(wal.MaxRecordSize + 1), "999999999999"} {
		r := walRunTimed(t, "bench", "--dir", filepath.Join(t.TempDir(), "b"), "--duration", "10ms", "--writers", "1", "--size", size)
		if r.code != exitError || !strings.Contains(r.stderr, strconv.Itoa(wal.MaxRecordSize)) {
			t.Errorf("bench --size %s: exit %d, want 2 naming the limit %d:\n%s", size, r.code, wal.MaxRecordSize, r.stderr)
		}
	}
}
