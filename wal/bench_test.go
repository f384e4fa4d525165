package wal

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gojournal/journal/vfs"
)

// BenchmarkAppend measures durable appends (write + fdatasync, group
// committed) beside two baselines run on the same disk in the same process:
// "baseline" is the physical floor, a loop of pwrite + fdatasync into a
// preallocated file (writers take turns: no group commit), and
// "baseline-grow" the same on a file that grows with every write.
// "journal-release" is a log that releases segments as it goes, as a queue
// with retention does (16 MiB segments, retention keeping about three),
// and "journal-recycle" the same with Options.RecycleSegments: appends
// then go to released files, whose blocks are written already.
func BenchmarkAppend(b *testing.B) {
	const seg = 16 << 20
	releasing := Options{SegmentSize: seg, Retention: RetentionOptions{MaxBytes: 3 * seg}}
	recycling := releasing
	recycling.RecycleSegments = true
	for _, size := range []int{128, 4096} {
		for _, writers := range []int{1, 8, 64} {
			name := fmt.Sprintf("size=%d/writers=%d", size, writers)
			b.Run("impl=journal/"+name, func(b *testing.B) { benchJournal(b, size, writers) })
			b.Run("impl=journal-release/"+name, func(b *testing.B) { benchJournalWith(b, size, writers, releasing) })
			b.Run("impl=journal-recycle/"+name, func(b *testing.B) { benchJournalWith(b, size, writers, recycling) })
			b.Run("impl=baseline/"+name, func(b *testing.B) { benchBaseline(b, size, writers, true) })
			b.Run("impl=baseline-grow/"+name, func(b *testing.B) { benchBaseline(b, size, writers, false) })
		}
	}
}

