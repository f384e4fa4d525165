package raftstore

import (
	"fmt"
	"math/rand/v2"
	"os"
	"strconv"
	"testing"

	"github.com/gojournal/journal/internal/seedtest"
	"github.com/gojournal/journal/vfs/crashfs"
)

// randomWorkload makes n raft-like calls (randomOp's: appends, head and
// tail deletes, restarts below and past the old end, votes) on the given
// groups, each valid in the state the calls before it leave.
func randomWorkload(rng *rand.Rand, groups []uint64, n int) []sharedOp {
	model := groupsState{}
	for _, id := range groups {
		model[id] = newState()
	}
	var ops []sharedOp
	for epoch := uint64(1); len(ops) < n; epoch++ {
		id := groups[rng.IntN(len(groups))]
		o, wantErr := randomOp(rng, id, model[id], epoch)
		if wantErr != nil || o.name == "nothing" {
			continue
		}
		st := model[id]
		o.apply(&st)
		ops = append(ops, sharedOp{id, o})
	}
	return ops
}

// TestRandomCrashPoints crashes seeded random raft-like workloads after
// each file operation in turn, on a Store and on two groups of a Shared
// store: every crash state opens with every acknowledged call there and
// the one in flight all or nothing.
func TestRandomCrashPoints(t *testing.T) {
	// One seed for the workloads and for crashPoints' crash states, so
	// that JOURNAL_SEED replays both.
	if os.Getenv(seedtest.Env) == "" {
		t.Setenv(seedtest.Env, strconv.FormatUint(rand.Uint64(), 10))
	}
	rng := newRand(t)
	n := 40
	if testing.Short() {
		n = 20
	}
	t.Run("Store", func(t *testing.T) {
		ops := randomWorkload(rng, []uint64{1}, n)
		plain := make([]op, len(ops))
		for k, o := range ops {
			plain[k] = o.op
		}
		crashPoints(t, func(fsys *crashfs.FS) (before, after state, inFlight string) {
			before = newState()
			s, err := Open("db", crashOptions(fsys))
			if err != nil {
				return before, before, "Open"
			}
			defer s.Close()
			return runOps(s, plain, before)
		}, reopenStore)
	})
	t.Run("Shared", func(t *testing.T) {
		ops := randomWorkload(rng, []uint64{1, 2}, 2*n)
		crashPoints(t, func(fsys *crashfs.FS) (before, after groupsState, inFlight string) {
			return runShared(fsys, ops, nil)
		}, func(fsys *crashfs.FS) (groupsState, error) {
			sh, err := OpenShared("db", crashOptions(fsys))
			if err != nil {
				return nil, err
			}
			defer sh.Close()
			got, err := readShared(sh, []uint64{1, 2})
			if err != nil {
				return nil, fmt.Errorf("%w (workload: %v)", err, names(ops))
			}
			return got, nil
		})
	})
}

func names(ops []sharedOp) []string {
	var s []string
	for _, o := range ops {
		s = append(s, fmt.Sprintf("%d:%s", o.group, o.name))
	}
	return s
}
