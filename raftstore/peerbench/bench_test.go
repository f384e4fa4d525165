package peerbench

import (
	"fmt"
	"log/slog"
	"path/filepath"
	"sync"
	"testing"

	"github.com/gojournal/journal/raftstore"
	"github.com/gojournal/journal/wal"
	"github.com/hashicorp/raft"
	raftboltdb "github.com/hashicorp/raft-boltdb/v2"
	raftwal "github.com/hashicorp/raft-wal"
	raftbench "github.com/hashicorp/raft/bench"
)

// store is what every peer offers.
type store interface {
	raft.LogStore
	raft.StableStore
	Close() error
}

// peers opens each store under test in a fresh directory.
var peers = []struct {
	name string
	open func(b *testing.B, dir string) store
}{
	{"journal", func(b *testing.B, dir string) store {
		s, err := raftstore.Open(dir, &raftstore.Options{Log: &wal.Options{Logger: slog.New(slog.DiscardHandler)}})
		must(b, err)
		return s
	}},
	{"raft-wal", func(b *testing.B, dir string) store {
		s, err := raftwal.Open(dir)
		must(b, err)
		return s
	}},
	{"raft-boltdb", func(b *testing.B, dir string) store {
		s, err := raftboltdb.NewBoltStore(filepath.Join(dir, "raft.db"))
		must(b, err)
		return s
	}},
}

func must(b *testing.B, err error) {
	b.Helper()
	if err != nil {
		b.Fatal(err)
	}
}

// each runs fn as a sub-benchmark per peer, on a fresh store.
func each(b *testing.B, fn func(b *testing.B, s store)) {
	for _, p := range peers {
		b.Run(p.name, func(b *testing.B) {
			s := p.open(b, b.TempDir())
			defer s.Close()
			fn(b, s)
		})
	}
}

func BenchmarkStoreLogs(b *testing.B) {
	each(b, func(b *testing.B, s store) { raftbench.StoreLogs(b, s) })
}
func BenchmarkGetLog(b *testing.B) { each(b, func(b *testing.B, s store) { raftbench.GetLog(b, s) }) }
func BenchmarkSet(b *testing.B)    { each(b, func(b *testing.B, s store) { raftbench.Set(b, s) }) }
func BenchmarkGet(b *testing.B)    { each(b, func(b *testing.B, s store) { raftbench.Get(b, s) }) }
func BenchmarkSetUint64(b *testing.B) {
	each(b, func(b *testing.B, s store) { raftbench.SetUint64(b, s) })
}
func BenchmarkGetUint64(b *testing.B) {
	each(b, func(b *testing.B, s store) { raftbench.GetUint64(b, s) })
}

// entrySize is the Data of each entry in the raft-shaped cases: a small
// command, as most raft applications apply.
const entrySize = 128

func batch(from uint64, n int) []*raft.Log {
	logs := make([]*raft.Log, n)
	for i := range logs {
		logs[i] = &raft.Log{Index: from + uint64(i), Term: 1, Type: raft.LogCommand, Data: make([]byte, entrySize)}
	}
	return logs
}

// BenchmarkStoreLogs64 stores 64 entries per call (what a busy leader's
// batch or a follower's AppendEntries brings), from 1 raft group and from
// several at once, each group its own store and goroutine. ns/op is per
// StoreLogs call over all groups.
func BenchmarkStoreLogs64(b *testing.B) {
	for _, groups := range []int{1, 8} {
		b.Run(fmt.Sprintf("groups=%d", groups), func(b *testing.B) {
			for _, p := range peers {
				b.Run(p.name, func(b *testing.B) { storeLogsGroups(b, groups, p.open) })
			}
		})
	}
}

func storeLogsGroups(b *testing.B, groups int, open func(*testing.B, string) store) {
	stores := make([]store, groups)
	for g := range stores {
		stores[g] = open(b, b.TempDir())
		defer stores[g].Close()
	}
	b.SetBytes(64 * entrySize)
	b.ResetTimer()
	var wg sync.WaitGroup
	errs := make(chan error, groups)
	for g, s := range stores {
		n := b.N / groups
		if g < b.N%groups {
			n++
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			next := uint64(1)
			for range n {
				if err := s.StoreLogs(batch(next, 64)); err != nil {
					errs <- err
					return
				}
				next += 64
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		b.Fatal(err)
	}
}

// BenchmarkDeleteRange deletes the oldest 10 entries of a contiguous log
// per op, as raft compacts after a snapshot. (raft/bench's DeleteRange
// stores entries with gaps and from index 0, which stores that keep the
// log contiguous, journal's and raft-wal's, refuse.)
func BenchmarkDeleteRange(b *testing.B) {
	each(b, func(b *testing.B, s store) {
		for from := uint64(1); from <= uint64(b.N)*10; from += 640 {
			must(b, s.StoreLogs(batch(from, 640)))
		}
		b.ResetTimer()
		for n := range b.N {
			min := uint64(n)*10 + 1
			must(b, s.DeleteRange(min, min+9))
		}
	})
}
