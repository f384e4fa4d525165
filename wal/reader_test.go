package wal

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"testing"
)

// readAll reads r to its current end, returning the indexes it yielded
// after checking that each record is record(index).
func readAll(t *testing.T, r *Reader) []uint64 {
	t.Helper()
	var got []uint64
	for r.Next() {
		if !bytes.Equal(r.Record(), record(r.Index())) {
			t.Fatalf("record %d = %q, want %q", r.Index(), r.Record(), record(r.Index()))
		}
		got = append(got, r.Index())
	}
	return got
}

// syncT syncs l: with NoSync, Readers see records only once synced.
func syncT(t *testing.T, l *Log) {
	t.Helper()
	if err := l.Sync(); err != nil {
		t.Fatal(err)
	}
}

// indexes lists [from, to].
func indexes(from, to uint64) []uint64 {
	var s []uint64
	for i := from; i <= to; i++ {
		s = append(s, i)
	}
	return s
}

func wantIndexes(t *testing.T, got, want []uint64) {
	t.Helper()
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("Reader returned %v, want %v", got, want)
	}
}

// wantReaderErr checks that the Reader stopped with an error satisfying
// errors.Is(err, target) whose message contains each of parts.
func wantReaderErr(t *testing.T, r *Reader, target error, parts ...string) {
	t.Helper()
	if r.Next() {
		t.Fatalf("Next returned record %d, want %v", r.Index(), target)
	}
	err := r.Err()
	if !errors.Is(err, target) || errors.Is(err, ErrCorrupt) {
		t.Fatalf("Reader stopped with %v, want %v", err, target)
	}
	for _, p := range parts {
		if !strings.Contains(err.Error(), p) {
			t.Fatalf("Reader error %q does not say %q", err, p)
		}
	}
	if r.Next() || r.Err() != err {
		t.Fatalf("the error is not sticky: Next again gives %v", r.Err())
	}
}

// A caller may append to the slice Record returns without damaging what
// the next Next reads.
func TestReaderRecordHasNoSpareCapacity(t *testing.T) {
	l := openT(t, t.TempDir(), &Options{NoSync: true})
	defer l.Close()
	// One batch: the frames are adjacent, with no padding between them.
	if _, err := l.AppendBatch([][]byte{record(1), record(2), record(3)}); err != nil {
		t.Fatal(err)
	}
	syncT(t, l)
	r := l.NewReader(1)
	defer r.Close()
	if !r.Next() {
		t.Fatalf("Next: %v", r.Err())
	}
	rec := r.Record()
	_ = append(rec, bytes.Repeat([]byte{0xff}, 64)...)
	wantIndexes(t, readAll(t, r), indexes(2, 3))
	if r.Err() != nil {
		t.Fatal(r.Err())
	}
	if cap(rec) != len(rec) {
		t.Fatalf("Record has capacity %d beyond its length %d", cap(rec), len(rec))
	}
}

// Records released by TruncateFront that a Reader has yet to return stop
// it with ErrCompacted naming them; it never skips ahead silently.
func TestReaderOvertakenByTruncateFront(t *testing.T) {
	l := openT(t, t.TempDir(), &Options{SegmentSize: MinSegmentSize, NoSync: true})
	defer l.Close()
	appendN(t, l, 1000) // several segments
	r := l.NewReader(1)
	defer r.Close()
	for range 2 {
		r.Next()
	}
	if err := l.TruncateFront(600); err != nil {
		t.Fatal(err)
	}
	wantReaderErr(t, r, ErrCompacted, "[3, 599]", "600")

	old := l.NewReader(10)
	defer old.Close()
	wantReaderErr(t, old, ErrCompacted, "[10, 599]")

	// A Reader at the new first record, and one from 0, start there.
	for _, from := range []uint64{0, 600} {
		r := l.NewReader(from)
		wantIndexes(t, readAll(t, r), indexes(600, 1000))
		if r.Err() != nil {
			t.Fatal(r.Err())
		}
		r.Close()
	}
}