// runWriters runs fn b.N times spread over writers goroutines and reports
// appends per second and the process's CPU time (user and system,
// background goroutines and GC included) per append.
func runWriters(b *testing.B, size, writers int, fn func(data []byte) error) {
	b.SetBytes(int64(size))
	var done atomic.Int64
	var wg sync.WaitGroup
	b.ResetTimer()
	start, cpu := time.Now(), cpuTime()
	for range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			data := make([]byte, size)
			for done.Add(1) <= int64(b.N) {
				if err := fn(data); err != nil {
					b.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	b.StopTimer()
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "appends/s")
	b.ReportMetric(float64((cpuTime()-cpu).Microseconds())/float64(b.N), "cpu-us/append")
}

// benchJournal reports, beside appends/s, what Metrics says of the run:
// records per fdatasync, and the fdatasync latency's median and 99th
// percentile in microseconds. Those are the upper bounds of power-of-two
// buckets (2^k - 1): they tell a 300 µs disk from a 3 ms one, not 300 from
// 400.
func benchJournal(b *testing.B, size, writers int) { benchJournalWith(b, size, writers, Options{}) }

// benchJournalWith is benchJournal on a log opened with o. With retention
// set, appends first warm the log up until a segment was released (and,
// with RecycleSegments, recycled), so that the timed appends run in the
// steady state; the figures count the timed appends only.
func benchJournalWith(b *testing.B, size, writers int, o Options) {
	o.Logger = quiet
	l, err := Open(b.TempDir(), &o)
	if err != nil {
		b.Fatal(err)
	}
	defer l.Close()
	if o.Retention.enabled() {
		warmUp(b, l, size, o.RecycleSegments)
	}
	m0 := l.Metrics()
	runWriters(b, size, writers, func(data []byte) error {
		_, err := l.Append(data)
		return err
	})
	m := l.Metrics()
	syncs := m.SyncMicros
	for i := range syncs.Counts {
		syncs.Counts[i] -= m0.SyncMicros.Counts[i]
	}
	b.ReportMetric(float64(m.Records-m0.Records)/float64(max(m.Syncs-m0.Syncs, 1)), "records/sync")
	b.ReportMetric(float64(syncs.Quantile(0.50)), "sync-p50-us")
	b.ReportMetric(float64(syncs.Quantile(0.99)), "sync-p99-us")
}

// warmUp appends, in batches of about 1 MiB, until retention has released
// a segment and, with recycle, a released file was recycled.
func warmUp(b *testing.B, l *Log, size int, recycle bool) {
	batch := make([][]byte, max(1, (1<<20)/(size+64)))
	for i := range batch {
		batch[i] = make([]byte, size)
	}
	for {
		m := l.Metrics()
		if m.RetentionSegments > 0 && (!recycle || m.SegmentsRecycled > 0) {
			return
		}
		if m.Rotations > 50 {
			b.Fatalf("warm-up: %d rotations, %d segments released, %d recycled", m.Rotations, m.RetentionSegments, m.SegmentsRecycled)
		}
		if _, err := l.AppendBatch(batch); err != nil {
			b.Fatal(err)
		}
	}
}

func benchBaseline(b *testing.B, size, writers int, prealloc bool) {
	f, err := vfs.Default.OpenFile(filepath.Join(b.TempDir(), "baseline"), os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	if prealloc {
		if err := f.Preallocate(DefaultSegmentSize); err != nil {
			b.Fatal(err)
		}
	}
	var mu sync.Mutex
	var off int64
	runWriters(b, size, writers, func(data []byte) error {
		mu.Lock()
		defer mu.Unlock()
		if _, err := f.WriteAt(data, off); err != nil {
			return err
		}
		off = (off + int64(len(data))) % DefaultSegmentSize
		return f.Sync() // fdatasync on Linux, as the log
	})
}

// stateStream streams n bytes of generated state without holding them.
func stateStream(n int64) func(w io.Writer) error {
	return func(w io.Writer) error {
		buf := make([]byte, 64<<10)
		for i := range buf {
			buf[i] = byte(i * 7)
		}
		for n > 0 {
			k := min(n, int64(len(buf)))
			if _, err := w.Write(buf[:k]); err != nil {
				return err
			}
			n -= k
		}
		return nil
	}
}

// peakHeap samples the heap in use while fn runs.
func peakHeap(fn func()) (peak uint64) {
	done := make(chan struct{})
	sampled := make(chan uint64)
	go func() {
		var ms runtime.MemStats
		var top uint64
		for {
			runtime.ReadMemStats(&ms)
			top = max(top, ms.HeapInuse)
			select {
			case <-done:
				sampled <- top
				return
			case <-time.After(5 * time.Millisecond):
			}
		}
	}()
	fn()
	close(done)
	return <-sampled
}

// BenchmarkCheckpoint writes a 256 MiB state through Checkpoint, with no
// rate bound, and reports the peak heap in use while it runs: O(buffer),
// not O(state).
func BenchmarkCheckpoint(b *testing.B) {
	const state = 256 << 20
	l, err := Open(b.TempDir(), &Options{Checkpoint: CheckpointOptions{MaxRate: -1}})
	if err != nil {
		b.Fatal(err)
	}
	defer l.Close()
	if _, err := l.Append([]byte("x")); err != nil {
		b.Fatal(err)
	}
	b.SetBytes(state)
	var peak uint64
	for b.Loop() {
		runtime.GC()
		peak = max(peak, peakHeap(func() {
			if err := l.Checkpoint(l.LastIndex(), stateStream(state)); err != nil {
				b.Fatal(err)
			}
		}))
	}
	b.ReportMetric(float64(peak)/(1<<20), "peak-heap-MiB")
}

// BenchmarkAppendDuringCheckpoint measures durable appends from 8 writers
// with (ckpt=running) and without (ckpt=none) 256 MiB checkpoints being
// written back to back at the default rate bound; compare the two
// appends/s figures with benchstat -col /ckpt.
func BenchmarkAppendDuringCheckpoint(b *testing.B) {
	for _, running := range []bool{false, true} {
		name := "ckpt=none"
		if running {
			name = "ckpt=running"
		}
		b.Run(name, func(b *testing.B) {
			l, err := Open(b.TempDir(), &Options{Logger: quiet})
			if err != nil {
				b.Fatal(err)
			}
			defer l.Close()
			if _, err := l.Append([]byte("x")); err != nil {
				b.Fatal(err)
			}
			stop := make(chan struct{})
			var wg sync.WaitGroup
			if running {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for {
						select {
						case <-stop:
							return
						default:
						}
						// Index 1 stays put: checkpoints never release what the
						// writers append.
						if err := l.Checkpoint(1, stateStream(256<<20)); err != nil {
							b.Error(err)
							return
						}
					}
				}()
				time.Sleep(50 * time.Millisecond) // let the checkpoint get going
			}
			runWriters(b, 128, 8, func(data []byte) error {
				_, err := l.Append(data)
				return err
			})
			close(stop)
			wg.Wait()
		})
	}
}

// BenchmarkReader measures replay: a Reader over records of 128 bytes,
// written in batches of 100 (so frames are adjacent, as under load).
func BenchmarkReader(b *testing.B) {
	l, err := Open(b.TempDir(), &Options{NoSync: true})
	if err != nil {
		b.Fatal(err)
	}
	defer l.Close()
	batch := make([][]byte, 100)
	for i := range batch {
		batch[i] = make([]byte, 128)
	}
	for range 1000 {
		if _, err := l.AppendBatch(batch); err != nil {
			b.Fatal(err)
		}
	}
	b.SetBytes(128)
	b.ResetTimer()
	var r *Reader
	for i := range b.N {
		if i%100000 == 0 {
			if r != nil {
				r.Close()
			}
			r = l.NewReader(1)
		}
		if !r.Next() {
			b.Fatalf("Next: %v", r.Err())
		}
	}
	b.StopTimer()
	r.Close()
}

// BenchmarkLatencyUnderLoad times Sync, Checkpoint and TruncateFront while
// 8 or 64 writers append continuously, and reports each call's p50 and p99
// latency: each must wait for a bounded number of group commits, not until
// nothing at all is pending. Sync is timed in NoSync mode (with sync on it
// only reports the log's state); the others with sync on. op=Append (one
// more durable append) is the yardstick: the latency of one group commit
// under the same load.
func BenchmarkLatencyUnderLoad(b *testing.B) {
	ops := []struct {
		name   string
		noSync bool
		op     func(l *Log) error
	}{
		{"Append", false, func(l *Log) error {
			_, err := l.Append(make([]byte, 128))
			return err
		}},
		{"Sync/NoSync", true, (*Log).Sync},
		{"TruncateFront", false, func(l *Log) error {
			first := l.FirstIndex()
			return l.TruncateFront(first + (l.LastIndex()-first)/2)
		}},
		{"Checkpoint", false, func(l *Log) error {
			i := l.LastIndex()
			return l.Checkpoint(i, stateStream(4<<10))
		}},
	}
	for _, op := range ops {
		for _, writers := range []int{8, 64} {
			b.Run(fmt.Sprintf("op=%s/writers=%d", op.name, writers), func(b *testing.B) {
				l, err := Open(b.TempDir(), &Options{NoSync: op.noSync})
				if err != nil {
					b.Fatal(err)
				}
				defer l.Close()
				stop := loadWriters(b, l, writers)
				defer stop()
				time.Sleep(20 * time.Millisecond) // let the load build up
				var lat []time.Duration
				for b.Loop() {
					start := time.Now()
					if err := op.op(l); err != nil {
						b.Fatal(err)
					}
					lat = append(lat, time.Since(start))
					time.Sleep(time.Millisecond) // appends gather between calls
				}
				slices.Sort(lat)
				b.ReportMetric(quantileMs(lat, 0.50), "p50-ms")
				b.ReportMetric(quantileMs(lat, 0.99), "p99-ms")
				b.ReportMetric(quantileMs(lat, 1), "max-ms")
			})
		}
	}
}

// quantileMs is the q-quantile of sorted latencies, in milliseconds.
func quantileMs(sorted []time.Duration, q float64) float64 {
	if len(sorted) == 0 {
		return 0
	}
	i := min(len(sorted)-1, int(q*float64(len(sorted))))
	return float64(sorted[i]) / float64(time.Millisecond)
}
