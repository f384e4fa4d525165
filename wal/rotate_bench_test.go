package wal

import (
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// BenchmarkRotationLatency measures the latency of each durable append of
// 128 bytes at 64 writers with 1 MiB segments, so that a rotation falls
// every few hundred group commits: p99 shows whether the appends that meet
// a rotation wait for it. The default segment size is run beside it as
// the yardstick (a rotation every 64 MiB hardly reaches p99).
func BenchmarkRotationLatency(b *testing.B) {
	for _, seg := range []int64{1 << 20, DefaultSegmentSize} {
		b.Run(fmt.Sprintf("segment=%dMiB/writers=64", seg>>20), func(b *testing.B) {
			l, err := Open(b.TempDir(), &Options{SegmentSize: seg, Logger: quiet})
			if err != nil {
				b.Fatal(err)
			}
			defer l.Close()
			const writers = 64
			lats := make([][]time.Duration, writers)
			var done atomic.Int64
			var wg sync.WaitGroup
			b.ResetTimer()
			for w := range writers {
				wg.Add(1)
				go func() {
					defer wg.Done()
					data := make([]byte, 128)
					for done.Add(1) <= int64(b.N) {
						start := time.Now()
						if _, err := l.Append(data); err != nil {
							b.Error(err)
							return
						}
						lats[w] = append(lats[w], time.Since(start))
					}
				}()
			}
			wg.Wait()
			b.StopTimer()
			all := slices.Concat(lats...)
			slices.Sort(all)
			m := l.Metrics()
			b.ReportMetric(quantileMs(all, 0.50), "p50-ms")
			b.ReportMetric(quantileMs(all, 0.99), "p99-ms")
			b.ReportMetric(quantileMs(all, 0.999), "p999-ms")
			b.ReportMetric(float64(m.Rotations), "rotations")
		})
	}
}
