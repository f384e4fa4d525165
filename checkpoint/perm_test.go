//go:build unix

package checkpoint_test

import (
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/gojournal/journal/checkpoint"
)

// TestWriteFilePermissions: a replaced file keeps its permission bits
// whatever the umask; a new one gets perm less the umask. The umask is
// process-wide, so this test must not run in parallel with others.
func TestWriteFilePermissions(t *testing.T) {
	tests := []struct {
		name     string
		umask    int
		existing fs.FileMode // 0: no file yet
		perm     fs.FileMode
		want     fs.FileMode
	}{
		{"NewFileGetsPermLessUmask", 0o022, 0, 0o666, 0o644},
		{"NewFileUnderStrictUmask", 0o077, 0, 0o666, 0o600},
		{"NewFileWithPrivatePerm", 0o022, 0, 0o600, 0o600},
		{"Existing0600Stays0600", 0o022, 0o600, 0o666, 0o600},
		{"Existing0640Stays0640", 0o022, 0o640, 0o666, 0o640},
		{"Existing0664SurvivesUmask077", 0o077, 0o664, 0o600, 0o664}, // without an explicit chmod: 0600
		{"Existing0777SurvivesUmask022", 0o022, 0o777, 0o644, 0o777}, // without an explicit chmod: 0755
		{"ExistingReadOnlyStaysReadOnly", 0o022, 0o400, 0o666, 0o400},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			old := syscall.Umask(tt.umask)
			defer syscall.Umask(old)
			path := filepath.Join(t.TempDir(), "state.json")
			if tt.existing != 0 {
				if err := os.WriteFile(path, []byte("old"), 0o600); err != nil {
					t.Fatal(err)
				}
				if err := os.Chmod(path, tt.existing); err != nil {
					t.Fatal(err)
				}
			}
			err := checkpoint.WriteFile(path, tt.perm, func(w io.Writer) error {
				_, err := io.WriteString(w, "new")
				return err
			})
			if err != nil {
				t.Fatal(err)
			}
			fi, err := os.Stat(path)
			if err != nil {
				t.Fatal(err)
			}
			if got := fi.Mode().Perm(); got != tt.want {
				t.Errorf("mode %#o, want %#o", got, tt.want)
			}
			if b, _ := os.ReadFile(path); string(b) != "new" {
				t.Errorf("contents %q, want \"new\"", b)
			}
			if ts := temps(t, filepath.Dir(path)); len(ts) != 0 {
				t.Errorf("temporary files left: %q", ts)
			}
		})
	}
}

// TestSnapshotKeepsOperatorsMode: an operator's chmod of the snapshot
// survives the next checkpoint.
func TestSnapshotKeepsOperatorsMode(t *testing.T) {
	old := syscall.Umask(0o022)
	defer syscall.Umask(old)
	dir := t.TempDir()
	mustWrite(t, dir, 1, false, []byte("one"))
	if fi, _ := os.Stat(snapshotPath(dir)); fi.Mode().Perm() != 0o644 {
		t.Fatalf("new snapshot mode %#o, want 0644", fi.Mode().Perm())
	}
	if err := os.Chmod(snapshotPath(dir), 0o600); err != nil {
		t.Fatal(err)
	}
	mustWrite(t, dir, 2, true, []byte("two"))
	if fi, _ := os.Stat(snapshotPath(dir)); fi.Mode().Perm() != 0o600 {
		t.Fatalf("replaced snapshot mode %#o, want 0600", fi.Mode().Perm())
	}
}

func TestWriteFileRelativePath(t *testing.T) {
	t.Chdir(t.TempDir())
	if err := checkpoint.WriteFile("state", 0o644, func(w io.Writer) error {
		_, err := io.WriteString(w, "x")
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if b, err := os.ReadFile("state"); err != nil || string(b) != "x" {
		t.Fatalf("ReadFile = %q, %v", b, err)
	}
	if ts := temps(t, "."); len(ts) != 0 {
		t.Errorf("temporary files left: %q", ts)
	}
}
