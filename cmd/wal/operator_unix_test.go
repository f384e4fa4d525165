//go:build unix

package main

import (
	"os"
	"syscall"
	"testing"
)

// mkfifo replaces path by a named pipe: opening it for reading blocks
// until a writer comes, which no writer ever will.
func mkfifo(t *testing.T, path string) {
	t.Helper()
	os.Remove(path)
	if err := syscall.Mkfifo(path, 0o644); err != nil {
		t.Skipf("mkfifo: %v", err)
	}
}
