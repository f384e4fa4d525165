package main

import (
	"fmt"
	"io"
	"log/slog"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"text/tabwriter"
	"time"

	"github.com/gojournal/journal/wal"
)

type benchOptions struct {
	dir      string
	writers  int
	size     int
	duration time.Duration
	sync     bool
	segSize  int64
}

func newBench() *command {
	var o benchOptions
	cmd := &command{
		Use:   "bench",
		Short: "Measure durable appends: throughput, latency, fdatasyncs, group-commit batching",
		Long: `bench runs the durable-append workload: --writers goroutines each append
--size-byte records in a loop for --duration, every Append waiting until its
record is durable (with --sync=false: written, not fdatasync'd). Concurrent
appends are group-committed: one write and one fdatasync serve every waiting
writer.

It prints a live progress line on stderr (only when stderr is a terminal) and
then a table: appends/s, MB/s, p50 and p99 append latency, fdatasyncs per
second and records per fdatasync (from wal.Stats).

The log goes into a new temporary directory, removed afterwards, unless --dir
names one (kept). Benchmark on the file system the application will use:
temporary directories are often on tmpfs, where fdatasync costs nothing.

Exit codes: 0 done, 2 usage or I/O error.`,
		Example: `  wal bench
  wal bench --dir /var/lib/myapp/bench --writers 64 --size 4096 --duration 10s`,
		Args: noArgs,
		RunE: func(cmd *command, args []string) error {
			if o.writers < 1 || o.size < 0 || o.duration <= 0 {
				return fail("--writers must be at least 1, --size at least 0 and --duration positive")
			}
			// Each writer allocates its record before the first append:
			// a size no record may have would only exhaust memory.
			if o.size > wal.MaxRecordSize {
				return fail("--size %d is larger than a record may be (wal.MaxRecordSize, %d bytes)", o.size, wal.MaxRecordSize)
			}
			return bench(cmd.OutOrStdout(), o)
		},
	}
	cmd.Flags().StringVar(&o.dir, "dir", "", "log directory (default: a new temporary directory, removed afterwards)")
	cmd.Flags().IntVar(&o.writers, "writers", 8, "concurrent writers")
	cmd.Flags().IntVar(&o.size, "size", 128, "record size in bytes")
	cmd.Flags().DurationVar(&o.duration, "duration", 5*time.Second, "how long to append")
	cmd.Flags().BoolVar(&o.sync, "sync", true, "fdatasync every group commit (--sync=false: Options.NoSync)")
	cmd.Flags().Int64Var(&o.segSize, "segment-size", wal.DefaultSegmentSize, "segment size (wal.Options.SegmentSize)")
	return cmd
}

func bench(w io.Writer, o benchOptions) error {
	dir := o.dir
	if dir == "" {
		tmp, err := os.MkdirTemp("", "wal-bench-")
		if err != nil {
			return fail("%v", err)
		}
		defer os.RemoveAll(tmp)
		dir = tmp
	}
	l, err := wal.Open(dir, &wal.Options{NoSync: !o.sync, SegmentSize: o.segSize, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		return fail("%v", err)
	}
	defer l.Close()
	syncs := "on"
	if !o.sync {
		syncs = "off"
	}
	fmt.Fprintf(w, "bench: %d writers, %s records, %v, sync %s, log in %s\n", o.writers, plural(int64(o.size), "byte"), o.duration, syncs, dir)

	payload := make([]byte, o.size)
	for i := range payload {
		payload[i] = byte('a' + i%26)
	}
	var count atomic.Int64
	var failed atomic.Pointer[error]
	lat := make([][]time.Duration, o.writers)
	start := time.Now()
	deadline := start.Add(o.duration)
	stop := make(chan struct{})
	var live sync.WaitGroup
	if stderrIsTerminal() {
		live.Add(1)
		go func() {
			defer live.Done()
			t := time.NewTicker(200 * time.Millisecond)
			defer t.Stop()
			for {
				select {
				case <-stop:
					fmt.Fprint(os.Stderr, "\r\033[K")
					return
				case now := <-t.C:
					el := now.Sub(start).Seconds()
					n := count.Load()
					fmt.Fprintf(os.Stderr, "\r\033[K%5.1fs  %d appends  %.0f/s", el, n, float64(n)/el)
				}
			}
		}()
	}
	var wg sync.WaitGroup
	for i := range o.writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for time.Now().Before(deadline) && failed.Load() == nil {
				t0 := time.Now()
				if _, err := l.Append(payload); err != nil {
					failed.CompareAndSwap(nil, &err)
					return
				}
				lat[i] = append(lat[i], time.Since(t0))
				count.Add(1)
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	close(stop)
	live.Wait()
	if p := failed.Load(); p != nil {
		return fail("append: %v", *p)
	}
	st := l.Stats()
	all := slices.Concat(lat...)
	slices.Sort(all)
	n := float64(len(all))
	secs := elapsed.Seconds()
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "appends\tappends/s\tMB/s\tp50\tp99\tfdatasyncs/s\trecords/fdatasync\n")
	fmt.Fprintf(tw, "%d\t%.0f\t%.2f\t%v\t%v\t%.0f\t%s\n", len(all), n/secs, n*float64(o.size)/secs/1e6,
		quantile(all, 0.50), quantile(all, 0.99), float64(st.Syncs)/secs, perSync(st))
	return tw.Flush()
}

// perSync is the records per fdatasync column: "-" when there was no
// fdatasync (--sync=false), rather than every record counted as one batch.
func perSync(st wal.Stats) string {
	if st.Syncs == 0 {
		return "-"
	}
	return fmt.Sprintf("%.1f", float64(st.Records)/float64(st.Syncs))
}

// quantile of sorted durations, rounded for reading.
func quantile(sorted []time.Duration, q float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	d := sorted[min(len(sorted)-1, int(q*float64(len(sorted))))]
	switch {
	case d >= time.Millisecond:
		return d.Round(10 * time.Microsecond)
	case d >= time.Microsecond:
		return d.Round(time.Microsecond)
	}
	return d
}
