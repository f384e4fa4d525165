package etcd

import (
	"errors"
	"log/slog"
	"math"
	"testing"

	"github.com/gojournal/journal/vfs"
	"github.com/gojournal/journal/wal"
	"go.etcd.io/raft/v3"
	pb "go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"
)

// The contract tests follow the cases of go.etcd.io/raft/v3's MemoryStorage
// tests (storage_test.go): a log whose compaction point is index 3 (term 3)
// and which holds entries 4 and 5 (terms 4 and 5). Every case checks the
// Storage as left by the call and again after Close and Open.

// ents makes entries first, first+1, ... with the given terms.
func ents(first uint64, terms ...uint64) []*pb.Entry {
	out := make([]*pb.Entry, len(terms))
	for i, t := range terms {
		out[i] = &pb.Entry{Index: proto.Uint64(first + uint64(i)), Term: proto.Uint64(t)}
	}
	return out
}

func quiet() *slog.Logger { return slog.New(slog.DiscardHandler) }

func openT(t testing.TB, dir string, fsys vfs.FS) *Storage {
	t.Helper()
	s, err := Open(dir, &Options{FS: fsys, SegmentSize: wal.MinSegmentSize, Logger: quiet()})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func reopen(t testing.TB, s *Storage) *Storage {
	t.Helper()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	return openT(t, s.dir, s.opts.FS)
}

// fixture returns a Storage compacted at (3, 3) holding the given entries,
// which start at 4 (MemoryStorage's tests start from the same log, its
// dummy entry at index 3).
func fixture(t testing.TB, tail ...*pb.Entry) *Storage {
	t.Helper()
	s := openT(t, t.TempDir(), nil)
	must(t, s.Append(ents(1, 1, 2, 3)))
	must(t, s.Append(tail))
	must(t, s.Compact(3))
	t.Cleanup(func() { s.Close() })
	return s
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// twice runs check on s and then on s reopened, and returns the reopened
// Storage.
func twice(t *testing.T, s *Storage, check func(s *Storage, when string)) *Storage {
	t.Helper()
	check(s, "before reopen")
	s = reopen(t, s)
	t.Cleanup(func() { s.Close() })
	check(s, "after reopen")
	return s
}

func wantEntries(t *testing.T, when string, got, want []*pb.Entry) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: %d entries %v, want %d %v", when, len(got), got, len(want), want)
	}
	for i := range got {
		if !proto.Equal(got[i], want[i]) {
			t.Fatalf("%s: entry %d is %v, want %v", when, i, got[i], want[i])
		}
	}
}

// wantLog checks the whole log: FirstIndex, the entries and the term at
// the compaction point.
func wantLog(t *testing.T, when string, s *Storage, compactIndex, compactTerm uint64, want []*pb.Entry) {
	t.Helper()
	first, _ := s.FirstIndex()
	last, _ := s.LastIndex()
	if first != compactIndex+1 || last != compactIndex+uint64(len(want)) {
		t.Fatalf("%s: log [%d, %d], want [%d, %d]", when, first, last, compactIndex+1, compactIndex+uint64(len(want)))
	}
	if tm, err := s.Term(compactIndex); err != nil || tm != compactTerm {
		t.Fatalf("%s: Term(%d) = %d, %v; want %d", when, compactIndex, tm, err, compactTerm)
	}
	for _, e := range want {
		if tm, err := s.Term(e.GetIndex()); err != nil || tm != e.GetTerm() {
			t.Fatalf("%s: Term(%d) = %d, %v; want %d", when, e.GetIndex(), tm, err, e.GetTerm())
		}
	}
	if len(want) == 0 {
		if _, err := s.Entries(first, first, math.MaxUint64); !errors.Is(err, raft.ErrUnavailable) {
			t.Fatalf("%s: Entries of an empty log: %v, want ErrUnavailable", when, err)
		}
		return
	}
	got, err := s.Entries(first, last+1, math.MaxUint64)
	must(t, err)
	wantEntries(t, when, got, want)
}

