package bench

import (
	"cmp"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
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
	// Written is what the log wrote to its files over the run (frames,
	// padding and footers), for the logs that count it (Writer); 0 for
	// the others.
	Written uint64
}

// Writer is an Appender that counts the bytes it has written to disk.
type Writer interface {
	Written() uint64
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

// Records gives each writer its records: Records(i) is writer i's source,
// called for every append; the slice it returns may be reused by the
// next call.
type Records func(writer int) func() []byte

// Random is records of size bytes of distinct pseudo-random content, so
// no layer can shortcut zeros or repeats (and none compresses).
func Random(size int) Records {
	return func(writer int) func() []byte {
		rec := make([]byte, size)
		n := uint64(writer) << 32
		return func() []byte {
			n++
			fill(rec, n)
			return rec
		}
	}
}

// Pool is records taken in turn from pool, each writer starting at its own
// place in it; pool is only read.
func Pool(pool [][]byte) Records {
	return func(writer int) func() []byte {
		i := writer * 7919 // a prime stride spreads the starting points
		return func() []byte {
			i++
			return pool[i%len(pool)]
		}
	}
}

// Run opens p in a fresh directory under root, has w.Writers goroutines
// append records of w.Size bytes for d, closes the log and removes the
// directory.
func Run(p Peer, w Workload, root string, d time.Duration) (Result, error) {
	return RunRecords(p, w.Writers, Random(w.Size), root, d)
}

// RunRecords is Run with the records recs gives.
func RunRecords(p Peer, writers int, recs Records, root string, d time.Duration) (Result, error) {
	dir, err := os.MkdirTemp(root, p.Name+"-")
	if err != nil {
		return Result{}, err
	}
	defer os.RemoveAll(dir)
	a, err := p.Open(dir)
	if err != nil {
		return Result{}, fmt.Errorf("%s: open: %w", p.Name, err)
	}
	res, err := drive(a, writers, recs, d)
	if cerr := a.Close(); err == nil && cerr != nil {
		err = fmt.Errorf("%s: close: %w", p.Name, cerr)
	}
	return res, err
}

// drive runs the writers and gathers their latencies.
func drive(a Appender, writers int, recs Records, d time.Duration) (Result, error) {
	lats := make([][]time.Duration, writers)
	bytes := make([]int64, writers)
	errs := make([]error, writers)
	syncs0, _ := a.Syncs()
	written0 := written(a)
	cpu0 := cpuTime()
	start := time.Now()
	deadline := start.Add(d)
	var wg sync.WaitGroup
	for i := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			lats[i], bytes[i], errs[i] = writer(a, recs(i), deadline)
		}()
	}
	wg.Wait()
	res := Result{Elapsed: time.Since(start), CPU: cpuTime() - cpu0}
	syncs1, known := a.Syncs()
	res.Syncs, res.SyncsKnown = syncs1-syncs0, known
	res.Written = written(a) - written0
	all := slices.Concat(lats...)
	slices.Sort(all)
	res.Appends = len(all)
	for _, b := range bytes {
		res.Bytes += b
	}
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

func written(a Appender) uint64 {
	if w, ok := a.(Writer); ok {
		return w.Written()
	}
	return 0
}

