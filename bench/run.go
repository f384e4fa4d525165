package bench

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"syscall"
	"time"
)

// Workload is a number of concurrent writers appending records of one size.
type Workload struct {
	Writers int
	Size    int
}

func (w Workload) String() string {
	if w.Size%1024 == 0 {
		return fmt.Sprintf("%d x %d KiB", w.Writers, w.Size/1024)
	}
	return fmt.Sprintf("%d x %d B", w.Writers, w.Size)
}

// Result is what one run of one peer on one workload measured.
type Result struct {
	Appends    int
	Bytes      int64 // record bytes appended (framing not counted)
	Elapsed    time.Duration
	P50, P99   time.Duration // Append latency
	CPU        time.Duration // user+sys of the whole process during the run
	Syncs      uint64
	SyncsKnown bool
}

func (r Result) AppendsPerSec() float64 { return float64(r.Appends) / r.Elapsed.Seconds() }
func (r Result) MBPerSec() float64      { return float64(r.Bytes) / 1e6 / r.Elapsed.Seconds() }
func (r Result) SyncsPerSec() float64   { return float64(r.Syncs) / r.Elapsed.Seconds() }

// CPUPerAppend is the process's CPU time over the appends: everything the
// log did for them, its background goroutines and the GC included.
func (r Result) CPUPerAppend() time.Duration {
	if r.Appends == 0 {
		return 0
	}
	return r.CPU / time.Duration(r.Appends)
}

// RecordsPerSync is appends per fdatasync (0 when not counted).
func (r Result) RecordsPerSync() float64 {
	if !r.SyncsKnown || r.Syncs == 0 {
		return 0
	}
	return float64(r.Appends) / float64(r.Syncs)
}

// Run opens p in a fresh directory under root, has w.Writers goroutines
// append for d, closes the log and removes the directory.
func Run(p Peer, w Workload, root string, d time.Duration) (Result, error) {
	dir, err := os.MkdirTemp(root, p.Name+"-")
	if err != nil {
		return Result{}, err
	}
	defer os.RemoveAll(dir)
	a, err := p.Open(dir)
	if err != nil {
		return Result{}, fmt.Errorf("%s: open: %w", p.Name, err)
	}
	res, err := drive(a, w, d)
	if cerr := a.Close(); err == nil && cerr != nil {
		err = fmt.Errorf("%s: close: %w", p.Name, cerr)
	}
	return res, err
}

// drive runs the writers and gathers their latencies.
func drive(a Appender, w Workload, d time.Duration) (Result, error) {
	lats := make([][]time.Duration, w.Writers)
	errs := make([]error, w.Writers)
	syncs0, _ := a.Syncs()
	cpu0 := cpuTime()
	start := time.Now()
	deadline := start.Add(d)
	var wg sync.WaitGroup
	for i := range w.Writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			lats[i], errs[i] = writer(a, w.Size, uint64(i), deadline)
		}()
	}
	wg.Wait()
	res := Result{Elapsed: time.Since(start), CPU: cpuTime() - cpu0}
	syncs1, known := a.Syncs()
	res.Syncs, res.SyncsKnown = syncs1-syncs0, known
	all := slices.Concat(lats...)
	slices.Sort(all)
	res.Appends = len(all)
	res.Bytes = int64(len(all)) * int64(w.Size)
	if len(all) > 0 {
		res.P50 = all[len(all)*50/100]
		res.P99 = all[len(all)*99/100]
	}
	for _, err := range errs {
		if err != nil {
			return res, err
		}
	}
	return res, nil
}

// writer appends records of size until the deadline, timing each append.
func writer(a Appender, size int, seed uint64, deadline time.Time) ([]time.Duration, error) {
	rec := make([]byte, size)
	lats := make([]time.Duration, 0, 1024)
	for n := uint64(0); ; n++ {
		fill(rec, seed<<32|n)
		t := time.Now()
		if t.After(deadline) {
			return lats, nil
		}
		if err := a.Append(rec); err != nil {
			return lats, err
		}
		lats = append(lats, time.Since(t))
	}
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// seqChunk is the size of each write of the bandwidth measurement.
const seqChunk = 1 << 20

// SeqBandwidth measures what the disk streams: 1 MiB writes to a fresh
// file for d (or until max bytes), then one fdatasync, all timed. It
// returns bytes per second.
func SeqBandwidth(root string, d time.Duration, max int64) (float64, error) {
	dir, err := os.MkdirTemp(root, "seq-")
	if err != nil {
		return 0, err
	}
	defer os.RemoveAll(dir)
	f, err := os.Create(filepath.Join(dir, "seq"))
	if err != nil {
		return 0, err
	}
	defer f.Close()
	buf := make([]byte, seqChunk)
	fill(buf, 1)
	start := time.Now()
	var n int64
	for n < max && time.Since(start) < d {
		if _, err := f.Write(buf); err != nil {
			return 0, err
		}
		n += seqChunk
	}
	if err := (&rawFile{f: f}).sync(); err != nil {
		return 0, err
	}
	return float64(n) / time.Since(start).Seconds(), nil
}
