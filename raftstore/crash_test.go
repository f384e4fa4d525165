package raftstore

import (
	"fmt"
	"maps"
	"math/rand/v2"
	"os"
	"slices"
	"strconv"
	"testing"

	"github.com/gojournal/journal/vfs/crashfs"
	"github.com/gojournal/journal/wal"
	"github.com/hashicorp/raft"
)

// state is what a store holds: entries by index (their term; entry(i,
// term) makes the rest) and stable values.
type state struct {
	terms  map[uint64]uint64
	stable map[string]uint64
}

func (s state) clone() state { return state{maps.Clone(s.terms), maps.Clone(s.stable)} }

// op is one call of a workload and what it does to the state.
type op struct {
	name  string
	call  func(s *Store) error
	apply func(st *state)
}

func storeOp(from, to, term uint64) op {
	return op{fmt.Sprintf("StoreLogs(%d..%d, term %d)", from, to, term),
		func(s *Store) error { return s.StoreLogs(entries(from, to, term)) },
		func(st *state) {
			for i := from; i <= to; i++ {
				st.terms[i] = term
			}
		}}
}

func deleteOp(min, max uint64) op {
	return op{fmt.Sprintf("DeleteRange(%d, %d)", min, max),
		func(s *Store) error { return s.DeleteRange(min, max) },
		func(st *state) {
			for i := range st.terms {
				if min <= i && i <= max {
					delete(st.terms, i)
				}
			}
		}}
}

func setOp(key string, v uint64) op {
	return op{fmt.Sprintf("SetUint64(%s, %d)", key, v),
		func(s *Store) error { return s.SetUint64([]byte(key), v) },
		func(st *state) { st.stable[key] = v }}
}

// raftLike is what raft does to a follower's store: appends in batches,
// votes, a conflicting tail replaced, compaction after a snapshot, and a
// snapshot install that empties the log and continues below its old end.
func raftLike() []op {
	ops := []op{setOp("CurrentTerm", 1), storeOp(1, 1, 1)}
	for from := uint64(2); from <= 60; from += 8 {
		ops = append(ops, storeOp(from, from+7, 1))
	}
	return append(ops,
		setOp("CurrentTerm", 2), setOp("LastVoteTerm", 2),
		deleteOp(50, 67), // a conflicting tail
		storeOp(50, 55, 2),
		deleteOp(1, 30), // compaction after a snapshot at 30
		storeOp(56, 90, 2),
		setOp("CurrentTerm", 3),
		deleteOp(31, 90),   // a snapshot at 80 installed: everything goes
		storeOp(81, 84, 3), // continues below the old end
		deleteOp(81, 84),
		storeOp(200, 203, 3), // and past it
	)
}

// TestCrashPoints crashes the raft-like workload after each file operation
// in turn, and checks that every crash state opens as the state before the
// call in flight or after it, never anything else (StoreLogs all or
// nothing, every acknowledged call there).
func TestCrashPoints(t *testing.T) {
	seed := rand.Uint64()
	if s := os.Getenv("JOURNAL_SEED"); s != "" {
		seed, _ = strconv.ParseUint(s, 10, 64)
	}
	t.Logf("seed %d (set JOURNAL_SEED to repeat)", seed)
	rng := rand.New(rand.NewPCG(seed, 0))
	ops := raftLike()
	points, states := 0, 0
	for k := 1; ; k++ {
		fsys := crashfs.New()
		fsys.SetCrashAfter(k)
		before, after, inFlight := run(fsys, ops)
		points++
		for _, mode := range []crashfs.CrashMode{crashfs.SyncedOnly, crashfs.RandomSectors, crashfs.Garbled} {
			states++
			crashed := fsys.Crash(mode, rng)
			got, err := recovered(crashed)
			if err != nil {
				t.Fatalf("crash after fs op %d (during %s), %v: reopen: %v", k, inFlight, mode, err)
			}
			if !got.equal(before) && !got.equal(after) {
				t.Fatalf("crash after fs op %d (during %s), %v: store holds %v\nwant %v\nor   %v", k, inFlight, mode, got, before, after)
			}
		}
		if !fsys.Crashed() {
			break
		}
	}
	t.Logf("crash points %d, states checked %d", points, states)
}

// run runs ops on fsys until one fails (the crash) and returns the state
// acknowledged, the state the call in flight would have left, and its
// name.
func run(fsys *crashfs.FS, ops []op) (before, after state, inFlight string) {
	before = state{map[uint64]uint64{}, map[string]uint64{}}
	after, inFlight = before, "Open"
	s, err := Open("db", crashOptions(fsys))
	if err != nil {
		return before, after, inFlight
	}
	defer s.Close()
	for _, o := range ops {
		after, inFlight = before.clone(), o.name
		o.apply(&after)
		if err := o.call(s); err != nil {
			return before, after, inFlight
		}
		before = after
	}
	return before, before, "nothing"
}

func crashOptions(fsys *crashfs.FS) *Options {
	return &Options{Log: &wal.Options{FS: fsys, SegmentSize: wal.MinSegmentSize, Logger: quiet}, CompactAfter: 3}
}

// recovered opens a crash state and reads everything the store holds.
func recovered(fsys *crashfs.FS) (state, error) {
	s, err := Open("db", crashOptions(fsys))
	if err != nil {
		return state{}, err
	}
	defer s.Close()
	st := state{map[uint64]uint64{}, map[string]uint64{}}
	first, _ := s.FirstIndex()
	last, _ := s.LastIndex()
	for i := first; i <= last && last != 0; i++ {
		var e raft.Log
		if err := s.GetLog(i, &e); err != nil {
			return st, fmt.Errorf("GetLog(%d): %w", i, err)
		}
		if want := entry(i, e.Term); !sameEntry(&e, want) {
			return st, fmt.Errorf("entry %d differs from what was stored", i)
		}
		st.terms[i] = e.Term
	}
	for _, k := range []string{"CurrentTerm", "LastVoteTerm"} {
		v, err := s.GetUint64([]byte(k))
		if err != nil {
			return st, err
		}
		if v != 0 {
			st.stable[k] = v
		}
	}
	return st, nil
}

func (s state) equal(o state) bool {
	return maps.Equal(s.terms, o.terms) && maps.Equal(s.stable, o.stable)
}

func (s state) String() string {
	idx := slices.Sorted(maps.Keys(s.terms))
	if len(idx) == 0 {
		return fmt.Sprintf("no entries, stable %v", s.stable)
	}
	return fmt.Sprintf("entries [%d, %d] (%d), stable %v", idx[0], idx[len(idx)-1], len(idx), s.stable)
}
