package wal

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gojournal/journal/internal/seedtest"
	"github.com/gojournal/journal/vfs"
	"github.com/gojournal/journal/vfs/crashfs"
	"github.com/gojournal/journal/vfs/errorfs"
)

// applied records the applies a test saw, in the order they ran. Its
// methods take no lock: applies must never run concurrently, and the race
// detector (and the inApply check) would catch it if they did.
type applied struct {
	t       *testing.T
	l       *Log
	inApply atomic.Bool
	order   []uint64 // first index of each apply, in the order they ran
}

// fn returns an apply for records recs that checks, when it runs, that it
// runs alone, in index order, after the records are readable (durable)
// and with their contents.
func (a *applied) fn(recs [][]byte) func(uint64) {
	return func(first uint64) {
		if !a.inApply.CompareAndSwap(false, true) {
			a.t.Errorf("apply(%d) ran concurrently with another apply", first)
		}
		defer a.inApply.Store(false)
		if n := len(a.order); n > 0 && a.order[n-1] >= first {
			a.t.Errorf("apply(%d) ran after apply(%d): out of index order", first, a.order[n-1])
		}
		a.order = append(a.order, first)
		for i, rec := range recs {
			if got, err := a.l.Read(first + uint64(i)); err != nil || !bytes.Equal(got, rec) {
				a.t.Errorf("apply(%d): record %d reads %.20q, %v; want %.20q", first, first+uint64(i), got, err, rec)
			}
		}
	}
}

// TestAppendApplyOrder runs writers that mix AppendApply, AppendBatchApply,
// Append and AppendBatch, with applies that yield or sleep, and checks that
// applies ran alone, in index order, once durable, and exactly once for
// every call that returned nil (and for no other).
func TestAppendApplyOrder(t *testing.T) {
	for _, c := range []struct {
		name string
		opts Options
		ops  int
	}{
		{"sync", Options{Logger: quiet}, 60},
		{"NoSync small segments", Options{NoSync: true, SegmentSize: MinSegmentSize, Logger: quiet, FS: crashfs.New()}, 400},
	} {
		t.Run(c.name, func(t *testing.T) {
			rng := seedtest.Rand(t)
			dir := t.TempDir()
			if c.opts.FS != nil {
				dir = "/log"
			}
			opts := c.opts
			l := openT(t, dir, &opts)
			defer l.Close()
			a := &applied{t: t, l: l}
			const writers = 8
			acked := make([][]uint64, writers) // first index of each acknowledged apply call
			var wg sync.WaitGroup
			for w := range writers {
				seed := rng.Uint64()
				wg.Add(1)
				go func() {
					defer wg.Done()
					acked[w] = applyWriter(t, l, a, rand.New(rand.NewPCG(seed, uint64(w))), w, c.ops)
				}()
			}
			wg.Wait()
			var want []uint64
			for _, firsts := range acked {
				want = append(want, firsts...)
			}
			slices.Sort(want)
			if fmt.Sprint(a.order) != fmt.Sprint(want) {
				t.Fatalf("applies ran for %v\nacknowledged apply calls: %v", a.order, want)
			}
			t.Logf("%d applies, %d records, %.2f records per sync", len(a.order), l.LastIndex(), float64(l.Stats().Records)/float64(max(l.Stats().Syncs, 1)))
		})
	}
}

// applyWriter makes ops random append calls and returns the first index of
// each apply call that returned nil.
func applyWriter(t *testing.T, l *Log, a *applied, rng *rand.Rand, w, ops int) []uint64 {
	var acked []uint64
	for i := range ops {
		recs := [][]byte{[]byte(fmt.Sprintf("writer %d op %d", w, i))}
		for range rng.IntN(3) {
			recs = append(recs, []byte(fmt.Sprintf("writer %d op %d more %d", w, i, len(recs))))
		}
		apply := a.fn(recs)
		switch rng.IntN(8) {
		case 0: // an apply that takes a while: later ones queue up
			inner := apply
			apply = func(first uint64) {
				inner(first)
				time.Sleep(time.Duration(rng.IntN(200)) * time.Microsecond)
			}
		case 1:
			inner := apply
			apply = func(first uint64) {
				runtime.Gosched()
				inner(first)
			}
		}
		var first uint64
		var err error
		switch kind := rng.IntN(5); {
		case kind == 0 && len(recs) == 1:
			_, err = l.Append(recs[0])
		case kind == 0:
			_, err = l.AppendBatch(recs)
		case len(recs) == 1:
			first, err = l.AppendApply(recs[0], apply)
			acked = append(acked, first)
		default:
			first, err = l.AppendBatchApply(recs, apply)
			acked = append(acked, first)
		}
		if err != nil {
			t.Errorf("writer %d: %v", w, err)
			return acked
		}
	}
	return acked
}

