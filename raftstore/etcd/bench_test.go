package etcd

import (
	"testing"

	pb "go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"
)

// BenchmarkReady persists one Ready per iteration the way a leader's steady
// state produces them: n entries of 128 bytes and a HardState whose Commit
// moved. It reports the fdatasyncs each costs (both logs' group commits
// and explicit syncs).
func BenchmarkReady(b *testing.B) {
	for _, c := range []struct {
		name       string
		entries    int
		syncCommit bool
		noHS       bool
	}{
		{"entries=0/Save", 0, false, false}, // a follower learning a new commit index
		{"entries=0/Save-SyncCommit", 0, true, false},
		{"entries=1/entries-only", 1, false, true},
		{"entries=1/Save", 1, false, false},
		{"entries=1/Save-SyncCommit", 1, true, false},
		{"entries=16/Save", 16, false, false},
		{"entries=16/Save-SyncCommit", 16, true, false},
	} {
		b.Run(c.name, func(b *testing.B) {
			s, err := Open(b.TempDir(), &Options{SyncCommit: c.syncCommit, Logger: quiet()})
			must(b, err)
			defer s.Close()
			data := make([]byte, 128)
			next := uint64(1)
			before := s.syncs()
			b.SetBytes(int64(c.entries * len(data)))
			b.ResetTimer()
			for i := range b.N {
				es := make([]*pb.Entry, c.entries)
				for i := range es {
					es[i] = &pb.Entry{Index: proto.Uint64(next), Term: proto.Uint64(1), Data: data}
					next++
				}
				var h *pb.HardState
				if !c.noHS {
					commit := next - 1
					if c.entries == 0 {
						commit = uint64(i) + 1 // no entries: only Commit moves
					}
					h = hs(1, 1, commit)
				}
				must(b, s.Save(h, es))
			}
			b.StopTimer()
			b.ReportMetric(float64(s.syncs()-before)/float64(b.N), "fdatasyncs/op")
		})
	}
}

// syncs counts the group-commit fdatasyncs of both logs.
func (s *Storage) syncs() uint64 { return s.ents.Stats().Syncs + s.stLog.Stats().Syncs }

// BenchmarkTerm compares Term (from the runs in memory) with reading the
// term from the entry on disk, which is what Term would cost without them.
func BenchmarkTerm(b *testing.B) {
	s, err := Open(b.TempDir(), &Options{Logger: quiet()})
	must(b, err)
	defer s.Close()
	const n = 10000
	for first := uint64(1); first <= n; first += 1000 {
		must(b, s.Append(dents(first, first/1000+1, 1000, "x")))
	}
	b.Run("runs", func(b *testing.B) {
		for i := range b.N {
			if _, err := s.Term(uint64(i%n) + 1); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("read", func(b *testing.B) {
		for i := range b.N {
			if _, err := s.readTerm(uint64(i%n) + 1); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkEntries reads 64 entries of 128 bytes, as a leader does to
// catch a follower up.
func BenchmarkEntries(b *testing.B) {
	s, err := Open(b.TempDir(), &Options{Logger: quiet()})
	must(b, err)
	defer s.Close()
	const n = 4096
	es := dents(1, 1, n, "x")
	for _, e := range es {
		e.Data = make([]byte, 128)
	}
	must(b, s.Append(es))
	b.SetBytes(64 * 128)
	b.ResetTimer()
	for i := range b.N {
		lo := uint64(i*64%(n-64)) + 1
		got, err := s.Entries(lo, lo+64, 1<<20)
		if err != nil || len(got) != 64 {
			b.Fatal(len(got), err)
		}
	}
}
