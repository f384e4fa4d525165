package checkpoint_test

import (
	"io"
	"runtime"
	"testing"

	"github.com/gojournal/journal/checkpoint"
	"github.com/gojournal/journal/vfs"
)

// BenchmarkCheckpoint256MiB writes and loads a 256 MiB state streamed from
// a generator (never buffered whole). Besides MB/s it reports the heap's
// peak growth, sampled every 4 MiB of contents (peak-heap-MiB), and the
// bytes allocated per checkpoint (alloc-MiB/op). Load reads a file that is
// still in the page cache, so it measures the read path, not the disk.
// Generate is the generator alone, to subtract.
func BenchmarkCheckpoint256MiB(b *testing.B) {
	const size = 256 << 20
	b.Run("Generate", func(b *testing.B) {
		b.SetBytes(size)
		for i := 0; b.Loop(); i++ {
			st := &state{seed: uint64(i), n: size}
			st.write(io.Discard)
		}
	})
	for _, compress := range []bool{false, true} {
		name := map[bool]string{false: "Stored", true: "Zstd"}[compress]
		opts := checkpoint.WriteOptions{Compress: compress}
		b.Run("Write/"+name, func(b *testing.B) {
			dir := b.TempDir()
			b.SetBytes(size)
			m := startMeasure()
			var st *state
			for i := 0; b.Loop(); i++ {
				st = &state{seed: uint64(i), n: size}
				if err := checkpoint.Write(vfs.Default, dir, uint64(i+1), opts, st.write); err != nil {
					b.Fatal(err)
				}
				m.peak = max(m.peak, st.peakHeap)
			}
			m.report(b)
			if h, err := checkpoint.ReadHeader(vfs.Default, dir); err == nil {
				b.ReportMetric(float64(h.StoredSize)/float64(h.Size), "stored/size")
			}
		})
		b.Run("Load/"+name, func(b *testing.B) {
			dir := b.TempDir()
			st := &state{seed: 1, n: size}
			if err := checkpoint.Write(vfs.Default, dir, 1, opts, st.write); err != nil {
				b.Fatal(err)
			}
			want := st.sum
			b.SetBytes(size)
			m := startMeasure()
			for b.Loop() {
				st.peakHeap = 0
				_, r, err := checkpoint.Load(vfs.Default, dir)
				if err != nil {
					b.Fatal(err)
				}
				n, sum, err := drain(r, st)
				r.Close()
				if err != nil || n != size || sum != want {
					b.Fatalf("Load: %d bytes, sum %x, %v", n, sum, err)
				}
				m.peak = max(m.peak, st.peakHeap)
			}
			m.report(b)
		})
	}
}

// measure tracks the heap across a benchmark's iterations.
type measure struct {
	base, peak uint64
	before     runtime.MemStats
}

func startMeasure() *measure {
	base, ms := memStats()
	return &measure{base: base, before: ms}
}

func (m *measure) report(b *testing.B) {
	var after runtime.MemStats
	runtime.ReadMemStats(&after)
	b.ReportMetric(mib(m.peak-min(m.peak, m.base)), "peak-heap-MiB")
	b.ReportMetric(mib(after.TotalAlloc-m.before.TotalAlloc)/float64(b.N), "alloc-MiB/op")
}