func TestTerm(t *testing.T) {
	s := fixture(t, ents(4, 4, 5)...)
	cases := []struct {
		i    uint64
		err  error
		term uint64
	}{
		{2, raft.ErrCompacted, 0},
		{3, nil, 3},
		{4, nil, 4},
		{5, nil, 5},
		{6, raft.ErrUnavailable, 0},
	}
	twice(t, s, func(s *Storage, when string) {
		for _, c := range cases {
			term, err := s.Term(c.i)
			if !errors.Is(err, c.err) || term != c.term {
				t.Errorf("%s: Term(%d) = %d, %v; want %d, %v", when, c.i, term, err, c.term, c.err)
			}
		}
	})
}

func TestEntries(t *testing.T) {
	s := fixture(t, ents(4, 4, 5, 6)...)
	size := func(es ...*pb.Entry) uint64 {
		n := 0
		for _, e := range es {
			n += proto.Size(e)
		}
		return uint64(n)
	}
	all := ents(4, 4, 5, 6)
	cases := []struct {
		lo, hi, maxSize uint64
		err             error
		want            []*pb.Entry
	}{
		{2, 6, math.MaxUint64, raft.ErrCompacted, nil},
		{3, 4, math.MaxUint64, raft.ErrCompacted, nil},
		{4, 5, math.MaxUint64, nil, all[:1]},
		{4, 6, math.MaxUint64, nil, all[:2]},
		{4, 7, math.MaxUint64, nil, all},
		{4, 8, math.MaxUint64, raft.ErrUnavailable, nil}, // MemoryStorage panics
		// At least one entry, however small maxSize is.
		{4, 7, 0, nil, all[:1]},
		{4, 7, size(all[:2]...), nil, all[:2]},
		{4, 7, size(all...) - 1, nil, all[:2]},
		{4, 7, size(all...), nil, all},
		{5, 7, size(all[1]) + size(all[2])/2, nil, all[1:2]},
	}
	twice(t, s, func(s *Storage, when string) {
		for _, c := range cases {
			got, err := s.Entries(c.lo, c.hi, c.maxSize)
			if !errors.Is(err, c.err) {
				t.Fatalf("%s: Entries(%d, %d, %d): %v, want %v", when, c.lo, c.hi, c.maxSize, err, c.err)
			}
			wantEntries(t, when, got, c.want)
		}
	})
}

func TestLastIndexAndFirstIndex(t *testing.T) {
	s := fixture(t, ents(4, 4, 5)...)
	s = twice(t, s, func(s *Storage, when string) {
		first, _ := s.FirstIndex()
		last, _ := s.LastIndex()
		if first != 4 || last != 5 {
			t.Fatalf("%s: [%d, %d], want [4, 5]", when, first, last)
		}
	})
	must(t, s.Append(ents(6, 5)))
	s = twice(t, s, func(s *Storage, when string) {
		if last, _ := s.LastIndex(); last != 6 {
			t.Fatalf("%s: LastIndex %d, want 6", when, last)
		}
	})
	must(t, s.Compact(4))
	twice(t, s, func(s *Storage, when string) {
		if first, _ := s.FirstIndex(); first != 5 {
			t.Fatalf("%s: FirstIndex %d, want 5", when, first)
		}
	})
}

func TestCompact(t *testing.T) {
	cases := []struct {
		i           uint64
		err         error
		index, term uint64 // the compaction point afterwards
		left        []*pb.Entry
	}{
		{2, raft.ErrCompacted, 3, 3, ents(4, 4, 5)},
		{3, raft.ErrCompacted, 3, 3, ents(4, 4, 5)},
		{4, nil, 4, 4, ents(5, 5)},
		{5, nil, 5, 5, nil}, // everything: the log is empty and continues at 6
		{6, raft.ErrUnavailable, 3, 3, ents(4, 4, 5)},
	}
	for _, c := range cases {
		s := fixture(t, ents(4, 4, 5)...)
		if err := s.Compact(c.i); !errors.Is(err, c.err) {
			t.Fatalf("Compact(%d): %v, want %v", c.i, err, c.err)
		}
		s = twice(t, s, func(s *Storage, when string) {
			wantLog(t, when, s, c.index, c.term, c.left)
		})
		// The log continues after the compaction point.
		next := c.index + uint64(len(c.left)) + 1
		must(t, s.Append(ents(next, 7)))
		twice(t, s, func(s *Storage, when string) {
			wantLog(t, when, s, c.index, c.term, append(c.left, ents(next, 7)...))
		})
	}
}

