package etcd

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/gojournal/journal/internal/seedtest"
	"go.etcd.io/raft/v3"
	pb "go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"
)

// TestAgainstMemoryStorage runs one random sequence of the writes raft and
// an application make (Saves of entries and HardStates, conflicting tails,
// compactions, snapshots created and installed, reopens) on a Storage and
// on a raft.MemoryStorage, and compares everything both show after each:
// bounds, every Term, Entries under random size limits, the snapshot and
// the HardState. Writes MemoryStorage would panic on or would move its log
// backwards for go to the Storage alone, which must refuse them with the
// documented error and change nothing.
func TestAgainstMemoryStorage(t *testing.T) {
	rng := rand.New(rand.NewPCG(seedtest.Seed(t), 3))
	runs := 12
	if testing.Short() || raceEnabled {
		runs = 3
	}
	calls := map[string]int{}
	for run := range runs {
		// Fresh stores each run: the calls a new log sees first (a
		// bootstrap, the first snapshot) come up every run.
		againstMemoryStorage(t, rng, 150, calls, fmt.Sprintf("run %d", run))
	}
	t.Logf("%d runs, calls: %v", runs, calls)
}

func againstMemoryStorage(t *testing.T, rng *rand.Rand, steps int, calls map[string]int, run string) {
	ref := raft.NewMemoryStorage()
	s := openT(t, t.TempDir(), nil)
	defer func() { s.Close() }()
	g := &memGen{rng: rng, term: 1}
	for step := range steps {
		if rng.IntN(50) == 0 {
			s = reopen(t, s)
			calls["reopen"]++
		}
		c := g.next(t, ref)
		calls[c.kind]++
		where := fmt.Sprintf("%s, step %d: %s", run, step, c.name)
		if c.refusal != nil {
			before := viewOf(t, s)
			if err := c.call(s); !errors.Is(err, c.refusal) {
				t.Fatalf("%s: Storage: %v, want %v", where, err, c.refusal)
			}
			if after := viewOf(t, s); !sameLog(after, before) || !sameVote(after, before) || after.commit != before.commit {
				t.Fatalf("%s: refused, yet the Storage changed:\n%+v\nwas %+v", where, after, before)
			}
			continue
		}
		want := c.call(ref)
		if err := c.call(s); !errors.Is(err, want) || (err == nil) != (want == nil) {
			t.Fatalf("%s: Storage: %v, MemoryStorage: %v", where, err, want)
		}
		g.commit = raiseCommit(g.commit, ref)
		compareStorages(t, rng, s, ref, g.commit, where)
	}
}

// raiseCommit is the Commit the Storage shows: the one saved, raised to
// the compaction point (MemoryStorage leaves it where it was).
func raiseCommit(commit uint64, ref *raft.MemoryStorage) uint64 {
	first, _ := ref.FirstIndex()
	return max(commit, first-1)
}

// memGen makes the calls. Terms only grow along the log, as raft's do.
type memGen struct {
	rng    *rand.Rand
	term   uint64
	commit uint64 // the Commit the Storage should show
	tag    int
}

type memCall struct {
	kind, name string
	call       func(s store) error
	refusal    error // the Storage alone is called, and must refuse with it
}