// blockingApply is an apply that signals when it starts and returns (or
// panics) only when released.
type blockingApply struct {
	started, release chan struct{}
	panics           bool
}

func newBlockingApply() *blockingApply {
	return &blockingApply{started: make(chan struct{}), release: make(chan struct{})}
}

func (b *blockingApply) fn(uint64) {
	close(b.started)
	<-b.release
	if b.panics {
		panic("apply panicked")
	}
}

// call is an apply call running in its own goroutine.
type call struct {
	index   uint64
	err     error
	applied atomic.Int64 // times apply ran
	done    chan struct{}
}

// goApply runs AppendApply(data) with an apply that counts its runs,
// after running before (if not nil).
func goApply(l *Log, data string, before func(uint64)) *call {
	c := &call{done: make(chan struct{})}
	go func() {
		defer close(c.done)
		c.index, c.err = l.AppendApply([]byte(data), func(i uint64) {
			c.applied.Add(1)
			if before != nil {
				before(i)
			}
		})
	}()
	return c
}

// waitLast waits until LastIndex reaches index: the record is durable.
func waitLast(t *testing.T, l *Log, index uint64) {
	t.Helper()
	within(t, 5*time.Second, "a record becoming durable", func() {
		for l.LastIndex() < index {
			time.Sleep(100 * time.Microsecond)
		}
	})
}

func wait(t *testing.T, c *call, what string) {
	t.Helper()
	within(t, 5*time.Second, what, func() { <-c.done })
}

// TestBlockedApplyHoldsUpAppliesNotAppends: while one apply blocks, the
// next AppendApply's record becomes durable but its apply waits; plain
// appends go on; releasing the first lets the second apply.
func TestBlockedApplyHoldsUpAppliesNotAppends(t *testing.T) {
	l := openT(t, t.TempDir(), &Options{Logger: quiet})
	defer l.Close()
	b := newBlockingApply()
	first := goApply(l, "first", b.fn)
	<-b.started
	second := goApply(l, "second", nil)
	waitLast(t, l, 2)
	within(t, 5*time.Second, "Append while an apply blocks", func() { appendN(t, l, 3) })
	time.Sleep(10 * time.Millisecond)
	if n := second.applied.Load(); n != 0 {
		t.Fatalf("the second apply ran while the first was blocked")
	}
	close(b.release)
	wait(t, first, "the first AppendApply")
	wait(t, second, "the second AppendApply")
	if first.err != nil || second.err != nil || first.index != 1 || second.index != 2 {
		t.Fatalf("AppendApply returned (%d, %v) and (%d, %v), want 1 and 2", first.index, first.err, second.index, second.err)
	}
	if first.applied.Load() != 1 || second.applied.Load() != 1 {
		t.Fatalf("applies ran %d and %d times, want once each", first.applied.Load(), second.applied.Load())
	}
}

// TestPanickingApplyPassesTheTurn: an apply that panics still lets the
// next record's apply run, and the panic reaches the caller.
func TestPanickingApplyPassesTheTurn(t *testing.T) {
	l := openT(t, t.TempDir(), &Options{Logger: quiet})
	defer l.Close()
	b := newBlockingApply()
	b.panics = true
	var recovered any
	done := make(chan struct{})
	go func() {
		defer close(done)
		defer func() { recovered = recover() }()
		l.AppendApply([]byte("panics"), b.fn)
	}()
	<-b.started
	next := goApply(l, "next", nil)
	waitLast(t, l, 2)
	close(b.release)
	<-done
	if recovered == nil {
		t.Fatalf("the apply's panic did not reach the AppendApply caller")
	}
	wait(t, next, "the AppendApply after a panicking apply")
	if next.err != nil || next.applied.Load() != 1 {
		t.Fatalf("AppendApply after a panic: %v, applied %d times", next.err, next.applied.Load())
	}
}

