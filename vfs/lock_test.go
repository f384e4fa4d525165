package vfs_test

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/gojournal/journal/vfs"
)

// TestLockExcludes checks the lock of every platform: a second Lock, in
// this process (through another path to the same file too) or in another
// process, fails with ErrLocked while the first is held, and succeeds once
// it is released.
func TestLockExcludes(t *testing.T) {
	dir := t.TempDir()
	name := filepath.Join(dir, "LOCK")
	l, err := vfs.Default.Lock(name)
	if err != nil {
		t.Fatal(err)
	}
	// The path through a symbolic link names the same file; where links
	// cannot be made, the plain path is tried twice.
	alias := filepath.Join(dir, "alias")
	if err := os.Symlink(dir, alias); err != nil {
		alias = dir
	}
	for _, path := range []string{name, filepath.Join(alias, "LOCK")} {
		if _, err := vfs.Default.Lock(path); !errors.Is(err, vfs.ErrLocked) {
			t.Fatalf("second Lock(%s) in this process = %v, want ErrLocked", path, err)
		}
	}
	// The failed attempts must not have dropped the lock (with POSIX
	// record locks, closing any descriptor of the file would).
	if out, err := lockInChild(name); err == nil || !errors.Is(err, errChildLocked) {
		t.Fatalf("Lock in another process while held: %v\n%s", err, out)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if out, err := lockInChild(name); err != nil {
		t.Fatalf("Lock in another process after release: %v\n%s", err, out)
	}
	l, err = vfs.Default.Lock(name)
	if err != nil {
		t.Fatalf("Lock after release: %v", err)
	}
	l.Close()
}

var errChildLocked = errors.New("the child found the lock held")

// lockInChild runs TestLockChild in a new process on name.
func lockInChild(name string) ([]byte, error) {
	cmd := exec.Command(os.Args[0], "-test.run=^TestLockChild$")
	cmd.Env = append(os.Environ(), "JOURNAL_LOCK_CHILD="+name)
	out, err := cmd.CombinedOutput()
	var ee *exec.ExitError
	if errors.As(err, &ee) && ee.ExitCode() == 3 {
		return out, errChildLocked
	}
	return out, err
}

// TestLockChild is the other process of TestLockExcludes: it exits 3 when
// the lock is held, 0 when it took it.
func TestLockChild(t *testing.T) {
	name := os.Getenv("JOURNAL_LOCK_CHILD")
	if name == "" {
		t.Skip("run by TestLockExcludes in a child process")
	}
	l, err := vfs.Default.Lock(name)
	if errors.Is(err, vfs.ErrLocked) {
		os.Exit(3)
	}
	if err != nil {
		t.Fatal(err)
	}
	l.Close()
}
