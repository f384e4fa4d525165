package wal

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/gojournal/journal/recovery"
)

// TestReadOnlyWithAGarbledTailFile: the tail file is never synced, so a
// power loss may leave it empty (its directory entry made durable by a
// later directory fsync, its bytes lost) or garbled, until the writer's
// next Open rewrites it. A follower opened meanwhile must show the log as
// Open would recover it, as it does without a tail file, not fail.
func TestReadOnlyWithAGarbledTailFile(t *testing.T) {
	for _, c := range []struct {
		name   string
		garble func(b []byte) []byte
	}{
		{"Empty", func([]byte) []byte { return nil }},
		{"Short", func(b []byte) []byte { return b[:20] }},
		{"Zeroed", func(b []byte) []byte { return make([]byte, len(b)) }},
		{"BadChecksum", func(b []byte) []byte { b[30] ^= 0xff; return b }},
	} {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			w := openT(t, dir, &Options{SegmentSize: MinSegmentSize, Logger: quiet})
			appendN(t, w, 200)
			must(t, w.Close())
			tail := filepath.Join(dir, recovery.TailName)
			must(t, os.WriteFile(tail, c.garble(readFile(t, tail)), 0o644))
			f, err := OpenReadOnly(dir, &Options{Logger: quiet})
			if err != nil {
				t.Fatalf("OpenReadOnly with a garbled tail file: %v", err)
			}
			defer f.Close()
			checkRange(t, f, 1, 200)
			r := f.NewReader(0)
			defer r.Close()
			wantIndexes(t, readAll(t, r), indexes(1, 200))
			must(t, r.Err())
		})
	}
}
