package wal

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/gojournal/journal/internal/seedtest"
	"github.com/gojournal/journal/internal/testproc"
)

// A follower in this process reads a log that a child process (this test
// binary, run again) writes: appends across rotations, TruncateFront,
// TruncateBack, a writer that closes and reopens, then random operations
// during which the writer is SIGKILLed twice and another started.
// Each record is "epoch-index", the epoch counting the child's
// TruncateBacks, so the follower can check what it gets: contiguous
// indexes, the index it was stored at, epochs that never go back within a
// Reader's run (a Reader never mixes two states of the log), and at the
// end the log exactly as the writer left it.

const (
	envFollowChild = "JOURNAL_FOLLOW_CHILD" // the log directory
	envFollowSeed  = "JOURNAL_FOLLOW_SEED"
	envFollowSync  = "JOURNAL_FOLLOW_NOSYNC"
	envFollowEpoch = "JOURNAL_FOLLOW_EPOCH" // set: a restarted writer's first epoch
)

// TestFollowChild is the writer process; it does nothing unless run by
// TestFollowOtherProcess.
func TestFollowChild(t *testing.T) {
	dir := os.Getenv(envFollowChild)
	if dir == "" {
		return
	}
	seed, _ := strconv.ParseUint(os.Getenv(envFollowSeed), 10, 64)
	c := &followChild{t: t, dir: dir, rng: rand.New(rand.NewPCG(seed, seed)), in: bufio.NewScanner(os.Stdin),
		opts: &Options{SegmentSize: MinSegmentSize, Logger: quiet, NoSync: os.Getenv(envFollowSync) == "1"}}
	c.w = openT(t, dir, c.opts)
	if base := os.Getenv(envFollowEpoch); base != "" {
		// A writer started after one was killed: random operations only,
		// in epochs after any the killed one can have reached.
		c.epoch, _ = strconv.Atoi(base)
		c.randomOps()
		return
	}
	c.appendN(500)
	c.say("ready")
	c.must(c.w.TruncateFront(300))
	c.say("tf")
	c.must(c.w.TruncateBack(450))
	c.epoch++
	c.appendN(100)
	c.say("tb")
	c.reopen()
	c.randomOps()
}

// randomOps runs random operations, then says where the log ends (if it
// is not killed first).
func (c *followChild) randomOps() {
	for range 3000 {
		c.randomOp()
	}
	c.sync()
	fmt.Printf("done %d %d\n", c.w.FirstIndex(), c.w.LastIndex())
	c.must(c.w.Close())
}

type followChild struct {
	t     *testing.T
	dir   string
	opts  *Options
	rng   *rand.Rand
	in    *bufio.Scanner
	w     *Log
	epoch int
}

func (c *followChild) must(err error) {
	if err != nil {
		fmt.Printf("error %v\n", err)
		c.t.Fatal(err)
	}
}

// say makes the records durable, tells the parent, and waits for its go.
func (c *followChild) say(what string) {
	c.sync()
	fmt.Println(what)
	if !c.in.Scan() {
		c.t.Fatal("the parent went away")
	}
}

func (c *followChild) sync() { c.must(c.w.Sync()) }

func (c *followChild) reopen() {
	c.must(c.w.Close())
	var err error
	c.w, err = Open(c.dir, c.opts)
	c.must(err)
}

func (c *followChild) appendN(n int) {
	next := c.w.LastIndex() + 1
	batch := make([][]byte, n)
	for k := range batch {
		batch[k] = fmt.Appendf(nil, "%d-%d", c.epoch, next+uint64(k))
	}
	_, err := c.w.AppendBatch(batch)
	c.must(err)
}

func (c *followChild) randomOp() {
	first, last := c.w.FirstIndex(), c.w.LastIndex()
	switch x := c.rng.IntN(200); {
	case x < 4:
		c.must(c.w.TruncateFront(first + uint64(c.rng.IntN(int(last+2-first)))))
	case x < 8 && last >= first:
		c.must(c.w.TruncateBack(last - uint64(c.rng.IntN(int(min(last-first+1, 40))))))
		c.epoch++
	case x < 10:
		c.reopen()
	case x < 20:
		c.sync()
	default:
		c.appendN(1 + c.rng.IntN(5))
	}
}

