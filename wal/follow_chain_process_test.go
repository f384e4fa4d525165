package wal

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"maps"
	"math/rand/v2"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cespare/xxhash/v2"

	"github.com/gojournal/journal/internal/seedtest"
	"github.com/gojournal/journal/internal/testproc"
)

// Readers of a read-only Log in this process follow a hash-chained log
// (chainRecord: index, generation, hash of the record before) that a
// writer in a child process changes with appenders and syncers running
// concurrently, small segments, TruncateBack, TruncateFront, Checkpoint,
// Close and reopen, and that is SIGKILLed twice and restarted. The writer
// says on stdout what it is about to truncate (before the call) and what
// it has truncated (after the call returned). Each Reader checks every
// record: its index, the chain (a Reader never joins two histories), and
// that no step begun after a truncation returned yields a record it
// removed. A Reader that stops with ErrTruncated or ErrCompacted must be
// explained by a truncation the writer announced: otherwise records the
// follower returned were lost (the writer was only killed, so nothing
// durable may go). At the end the follower holds the log the last writer
// left, byte for byte.

const (
	envChainChild = "JOURNAL_FOLLOWCHAIN_DIR"
	envChainSeed  = "JOURNAL_FOLLOWCHAIN_SEED"
	envChainGen   = "JOURNAL_FOLLOWCHAIN_GEN" // the writer's first generation
	envChainRun   = "JOURNAL_FOLLOWCHAIN_RUN" // how long it runs before "done"
)

// TestFollowChainChild is the writer process; it does nothing unless run
// by TestFollowChainOtherProcess.
func TestFollowChainChild(t *testing.T) {
	dir := os.Getenv(envChainChild)
	if dir == "" {
		return
	}
	seed, _ := strconv.ParseUint(os.Getenv(envChainSeed), 10, 64)
	gen, _ := strconv.ParseUint(os.Getenv(envChainGen), 10, 64)
	run, _ := time.ParseDuration(os.Getenv(envChainRun))
	rng := rand.New(rand.NewPCG(seed, seed))
	w := &chainWriter{dir: dir, gen: gen, hashes: map[uint64]uint64{},
		opts: &Options{SegmentSize: MinSegmentSize, NoSync: rng.IntN(2) == 0, Logger: quiet}}
	w.reopen()
	w.appendBatch(rng, 50)
	w.must(w.l.Sync())
	fmt.Println("ready")

	stop := make(chan struct{})
	var wg sync.WaitGroup
	for k := range 6 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(seed, uint64(k)))
			for {
				select {
				case <-stop:
					return
				default:
				}
				if k < 4 {
					w.appendBatch(rng, 1+rng.IntN(8))
				} else {
					w.sync() // concurrent Syncs: group commits of the NoSync appends
				}
			}
		}()
	}
	for deadline := time.Now().Add(run); time.Now().Before(deadline); {
		time.Sleep(time.Duration(rng.IntN(3000)) * time.Microsecond)
		w.op(rng)
	}
	close(stop)
	wg.Wait()
	w.mu.Lock()
	defer w.mu.Unlock()
	w.must(w.l.Sync())
	fmt.Printf("done %d %d\n", w.l.FirstIndex(), w.l.LastIndex())
	w.must(w.l.Close())
}

// chainWriter appends chainRecords; mu serialises the appends and the
// operations that change the chain (truncations, reopening).
type chainWriter struct {
	mu     sync.Mutex
	dir    string
	opts   *Options
	l      *Log
	gen    uint64
	snap   uint64            // the snapshot's index: truncations stop at it
	hashes map[uint64]uint64 // of the records in the log
}

func (w *chainWriter) must(err error) {
	if err != nil {
		fmt.Printf("error %v\n", err)
		os.Exit(2)
	}
}

// reopen opens the log (closing it first if open) and takes up the chain
// from its last record.
func (w *chainWriter) reopen() {
	if w.l != nil {
		w.must(w.l.Close())
	}
	var err error
	w.l, err = Open(w.dir, w.opts)
	w.must(err)
	if index, r, err := w.l.Snapshot(); err == nil {
		w.snap = index
		r.Close()
	} else if !errors.Is(err, ErrNoSnapshot) {
		w.must(err)
	}
	if last := w.l.LastIndex(); last >= w.l.FirstIndex() {
		rec, err := w.l.Read(last)
		w.must(err)
		w.hashes[last] = xxhash.Sum64(rec)
	}
}

