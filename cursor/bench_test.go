package cursor

import (
	"fmt"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/gojournal/journal/wal"
)

// BenchmarkAck compares an acknowledgement with an Append of a record of
// the same size to a log of its own, at the same concurrency: the target
// is that an Ack costs no more than an Append. Each of n goroutines is a
// consumer acknowledging its own position (Ack) or a producer appending
// (Append); ns/op is per operation across all of them.
func BenchmarkAck(b *testing.B) {
	for _, n := range []int{1, 16} {
		b.Run(fmt.Sprintf("Ack/consumers=%d", n), func(b *testing.B) {
			s := open(b, b.TempDir(), quietOpts())
			defer s.Close()
			runConcurrent(b, n, func(g int, i uint64) error { return s.Ack(fmt.Sprintf("consumer-%02d", g), i) })
			b.ReportMetric(float64(s.Log().Stats().Syncs)/float64(b.N), "syncs/op")
		})
		b.Run(fmt.Sprintf("Append/writers=%d", n), func(b *testing.B) {
			l, err := wal.Open(b.TempDir(), &wal.Options{Logger: quiet, SegmentSize: defaultSegmentSize})
			if err != nil {
				b.Fatal(err)
			}
			defer l.Close()
			rec := make([]byte, 1+2+len("consumer-00")) // an ack record's size
			runConcurrent(b, n, func(int, uint64) error { _, err := l.Append(rec); return err })
			b.ReportMetric(float64(l.Stats().Syncs)/float64(b.N), "syncs/op")
		})
	}
}

// runConcurrent runs b.N calls of op spread over n goroutines; op gets
// its goroutine's number and a count that grows per goroutine.
func runConcurrent(b *testing.B, n int, op func(g int, i uint64) error) {
	var left atomic.Int64
	left.Store(int64(b.N))
	var wg sync.WaitGroup
	b.ResetTimer()
	for g := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := uint64(1); left.Add(-1) >= 0; i++ {
				if err := op(g, i); err != nil {
					b.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
}
