package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
)

// goldenRoots hold log directories written by each format version (see
// wal/golden_test.go); every later build must read them.
var goldenRoots = []string{"../../wal/testdata/format-v1", "../../wal/testdata/format-v2", "../../wal/testdata/format-v3"}

// goldenExpect is the part of a case's expect.json that verify's report
// answers for.
type goldenExpect struct {
	FirstIndex uint64 `json:"first_index"`
	LastIndex  uint64 `json:"last_index"`
	Torn       *struct {
		Segment string `json:"segment"`
		Offset  int64  `json:"offset"`
	} `json:"torn"`
}

// TestVerifyGoldenFormat runs `wal verify --json` on a copy of each
// golden directory of each format version: no damage (exit 0), the
// records Open keeps, and a torn tail reported as such where Open cuts one.
func TestVerifyGoldenFormat(t *testing.T) {
	for _, root := range goldenRoots {
		t.Run(filepath.Base(root), func(t *testing.T) { verifyGoldenRoot(t, root) })
	}
}

func verifyGoldenRoot(t *testing.T, goldenRoot string) {
	cases, err := os.ReadDir(goldenRoot)
	if err != nil {
		t.Fatal(err)
	}
	if len(cases) == 0 {
		t.Fatalf("no cases in %s", goldenRoot)
	}
	for _, c := range cases {
		t.Run(c.Name(), func(t *testing.T) {
			src := filepath.Join(goldenRoot, c.Name())
			var exp goldenExpect
			if err := json.Unmarshal(readGolden(t, filepath.Join(src, "expect.json")), &exp); err != nil {
				t.Fatal(err)
			}
			dir := filepath.Join(t.TempDir(), "log")
			if err := os.Mkdir(dir, 0o755); err != nil {
				t.Fatal(err)
			}
			entries, err := os.ReadDir(src)
			if err != nil {
				t.Fatal(err)
			}
			for _, e := range entries {
				if e.Name() != "expect.json" {
					writeGolden(t, filepath.Join(dir, e.Name()), readGolden(t, filepath.Join(src, e.Name())))
				}
			}
			before := snapshotDir(t, dir)
			r := walRun(t, "verify", "--json", dir)
			var rep struct {
				Status     string `json:"status"`
				FirstIndex uint64 `json:"first_index"`
				LastIndex  uint64 `json:"last_index"`
			}
			if err := json.Unmarshal([]byte(r.stdout), &rep); err != nil {
				t.Fatalf("verify --json: exit %d, %v\nstdout:\n%s\nstderr:\n%s", r.code, err, r.stdout, r.stderr)
			}
			status := "ok"
			if exp.Torn != nil {
				status = "torn"
			}
			if r.code != 0 || rep.Status != status || rep.FirstIndex != exp.FirstIndex || rep.LastIndex != exp.LastIndex {
				t.Errorf("verify --json: exit %d, status %q, records [%d, %d]; want exit 0, status %q, records [%d, %d]\nstdout:\n%s",
					r.code, rep.Status, rep.FirstIndex, rep.LastIndex, status, exp.FirstIndex, exp.LastIndex, r.stdout)
			}
			sameDir(t, dir, before)
		})
	}
}

func readGolden(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func writeGolden(t *testing.T, path string, b []byte) {
	t.Helper()
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
}
