package peerbench

import (
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/gojournal/journal/raftstore"
	"github.com/gojournal/journal/vfs"
	"github.com/gojournal/journal/wal"
)

// BenchmarkStoreLogs64RoundRobin stores 64 entries of 128 bytes per call
// into each store in turn, from 1 raft group and from 8 (each group its
// own store, except "journal-shared": the groups of one raftstore.Shared;
// the 8 calls of a turn run at once, and a turn counts as 8 calls). Every store meets the disk at nearly the same moment, so on a
// shared, noisy machine the per-call medians and means it reports (µs,
// two metrics per store) compare better than separate sub-benchmarks run
// seconds apart.
//
// Beside the stores it times the floor under any durable StoreLogs of this
// size: one pwrite of the bytes journal writes for the batch (10,752) and
// one fdatasync, through the same vfs.File journal uses, in a file
// preallocated as journal's segments are ("floor-fallocated": each write
// lands in unwritten extents, so each fdatasync also commits the file
// system's journal) and in one whose blocks were written beforehand
// ("floor-overwrite": fdatasync has only data to flush).
func BenchmarkStoreLogs64RoundRobin(b *testing.B) {
	for _, groups := range []int{1, 8} {
		b.Run(fmt.Sprintf("groups=%d", groups), func(b *testing.B) { roundRobin(b, groups) })
	}
}

// contender is a store (or a floor) in the round robin: one call per group.
type contender struct {
	name  string
	calls []func(i int) error
	times []time.Duration
}

func roundRobin(b *testing.B, groups int) {
	var cs []*contender
	for _, p := range peers {
		if p.name == "raft-boltdb" {
			continue // 3-4x slower than either WAL: it would only stretch the run
		}
		c := &contender{name: p.name}
		for range groups {
			s := p.open(b, b.TempDir())
			defer s.Close()
			c.calls = append(c.calls, func(i int) error { return s.StoreLogs(batch(uint64(i)*64+1, 64)) })
		}
		cs = append(cs, c)
	}
	cs = append(cs, sharedContender(b, groups))
	for _, written := range []bool{false, true} {
		c := &contender{}
		for range groups {
			var call func(int) error
			c.name, call = floor(b, written, b.N)
			c.calls = append(c.calls, call)
		}
		cs = append(cs, c)
	}
	b.ResetTimer()
	for i := range b.N {
		for _, c := range cs {
			start := time.Now()
			must(b, c.turn(i))
			c.times = append(c.times, time.Since(start)/time.Duration(groups))
		}
	}
	b.StopTimer()
	for _, c := range cs {
		var sum time.Duration
		for _, d := range c.times {
			sum += d
		}
		slices.Sort(c.times)
		b.ReportMetric(float64(c.times[len(c.times)/2].Nanoseconds())/1e3, c.name+"-median-µs")
		b.ReportMetric(float64(sum.Nanoseconds())/1e3/float64(len(c.times)), c.name+"-mean-µs")
	}
}

// sharedContender is journal's multi-raft store: the groups share one
// raftstore.Shared, so their calls of a turn share group commits.
func sharedContender(b *testing.B, groups int) *contender {
	sh, err := raftstore.OpenShared(b.TempDir(), &raftstore.Options{Log: &wal.Options{Logger: slog.New(slog.DiscardHandler)}})
	must(b, err)
	b.Cleanup(func() { sh.Close() })
	c := &contender{name: "journal-shared"}
	for id := range uint64(groups) {
		g, err := sh.Group(id + 1)
		must(b, err)
		c.calls = append(c.calls, func(i int) error { return g.StoreLogs(batch(uint64(i)*64+1, 64)) })
	}
	return c
}

// turn makes call i of every group at once.
func (c *contender) turn(i int) error {
	if len(c.calls) == 1 {
		return c.calls[0](i)
	}
	errs := make([]error, len(c.calls))
	var wg sync.WaitGroup
	for g, call := range c.calls {
		wg.Go(func() { errs[g] = call(i) })
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

// floorWrite is what journal writes for 64 entries of 128 bytes: the
// frames, padded to a sector boundary.
const floorWrite = 10752

// floor returns a call that writes floorWrite bytes at the next offset of
// a file and fdatasyncs it, for calls calls (then it starts over). The
// file is preallocated (fallocate, as journal's segments are) or, with
// written, filled with zeros and synced first, so that its blocks are
// allocated and written.
func floor(b *testing.B, written bool, calls int) (string, func(int) error) {
	size := min(int64(calls+1)*floorWrite, 64<<20)
	size = (size + 1<<20 - 1) &^ (1<<20 - 1) // whole MiBs, for the zeros
	path := filepath.Join(b.TempDir(), "floor")
	f, err := vfs.Default.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	must(b, err)
	b.Cleanup(func() { f.Close() })
	name := "floor-fallocated"
	if written {
		name = "floor-overwrite"
		zeros := make([]byte, 1<<20)
		for off := int64(0); off < size; off += int64(len(zeros)) {
			_, err := f.WriteAt(zeros, off)
			must(b, err)
		}
	} else {
		must(b, f.Preallocate(size))
	}
	must(b, f.Sync())
	buf := make([]byte, floorWrite)
	for i := range buf {
		buf[i] = byte(i)
	}
	return name, func(i int) error {
		off := int64(i) * floorWrite % (size - floorWrite)
		if _, err := f.WriteAt(buf, off); err != nil {
			return err
		}
		return f.Sync()
	}
}
