package main

import (
	"fmt"
	"strings"
	"testing"
)

// TestRun runs the example and checks its story: the stopped node comes
// back and reads a key written while it was down. A second run on the
// same directory reopens every node's journal.
func TestRun(t *testing.T) {
	dir := t.TempDir()
	for _, keys := range []int{50, 60} {
		var out strings.Builder
		if err := run(dir, keys, &out); err != nil {
			t.Fatalf("run: %v\n%s", err, out.String())
		}
		t.Log("\n" + out.String())
		// The last key written while the node was down, read on it.
		want := fmt.Sprintf("reads while-down-%03d = %d\n", keys-1, keys-1)
		if !strings.Contains(out.String(), want) || !strings.Contains(out.String(), "caught up") {
			t.Fatalf("output lacks the rejoin:\n%s", out.String())
		}
	}
}
