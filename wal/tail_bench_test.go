package wal

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"
)

// BenchmarkTailWakeup measures how soon Readers blocked in NextContext get
// a record: one Append at a time (sync on), each waited for by every
// Reader before the next, so every Reader is blocked when the record
// becomes durable. It reports percentiles over all Readers' samples of
// the time from Append returning to a Reader holding the record (zero
// when the Reader had it first: the commit wakes Readers just before it
// returns Append), and of the time from the Append call (the fdatasync
// included). With follower=readonly the Readers belong to a Log opened
// with OpenReadOnly (as in another process: they learn of records from the
// tail file, polled every followPoll).
func BenchmarkTailWakeup(b *testing.B) {
	for _, ro := range []bool{false, true} {
		for _, readers := range []int{1, 8} {
			name := fmt.Sprintf("follower=%s/readers=%d", map[bool]string{false: "writer", true: "readonly"}[ro], readers)
			b.Run(name, func(b *testing.B) { benchWakeup(b, readers, ro) })
		}
	}
}

func benchWakeup(b *testing.B, readers int, readOnly bool) {
	dir := b.TempDir()
	l, err := Open(dir, &Options{Logger: quiet})
	if err != nil {
		b.Fatal(err)
	}
	defer l.Close()
	src := l
	if readOnly {
		if src, err = OpenReadOnly(dir, &Options{Logger: quiet}); err != nil {
			b.Fatal(err)
		}
		defer src.Close()
	}
	n := b.N
	called, returned := make([]time.Time, n+1), make([]time.Time, n+1)
	got := make([][]time.Time, readers)
	acks := make(chan struct{}, readers)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var wg sync.WaitGroup
	for k := range readers {
		got[k] = make([]time.Time, n+1)
		wg.Go(func() {
			r := src.NewReader(1)
			defer r.Close()
			for r.NextContext(ctx) {
				got[k][r.Index()] = time.Now()
				acks <- struct{}{}
				if r.Index() == uint64(n) {
					return
				}
			}
			b.Error(r.Err())
		})
	}
	rec := make([]byte, 128)
	b.ResetTimer()
	for i := 1; i <= n; i++ {
		called[i] = time.Now()
		if _, err := l.Append(rec); err != nil {
			b.Fatal(err)
		}
		returned[i] = time.Now()
		for range readers {
			<-acks
		}
	}
	b.StopTimer()
	wg.Wait()
	var wake, total []time.Duration
	for k := range readers {
		for i := 1; i <= n; i++ {
			wake = append(wake, max(0, got[k][i].Sub(returned[i])))
			total = append(total, got[k][i].Sub(called[i]))
		}
	}
	reportPercentiles(b, "wake", wake)
	reportPercentiles(b, "append-to-read", total)
}

// reportPercentiles reports the p50 and p99 of d in microseconds.
func reportPercentiles(b *testing.B, name string, d []time.Duration) {
	slices.Sort(d)
	at := func(p float64) float64 { return float64(d[int(p*float64(len(d)-1))]) / 1e3 }
	b.ReportMetric(at(0.50), name+"-p50-us")
	b.ReportMetric(at(0.99), name+"-p99-us")
}