// A Reader meeting a TruncateBack that leaves the records it returned
// returns the records kept and then those appended after the truncation,
// never the dropped ones (the window it read ahead holds them) and never
// ErrCorrupt (the seal overwrote them with a footer).
func TestReaderFollowsTruncateBackAboveIt(t *testing.T) {
	l := openT(t, t.TempDir(), &Options{NoSync: true})
	defer l.Close()
	appendN(t, l, 10)
	syncT(t, l)
	r := l.NewReader(1)
	defer r.Close()
	for range 2 {
		r.Next()
	}
	if err := l.TruncateBack(5); err != nil {
		t.Fatal(err)
	}
	wantIndexes(t, readAll(t, r), indexes(3, 5))
	if r.Err() != nil {
		t.Fatal(r.Err())
	}
	for i := uint64(6); i <= 8; i++ {
		if _, err := l.Append([]byte(fmt.Sprintf("new-%d", i))); err != nil {
			t.Fatal(err)
		}
	}
	syncT(t, l)
	for i := uint64(6); i <= 8; i++ {
		if !r.Next() || r.Index() != i || string(r.Record()) != fmt.Sprintf("new-%d", i) {
			t.Fatalf("after the truncation: %d %q (%v), want %d new-%d", r.Index(), r.Record(), r.Err(), i, i)
		}
	}
}

// TruncateBack(FirstIndex-1) deletes the active segment and creates one
// with the same name. A Reader that had returned the dropped records
// says so (ErrTruncated); it neither reads the deleted file nor reports
// the intact log as corrupt.
func TestReaderBelowTruncateBackToFirstIndex(t *testing.T) {
	l := openT(t, t.TempDir(), &Options{SegmentSize: MinSegmentSize, NoSync: true})
	defer l.Close()
	appendN(t, l, 500)
	sealed := l.sealedCopy()
	if len(sealed) == 0 {
		t.Fatal("want a sealed segment")
	}
	first := sealed[len(sealed)-1].next() // the active segment's first record
	if err := l.TruncateFront(first); err != nil {
		t.Fatal(err)
	}
	r := l.NewReader(first)
	defer r.Close()
	wantIndexes(t, readAll(t, r), indexes(first, 500))
	if err := l.TruncateBack(first - 1); err != nil {
		t.Fatal(err)
	}
	appendN(t, l, 700)
	wantReaderErr(t, r, ErrTruncated, "500", fmt.Sprintf("[%d, %d]", first, l.LastIndex()))

	// A fresh Reader reads the new records, once durable.
	syncT(t, l)
	r2 := l.NewReader(first)
	defer r2.Close()
	wantIndexes(t, readAll(t, r2), indexes(first, l.LastIndex()))
	if r2.Err() != nil {
		t.Fatal(r2.Err())
	}
}

// A Reader whose current record a TruncateBack dropped stops with
// ErrTruncated even when that index is filled again before it looks.
func TestReaderWhoseRecordWasReplaced(t *testing.T) {
	l := openT(t, t.TempDir(), &Options{NoSync: true})
	defer l.Close()
	appendN(t, l, 10)
	syncT(t, l)
	r := l.NewReader(1)
	defer r.Close()
	wantIndexes(t, readAll(t, r), indexes(1, 10))
	if err := l.TruncateBack(4); err != nil {
		t.Fatal(err)
	}
	appendN(t, l, 10)
	wantReaderErr(t, r, ErrTruncated, "record 10")
}

// After Close a Reader stops with ErrClosed.
func TestReaderAfterClose(t *testing.T) {
	l := openT(t, t.TempDir(), &Options{NoSync: true})
	appendN(t, l, 3)
	r := l.NewReader(1)
	defer r.Close()
	r.Next()
	l.Close()
	wantReaderErr(t, r, ErrClosed)
}