func (w *chainWriter) appendBatch(rng *rand.Rand, n int) {
	w.mu.Lock()
	defer w.mu.Unlock()
	first := w.l.LastIndex() + 1
	batch := make([][]byte, n)
	prev := w.hashOf(first - 1)
	for k := range batch {
		i := first + uint64(k)
		batch[k] = chainRecord(i, w.gen, prev, 24+rng.IntN(600))
		prev = xxhash.Sum64(batch[k])
		w.hashes[i] = xxhash.Sum64(batch[k])
	}
	got, err := w.l.AppendBatch(batch)
	w.must(err)
	if got != first {
		w.must(fmt.Errorf("AppendBatch returned %d, want %d", got, first))
	}
}

// hashOf returns the hash of the record at index, reading it when this
// writer did not append it (an earlier writer did, and a TruncateBack went
// back into its records). Called with mu held.
func (w *chainWriter) hashOf(index uint64) uint64 {
	if h, ok := w.hashes[index]; ok || index < w.l.FirstIndex() {
		return h
	}
	rec, err := w.l.Read(index)
	w.must(err)
	w.hashes[index] = xxhash.Sum64(rec)
	return w.hashes[index]
}

func (w *chainWriter) sync() {
	w.mu.Lock()
	l := w.l
	w.mu.Unlock()
	if err := l.Sync(); err != nil && !errors.Is(err, ErrClosed) { // reopened meanwhile
		w.must(err)
	}
}

// op runs one operation that changes the chain. Every truncation keeps at
// least one record, so a reopened writer finds the hash to chain to.
func (w *chainWriter) op(rng *rand.Rand) {
	w.mu.Lock()
	defer w.mu.Unlock()
	first, last := w.l.FirstIndex(), w.l.LastIndex()
	if last < first+2 {
		return
	}
	switch x := rng.IntN(10); {
	case x < 4:
		k := max(last-uint64(rng.IntN(int(min(last-first, 60)))), w.snap)
		w.gen++
		fmt.Printf("back? %d %d\n", w.gen, k)
		w.must(w.l.TruncateBack(k))
		fmt.Printf("back %d %d\n", w.gen, k)
	case x < 6:
		hi := last - 1 // records after the snapshot stay
		if w.snap > 0 {
			hi = min(hi, w.snap+1)
		}
		if hi < first {
			return
		}
		k := first + uint64(rng.IntN(int(hi+1-first)))
		fmt.Printf("front? %d\n", k)
		w.must(w.l.TruncateFront(k))
		fmt.Printf("front %d\n", k)
	case x < 8:
		k := first + uint64(rng.IntN(int(last-first))) // releases up to k
		fmt.Printf("front? %d\n", k+1)
		w.must(w.l.Checkpoint(k, func(out io.Writer) error { _, err := fmt.Fprint(out, k); return err }))
		w.snap = k
		fmt.Printf("front %d\n", k+1)
	default:
		w.reopen()
	}
}

// chainTruncs collects the truncations the writers announced (intended)
// and those that returned (done).
type chainTruncs struct {
	mu          sync.Mutex
	intend      map[uint64]uint64 // TruncateBack: generation -> index kept
	done        []chainBack       // in the order they returned
	front       uint64            // TruncateFront/Checkpoint that returned
	frontIntend uint64
}

type chainBack struct{ gen, kept uint64 }

// returned is what had returned when a Reader step began.
type returned struct {
	backs []chainBack
	front uint64
}

func (c *chainTruncs) line(l string) {
	var g, k uint64
	c.mu.Lock()
	defer c.mu.Unlock()
	switch {
	case strings.HasPrefix(l, "back? "):
		fmt.Sscanf(l, "back? %d %d", &g, &k)
		c.intend[g] = k
	case strings.HasPrefix(l, "back "):
		fmt.Sscanf(l, "back %d %d", &g, &k)
		c.done = append(c.done, chainBack{g, k})
	case strings.HasPrefix(l, "front? "):
		fmt.Sscanf(l, "front? %d", &k)
		c.frontIntend = max(c.frontIntend, k)
	case strings.HasPrefix(l, "front "):
		fmt.Sscanf(l, "front %d", &k)
		c.front = max(c.front, k)
	}
}