func (g *memGen) next(t *testing.T, ref *raft.MemoryStorage) memCall {
	rng := g.rng
	first, _ := ref.FirstIndex()
	// The application compacts only what was committed.
	g.commit = max(g.commit, first-1)
	last, _ := ref.LastIndex()
	snap, _ := ref.Snapshot()
	snapIndex := snap.GetMetadata().GetIndex()
	g.tag++
	tag := fmt.Sprint(g.tag)
	n := 1 + rng.IntN(6)
	switch r := rng.IntN(100); {
	case r < 35:
		// A Ready: new entries (some already compacted, some replacing
		// the tail) and a HardState whose Commit does not pass them.
		from := first - min(first-1, uint64(rng.IntN(3))) + rng.Uint64N(last-first+2)
		if from <= last {
			g.term++ // a conflicting tail comes from a newer leader
		}
		es := dents(from, g.term, n, tag)
		end := max(last, from+uint64(n)-1)
		if from <= last {
			end = from + uint64(n) - 1
		}
		g.commit = max(g.commit, min(end, g.commit+rng.Uint64N(3)))
		h := hs(g.term, rng.Uint64N(4), g.commit)
		return memCall{kind: "Save", name: fmt.Sprintf("Save(%v, %d..%d term %d)", h, from, from+uint64(n)-1, g.term),
			call: func(s store) error { return save(s, h, es) }}
	case r < 45:
		es := dents(last+1, g.term, n, tag)
		return memCall{kind: "Append", name: fmt.Sprintf("Append(%d..%d)", last+1, last+uint64(n)),
			call: func(s store) error { return s.Append(es) }}
	case r < 55 && last >= first:
		i := first + rng.Uint64N(last-first+1)
		return memCall{kind: "Compact", name: fmt.Sprintf("Compact(%d) of [%d, %d]", i, first, last),
			call: func(s store) error { return s.Compact(i) }}
	case r < 60:
		i := first - 1 - min(first-1, uint64(rng.IntN(3)))
		return memCall{kind: "Compact, compacted", name: fmt.Sprintf("Compact(%d) of [%d, %d]", i, first, last),
			call: func(s store) error { return s.Compact(i) }}
	case r < 68 && max(snapIndex+1, first-1) <= last:
		lo := max(snapIndex+1, first-1)
		i := lo + rng.Uint64N(last-lo+1)
		cs := g.confState()
		return memCall{kind: "CreateSnapshot", name: fmt.Sprintf("CreateSnapshot(%d, %v) of [%d, %d]", i, cs, first, last),
			call: func(s store) error { _, err := s.CreateSnapshot(i, cs, []byte("created-"+tag)); return err }}
	case r < 72 && snapIndex > 0:
		i := snapIndex - rng.Uint64N(min(snapIndex, 3))
		return memCall{kind: "CreateSnapshot, out of date", name: fmt.Sprintf("CreateSnapshot(%d) at snapshot %d", i, snapIndex),
			call: func(s store) error { _, err := s.CreateSnapshot(i, nil, nil); return err }}
	case r < 78:
		// A snapshot from the leader, inside the log or past its end.
		idx := max(snapIndex, first-1) + 1 + rng.Uint64N(last-first+30)
		g.term++
		sn := &pb.Snapshot{Data: []byte("applied-" + tag), Metadata: &pb.SnapshotMetadata{
			Index: proto.Uint64(idx), Term: proto.Uint64(g.term), ConfState: g.confState()}}
		g.commit = max(g.commit, idx)
		return memCall{kind: "ApplySnapshot", name: fmt.Sprintf("ApplySnapshot(%d, term %d) on [%d, %d]", idx, g.term, first, last),
			call: func(s store) error { return s.ApplySnapshot(sn) }}
	case r < 81 && snapIndex > 0:
		idx := snapIndex - rng.Uint64N(min(snapIndex, 3))
		sn := &pb.Snapshot{Metadata: &pb.SnapshotMetadata{Index: proto.Uint64(idx), Term: proto.Uint64(g.term)}}
		return memCall{kind: "ApplySnapshot, out of date", name: fmt.Sprintf("ApplySnapshot(%d) at snapshot %d", idx, snapIndex),
			call: func(s store) error { return s.ApplySnapshot(sn) }}
	case r < 84 && first > 1 && snapIndex < first-1:
		// At or below the compaction point but newer than the snapshot:
		// MemoryStorage would move its log backwards.
		idx := max(snapIndex+1, first-1-min(first-2, uint64(rng.IntN(3))))
		sn := &pb.Snapshot{Metadata: &pb.SnapshotMetadata{Index: proto.Uint64(idx), Term: proto.Uint64(g.term)}}
		return memCall{kind: "ApplySnapshot, compacted", name: fmt.Sprintf("ApplySnapshot(%d) at compaction point %d", idx, first-1),
			refusal: raft.ErrSnapOutOfDate, call: func(s store) error { return s.ApplySnapshot(sn) }}
	case r < 86:
		// A bootstrap ConfState: taken by a Storage without a log; on
		// one with a log it would drop entries that may be committed
		// (MemoryStorage drops them unless it has a snapshot).
		sn := &pb.Snapshot{Metadata: &pb.SnapshotMetadata{ConfState: g.confState()}}
		c := memCall{kind: "ApplySnapshot, bootstrap", name: fmt.Sprintf("ApplySnapshot(index 0) on [%d, %d]", first, last),
			call: func(s store) error { return s.ApplySnapshot(sn) }}
		if snapIndex == 0 && last > 0 {
			c.kind, c.refusal = "ApplySnapshot, bootstrap on a log", raft.ErrSnapOutOfDate
		}
		return c
	case r < 87:
		es := dents(last+2+rng.Uint64N(3), g.term, n, tag)
		return memCall{kind: "Append, gap", name: fmt.Sprintf("Append(%d..) after %d", es[0].GetIndex(), last),
			refusal: ErrGap, call: func(s store) error { return s.Append(es) }}
	case r < 90 && last >= first:
		i := last + 1 + rng.Uint64N(3)
		return memCall{kind: "Compact, past the end", name: fmt.Sprintf("Compact(%d) of [%d, %d]", i, first, last),
			refusal: raft.ErrUnavailable, call: func(s store) error { return s.Compact(i) }}
	case r < 95:
		h := hs(g.term, rng.Uint64N(4), g.commit)
		return memCall{kind: "SetHardState", name: fmt.Sprintf("SetHardState(%v)", h),
			call: func(s store) error { return s.SetHardState(h) }}
	}
	return memCall{kind: "nothing", name: "nothing", call: func(store) error { return nil }}
}

