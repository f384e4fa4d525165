package wal

import (
	"fmt"
	"runtime"
	"sync"
	"testing"
)

// BenchmarkAppendAllocs counts allocations per Append in steady state, at
// 1 and 8 writers, with NoSync so that the disk does not set the pace: the
// pending buffers, waiters and turns are all recycled, and a segment
// rotation (1 MiB segments: one every 6,500 or so appends of 128 bytes)
// allocates only its own bookkeeping. Run with -benchmem or read
// allocs/op.
func BenchmarkAppendAllocs(b *testing.B) {
	for _, writers := range []int{1, 8} {
		b.Run(fmt.Sprintf("writers=%d", writers), func(b *testing.B) {
			l, err := Open(b.TempDir(), &Options{NoSync: true, SegmentSize: 1 << 20, Logger: quiet})
			if err != nil {
				b.Fatal(err)
			}
			defer l.Close()
			data := make([]byte, 128)
			for range 10000 { // warm up: buffers grown, a rotation done
				if _, err := l.Append(data); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportAllocs()
			b.ResetTimer()
			var wg sync.WaitGroup
			per := b.N / writers
			for w := range writers {
				n := per
				if w == 0 {
					n += b.N % writers
				}
				wg.Add(1)
				go func() {
					defer wg.Done()
					for range n {
						if _, err := l.Append(data); err != nil {
							b.Error(err)
							return
						}
					}
				}()
			}
			wg.Wait()
		})
	}
}

// TestAppendAllocatesNothingAcrossRotations appends through several
// rotations: the offsets slice of a sealed segment is reused by the next
// one and the footer is encoded in pooled buffers, so the bytes allocated
// per Append stay near zero (what a rotation allocates for itself, spread
// over the thousands of appends a segment holds), not a few bytes a
// record as when each segment grew its own slices.
func TestAppendAllocatesNothingAcrossRotations(t *testing.T) {
	if raceEnabled {
		t.Skip("sync.Pool drops buffers on purpose under -race")
	}
	l := openT(t, t.TempDir(), &Options{NoSync: true, SegmentSize: 1 << 20, Logger: quiet})
	defer l.Close()
	data := make([]byte, 128)
	appendN(t, l, 20000) // warm up: two rotations
	before := l.Metrics().Rotations
	const n = 50000
	var m0, m1 runtime.MemStats
	runtime.ReadMemStats(&m0)
	for range n {
		if _, err := l.Append(data); err != nil {
			t.Fatal(err)
		}
	}
	runtime.ReadMemStats(&m1)
	rotations := l.Metrics().Rotations - before
	perAppend := float64(m1.TotalAlloc-m0.TotalAlloc) / n
	t.Logf("%d rotations, %.2f bytes allocated per Append", rotations, perAppend)
	if rotations < 3 {
		t.Fatalf("%d rotations: the test needs several", rotations)
	}
	if perAppend > 4 {
		t.Errorf("%.2f bytes allocated per Append across rotations, want at most 4", perAppend)
	}
}
