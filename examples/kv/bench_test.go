package main

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gojournal/journal/vfs"
)

// BenchmarkPut runs 8 writers putting 128-byte values, in three ways on
// the same disk in the same run:
//   - "apply": Store.Put, which applies in log order with AppendApply;
//   - "lock": the obvious design this example used before, the map's lock
//     held across Append so that changes apply in log order, which makes
//     every Put wait for the previous one's fdatasync;
//   - "log-only": bare Appends of the same records with no state machine,
//     the group commit the log gives when nothing else orders the writers;
//   - "ideal": the same records, unframed, through a hand-written group
//     commit (one pwrite and one fdatasync per batch into a preallocated
//     file, the next batch gathering meanwhile), with no state machine.
//
// It reports writes/s and records per fdatasync (for the Store, its log's
// Stats: Records/Syncs).
//
//	go test ./examples/kv -run '^$' -bench Put -benchtime 3s
func BenchmarkPut(b *testing.B) {
	const writers = 8
	value := strings.Repeat("v", 128)
	for _, c := range []struct {
		name string
		put  func(s *Store, key string) error
	}{
		{"apply", func(s *Store, key string) error { return s.Put(key, value) }},
		{"lock", func(s *Store, key string) error { return s.putLocked(key, value) }},
		{"log-only", func(s *Store, key string) error {
			_, err := s.log.Append(encodeOp(opPut, key, value))
			return err
		}},
	} {
		b.Run(c.name, func(b *testing.B) { benchPut(b, writers, value, c.put) })
	}
	b.Run("ideal", func(b *testing.B) { benchIdeal(b, writers, value) })
}

// benchPut runs put from writers goroutines, b.N times in all.
func benchPut(b *testing.B, writers int, value string, put func(s *Store, key string) error) {
	s, err := OpenStore(b.TempDir(), 1<<30) // no checkpoint during the run
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	runWriters(b, writers, func(key string) error { return put(s, key) })
	st := s.log.Stats()
	b.ReportMetric(float64(st.Records)/float64(max(st.Syncs, 1)), "records/sync")
}

// runWriters calls fn from writers goroutines, b.N times in all, and
// reports writes/s.
func runWriters(b *testing.B, writers int, fn func(key string) error) {
	var n atomic.Int64
	var wg sync.WaitGroup
	b.ResetTimer()
	start := time.Now()
	for range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := n.Add(1); i <= int64(b.N); i = n.Add(1) {
				if err := fn("k" + strconv.FormatInt(i%4096, 10)); err != nil {
					b.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	b.StopTimer()
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "writes/s")
}

func benchIdeal(b *testing.B, writers int, value string) {
	f, err := vfs.Default.OpenFile(filepath.Join(b.TempDir(), "ideal"), os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	if err := f.Preallocate(1 << 30); err != nil {
		b.Fatal(err)
	}
	if err := f.Sync(); err != nil {
		b.Fatal(err)
	}
	g := &groupCommit{f: f}
	g.cond.L = &g.mu
	runWriters(b, writers, func(key string) error { return g.append(encodeOp(opPut, key, value)) })
	b.ReportMetric(float64(g.records)/float64(max(g.syncs, 1)), "records/sync")
}

// groupCommit is the ideal group commit: records gather in a buffer while
// one pwrite and fdatasync is in flight; the caller that finds none in
// flight writes and syncs everything gathered.
type groupCommit struct {
	f              vfs.File
	mu             sync.Mutex
	cond           sync.Cond
	pend           []byte
	off            int64
	next, durable  uint64
	flushing       bool
	records, syncs uint64
}

// append returns once rec is durable.
func (g *groupCommit) append(rec []byte) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.pend = append(g.pend, rec...)
	g.next++
	for me := g.next; g.durable < me; {
		if g.flushing {
			g.cond.Wait()
			continue
		}
		buf, last, off := g.pend, g.next, g.off
		g.pend, g.flushing = nil, true
		g.mu.Unlock()
		_, err := g.f.WriteAt(buf, off)
		if err == nil {
			err = g.f.Sync() // fdatasync on Linux
		}
		g.mu.Lock()
		g.flushing = false
		g.cond.Broadcast()
		if err != nil {
			return err
		}
		g.off += int64(len(buf))
		g.records += last - g.durable
		g.syncs++
		g.durable = last
	}
	return nil
}

// putLocked is Put as this example wrote it before AppendApply: the lock
// held across Append keeps the map's changes in log order, and makes each
// Put wait for the previous one's fdatasync.
func (s *Store) putLocked(key, value string) error {
	rec := encodeOp(opPut, key, value)
	s.mu.Lock()
	defer s.mu.Unlock()
	index, err := s.log.Append(rec)
	if err != nil {
		return err
	}
	s.applied = index
	return s.apply(rec)
}