func (g *memGen) confState() *pb.ConfState {
	if g.rng.IntN(3) == 0 {
		return nil
	}
	return &pb.ConfState{Voters: []uint64{1, 2, 3}[:1+g.rng.IntN(3)], Learners: []uint64{9}[:g.rng.IntN(2)]}
}

// compareStorages compares what raft reads from both: the view (bounds,
// terms, entries, snapshot, HardState), Term outside the log, and Entries
// over random ranges and size limits.
func compareStorages(t *testing.T, rng *rand.Rand, s *Storage, ref *raft.MemoryStorage, commit uint64, where string) {
	t.Helper()
	got, want := viewOf(t, s), viewOf(t, ref)
	want.commit = commit
	if !sameLog(got, want) || !sameVote(got, want) || got.commit != want.commit {
		t.Fatalf("%s:\n Storage %+v\n    want %+v", where, got, want)
	}
	gs, _ := s.Snapshot()
	ws, _ := ref.Snapshot()
	if !proto.Equal(gs, ws) {
		t.Fatalf("%s: Snapshot() = %v, MemoryStorage %v", where, gs, ws)
	}
	_, gcs, _ := s.InitialState()
	_, wcs, _ := ref.InitialState()
	if !proto.Equal(gcs, wcs) {
		t.Fatalf("%s: ConfState %v, MemoryStorage %v", where, gcs, wcs)
	}
	// Not past MaxInt64: MemoryStorage's Term indexes a slice with it.
	for _, i := range []uint64{0, want.first - min(want.first, 2), want.last + 1, want.last + 5} {
		gt, gerr := s.Term(i)
		wt, werr := ref.Term(i)
		if gt != wt || gerr != werr {
			t.Fatalf("%s: Term(%d) = %d, %v; MemoryStorage %d, %v", where, i, gt, gerr, wt, werr)
		}
	}
	for range 4 {
		lo := want.first - min(want.first, uint64(rng.IntN(3))) + rng.Uint64N(want.last-want.first+2)
		hi := lo + rng.Uint64N(want.last+2-lo)
		maxSize := []uint64{0, 1, 20, 100, math.MaxUint64}[rng.IntN(5)]
		ge, gerr := s.Entries(lo, hi, maxSize)
		we, werr := ref.Entries(lo, hi, maxSize)
		if gerr != werr || len(ge) != len(we) {
			t.Fatalf("%s: Entries(%d, %d, %d) = %d entries, %v; MemoryStorage %d, %v", where, lo, hi, maxSize, len(ge), gerr, len(we), werr)
		}
		for k := range ge {
			if !proto.Equal(ge[k], we[k]) {
				t.Fatalf("%s: Entries(%d, %d, %d)[%d] = %v; MemoryStorage %v", where, lo, hi, maxSize, k, ge[k], we[k])
			}
		}
	}
}
