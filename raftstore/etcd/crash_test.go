package etcd

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/gojournal/journal/internal/seedtest"
	"github.com/gojournal/journal/vfs"
	"github.com/gojournal/journal/vfs/crashfs"
	"go.etcd.io/raft/v3"
	pb "go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"
)

// view is what a Storage shows raft, taken the same way from a Storage and
// from the reference, a raft.MemoryStorage given the same calls.
type view struct {
	first, last uint64
	terms       []uint64 // Term(first-1) ... Term(last)
	data        []string // the entries' data
	snapIndex   uint64
	snapTerm    uint64
	snapData    string
	voters      []uint64
	term, vote  uint64
	commit      uint64
}

func viewOf(t *testing.T, s raft.Storage) view {
	t.Helper()
	var v view
	v.first, _ = s.FirstIndex()
	v.last, _ = s.LastIndex()
	for i := v.first - 1; i <= v.last; i++ {
		tm, err := s.Term(i)
		must(t, err)
		v.terms = append(v.terms, tm)
	}
	if v.last >= v.first {
		es, err := s.Entries(v.first, v.last+1, math.MaxUint64)
		must(t, err)
		for _, e := range es {
			v.data = append(v.data, string(e.GetData()))
		}
	}
	snap, err := s.Snapshot()
	must(t, err)
	v.snapIndex, v.snapTerm = snap.GetMetadata().GetIndex(), snap.GetMetadata().GetTerm()
	v.snapData, v.voters = string(snap.GetData()), snap.GetMetadata().GetConfState().GetVoters()
	hs, _, err := s.InitialState()
	must(t, err)
	v.term, v.vote, v.commit = hs.GetTerm(), hs.GetVote(), hs.GetCommit()
	return v
}

// sameLog compares everything but the commit index, which a crash may take
// back (a Commit-only HardState is not fdatasync'd) and which Storage raises
// to the compaction point where MemoryStorage does not.
func sameLog(a, b view) bool {
	return a.first == b.first && a.last == b.last && slices.Equal(a.terms, b.terms) &&
		slices.Equal(a.data, b.data) && a.snapIndex == b.snapIndex && a.snapTerm == b.snapTerm &&
		a.snapData == b.snapData && slices.Equal(a.voters, b.voters)
}

func sameVote(a, b view) bool { return a.term == b.term && a.vote == b.vote }

// crashedBetween says whether got is what a crash may leave of a call that
// took the Storage from before to after: either state; or, as Save writes
// the entries first, after's log with before's HardState; or, as Save drops
// a conflicting tail before it appends what replaces it, before's log cut
// where it and after's part (raft never acknowledged those entries as the
// new ones: the Ready was not done).
func crashedBetween(got, before, after view) bool {
	if sameLog(got, after) {
		return sameVote(got, after) || sameVote(got, before)
	}
	if !sameVote(got, before) {
		return false
	}
	cut := before
	cut.terms, cut.data = got.terms, got.data
	cut.last = got.last
	return sameLog(got, before) || (sameLog(got, cut) && isPrefix(got, before) && isPrefix(got, after))
}

func isPrefix(a, b view) bool {
	return a.first == b.first && len(a.data) <= len(b.data) &&
		slices.Equal(a.terms, b.terms[:len(a.terms)]) && slices.Equal(a.data, b.data[:len(a.data)])
}

func dents(first, term uint64, n int, tag string) []*pb.Entry {
	es := make([]*pb.Entry, n)
	for i := range es {
		es[i] = &pb.Entry{Index: proto.Uint64(first + uint64(i)), Term: proto.Uint64(term),
			Data: fmt.Appendf(nil, "%s-%d", tag, first+uint64(i))}
	}
	return es
}

func hs(term, vote, commit uint64) *pb.HardState {
	return &pb.HardState{Term: &term, Vote: &vote, Commit: &commit}
}

// store is what the crash workload calls: Storage and MemoryStorage both.
type store interface {
	raft.Storage
	Append([]*pb.Entry) error
	SetHardState(*pb.HardState) error
	Compact(uint64) error
	CreateSnapshot(uint64, *pb.ConfState, []byte) (*pb.Snapshot, error)
	ApplySnapshot(*pb.Snapshot) error
}

// save persists a Ready's entries and HardState: Storage.Save, or its
// equivalent on a MemoryStorage.
func save(s store, h *pb.HardState, es []*pb.Entry) error {
	if st, ok := s.(*Storage); ok {
		return st.Save(h, es)
	}
	if err := s.Append(es); err != nil {
		return err
	}
	return s.SetHardState(h)
}