func TestCreateSnapshot(t *testing.T) {
	cs := &pb.ConfState{Voters: []uint64{1, 2, 3}}
	data := []byte("state")
	for _, i := range []uint64{4, 5} {
		s := fixture(t, ents(4, 4, 5)...)
		snap, err := s.CreateSnapshot(i, cs, data)
		must(t, err)
		want := &pb.Snapshot{Data: data, Metadata: &pb.SnapshotMetadata{
			Index: proto.Uint64(i), Term: proto.Uint64(i), ConfState: cs}}
		if !proto.Equal(snap, want) {
			t.Fatalf("CreateSnapshot(%d) = %v, want %v", i, snap, want)
		}
		s = twice(t, s, func(s *Storage, when string) {
			got, err := s.Snapshot()
			must(t, err)
			if !proto.Equal(got, want) {
				t.Fatalf("%s: Snapshot() = %v, want %v", when, got, want)
			}
			// Creating a snapshot releases nothing.
			wantLog(t, when, s, 3, 3, ents(4, 4, 5))
			_, gotCS, _ := s.InitialState()
			if !proto.Equal(gotCS, cs) {
				t.Fatalf("%s: ConfState %v, want %v", when, gotCS, cs)
			}
		})
		for _, older := range []uint64{i - 1, i} {
			if _, err := s.CreateSnapshot(older, nil, nil); !errors.Is(err, raft.ErrSnapOutOfDate) {
				t.Fatalf("CreateSnapshot(%d) after %d: %v, want ErrSnapOutOfDate", older, i, err)
			}
		}
	}
	s := fixture(t, ents(4, 4, 5)...)
	if _, err := s.CreateSnapshot(6, cs, data); !errors.Is(err, raft.ErrUnavailable) {
		t.Fatalf("CreateSnapshot past the end: %v, want ErrUnavailable", err)
	}
}

func TestAppend(t *testing.T) {
	cases := []struct {
		name   string
		append []*pb.Entry
		err    error
		want   []*pb.Entry // the log after the compaction point (3, 3)
	}{
		{"the same entries", ents(3, 3, 4, 5), nil, ents(4, 4, 5)},
		{"a conflicting tail is replaced", ents(3, 3, 6, 6), nil, ents(4, 6, 6)},
		{"a longer log", ents(3, 3, 4, 5, 5), nil, ents(4, 4, 5, 5)},
		{"compacted entries are skipped", ents(2, 3, 3, 5), nil, ents(4, 5)},
		{"only compacted entries", ents(1, 1, 2, 3), nil, ents(4, 4, 5)},
		{"the last entry is replaced", ents(5, 5), nil, ents(4, 4, 5)},
		{"the last entry is replaced by a newer term", ents(5, 6), nil, ents(4, 4, 6)},
		{"direct append", ents(6, 5), nil, ents(4, 4, 5, 5)},
		{"a gap", ents(7, 5), ErrGap, ents(4, 4, 5)},
		{"not consecutive", []*pb.Entry{ents(6, 5)[0], ents(8, 5)[0]}, ErrGap, ents(4, 4, 5)},
		{"nothing", nil, nil, ents(4, 4, 5)},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s := fixture(t, ents(4, 4, 5)...)
			if err := s.Append(c.append); !errors.Is(err, c.err) {
				t.Fatalf("Append: %v, want %v", err, c.err)
			}
			twice(t, s, func(s *Storage, when string) {
				wantLog(t, when, s, 3, 3, c.want)
			})
		})
	}
}