// TestTruncatedApplySkippedAndPassesTheTurn: a record dropped by
// TruncateBack while its apply waits for its turn gets ErrTruncated at
// once, without waiting for the blocked apply before it, and its apply
// never runs; the record appended after the truncation takes its index and
// applies after the blocked one.
func TestTruncatedApplySkippedAndPassesTheTurn(t *testing.T) {
	l := openT(t, t.TempDir(), &Options{Logger: quiet})
	defer l.Close()
	b := newBlockingApply()
	var order []string
	first := goApply(l, "first", func(uint64) { b.fn(0); order = append(order, "first") })
	<-b.started
	dropped := goApply(l, "dropped", func(uint64) { order = append(order, "dropped") })
	waitLast(t, l, 2)
	if err := l.TruncateBack(1); err != nil {
		t.Fatal(err)
	}
	wait(t, dropped, "an AppendApply whose record TruncateBack dropped")
	if !errors.Is(dropped.err, ErrTruncated) {
		t.Fatalf("AppendApply of a dropped record returned %v, want ErrTruncated", dropped.err)
	}
	after := goApply(l, "after", func(uint64) { order = append(order, "after") })
	waitLast(t, l, 2)
	close(b.release)
	wait(t, first, "the first AppendApply")
	wait(t, after, "the AppendApply after the truncation")
	if first.err != nil || after.err != nil || after.index != 2 {
		t.Fatalf("AppendApply: first %v, after (%d, %v); want nil, (2, nil)", first.err, after.index, after.err)
	}
	if fmt.Sprint(order) != "[first after]" || dropped.applied.Load() != 0 {
		t.Fatalf("applies ran: %v (dropped: %d times), want [first after]", order, dropped.applied.Load())
	}
}

// TestFailedTruncationSkipsApply: a TruncateBack or TruncateFront (to the
// end, or past it) whose commit fails may or may not have dropped the
// record whose apply waits for its turn: the call gets the failure
// (ErrFailed) and its apply never runs; the apply already running
// finishes.
func TestFailedTruncationSkipsApply(t *testing.T) {
	for name, truncate := range map[string]func(*Log) error{
		"TruncateBack(1)":   func(l *Log) error { return l.TruncateBack(1) },
		"TruncateFront(3)":  func(l *Log) error { return l.TruncateFront(3) },
		"TruncateFront(50)": func(l *Log) error { return l.TruncateFront(50) },
	} {
		t.Run(name, func(t *testing.T) {
			efs := errorfs.Wrap(vfs.Default)
			l := openT(t, t.TempDir(), &Options{Logger: quiet, FS: efs})
			defer l.Close()
			b := newBlockingApply()
			first := goApply(l, "first", b.fn)
			<-b.started
			waiting := goApply(l, "waiting", nil)
			waitLast(t, l, 2)
			efs.Add(errorfs.Rule{Op: errorfs.OpRename})
			if err := truncate(l); !errors.Is(err, ErrFailed) {
				t.Fatalf("%s with a failing rename: %v, want ErrFailed", name, err)
			}
			wait(t, waiting, "an AppendApply behind a failed truncation")
			if !errors.Is(waiting.err, ErrFailed) || waiting.applied.Load() != 0 {
				t.Fatalf("AppendApply behind a failed %s: %v, applied %d times", name, waiting.err, waiting.applied.Load())
			}
			close(b.release)
			wait(t, first, "the blocked AppendApply")
			if first.err != nil || first.applied.Load() != 1 {
				t.Fatalf("the apply that was running: %v, applied %d times", first.err, first.applied.Load())
			}
		})
	}
}

// TestTruncatedWhileGatheringApplies races apply calls gathered behind a
// held write against a TruncateBack that drops them all: none may apply,
// and later apply calls must not wait for them.
func TestTruncatedWhileGatheringApplies(t *testing.T) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(1))
	g := newGateFS(crashfs.New())
	l := openT(t, "/log", &Options{SegmentSize: MinSegmentSize, Logger: quiet, FS: g})
	defer l.Close()
	dropped := 0
	for round := range 30 {
		appendN(t, l, 1)
		back := l.LastIndex()
		g.armed.Store(true)
		calls := make([]*call, 4)
		for i := range calls {
			calls[i] = goApply(l, fmt.Sprintf("round %d call %d", round, i), nil)
		}
		<-g.held
		for l.assigned() < back+1+uint64(len(calls)) {
			time.Sleep(50 * time.Microsecond)
		}
		truncated := make(chan error)
		go func() { truncated <- l.TruncateBack(back) }()
		close(g.release)
		if err := <-truncated; err != nil {
			t.Fatal(err)
		}
		g.release = make(chan struct{})
		for _, c := range calls {
			wait(t, c, "an AppendApply racing TruncateBack")
			if (c.err == nil) != (c.applied.Load() == 1) || c.applied.Load() > 1 {
				t.Fatalf("round %d: AppendApply returned (%d, %v) and applied %d times", round, c.index, c.err, c.applied.Load())
			}
			if c.err != nil && !errors.Is(c.err, ErrTruncated) {
				t.Fatalf("round %d: %v", round, c.err)
			}
			if c.err != nil {
				dropped++
			}
		}
		after := goApply(l, fmt.Sprintf("round %d after", round), nil)
		wait(t, after, "AppendApply after a truncation")
		if after.err != nil || after.applied.Load() != 1 {
			t.Fatalf("round %d: AppendApply after the truncation: %v, applied %d times", round, after.err, after.applied.Load())
		}
	}
	t.Logf("apply calls that got ErrTruncated: %d of 120", dropped)
}

