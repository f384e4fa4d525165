package raftstore

import (
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/gojournal/journal/internal/seedtest"
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

// raftStore is what raft calls: a Store or a GroupStore.
type raftStore interface {
	raft.LogStore
	raft.StableStore
}

// op is one call of a workload and what it does to the state.
type op struct {
	name  string
	call  func(s raftStore) error
	apply func(st *state)
}

func storeOp(from, to, term uint64) op {
	return op{fmt.Sprintf("StoreLogs(%d..%d, term %d)", from, to, term),
		func(s raftStore) error { return s.StoreLogs(entries(from, to, term)) },
		func(st *state) {
			for i := from; i <= to; i++ {
				st.terms[i] = term
			}
		}}
}

func deleteOp(min, max uint64) op {
	return op{fmt.Sprintf("DeleteRange(%d, %d)", min, max),
		func(s raftStore) error { return s.DeleteRange(min, max) },
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
		func(s raftStore) error { return s.SetUint64([]byte(key), v) },
		func(st *state) { st.stable[key] = v }}
}

// raftLike is what raft does to a follower's store: appends in batches,
// votes, a conflicting tail replaced, compaction after a snapshot, and a
// snapshot install that empties the log and continues below its old end.
// Its terms are base+1 to base+3: groups of a shared store given
// different bases store different entries at the same indexes.
func raftLike(base uint64) []op {
	ops := []op{setOp("CurrentTerm", base+1), storeOp(1, 1, base+1)}
	for from := uint64(2); from <= 60; from += 8 {
		ops = append(ops, storeOp(from, from+7, base+1))
	}
	return append(ops,
		setOp("CurrentTerm", base+2), setOp("LastVoteTerm", base+2),
		deleteOp(50, 67), // a conflicting tail
		storeOp(50, 55, base+2),
		deleteOp(1, 30), // compaction after a snapshot at 30
		storeOp(56, 90, base+2),
		setOp("CurrentTerm", base+3),
		deleteOp(31, 90),        // a snapshot at 80 installed: everything goes
		storeOp(81, 84, base+3), // continues below the old end
		deleteOp(81, 84),
		storeOp(200, 203, base+3), // and past it
	)
}

// TestCrashPoints crashes the raft-like workload after each file operation
// in turn, and checks that every crash state opens as the state before the
// call in flight or after it, never anything else (StoreLogs all or
// nothing, every acknowledged call there).
func TestCrashPoints(t *testing.T) {
	ops := raftLike(0)
	crashPoints(t, func(fsys *crashfs.FS) (before, after state, inFlight string) {
		before = newState()
		after, inFlight = before, "Open"
		s, err := Open("db", crashOptions(fsys))
		if err != nil {
			return before, after, inFlight
		}
		defer s.Close()
		return runOps(s, ops, before)
	}, reopenStore)
}

// reopenStore opens the Store a crash left in fsys and reads its state.
func reopenStore(fsys *crashfs.FS) (state, error) {
	s, err := Open("db", crashOptions(fsys))
	if err != nil {
		return state{}, err
	}
	defer s.Close()
	return readStore(s)
}

// checkable is a store's state as the crash tests compare it.
type checkable[S any] interface {
	equal(S) bool
	String() string
}

// crashPoints crashes run after each file operation in turn (run returns
// the state acknowledged, the state the call in flight would leave, and
// its name), and checks that every crash state, read by recovered, is one
// of the two.
func crashPoints[S checkable[S]](t *testing.T, run func(*crashfs.FS) (before, after S, inFlight string), recovered func(*crashfs.FS) (S, error)) {
	rng := newRand(t)
	points, states := 0, 0
	for k := 1; ; k++ {
		fsys := crashfs.New()
		fsys.SetCrashAfter(k)
		before, after, inFlight := run(fsys)
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

// newRand returns the generator of a random test: seedtest's seed with PCG
// stream 0, this package's derivation since before seedtest, so that seeds
// printed by earlier runs replay the same choices.
func newRand(t *testing.T) *rand.Rand {
	t.Helper()
	return rand.New(rand.NewPCG(seedtest.Seed(t), 0))
}

func newState() state { return state{map[uint64]uint64{}, map[string]uint64{}} }

// runOps runs ops on s from the state before until one fails (the crash)
// and returns the state acknowledged, the state the call in flight would
// have left, and its name.
func runOps(s raftStore, ops []op, before state) (_, after state, inFlight string) {
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

// readStore reads everything s holds: every entry (checked against what
// entry made for its term) and the stable keys the workloads set.
func readStore(s raftStore) (state, error) {
	st := newState()
	first, err1 := s.FirstIndex()
	last, err2 := s.LastIndex()
	if err := errors.Join(err1, err2); err != nil {
		return st, err
	}
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
	for _, i := range []uint64{first - 1, last + 1} {
		var e raft.Log
		if err := s.GetLog(i, &e); i != 0 && err != raft.ErrLogNotFound {
			return st, fmt.Errorf("GetLog(%d) outside [%d, %d]: %v, want raft.ErrLogNotFound", i, first, last, err)
		}
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
