package cursor

import (
	"errors"
	"strings"
	"testing"

	"github.com/gojournal/journal/wal"
)

// TestOddNamesSurviveReopenAndCompaction: a name is any 1 to MaxNameLen
// bytes, separators, NUL, invalid UTF-8 and a name that is a prefix of
// another included, and each keeps its own position through a reopen
// that replays records and one that reads the snapshot.
func TestOddNamesSurviveReopenAndCompaction(t *testing.T) {
	names := []string{"a", "a\x00", "a/b", "../x", "\xff\xfe", " ", strings.Repeat("z", MaxNameLen), "é", "\n"}
	dir := t.TempDir()
	s := open(t, dir, quietOpts())
	for i, n := range names {
		ack(t, s, n, uint64(100+i))
	}
	check := func(s *Store, when string) {
		t.Helper()
		for i, n := range names {
			if got, ok := s.Position(n); !ok || got != uint64(100+i) {
				t.Fatalf("%s: Position(%q) = %d, %v; want %d", when, n, got, ok, 100+i)
			}
		}
		if got := len(s.List()); got != len(names) {
			t.Fatalf("%s: %d cursors, want %d", when, got, len(names))
		}
	}
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(s.Close())
	s = open(t, dir, quietOpts())
	check(s, "after a reopen replaying the acks")
	must(s.Compact())
	must(s.Close())
	s = open(t, dir, quietOpts())
	defer s.Close()
	check(s, "after a reopen reading the snapshot")
}

// TestAckAfterCloseAndASecondStore: an Ack after Close fails with
// wal.ErrClosed (an Ack at or below the position changes nothing and
// still returns nil, as documented); a second Store on a directory in use
// fails with wal.ErrLocked.
func TestAckAfterCloseAndASecondStore(t *testing.T) {
	dir := t.TempDir()
	s := open(t, dir, quietOpts())
	ack(t, s, "c", 5)
	if _, err := Open(dir, quietOpts()); !errors.Is(err, wal.ErrLocked) {
		t.Fatalf("a second Store on the same directory: %v, want ErrLocked", err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Ack("c", 6); !errors.Is(err, wal.ErrClosed) {
		t.Fatalf("Ack after Close: %v, want ErrClosed", err)
	}
	if err := s.Delete("c"); !errors.Is(err, wal.ErrClosed) {
		t.Fatalf("Delete after Close: %v, want ErrClosed", err)
	}
	s = open(t, dir, quietOpts())
	defer s.Close()
	if got, _ := s.Position("c"); got != 5 {
		t.Fatalf("position %d after an Ack that failed on a closed store, want 5", got)
	}
}

// TestAckZeroProtectsANewConsumer: a consumer that has processed nothing
// yet registers with Ack(name, 0), so that Acked (what retention keeps
// for) counts it before its first real acknowledgement.
func TestAckZeroProtectsANewConsumer(t *testing.T) {
	s := open(t, t.TempDir(), quietOpts())
	defer s.Close()
	ack(t, s, "old", 500)
	ack(t, s, "new", 0)
	if got, ok := s.Acked(); !ok || got != 0 {
		t.Fatalf("Acked = %d, %v with a consumer registered at 0; want 0", got, ok)
	}
}