// TestAppendApplyFailuresSkipApply: a record too large, a failed fdatasync
// (and every call after it) and a closed log return their errors without
// running apply; an empty batch applies nothing.
func TestAppendApplyFailuresSkipApply(t *testing.T) {
	efs := errorfs.Wrap(vfs.Default)
	l := openT(t, t.TempDir(), &Options{Logger: quiet, FS: efs})
	var ran atomic.Int64
	count := func(uint64) { ran.Add(1) }
	if _, err := l.AppendApply(make([]byte, MaxRecordSize+1), count); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("AppendApply of a record too large: %v", err)
	}
	if _, err := l.AppendBatchApply(nil, count); err != nil {
		t.Fatalf("AppendBatchApply(nil): %v", err)
	}
	if ran.Load() != 0 {
		t.Fatalf("apply ran for a record too large or an empty batch")
	}
	if _, err := l.AppendApply([]byte("ok"), count); err != nil || ran.Load() != 1 {
		t.Fatalf("AppendApply: %v, applied %d times", err, ran.Load())
	}
	efs.Add(errorfs.Rule{Op: errorfs.OpSync, Sticky: true})
	// Several at once, so that some gather behind the failing commit.
	var wg sync.WaitGroup
	for range 6 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := l.AppendBatchApply([][]byte{[]byte("a"), []byte("b")}, count)
			if !errors.Is(err, ErrFailed) {
				t.Errorf("AppendBatchApply on a failing disk: %v, want ErrFailed", err)
			}
		}()
	}
	within(t, 5*time.Second, "AppendBatchApply on a failing disk", wg.Wait)
	l.Close()
	if _, err := l.AppendApply([]byte("closed"), count); !errors.Is(err, ErrClosed) {
		t.Fatalf("AppendApply after Close: %v, want ErrClosed", err)
	}
	if ran.Load() != 1 {
		t.Fatalf("apply ran %d times for failed calls", ran.Load()-1)
	}
}

// TestCloseDoesNotWaitForApplies: Close returns while an apply blocks;
// the record queued behind it was made durable, so its apply still runs
// once the blocked one returns, and its call returns nil.
func TestCloseDoesNotWaitForApplies(t *testing.T) {
	l := openT(t, t.TempDir(), &Options{Logger: quiet})
	b := newBlockingApply()
	first := goApply(l, "first", b.fn)
	<-b.started
	second := goApply(l, "second", nil)
	waitLast(t, l, 2)
	within(t, 5*time.Second, "Close while an apply blocks", func() {
		if err := l.Close(); err != nil {
			t.Error(err)
		}
	})
	close(b.release)
	wait(t, first, "the blocked AppendApply")
	wait(t, second, "the AppendApply queued behind it")
	if first.err != nil || second.err != nil || second.applied.Load() != 1 {
		t.Fatalf("after Close: %v, %v, second applied %d times", first.err, second.err, second.applied.Load())
	}
}

// TestApplyMayAppend: an apply may call Append on the same log (only the
// Apply forms would wait for their own turn).
func TestApplyMayAppend(t *testing.T) {
	l := openT(t, t.TempDir(), &Options{Logger: quiet})
	defer l.Close()
	within(t, 5*time.Second, "an apply that appends", func() {
		_, err := l.AppendApply([]byte("outer"), func(uint64) {
			if _, err := l.Append([]byte("inner")); err != nil {
				t.Error(err)
			}
		})
		if err != nil {
			t.Error(err)
		}
	})
}