func TestFollowOtherProcess(t *testing.T) {
	rng := seedtest.Rand(t)
	seed := rng.Uint64()
	noSync := rng.IntN(2) == 0
	t.Logf("child seed %d, NoSync %v", seed, noSync)
	dir := t.TempDir()
	child := startFollowChild(t, dir, seed, noSync, "")
	expect, proceed := child.Expect, child.Proceed

	expect("ready")
	f, err := OpenReadOnly(dir, &Options{Logger: quiet})
	must(t, err)
	defer f.Close()
	all := f.NewReader(1)
	defer all.Close()
	wantRecords(t, all, 1, 500, 0)
	early := f.NewReader(1)
	defer early.Close()
	wantRecords(t, early, 1, 5, 0)
	proceed()

	expect("tf") // TruncateFront(300)
	wantStop(t, early, ErrCompacted, "[6, 299]")
	proceed()

	expect("tb") // TruncateBack(450), then 451..550 in epoch 1
	wantStop(t, all, ErrTruncated, "record 500")
	r := f.NewReader(0)
	defer r.Close()
	wantRecords(t, r, 300, 450, 0)
	wantRecords(t, r, 451, 550, 1)
	proceed()

	// Random operations: follow until the child says where the log ends.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	type result struct {
		stats followStats
		err   error
	}
	done := make(chan result, 1)
	end := make(chan uint64, 1)
	go func() {
		st, err := followChecked(ctx, f, r, end)
		done <- result{st, err}
	}()
	// SIGKILL the writer twice mid-stream and start another on the same
	// directory; the follower goes on through each recovery.
	for k := 1; k <= 2; k++ {
		time.Sleep(time.Duration(20+rng.IntN(200)) * time.Millisecond)
		child.Kill()
		child.Wait()
		child = startFollowChild(t, dir, seed+uint64(k), noSync, strconv.Itoa(1000*k))
	}
	var first, last uint64
	if _, err := fmt.Sscanf(child.Expect("done"), "done %d %d", &first, &last); err != nil {
		t.Fatal(err)
	}
	end <- last
	var res result
	select {
	case res = <-done:
	case <-time.After(time.Minute):
		t.Fatalf("the follower did not reach %d within a minute", last)
	}
	if res.err != nil {
		t.Fatal(res.err)
	}
	t.Logf("follower: %+v", res.stats)
	must(t, child.Wait())

	// The follower's view is the log the writer left.
	if f.FirstIndex() != first || f.LastIndex() != last {
		t.Fatalf("follower holds [%d, %d], the writer left [%d, %d]", f.FirstIndex(), f.LastIndex(), first, last)
	}
	w := openT(t, dir, &Options{Logger: quiet})
	defer w.Close()
	for i := first; i <= last; i++ {
		want, err := w.Read(i)
		must(t, err)
		got, err := f.Read(i)
		if err != nil || string(got) != string(want) {
			t.Fatalf("follower Read(%d) = %q, %v; the log holds %q", i, got, err, want)
		}
	}
}

// wantRecords reads [from, to] of epoch through r.
func wantRecords(t *testing.T, r *Reader, from, to uint64, epoch int) {
	t.Helper()
	for i := from; i <= to; i++ {
		if got, rec := nextWithin(t, r); got != i || rec != fmt.Sprintf("%d-%d", epoch, i) {
			t.Fatalf("got %d %q, want %d %d-%d", got, rec, i, epoch, i)
		}
	}
}

type followStats struct {
	Records, Runs, Compacted, Truncated int
}

// followChecked follows f from r until it has returned the record whose
// index end receives, checking each Reader run; on ErrCompacted or
// ErrTruncated it starts a new Reader at FirstIndex.
func followChecked(ctx context.Context, f *Log, r *Reader, end <-chan uint64) (followStats, error) {
	var st followStats
	stop := uint64(0)
	prevEpoch, prevIndex := 1, r.Index()
	for {
		wait, cancel := context.WithTimeout(ctx, 10*time.Millisecond)
		ok := r.NextContext(wait)
		cancel()
		if !ok {
			switch err := r.Err(); {
			case errors.Is(err, context.DeadlineExceeded):
			case errors.Is(err, ErrCompacted), errors.Is(err, ErrTruncated):
				if errors.Is(err, ErrCompacted) {
					st.Compacted++
				} else {
					st.Truncated++
				}
				r.Close()
				r = f.NewReader(0)
				st.Runs++
				prevEpoch, prevIndex = 0, 0
			default:
				return st, err
			}
			select {
			case stop = <-end:
			default:
			}
			// At the end of the view with the writer gone: done once
			// the view is the writer's final log.
			if stop != 0 && f.LastIndex() == stop && (prevIndex == stop || f.FirstIndex() > stop) {
				return st, nil
			}
			continue
		}
		var e int
		var i uint64
		if _, err := fmt.Sscanf(string(r.Record()), "%d-%d", &e, &i); err != nil || i != r.Index() {
			return st, fmt.Errorf("record %d holds %q", r.Index(), r.Record())
		}
		if prevIndex != 0 && r.Index() != prevIndex+1 {
			return st, fmt.Errorf("index %d after %d", r.Index(), prevIndex)
		}
		if e < prevEpoch {
			return st, fmt.Errorf("record %d of epoch %d after one of epoch %d", i, e, prevEpoch)
		}
		prevEpoch, prevIndex = e, r.Index()
		st.Records++
	}
}

// startFollowChild starts a writer on dir; epoch set makes it a restarted
// writer doing random operations from that epoch on.
func startFollowChild(t *testing.T, dir string, seed uint64, noSync bool, epoch string) *testproc.Process {
	t.Helper()
	env := []string{envFollowChild + "=" + dir, envFollowSeed + "=" + strconv.FormatUint(seed, 10),
		envFollowSync + "=" + map[bool]string{true: "1", false: "0"}[noSync]}
	if epoch != "" {
		env = append(env, envFollowEpoch+"="+epoch)
	}
	return testproc.Start(t, "TestFollowChild", env)
}