func TestApplySnapshot(t *testing.T) {
	cs := &pb.ConfState{Voters: []uint64{1, 2, 3}}
	snap := func(i, term uint64) *pb.Snapshot {
		return &pb.Snapshot{Data: []byte("data"), Metadata: &pb.SnapshotMetadata{
			Index: proto.Uint64(i), Term: proto.Uint64(term), ConfState: cs}}
	}
	cases := []struct {
		name       string
		snap       *pb.Snapshot
		err        error
		index, trm uint64 // compaction point afterwards
		left       []*pb.Entry
	}{
		{"inside the log", snap(4, 4), nil, 4, 4, nil},
		{"at the last entry", snap(5, 6), nil, 5, 6, nil},
		{"just past the end", snap(6, 6), nil, 6, 6, nil},
		{"far past the end", snap(100, 9), nil, 100, 9, nil},
		{"at the compaction point", snap(3, 3), raft.ErrSnapOutOfDate, 3, 3, ents(4, 4, 5)},
		{"before the compaction point", snap(2, 2), raft.ErrSnapOutOfDate, 3, 3, ents(4, 4, 5)},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s := fixture(t, ents(4, 4, 5)...)
			if err := s.ApplySnapshot(c.snap); !errors.Is(err, c.err) {
				t.Fatalf("ApplySnapshot: %v, want %v", err, c.err)
			}
			s = twice(t, s, func(s *Storage, when string) {
				wantLog(t, when, s, c.index, c.trm, c.left)
				if c.err != nil {
					return
				}
				got, err := s.Snapshot()
				must(t, err)
				if !proto.Equal(got, c.snap) {
					t.Fatalf("%s: Snapshot() = %v, want %v", when, got, c.snap)
				}
				hs, gotCS, _ := s.InitialState()
				if !proto.Equal(gotCS, cs) || hs.GetCommit() != c.index {
					t.Fatalf("%s: InitialState %v %v, want commit %d and %v", when, hs, gotCS, c.index, cs)
				}
			})
			if c.err != nil {
				return
			}
			// An older snapshot is refused, and the log continues after the
			// snapshot.
			if err := s.ApplySnapshot(snap(c.index-1, 1)); !errors.Is(err, raft.ErrSnapOutOfDate) {
				t.Fatalf("an older snapshot: %v, want ErrSnapOutOfDate", err)
			}
			must(t, s.Append(ents(c.index+1, 10, 10)))
			twice(t, s, func(s *Storage, when string) {
				wantLog(t, when, s, c.index, c.trm, ents(c.index+1, 10, 10))
			})
		})
	}
}

// A snapshot of index 0 carries only a ConfState: how etcd bootstraps a
// member. It is stored, and the empty log stays as it is.
func TestApplySnapshotBootstrap(t *testing.T) {
	s := openT(t, t.TempDir(), nil)
	defer func() { s.Close() }()
	cs := &pb.ConfState{Voters: []uint64{1, 2, 3}}
	must(t, s.ApplySnapshot(&pb.Snapshot{Metadata: &pb.SnapshotMetadata{ConfState: cs}}))
	s = twice(t, s, func(s *Storage, when string) {
		wantLog(t, when, s, 0, 0, nil)
		_, got, _ := s.InitialState()
		if !proto.Equal(got, cs) {
			t.Fatalf("%s: ConfState %v, want %v", when, got, cs)
		}
	})
	must(t, s.Append(ents(1, 1, 1)))
	twice(t, s, func(s *Storage, when string) { wantLog(t, when, s, 0, 0, ents(1, 1, 1)) })
}

