package journal_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestReadmeQuickStart builds the README's Quick start as a newcomer would:
// the code block copied verbatim into the main.go of a module of its own
// that requires journal (through a replace of this checkout), then runs it
// and checks it prints what the README says. examples/quickstart is a
// different program, so without this test the README's snippet could stop
// compiling unnoticed.
func TestReadmeQuickStart(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a program with the go command")
	}
	goTool, err := exec.LookPath("go")
	if err != nil {
		t.Skip("no go command on PATH")
	}
	readme, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	code := codeBlock(t, string(readme), "## Quick start", "```go")
	const readmeDir = `"/tmp/myapp-wal"`
	if !strings.Contains(code, readmeDir) {
		t.Fatalf("the Quick start no longer opens %s: update this test\n%s", readmeDir, code)
	}
	root, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	mod := t.TempDir()
	logDir := filepath.Join(t.TempDir(), "myapp-wal")
	// The only change to the snippet: where the log goes, so that the test
	// neither shares /tmp/myapp-wal with anyone nor leaves it behind.
	code = strings.Replace(code, readmeDir, `"`+filepath.ToSlash(logDir)+`"`, 1)
	gomod := "module example.com/readme\n\ngo 1.25\n\nrequire github.com/gojournal/journal v0.0.0\n\n" +
		"replace github.com/gojournal/journal => " + root + "\n"
	sum, err := os.ReadFile("go.sum")
	if err != nil {
		t.Fatal(err)
	}
	for name, data := range map[string][]byte{"go.mod": []byte(gomod), "go.sum": sum, "main.go": []byte(code)} {
		if err := os.WriteFile(filepath.Join(mod, name), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for run := 1; run <= 2; run++ {
		cmd := exec.Command(goTool, "run", ".")
		cmd.Dir = mod
		cmd.Env = append(os.Environ(), "GOFLAGS=-mod=mod", "GOWORK=off")
		out, err := cmd.Output()
		if err != nil {
			stderr := ""
			if ee, ok := err.(*exec.ExitError); ok {
				stderr = string(ee.Stderr)
			}
			t.Fatalf("go run of the README's Quick start (run %d): %v\n%s%s", run, err, out, stderr)
		}
		// Each run appends one record to the same log: record 1, then 2.
		want := "record " + string(rune('0'+run)) + ": hello (<nil>)\n"
		if string(out) != want {
			t.Errorf("run %d printed %q, want %q", run, out, want)
		}
	}
}

// codeBlock returns the first code block opened by fence after the line
// heading in a Markdown text.
func codeBlock(t *testing.T, text, heading, fence string) string {
	t.Helper()
	_, after, ok := strings.Cut(text, "\n"+heading+"\n")
	if !ok {
		t.Fatalf("README has no %q section", heading)
	}
	_, after, ok = strings.Cut(after, "\n"+fence+"\n")
	if !ok {
		t.Fatalf("no %s block after %q", fence, heading)
	}
	code, _, ok := strings.Cut(after, "\n```\n")
	if !ok {
		t.Fatalf("unterminated %s block after %q", fence, heading)
	}
	return code + "\n"
}
