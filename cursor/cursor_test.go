package cursor

import (
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gojournal/journal/vfs"
	"github.com/gojournal/journal/wal"
	"go.uber.org/goleak"
)

var quiet = slog.New(slog.DiscardHandler)

func quietOpts() *Options { return &Options{Log: wal.Options{Logger: quiet}} }

func open(t testing.TB, dir string, opts *Options) *Store {
	t.Helper()
	s, err := Open(dir, opts)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func ack(t testing.TB, s *Store, name string, index uint64) {
	t.Helper()
	if err := s.Ack(name, index); err != nil {
		t.Fatalf("Ack(%q, %d): %v", name, index, err)
	}
}

func wantList(t *testing.T, got []Cursor, want ...Cursor) {
	t.Helper()
	if !slices.Equal(got, want) && !(len(got) == 0 && len(want) == 0) {
		t.Fatalf("cursors %v, want %v", got, want)
	}
}

func TestAckPositionListDeleteSurviveReopen(t *testing.T) {
	dir := t.TempDir()
	s := open(t, dir, quietOpts())
	if _, ok := s.Position("billing"); ok {
		t.Fatal("a new store knows billing")
	}
	if _, ok := s.Acked(); ok {
		t.Fatal("Acked is ok with no consumers")
	}
	ack(t, s, "billing", 10)
	ack(t, s, "audit", 3)
	ack(t, s, "billing", 7) // monotonic: ignored
	ack(t, s, "gone", 1)
	if err := s.Delete("gone"); err != nil {
		t.Fatal(err)
	}
	if err := s.Delete("never-there"); err != nil {
		t.Fatal(err)
	}
	want := []Cursor{{"audit", 3}, {"billing", 10}}
	wantList(t, s.List(), want...)
	if i, ok := s.Acked(); !ok || i != 3 {
		t.Fatalf("Acked = %d, %v; want 3", i, ok)
	}
	// Inspect reads the directory while the store has it open.
	got, err := Inspect(vfs.Default, dir)
	if err != nil {
		t.Fatal(err)
	}
	wantList(t, got, want...)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Ack("billing", 11); !errors.Is(err, wal.ErrClosed) {
		t.Fatalf("Ack after Close: %v, want ErrClosed", err)
	}

	s = open(t, dir, quietOpts())
	defer s.Close()
	wantList(t, s.List(), want...)
	if i, ok := s.Position("billing"); !ok || i != 10 {
		t.Fatalf("Position(billing) = %d, %v after reopen", i, ok)
	}
	// Deleted and acknowledged again: the position starts over.
	if err := s.Delete("billing"); err != nil {
		t.Fatal(err)
	}
	ack(t, s, "billing", 2)
	if i, _ := s.Position("billing"); i != 2 {
		t.Fatalf("Position(billing) = %d after Delete and Ack 2", i)
	}
}

func TestInvalidNames(t *testing.T) {
	s := open(t, t.TempDir(), quietOpts())
	defer s.Close()
	for _, name := range []string{"", strings.Repeat("x", MaxNameLen+1)} {
		if err := s.Ack(name, 1); !errors.Is(err, ErrInvalidName) {
			t.Errorf("Ack(%.10q...): %v, want ErrInvalidName", name, err)
		}
		if err := s.Delete(name); !errors.Is(err, ErrInvalidName) {
			t.Errorf("Delete(%.10q...): %v, want ErrInvalidName", name, err)
		}
	}
	ack(t, s, strings.Repeat("y", MaxNameLen), 1)
}

func TestCheckpointOptionsAreTheStores(t *testing.T) {
	_, err := Open(t.TempDir(), &Options{Log: wal.Options{Logger: quiet, Checkpoint: wal.CheckpointOptions{EveryBytes: 1}}})
	if !errors.Is(err, wal.ErrInvalidOptions) {
		t.Fatalf("Open: %v, want ErrInvalidOptions", err)
	}
}

// Acknowledgements are compacted: background checkpoints write the
// positions and release the records, and a reopened store (and Inspect)
// loads the snapshot and the records after it.
func TestCompaction(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent()) // Close stops the background checkpoints
	dir := t.TempDir()
	opts := &Options{CompactBytes: 16 << 10, Log: wal.Options{Logger: quiet, SegmentSize: wal.MinSegmentSize}}
	s := open(t, dir, opts)
	var wg sync.WaitGroup
	for c := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range uint64(300) {
				ack(t, s, fmt.Sprintf("consumer-%d", c), i+1)
			}
		}()
	}
	wg.Wait()
	waitFor(t, func() bool { return s.Log().Metrics().Checkpoints > 0 })
	if err := s.Log().CheckpointErr(); err != nil {
		t.Fatal(err)
	}
	if first := s.Log().FirstIndex(); first == 1 {
		t.Fatalf("FirstIndex still 1 after checkpoints")
	}
	ack(t, s, "late", 5)
	want := []Cursor{{"consumer-0", 300}, {"consumer-1", 300}, {"consumer-2", 300}, {"consumer-3", 300}, {"late", 5}}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	got, err := Inspect(vfs.Default, dir)
	if err != nil {
		t.Fatal(err)
	}
	wantList(t, got, want...)
	s = open(t, dir, opts)
	defer s.Close()
	wantList(t, s.List(), want...)
	if segs := s.Log().Metrics().Segments; segs > 3 {
		t.Fatalf("%d segments after compaction", segs)
	}
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); !cond(); time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("timed out")
		}
	}
}
