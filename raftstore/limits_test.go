package raftstore

import (
	"errors"
	"os"
	"testing"

	"github.com/gojournal/journal/wal"
	"github.com/hashicorp/raft"
)

// TestTooLargeEntriesRefused: the README's Limitations say "an entry over
// 256 MiB, or one StoreLogs call over 1 GiB in all, gets wal.ErrTooLarge";
// nothing is stored, and the store goes on. (From an audit of the README's
// claims: no test stored an entry that large.) The 1 GiB case encodes over
// 1 GiB (5 GB resident, 50 s on the 2-core CI machine), so it runs only
// with JOURNAL_LIMITS_LONG=1 (it passed so, 2026-12-02).
func TestTooLargeEntriesRefused(t *testing.T) {
	if raceEnabled {
		// 26 s under -race for a size check no goroutines meet in; it
		// runs in the module's other CI step (11 s).
		t.Skip("moves 256 MiB buffers only: run without -race")
	}
	forKinds(t, testTooLargeEntriesRefused)
}

func testTooLargeEntriesRefused(t *testing.T, k kind) {
	dir := t.TempDir()
	s := k.openT(t, dir, testOptions())
	defer func() { s.Close() }()
	if err := s.StoreLogs(entries(1, 3, 1)); err != nil {
		t.Fatal(err)
	}
	big := &raft.Log{Index: 4, Term: 1, Type: raft.LogCommand, Data: make([]byte, wal.MaxRecordSize)}
	if err := s.StoreLog(big); !errors.Is(err, wal.ErrTooLarge) {
		t.Fatalf("StoreLog of a %d-byte entry: %v, want wal.ErrTooLarge", len(big.Data), err)
	}
	checkLog(t, s, 1, 3, 1)
	if os.Getenv("JOURNAL_LIMITS_LONG") != "" {
		// Five entries of 220 MiB, each under the limit, 1.07 GiB in all;
		// they share one buffer.
		data := make([]byte, 220<<20)
		var logs []*raft.Log
		for i := uint64(4); i <= 8; i++ {
			logs = append(logs, &raft.Log{Index: i, Term: 1, Type: raft.LogCommand, Data: data})
		}
		if err := s.StoreLogs(logs); !errors.Is(err, wal.ErrTooLarge) {
			t.Fatalf("StoreLogs of 5 x 220 MiB: %v, want wal.ErrTooLarge", err)
		}
		checkLog(t, s, 1, 3, 1)
	}
	if err := s.StoreLogs(entries(4, 5, 1)); err != nil {
		t.Fatalf("StoreLogs after a refused one: %v", err)
	}
	s = k.reopen(t, s, dir, testOptions())
	checkLog(t, s, 1, 5, 1)
}