// String lists the latest truncations announced, for failure messages.
func (c *chainTruncs) String() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	gens := slices.Sorted(maps.Keys(c.intend))
	var b strings.Builder
	for _, g := range gens[max(len(gens), 4)-4:] {
		fmt.Fprintf(&b, "TruncateBack(%d) of generation %d, ", c.intend[g], g)
	}
	fmt.Fprintf(&b, "TruncateFront(%d)", c.frontIntend)
	return b.String()
}

func (c *chainTruncs) returned() returned {
	c.mu.Lock()
	defer c.mu.Unlock()
	return returned{c.done[:len(c.done):len(c.done)], c.front}
}

// dropped says why a step begun after rt may not return record index of
// generation gen, or "".
func (rt returned) dropped(index, gen uint64) string {
	if index < rt.front {
		return fmt.Sprintf("below a TruncateFront(%d) that had returned", rt.front)
	}
	for _, b := range rt.backs {
		if b.gen > gen && index > b.kept {
			return fmt.Sprintf("dropped by TruncateBack(%d) of generation %d, which had returned", b.kept, b.gen)
		}
	}
	return ""
}

// explains reports whether an announced truncation explains that a
// Reader at record index of generation gen stopped with err.
func (c *chainTruncs) explains(err error, index, gen uint64) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if errors.Is(err, ErrCompacted) {
		return c.frontIntend > index+1
	}
	for g, k := range c.intend {
		if g > gen && index > k {
			return true
		}
	}
	return false
}

func TestFollowChainOtherProcess(t *testing.T) {
	rng := seedtest.Rand(t)
	dir := t.TempDir()
	tr := &chainTruncs{intend: map[uint64]uint64{}}
	done := make(chan string, 8)
	// start runs a writer; kill kills it and waits for every line it
	// wrote to be read (Process.Wait would discard those not yet read:
	// announcements of the truncations a Reader must be able to explain).
	var drained chan struct{}
	start := func(gen uint64, run time.Duration) *testproc.Process {
		seed := rng.Uint64()
		p := testproc.Start(t, "TestFollowChainChild", []string{envChainChild + "=" + dir,
			envChainSeed + "=" + strconv.FormatUint(seed, 10), envChainGen + "=" + strconv.FormatUint(gen, 10),
			envChainRun + "=" + run.String()})
		ready := make(chan struct{})
		drained = make(chan struct{})
		go func(drained chan struct{}) {
			defer close(drained)
			for l := range p.Lines {
				switch {
				case l == "ready":
					close(ready)
				case strings.HasPrefix(l, "done"), strings.HasPrefix(l, "error"):
					done <- fmt.Sprintf("%s (the writer from generation %d)", l, gen)
				default:
					tr.line(l)
				}
			}
		}(drained)
		select {
		case <-ready:
		case l := <-done:
			t.Fatal(l)
		case <-time.After(10 * time.Second):
			t.Fatal("the writer did not start")
		}
		return p
	}

	kill := func(p *testproc.Process) {
		p.Kill()
		<-drained
		p.Wait()
	}
	p := start(0, time.Minute)
	f, err := OpenReadOnly(dir, &Options{Logger: quiet})
	must(t, err)
	defer f.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	type result struct {
		n, restarts int
		last        uint64
		err         error
	}
	results := make(chan result, 4)
	var end atomic.Uint64 // the index the last writer ended at, once known
	for range cap(results) {
		go func() {
			n, restarts, last, err := chainFollow(ctx, f, tr, &end)
			results <- result{n, restarts, last, err}
		}()
	}
	for k := uint64(1); k <= 2; k++ {
		time.Sleep(time.Duration(300+rng.IntN(700)) * time.Millisecond)
		kill(p)
		p = start(1000*k, time.Minute)
	}
	kill(p) // the third writer is killed too, and a fourth finishes
	start(3000, time.Duration(300+rng.IntN(700))*time.Millisecond)
	var first, last uint64
	select {
	case l := <-done:
		if _, err := fmt.Sscanf(l, "done %d %d", &first, &last); err != nil {
			t.Fatal(l)
		}
		t.Logf("the last writer left [%d, %d]", first, last)
	case <-time.After(time.Minute):
		t.Fatal("the last writer did not finish")
	}
	end.Store(last) // the Readers stop there
	timeout := time.After(20 * time.Second)
	for range cap(results) {
		var r result
		select {
		case r = <-results:
		case <-timeout:
			t.Fatalf("the Readers did not reach %d in 20 s", last)
		}
		t.Logf("Reader: %d records checked, %d restarts, ended at %d", r.n, r.restarts, r.last)
		if r.err != nil {
			t.Error(r.err)
		} else if r.last != last {
			t.Errorf("a Reader ended at %d, the log at %d", r.last, last)
		}
	}
	if f.FirstIndex() != first || f.LastIndex() != last {
		t.Fatalf("the follower holds [%d, %d], the writer left [%d, %d]", f.FirstIndex(), f.LastIndex(), first, last)
	}
	w := openT(t, dir, &Options{Logger: quiet})
	defer w.Close()
	for i := first; i <= last; i++ {
		want, err := w.Read(i)
		must(t, err)
		if got, err := f.Read(i); err != nil || string(got) != string(want) {
			t.Fatalf("follower Read(%d) = %.30q, %v; the log holds %.30q", i, got, err, want)
		}
	}
}

