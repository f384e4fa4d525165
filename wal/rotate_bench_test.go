package wal

import (
	"fmt"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gojournal/journal/segment"
	"github.com/gojournal/journal/vfs"
)

// BenchmarkRotationLatency measures the latency of each durable append of
// 128 bytes at 64 writers with 1 MiB segments, so that a rotation falls
// every hundred group commits or so: p99 shows whether the appends that
// meet a rotation wait for it. On a busy machine scheduling noise swamps
// that, so it also reports the median latency of the appends in flight
// when a segment got its name (the rename that makes it a segment, timed
// through the FS): rot-p50-ms, beside p50-ms of all appends, compares
// appends that met a rotation with the others in the same run. The
// default segment size is run beside it as the yardstick.
func BenchmarkRotationLatency(b *testing.B) {
	for _, seg := range []int64{1 << 20, DefaultSegmentSize} {
		b.Run(fmt.Sprintf("segment=%dMiB/writers=64", seg>>20), func(b *testing.B) {
			fsys := &renameClock{FS: vfs.Default}
			l, err := Open(b.TempDir(), &Options{SegmentSize: seg, Logger: quiet, FS: fsys})
			if err != nil {
				b.Fatal(err)
			}
			defer l.Close()
			const writers = 64
			lats := make([][]appendSpan, writers)
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
						lats[w] = append(lats[w], appendSpan{start, time.Now()})
					}
				}()
			}
			wg.Wait()
			b.StopTimer()
			spans := slices.Concat(lats...)
			all, met := fsys.split(spans)
			m := l.Metrics()
			b.ReportMetric(quantileMs(all, 0.50), "p50-ms")
			b.ReportMetric(quantileMs(all, 0.99), "p99-ms")
			b.ReportMetric(quantileMs(all, 0.999), "p999-ms")
			b.ReportMetric(quantileMs(met, 0.50), "rot-p50-ms")
			b.ReportMetric(float64(m.Rotations), "rotations")
		})
	}
}

// appendSpan is when an append began and ended.
type appendSpan struct{ start, end time.Time }

// renameClock notes when each rename to a segment's name happened.
type renameClock struct {
	vfs.FS
	mu    sync.Mutex
	times []time.Time
}

func (c *renameClock) Rename(from, to string) error {
	err := c.FS.Rename(from, to)
	if _, ok := segment.ParseName(filepath.Base(to)); ok {
		c.mu.Lock()
		c.times = append(c.times, time.Now())
		c.mu.Unlock()
	}
	return err
}

// split returns the latencies of all appends, and of those in flight at a
// rename, each sorted.
func (c *renameClock) split(spans []appendSpan) (all, met []time.Duration) {
	for _, s := range spans {
		d := s.end.Sub(s.start)
		all = append(all, d)
		for _, t := range c.times {
			if !t.Before(s.start) && !t.After(s.end) {
				met = append(met, d)
				break
			}
		}
	}
	slices.Sort(all)
	slices.Sort(met)
	return all, met
}
