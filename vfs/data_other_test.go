//go:build !linux || journal_portable

package vfs_test

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/gojournal/journal/vfs"
)

// dataKnownOn reports whether File.Data must know where data lies in dir.
// Outside Linux, and on the portable path, it never does (recovery then
// reads every byte): check that it says so rather than guess.
func dataKnownOn(t *testing.T, dir string) bool {
	f, err := vfs.Default.OpenFile(filepath.Join(dir, "probe"), os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, _, known, err := f.Data(0); known || err != nil {
		t.Fatalf("Data = known %v, %v; want unknown here", known, err)
	}
	return false
}
