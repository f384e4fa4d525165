package raftstore

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/gojournal/journal/wal"
)

// TestCloseDuringWrites closes a store while goroutines, one per raft
// group, run raft-like calls on it (appends, head deletes that release
// the shared log's front, tail deletes, restarts, votes). Every call must
// succeed or fail with wal.ErrClosed; the store must reopen; and each
// group must hold what its acknowledged calls made, plus at most the
// effect of the one call Close interrupted.
func TestCloseDuringWrites(t *testing.T) {
	rng := newRand(t)
	rounds := 30
	if testing.Short() {
		rounds = 8
	}
	ids := []uint64{0, 5, 1 << 63, math.MaxUint64}
	for round := range rounds {
		t.Run(fmt.Sprintf("Store/%d", round), func(t *testing.T) {
			closeDuringWrites(t, rng, []uint64{0}, func(dir string) (func(uint64) raftStore, func() error) {
				s, err := Open(dir, testOptions())
				if err != nil {
					t.Fatal(err)
				}
				return func(uint64) raftStore { return s }, s.Close
			})
		})
		t.Run(fmt.Sprintf("Shared/%d", round), func(t *testing.T) {
			closeDuringWrites(t, rng, ids, func(dir string) (func(uint64) raftStore, func() error) {
				sh := openSharedT(t, dir, testOptions())
				return func(id uint64) raftStore { return groupT(t, sh, id) }, sh.Close
			})
		})
	}
}

// groupRun is one group's calls until Close: the state its acknowledged
// calls made, and the call in flight when Close came (if any).
type groupRun struct {
	id       uint64
	acked    state
	inFlight *op
	calls    int
}

func closeDuringWrites(t *testing.T, rng *rand.Rand, ids []uint64,
	open func(dir string) (group func(uint64) raftStore, close func() error)) {
	dir := t.TempDir()
	group, closeStore := open(dir)
	runs := make([]*groupRun, len(ids))
	var wg sync.WaitGroup
	errs := make(chan error, len(ids))
	for k, id := range ids {
		r := &groupRun{id: id, acked: newState()}
		runs[k] = r
		grng := rand.New(rand.NewPCG(rng.Uint64(), uint64(k)))
		g := group(id)
		wg.Go(func() {
			for epoch := uint64(1); ; epoch++ {
				o, wantErr := randomOp(grng, id%1000, r.acked, epoch)
				err := o.call(g)
				if errors.Is(err, wal.ErrClosed) {
					r.inFlight = &o
					return
				}
				if !errors.Is(err, wantErr) || (err == nil) != (wantErr == nil) {
					errs <- fmt.Errorf("group %d: call %d: %s = %v, want %v", id, r.calls, o.name, err, wantErr)
					return
				}
				if err == nil {
					o.apply(&r.acked)
				}
				r.calls++
			}
		})
	}
	time.Sleep(time.Duration(2+rng.IntN(30)) * time.Millisecond)
	if err := closeStore(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	group, closeStore = open(dir)
	defer closeStore()
	calls, interrupted := 0, 0
	for _, r := range runs {
		calls += r.calls
		if r.inFlight != nil {
			interrupted++
		}
	}
	t.Logf("%d calls acknowledged, %d interrupted by Close", calls, interrupted)
	for _, r := range runs {
		got, err := readStore(group(r.id))
		if err != nil {
			t.Fatalf("group %d after reopen: %v", r.id, err)
		}
		if got.equal(r.acked) {
			continue
		}
		after := r.acked.clone()
		if r.inFlight != nil {
			r.inFlight.apply(&after)
		}
		if !got.equal(after) {
			t.Fatalf("group %d after %d calls, reopened: %v\nwant %v\nor, after %v, %v", r.id, r.calls, got, r.acked, r.inFlight.name, after)
		}
	}
}
