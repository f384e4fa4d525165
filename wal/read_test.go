package wal

import (
	"bytes"
	"testing"
)

// TestReadKeepsFewIndexes reads every record of a log of many sealed
// segments, twice, in an order that wanders over all of them: Read keeps
// the footer index of at most maxIndexed segments in memory, and reads
// right through segments whose index it dropped.
func TestReadKeepsFewIndexes(t *testing.T) {
	l := openT(t, t.TempDir(), &Options{SegmentSize: MinSegmentSize, Logger: quiet})
	defer l.Close()
	const n = 3000
	appendN(t, l, n)
	if segs := l.Metrics().Segments; segs < 3*maxIndexed {
		t.Fatalf("%d segments: the test needs more than %d", segs, 3*maxIndexed)
	}
	for round := range 2 {
		for k := range n {
			i := uint64(1 + (k*7919+round)%n) // 7919 is prime: every index once
			got, err := l.Read(i)
			if err != nil || !bytes.Equal(got, record(i)) {
				t.Fatalf("Read(%d): %q, %v; want %q", i, got, err, record(i))
			}
			l.mu.Lock()
			kept := len(l.indexed)
			l.mu.Unlock()
			if kept > maxIndexed {
				t.Fatalf("%d segment indexes in memory, want at most %d", kept, maxIndexed)
			}
		}
	}
}