// chainFollow reads f with NextContext until ctx ends, checking each
// record against the chain and the truncations that had returned, and
// starts a new Reader at FirstIndex when one stops with ErrTruncated or
// ErrCompacted that an announced truncation explains. It returns the
// records checked, the restarts, and the index it ended at.
func chainFollow(ctx context.Context, f *Log, tr *chainTruncs, end *atomic.Uint64) (n, restarts int, last uint64, err error) {
	var prevIndex, prevHash, prevGen uint64
	r := f.NewReader(0)
	defer func() { r.Close() }()
	for {
		rt := tr.returned()
		step, cancel := context.WithTimeout(ctx, 20*time.Millisecond)
		ok := r.NextContext(step)
		cancel()
		if ok {
			rec := r.Record()
			index, gen := binary.LittleEndian.Uint64(rec), binary.LittleEndian.Uint64(rec[8:])
			switch {
			case rt.dropped(index, gen) != "":
				return n, restarts, prevIndex, fmt.Errorf("Reader returned record %d (generation %d), %s when the step began", index, gen, rt.dropped(index, gen))
			case index != r.Index():
				return n, restarts, prevIndex, fmt.Errorf("Reader at %d returned record %d", r.Index(), index)
			case prevIndex != 0 && index != prevIndex+1:
				return n, restarts, prevIndex, fmt.Errorf("Reader returned %d after %d", index, prevIndex)
			case prevIndex != 0 && binary.LittleEndian.Uint64(rec[16:]) != prevHash:
				return n, restarts, prevIndex, fmt.Errorf("Reader returned record %d (generation %d) that does not follow record %d (generation %d) it returned before",
					index, gen, prevIndex, prevGen)
			}
			prevIndex, prevHash, prevGen = index, xxhash.Sum64(rec), gen
			n++
			continue
		}
		rerr := r.Err()
		if errors.Is(rerr, context.DeadlineExceeded) {
			if e := end.Load(); e != 0 && prevIndex == e && f.LastIndex() == e {
				return n, restarts, prevIndex, nil // at the end the last writer left
			}
			continue
		}
		if ctx.Err() != nil {
			return n, restarts, prevIndex, nil
		}
		if !errors.Is(rerr, ErrTruncated) && !errors.Is(rerr, ErrCompacted) {
			return n, restarts, prevIndex, fmt.Errorf("Reader at %d stopped: %v", prevIndex, rerr)
		}
		// The announcement is written before the call: give the line a
		// moment to arrive.
		for deadline := time.Now().Add(5 * time.Second); !tr.explains(rerr, prevIndex, prevGen); {
			if time.Now().After(deadline) {
				return n, restarts, prevIndex, fmt.Errorf("Reader at %d (generation %d) stopped with %v, and no truncation explains it (announced: %s): records the follower returned were lost",
					prevIndex, prevGen, rerr, tr)
			}
			time.Sleep(time.Millisecond)
		}
		r.Close()
		r = f.NewReader(0)
		prevIndex, prevHash, prevGen = 0, 0, 0
		restarts++
	}
}
