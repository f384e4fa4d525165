package cursor

import (
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

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
			names := make([]string, n)
			for g := range names {
				names[g] = fmt.Sprintf("consumer-%02d", g)
			}
			runConcurrent(b, n, func(g int, i uint64) error { return s.Ack(names[g], i) })
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

// BenchmarkAckVsAppend measures the same two workloads as BenchmarkAck,
// but alternating in rounds of 64 operations each, so that both see the
// same disk at the same moments (the machine's fdatasync latency drifts
// from one second to the next). It reports each one's time per operation
// and their ratio (ack/append: the target is at most 1).
func BenchmarkAckVsAppend(b *testing.B) {
	for _, noSync := range []bool{false, true} {
		for _, n := range []int{1, 16} {
			b.Run(fmt.Sprintf("nosync=%v/n=%d", noSync, n), func(b *testing.B) { ackVsAppend(b, n, noSync) })
		}
	}
}

// ackVsAppend alternates rounds of Acks and Appends by n goroutines,
// changing which goes first every round. With noSync neither fdatasyncs:
// what is left is the CPU cost of each.
func ackVsAppend(b *testing.B, n int, noSync bool) {
	s := open(b, b.TempDir(), &Options{Log: wal.Options{Logger: quiet, NoSync: noSync}})
	defer s.Close()
	l, err := wal.Open(b.TempDir(), &wal.Options{Logger: quiet, SegmentSize: defaultSegmentSize, NoSync: noSync})
	if err != nil {
		b.Fatal(err)
	}
	defer l.Close()
	names := make([]string, n)
	for g := range names {
		names[g] = fmt.Sprintf("consumer-%02d", g)
	}
	rec := make([]byte, 1+2+len(names[0])) // an ack record's size
	var acks atomic.Uint64
	ack := func(g int) error { return s.Ack(names[g], acks.Add(1)) }
	appendOne := func(int) error { _, err := l.Append(rec); return err }
	var ackTime, appendTime time.Duration
	const round = 64
	b.ResetTimer()
	for done := 0; done < b.N; done += round {
		ops := min(round, b.N-done)
		first, second, t1, t2 := ack, appendOne, &ackTime, &appendTime
		if done/round%2 == 1 {
			first, second, t1, t2 = appendOne, ack, &appendTime, &ackTime
		}
		start := time.Now()
		runRound(b, n, ops, first)
		mid := time.Now()
		runRound(b, n, ops, second)
		*t1 += mid.Sub(start)
		*t2 += time.Since(mid)
	}
	b.ReportMetric(float64(ackTime.Nanoseconds())/float64(b.N), "ack-ns/op")
	b.ReportMetric(float64(appendTime.Nanoseconds())/float64(b.N), "append-ns/op")
	b.ReportMetric(float64(ackTime)/float64(appendTime), "ack/append")
}

// runRound runs ops calls of op over n goroutines.
func runRound(b *testing.B, n, ops int, op func(g int) error) {
	var left atomic.Int64
	left.Store(int64(ops))
	var wg sync.WaitGroup
	for g := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for left.Add(-1) >= 0 {
				if err := op(g); err != nil {
					b.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
}