// writer appends the records of next until the deadline, timing each
// append, and returns the latencies and the record bytes appended.
func writer(a Appender, next func() []byte, deadline time.Time) ([]time.Duration, int64, error) {
	lats := make([]time.Duration, 0, 1024)
	var bytes int64
	for {
		rec := next()
		t := time.Now()
		if t.After(deadline) {
			return lats, bytes, nil
		}
		if err := a.Append(rec); err != nil {
			return lats, bytes, err
		}
		lats = append(lats, time.Since(t))
		bytes += int64(len(rec))
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
	f, done, err := scratchFile(root, "seq")
	if err != nil {
		return 0, err
	}
	defer done()
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

// CommitCeiling measures the most a group commit of chunk bytes can
// stream: chunk-sized writes, each followed by an fdatasync, one after the
// other, for d (or until max bytes), into blocks written beforehand (as
// journal's zeros ahead leave them), so no fdatasync has to commit the
// file system's journal. No log serving writers that each wait for their
// append can beat it with commits of at most chunk bytes: 64 writers of
// 4 KiB records never form a commit over 256 KiB. It returns bytes per
// second.
func CommitCeiling(root string, d time.Duration, max int64, chunk int) (float64, error) {
	return commits(root, "ceiling", chunk, max, d, func(f *os.File, limit int64) error {
		zeros := make([]byte, seqChunk)
		for off := int64(0); off < limit; off += seqChunk {
			if _, err := f.WriteAt(zeros[:min(seqChunk, limit-off)], off); err != nil {
				return err
			}
		}
		return nil
	}, nil)
}

// FreshCeiling measures what commits of chunk bytes stream into new
// space, as every log's first pass over its files writes: the file is
// preallocated and never written (its blocks unwritten extents), and each
// chunk-sized write is followed by an fdatasync, one after the other, for
// d (or until limit bytes). With zeroAhead > 0 each write is also
// followed, once less than half of zeroAhead is left, by a write of zeros
// up to zeroAhead past it, under the same fdatasync, as journal writes
// them (see wal's zeroAhead); with 0 the fdatasyncs must commit the file
// system's journal to mark the written blocks. No CPU work separates the
// commits: a log whose writers must each be woken and append again falls
// short of it. It returns bytes per second.
func FreshCeiling(root string, d time.Duration, limit int64, chunk, zeroAhead int) (float64, error) {
	preallocate := func(f *os.File, limit int64) error {
		return unix.Fallocate(int(f.Fd()), 0, 0, limit+int64(zeroAhead))
	}
	if zeroAhead == 0 {
		return commits(root, "fresh", chunk, limit, d, preallocate, nil)
	}
	zeros := make([]byte, zeroAhead)
	var zeroed int64
	return commits(root, "fresh", chunk, limit, d, preallocate, func(f *os.File, end int64) error {
		if end+int64(zeroAhead)/2 <= zeroed {
			return nil
		}
		from, to := max(zeroed, end), end+int64(zeroAhead)
		zeroed = to
		_, err := f.WriteAt(zeros[:to-from], from)
		return err
	})
}

// SplitCeiling measures what the same bytes in flight stream when split
// into ways concurrent commits: ways goroutines each claim the next
// chunk/ways bytes of new preallocated space, write them and fdatasync,
// over and over, for d or until limit bytes. 64 writers of 4 KiB records
// never have more than 256 KiB unacknowledged, however a log groups them,
// so beside FreshCeiling this says whether a log keeping several commits
// in flight could stream more than one keeping one (a disk that overlaps
// flushes), or whether the bytes in flight over the flush latency bound
// every design. It returns bytes per second.
func SplitCeiling(root string, d time.Duration, limit int64, chunk, ways int) (float64, error) {
	f, done, err := scratchFile(root, "split")
	if err != nil {
		return 0, err
	}
	defer done()
	part := int64(chunk / ways)
	limit -= limit % part
	if err := unix.Fallocate(int(f.Fd()), 0, 0, limit); err != nil {
		return 0, err
	}
	if err := unix.Fdatasync(int(f.Fd())); err != nil {
		return 0, err
	}
	var (
		next     atomic.Int64
		wg       sync.WaitGroup
		mu       sync.Mutex
		firstErr error
	)
	start := time.Now()
	for range ways {
		wg.Add(1)
		go func() {
			defer wg.Done()
			buf := make([]byte, part)
			fill(buf, 3)
			for time.Since(start) < d {
				off := next.Add(part) - part
				if off+part > limit {
					next.Add(-part)
					return
				}
				_, err := f.WriteAt(buf, off)
				if err == nil {
					err = unix.Fdatasync(int(f.Fd()))
				}
				if err != nil {
					mu.Lock()
					firstErr = cmp.Or(firstErr, err)
					mu.Unlock()
					return
				}
			}
		}()
	}
	wg.Wait()
	return float64(next.Load()) / time.Since(start).Seconds(), firstErr
}

// commits times commits into a scratch file under root that prepare has
// readied for limit bytes (then synced, untimed): chunk bytes at a time
// from the start, each write followed by after(the end of the write), if
// not nil, and an fdatasync, one after the other, for d or until limit
// bytes (rounded down to a whole chunk). It returns the bytes per second.
func commits(root, name string, chunk int, limit int64, d time.Duration,
	prepare func(f *os.File, limit int64) error, after func(f *os.File, end int64) error) (float64, error) {
	f, done, err := scratchFile(root, name)
	if err != nil {
		return 0, err
	}
	defer done()
	raw := &rawFile{f: f}
	limit -= limit % int64(chunk)
	if err := prepare(f, limit); err != nil {
		return 0, err
	}
	if err := raw.sync(); err != nil {
		return 0, err
	}
	buf := make([]byte, chunk)
	fill(buf, 2)
	start := time.Now()
	var n int64
	for n < limit && time.Since(start) < d {
		if _, err := f.WriteAt(buf, n); err != nil {
			return 0, err
		}
		n += int64(chunk)
		if after != nil {
			if err := after(f, n); err != nil {
				return 0, err
			}
		}
		if err := raw.sync(); err != nil {
			return 0, err
		}
	}
	return float64(n) / time.Since(start).Seconds(), nil
}

// scratchFile creates a file in a fresh directory under root; done
// closes it and removes the directory.
func scratchFile(root, name string) (f *os.File, done func(), err error) {
	dir, err := os.MkdirTemp(root, name+"-")
	if err != nil {
		return nil, nil, err
	}
	if f, err = os.Create(filepath.Join(dir, name)); err != nil {
		os.RemoveAll(dir)
		return nil, nil, err
	}
	return f, func() { f.Close(); os.RemoveAll(dir) }, nil
}
