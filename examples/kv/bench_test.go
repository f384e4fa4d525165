package main

import (
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// BenchmarkPut runs 8 writers putting 128-byte values, in three ways on
// the same disk in the same run:
//   - "apply": Store.Put, which applies in log order with AppendApply;
//   - "lock": the obvious design this example used before, the map's lock
//     held across Append so that changes apply in log order, which makes
//     every Put wait for the previous one's fdatasync;
//   - "log-only": bare Appends of the same records with no state machine,
//     the group commit the log gives when nothing else orders the writers.
//
// It reports writes/s and records per fdatasync (Stats: Records/Syncs).
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
		b.Run(c.name, func(b *testing.B) {
			s, err := OpenStore(b.TempDir(), 1<<30) // no checkpoint during the run
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close()
			var n atomic.Int64
			var wg sync.WaitGroup
			b.ResetTimer()
			start := time.Now()
			for range writers {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for i := n.Add(1); i <= int64(b.N); i = n.Add(1) {
						if err := c.put(s, "k"+strconv.FormatInt(i%4096, 10)); err != nil {
							b.Error(err)
							return
						}
					}
				}()
			}
			wg.Wait()
			b.StopTimer()
			st := s.log.Stats()
			b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "writes/s")
			b.ReportMetric(float64(st.Records)/float64(max(st.Syncs, 1)), "records/sync")
		})
	}
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
