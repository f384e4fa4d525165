package wal

import (
	"errors"
	"math"
	"testing"
)

// TestTruncateFrontLeavesRoomToAppend: TruncateFront past the end may start
// an empty log anywhere up to MaxFirstIndex, never so high that appends
// would run out of indexes. TruncateFront(math.MaxUint64) (`wal truncate
// --front 18446744073709551615`) was accepted: the first Append got
// math.MaxUint64, the second index 0 with a nil error, and the log, closed
// cleanly, no longer opened (ErrCorrupt: its first index lay past its end).
func TestTruncateFrontLeavesRoomToAppend(t *testing.T) {
	const top = 1 << 63 // maxFirstIndex, as TruncateFront documents it
	for _, at := range []uint64{math.MaxUint64, math.MaxUint64 - 1, top + 1} {
		l := openT(t, t.TempDir(), &Options{SegmentSize: MinSegmentSize, Logger: quiet})
		appendN(t, l, 3)
		if err := l.TruncateFront(at); !errors.Is(err, ErrOutOfRange) {
			t.Errorf("TruncateFront(%d): %v, want ErrOutOfRange", at, err)
		}
		checkRange(t, l, 1, 3)
		if err := l.Close(); err != nil {
			t.Fatal(err)
		}
	}
	dir := t.TempDir()
	o := &Options{SegmentSize: MinSegmentSize, Logger: quiet}
	l := openT(t, dir, o)
	if err := l.TruncateFront(top); err != nil {
		t.Fatalf("TruncateFront(%d): %v", uint64(top), err)
	}
	appendN(t, l, 3)
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	l = openT(t, dir, o)
	defer l.Close()
	checkRange(t, l, top, top+2)
}