// crashOps is a workload that goes through every kind of write: appends,
// a conflicting tail, Commit-only and Term/Vote HardStates, compaction,
// snapshots created and installed (past the end of the log), and appends
// after each.
var crashOps = []func(s store) error{
	func(s store) error { return save(s, hs(1, 1, 0), dents(1, 1, 8, "a")) },
	func(s store) error { return save(s, hs(1, 1, 6), nil) },                 // Commit only: not synced
	func(s store) error { return save(s, hs(2, 3, 6), dents(7, 2, 4, "b")) }, // replaces 7, 8
	func(s store) error {
		_, err := s.CreateSnapshot(5, &pb.ConfState{Voters: []uint64{1, 2, 3}}, []byte("snap-5"))
		return err
	},
	func(s store) error { return s.Compact(4) },
	func(s store) error { return save(s, hs(2, 3, 9), dents(11, 2, 3, "c")) },
	func(s store) error {
		return s.ApplySnapshot(&pb.Snapshot{Data: []byte("snap-40"), Metadata: &pb.SnapshotMetadata{
			Index: proto.Uint64(40), Term: proto.Uint64(3), ConfState: &pb.ConfState{Voters: []uint64{1, 2}}}})
	},
	func(s store) error { return save(s, hs(3, 0, 40), dents(41, 3, 5, "d")) },
	func(s store) error { return s.Compact(43) },
	func(s store) error { return save(s, hs(4, 2, 44), dents(45, 4, 2, "e")) }, // replaces 45
}

// reference returns the views a MemoryStorage shows before the workload and
// after each of its calls.
func reference(t *testing.T) []view {
	ms := raft.NewMemoryStorage()
	views := []view{viewOf(t, ms)}
	for _, op := range crashOps {
		must(t, op(ms))
		views = append(views, viewOf(t, ms))
	}
	return views
}

// runCrashOps runs the workload on fsys until a call fails and returns how
// many succeeded.
func runCrashOps(t *testing.T, fsys vfs.FS) int {
	s, err := Open("/db", &Options{FS: fsys, SegmentSize: 64 << 10, Logger: quiet()})
	if err != nil {
		return 0
	}
	defer s.Close()
	for i, op := range crashOps {
		if err := op(s); err != nil {
			return i
		}
	}
	return len(crashOps)
}

// TestCrashEveryPoint crashes the workload after each file-system operation
// in turn and checks that the Storage reopens showing the state after the
// last call that returned nil, or after the call the crash interrupted:
// nothing acknowledged is lost, nothing half done shows.
func TestCrashEveryPoint(t *testing.T) {
	views := reference(t)
	clean := crashfs.New()
	if n := runCrashOps(t, clean); n != len(crashOps) {
		t.Fatalf("the workload failed without a crash at call %d", n)
	}
	total := clean.Ops()
	rng := rand.New(rand.NewPCG(seedtest.Seed(t), 0))
	sample := sampler(rng)
	for k := 1; k <= total; k++ {
		if !sample() {
			continue
		}
		for _, mode := range []crashfs.CrashMode{crashfs.SyncedOnly, crashfs.RandomSectors} {
			fsys := crashfs.New()
			fsys.SetCrashAfter(k)
			acked := runCrashOps(t, fsys)
			s, err := Open("/db", &Options{FS: fsys.Crash(mode, rng), Logger: quiet()})
			if err != nil {
				t.Fatalf("crash after op %d of %d (mode %d, %d calls acknowledged): Open: %v", k, total, mode, acked, err)
			}
			got := viewOf(t, s)
			if !crashedBetween(got, views[acked], views[min(acked+1, len(crashOps))]) {
				t.Fatalf("crash after op %d of %d (mode %d, %d calls acknowledged):\n got %+v\nwant %+v\n  or %+v",
					k, total, mode, acked, got, views[acked], views[min(acked+1, len(crashOps))])
			}
			if got.commit > views[len(views)-1].commit || (got.first > 1 && got.commit < got.first-1) || got.commit > got.last {
				t.Fatalf("crash after op %d: commit %d outside [%d, %d]", k, got.commit, got.first-1, got.last)
			}
			// The Storage goes on from where it was.
			must(t, s.Append(dents(got.last+1, max(got.term, got.terms[len(got.terms)-1]), 1, "z")))
			must(t, s.Close())
		}
	}
	t.Logf("%d crash points, each in two modes", total)
}

// sampler returns a function that says whether to run the next case of an
// enumeration: always, but under the race detector one case in 8 at random.
func sampler(rng *rand.Rand) func() bool {
	return func() bool { return !raceEnabled || rng.IntN(8) == 0 }
}

// A process killed (SIGKILL) loses nothing written, synced or not: the
// Storage reopens exactly as the workload left it, Commit included.
func TestKilled(t *testing.T) {
	views := reference(t)
	fsys := crashfs.New()
	s, err := Open("/db", &Options{FS: fsys, Logger: quiet()})
	must(t, err)
	for _, op := range crashOps {
		must(t, op(s))
	}
	fsys.Kill() // s is never closed
	s2, err := Open("/db", &Options{FS: fsys, Logger: quiet()})
	must(t, err)
	defer s2.Close()
	got, want := viewOf(t, s2), views[len(views)-1]
	if !sameLog(got, want) || !sameVote(got, want) || got.commit != want.commit {
		t.Fatalf("after a kill:\n got %+v\nwant %+v", got, want)
	}
}