// A snapshot of index 0 on a Storage that already holds a log (entries, or
// a compaction point) is out of date: installing it would drop entries that
// may be committed, leaving Commit past the log. (MemoryStorage, whose
// snapshot index is still 0, takes it and drops its entries; the Storage
// already refuses any snapshot that would move its log backwards.)
func TestApplySnapshotBootstrapOnALog(t *testing.T) {
	boot := &pb.Snapshot{Metadata: &pb.SnapshotMetadata{ConfState: &pb.ConfState{Voters: []uint64{1}}}}
	cases := []struct {
		name  string
		setup func(t *testing.T) *Storage
		index uint64 // compaction point
		left  []*pb.Entry
	}{
		{"entries", func(t *testing.T) *Storage {
			s := openT(t, t.TempDir(), nil)
			t.Cleanup(func() { s.Close() })
			must(t, s.Save(&pb.HardState{Term: proto.Uint64(1), Commit: proto.Uint64(2)}, ents(1, 1, 1)))
			return s
		}, 0, ents(1, 1, 1)},
		{"compacted", func(t *testing.T) *Storage { return fixture(t, ents(4, 4, 5)...) }, 3, ents(4, 4, 5)},
		{"compacted to the end", func(t *testing.T) *Storage { return fixture(t) }, 3, nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s := c.setup(t)
			if err := s.ApplySnapshot(boot); !errors.Is(err, raft.ErrSnapOutOfDate) {
				t.Fatalf("ApplySnapshot(index 0): %v, want ErrSnapOutOfDate", err)
			}
			twice(t, s, func(s *Storage, when string) {
				wantLog(t, when, s, c.index, c.index, c.left)
				if _, cs, _ := s.InitialState(); len(cs.GetVoters()) != 0 {
					t.Fatalf("%s: ConfState %v after a refused snapshot", when, cs)
				}
			})
		})
	}
}

func TestHardState(t *testing.T) {
	s := openT(t, t.TempDir(), nil)
	defer func() { s.Close() }()
	hs, cs, err := s.InitialState()
	must(t, err)
	if !raft.IsEmptyHardState(hs) || len(cs.GetVoters()) != 0 {
		t.Fatalf("new Storage: %v %v, want empty", hs, cs)
	}
	set := &pb.HardState{Term: proto.Uint64(2), Vote: proto.Uint64(1), Commit: proto.Uint64(0)}
	must(t, s.SetHardState(set))
	saved := &pb.HardState{Term: proto.Uint64(2), Vote: proto.Uint64(1), Commit: proto.Uint64(2)}
	must(t, s.Save(saved, ents(1, 2, 2)))
	must(t, s.Save(nil, nil)) // an empty Ready saves nothing
	twice(t, s, func(s *Storage, when string) {
		hs, _, _ := s.InitialState()
		if !proto.Equal(hs, saved) {
			t.Fatalf("%s: HardState %v, want %v", when, hs, saved)
		}
		wantLog(t, when, s, 0, 0, ents(1, 2, 2))
	})
}

// More HardStates than the state log keeps: it is truncated as it goes and
// the last one is the one read back.
func TestHardStateRollover(t *testing.T) {
	s := openT(t, t.TempDir(), nil)
	defer func() { s.Close() }()
	n := 3*stateKeep + 7
	for i := 1; i <= n; i++ {
		must(t, s.Save(&pb.HardState{Term: proto.Uint64(1), Commit: proto.Uint64(uint64(i))}, nil))
	}
	twice(t, s, func(s *Storage, when string) {
		if c := s.HardState().GetCommit(); c != uint64(n) {
			t.Fatalf("%s: commit %d, want %d", when, c, n)
		}
		if held := s.stLog.LastIndex() - s.stLog.FirstIndex() + 1; held > stateKeep {
			t.Fatalf("%s: the state log holds %d records, more than %d", when, held, stateKeep)
		}
	})
}

// Term reads no entry: its runs of equal terms are rebuilt on Open by
// bisection and kept up to date by every write.
func TestTermRuns(t *testing.T) {
	s := openT(t, t.TempDir(), nil)
	defer func() { s.Close() }()
	var want []*pb.Entry
	term := uint64(1)
	for i := uint64(1); i <= 300; i++ {
		if i%37 == 0 || i == 101 || i == 102 {
			term++
		}
		want = append(want, ents(i, term)...)
	}
	must(t, s.Append(want))
	must(t, s.Append(ents(250, 99, 99))) // a conflicting tail
	want = append(want[:249], ents(250, 99, 99)...)
	must(t, s.Compact(40))
	want = want[40:]
	twice(t, s, func(s *Storage, when string) {
		wantLog(t, when, s, 40, 2, want)
		if len(s.runs) != 9 {
			t.Fatalf("%s: %d runs %v, want 9", when, len(s.runs), s.runs)
		}
	})
}
