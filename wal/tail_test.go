package wal

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/gojournal/journal/internal/seedtest"
	"github.com/gojournal/journal/vfs"
	"github.com/gojournal/journal/vfs/crashfs"
)

// Tests of tailing reads: NextContext, Follow and All, and what a Reader
// may see (durable records only).

// tailRecord is producer p's n-th record: the producer and its sequence
// number, so a reader can check each producer's order.
func tailRecord(p, n int) []byte {
	b := binary.LittleEndian.AppendUint32(nil, uint32(p))
	return binary.LittleEndian.AppendUint32(b, uint32(n))
}

// Several producers append concurrently while several readers follow the
// log from its start, some through NextContext, some through Follow: each
// reader gets every index once, in order, and each producer's records in
// the order it appended them.
func TestFollowConcurrentProducers(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	rng := seedtest.Rand(t)
	producers, readers := 1+rng.IntN(4), 1+rng.IntN(4)
	perProducer := 200 + rng.IntN(300)
	total := uint64(producers * perProducer)
	t.Logf("%d producers x %d records, %d readers", producers, perProducer, readers)
	l := openT(t, t.TempDir(), &Options{SegmentSize: MinSegmentSize, Logger: quiet, NoSync: rng.IntN(2) == 0})
	defer l.Close()

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	errc := make(chan error, readers)
	for k := range readers {
		go func() { errc <- followAll(ctx, l, total, k%2 == 0) }()
	}
	var wg sync.WaitGroup
	for p := range producers {
		batches := rng.IntN(2) == 0
		wg.Go(func() {
			for n := 0; n < perProducer; {
				var err error
				if batches && n+3 <= perProducer {
					_, err = l.AppendBatch([][]byte{tailRecord(p, n), tailRecord(p, n+1), tailRecord(p, n+2)})
					n += 3
				} else {
					_, err = l.Append(tailRecord(p, n))
					n++
				}
				if err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	// With NoSync the last records become visible at the next sync.
	syncT(t, l)
	for range readers {
		if err := <-errc; err != nil {
			t.Fatal(err)
		}
	}
}

// followAll follows l from its start until it has read total records,
// checking the order of indexes and of each producer's records.
func followAll(ctx context.Context, l *Log, total uint64, iterator bool) error {
	r := l.NewReader(1)
	defer r.Close()
	want := uint64(1)
	seen := map[uint32]uint32{}
	check := func(i uint64, rec []byte) error {
		if i != want {
			return fmt.Errorf("reader got index %d, want %d", i, want)
		}
		p, n := binary.LittleEndian.Uint32(rec), binary.LittleEndian.Uint32(rec[4:])
		if next := seen[p]; n != next {
			return fmt.Errorf("index %d: producer %d's record %d, want %d", i, p, n, next)
		}
		seen[p] = n + 1
		want++
		return nil
	}
	if iterator {
		for i, rec := range r.Follow(ctx) {
			if err := check(i, rec); err != nil {
				return err
			}
			if want > total {
				return nil
			}
		}
	} else {
		for r.NextContext(ctx) {
			if err := check(r.Index(), r.Record()); err != nil {
				return err
			}
			if want > total {
				return nil
			}
		}
	}
	return fmt.Errorf("reader stopped at %d of %d: %w", want, total, r.Err())
}

// syncGate holds the next fdatasync of a segment after arm, so a test can
// look at the log while a group commit has written its records but not
// yet made them durable.
type syncGate struct {
	vfs.FS
	mu      sync.Mutex
	armed   bool
	held    chan struct{}
	release chan struct{}
}

type syncGateFile struct {
	vfs.File
	g *syncGate
}

func (g *syncGate) OpenFile(name string, flag int, perm fs.FileMode) (vfs.File, error) {
	f, err := g.FS.OpenFile(name, flag, perm)
	if err != nil {
		return nil, err
	}
	return syncGateFile{f, g}, nil
}

func (f syncGateFile) Sync() error {
	f.g.mu.Lock()
	armed := f.g.armed
	f.g.armed = false
	f.g.mu.Unlock()
	if armed {
		f.g.held <- struct{}{}
		<-f.g.release
	}
	return f.File.Sync()
}

// With sync on, a record written by the group commit in flight is not
// visible to a Reader until its fdatasync returns; a Reader waiting for
// it wakes then.
func TestReaderWaitsForFdatasync(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	g := &syncGate{FS: crashfs.New(), held: make(chan struct{}), release: make(chan struct{})}
	l := openT(t, "/log", &Options{Logger: quiet, FS: g})
	defer l.Close()
	appendN(t, l, 3)
	r := l.NewReader(1)
	defer r.Close()
	wantIndexes(t, readAll(t, r), indexes(1, 3))

	g.mu.Lock()
	g.armed = true
	g.mu.Unlock()
	appended := make(chan error, 1)
	go func() {
		_, err := l.Append(record(4))
		appended <- err
	}()
	<-g.held // record 4 is written, its fdatasync not yet issued
	if r.Next() {
		t.Fatalf("Reader returned record %d before its fdatasync", r.Index())
	}
	got := make(chan bool)
	go func() { got <- r.NextContext(context.Background()) }()
	select {
	case <-got:
		t.Fatal("NextContext returned before the fdatasync")
	case <-time.After(20 * time.Millisecond):
	}
	close(g.release)
	if !<-got || r.Index() != 4 || !bytes.Equal(r.Record(), record(4)) {
		t.Fatalf("after the fdatasync: %d %q (%v), want record 4", r.Index(), r.Record(), r.Err())
	}
	if err := <-appended; err != nil {
		t.Fatal(err)
	}
}

// With NoSync a Reader sees records only once a Sync made them durable,
// and what it saw survives a power loss.
func TestNoSyncReaderSeesOnlySynced(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	mem := crashfs.New()
	l := openT(t, "/log", &Options{Logger: quiet, FS: mem, NoSync: true})
	defer l.Close()
	appendN(t, l, 5)
	syncT(t, l)
	appendN(t, l, 5) // written, not synced
	r := l.NewReader(1)
	defer r.Close()
	seen := readAll(t, r)
	wantIndexes(t, seen, indexes(1, 5))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Millisecond)
	defer cancel()
	if r.NextContext(ctx) || !errors.Is(r.Err(), context.DeadlineExceeded) {
		t.Fatalf("NextContext past the synced records: %d, %v", r.Index(), r.Err())
	}

	// A power loss now keeps at least what the Reader returned.
	after := openT(t, "/log", &Options{Logger: quiet, FS: mem.Crash(crashfs.SyncedOnly, nil)})
	if last := after.LastIndex(); last < 5 {
		t.Fatalf("after a crash the log ends at %d; the Reader had returned 5", last)
	}
	after.Close()

	// A Reader waiting is woken by the Sync, and the context's error did
	// not stop it.
	got := make(chan []uint64)
	go func() {
		var idx []uint64
		for i := range r.Follow(context.Background()) {
			if idx = append(idx, i); i == 10 {
				break
			}
		}
		got <- idx
	}()
	time.Sleep(5 * time.Millisecond)
	syncT(t, l)
	wantIndexes(t, <-got, indexes(6, 10))
}

// A Reader waiting in NextContext gets ErrClosed when the log is closed,
// and its context's error when the context ends (without being stopped).
func TestNextContextEnds(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	l := openT(t, t.TempDir(), &Options{Logger: quiet})
	appendN(t, l, 2)
	r := l.NewReader(3)
	defer r.Close()

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan bool)
	go func() { done <- r.NextContext(ctx) }()
	time.Sleep(5 * time.Millisecond)
	cancel()
	if <-done || !errors.Is(r.Err(), context.Canceled) {
		t.Fatalf("NextContext after cancel: %v, want context.Canceled", r.Err())
	}
	appendN(t, l, 1)
	if !r.NextContext(context.Background()) || r.Index() != 3 || r.Err() != nil {
		t.Fatalf("the Reader did not go on after its context ended: %d, %v", r.Index(), r.Err())
	}

	go func() { done <- r.NextContext(context.Background()) }()
	time.Sleep(5 * time.Millisecond)
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case ok := <-done:
		if ok || !errors.Is(r.Err(), ErrClosed) {
			t.Fatalf("NextContext across Close: %v, want ErrClosed", r.Err())
		}
	case <-time.After(10 * time.Second):
		t.Fatal("NextContext did not return after Close")
	}
	for range r.Follow(context.Background()) {
		t.Fatal("Follow yielded a record after Close")
	}
	if !errors.Is(r.Err(), ErrClosed) {
		t.Fatalf("Follow after Close: %v", r.Err())
	}
}

// Every way a Reader can be overtaken stops it with ErrCompacted (or
// ErrTruncated when its current record was dropped), through Next,
// NextContext, All and Follow alike; never a silent jump.
func TestReaderOvertaken(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	type how struct {
		name string
		// overtake changes l so that a Reader that returned records 1
		// and 2 of [1, 500] loses some.
		overtake func(t *testing.T, l *Log)
		err      error
		says     string
	}
	hows := []how{
		{"TruncateFront", func(t *testing.T, l *Log) {
			if err := l.TruncateFront(300); err != nil {
				t.Fatal(err)
			}
		}, ErrCompacted, "[3, 299]"},
		{"Checkpoint", func(t *testing.T, l *Log) {
			if err := l.Checkpoint(400, writeState(400)); err != nil {
				t.Fatal(err)
			}
		}, ErrCompacted, "records [3, "},
		{"TruncateBack", func(t *testing.T, l *Log) {
			if err := l.TruncateBack(1); err != nil {
				t.Fatal(err)
			}
			appendN(t, l, 5)
		}, ErrTruncated, "record 2"},
	}
	type via struct {
		name string
		next func(r *Reader) bool // one step; false when stopped
	}
	vias := []via{
		{"Next", (*Reader).Next},
		{"NextContext", func(r *Reader) bool { return r.NextContext(context.Background()) }},
		{"All", func(r *Reader) bool {
			for range r.All() {
				return true
			}
			return false
		}},
		{"Follow", func(r *Reader) bool {
			for range r.Follow(context.Background()) {
				return true
			}
			return false
		}},
	}
	for _, h := range hows {
		for _, v := range vias {
			t.Run(h.name+"/"+v.name, func(t *testing.T) {
				l := openT(t, t.TempDir(), &Options{SegmentSize: MinSegmentSize, Logger: quiet})
				defer l.Close()
				appendN(t, l, 500)
				r := l.NewReader(1)
				defer r.Close()
				for i := uint64(1); i <= 2; i++ {
					if !v.next(r) || r.Index() != i {
						t.Fatalf("step %d: %d, %v", i, r.Index(), r.Err())
					}
				}
				h.overtake(t, l)
				if v.next(r) {
					t.Fatalf("returned record %d after being overtaken", r.Index())
				}
				if err := r.Err(); !errors.Is(err, h.err) || !strings.Contains(err.Error(), h.says) {
					t.Fatalf("stopped with %v, want %v saying %q", err, h.err, h.says)
				}
				// Created below FirstIndex: the same, at the first step.
				if h.err == ErrCompacted {
					old := l.NewReader(2)
					defer old.Close()
					if v.next(old) || !errors.Is(old.Err(), ErrCompacted) {
						t.Fatalf("a Reader created below FirstIndex: %d, %v", old.Index(), old.Err())
					}
				}
			})
		}
	}
}

// waitNext calls r.NextContext on a goroutine of its own and gives it time
// to block at the end of the log; the channel receives its result.
func waitNext(r *Reader) chan bool {
	c := make(chan bool, 1)
	go func() { c <- r.NextContext(context.Background()) }()
	time.Sleep(5 * time.Millisecond) // let it block
	return c
}

// A Reader blocked at the end of the log is woken by truncations: one that
// drops the record it returned last stops it with ErrTruncated at once;
// TruncateFront(LastIndex+1) takes nothing it has yet to read, so it goes
// on waiting and returns the next record appended.
func TestReaderWokenWhileWaiting(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	l := openT(t, t.TempDir(), &Options{Logger: quiet})
	defer l.Close()
	appendN(t, l, 10)

	r := l.NewReader(1)
	defer r.Close()
	wantIndexes(t, readAll(t, r), indexes(1, 10))
	c := waitNext(r)
	if err := l.TruncateBack(7); err != nil {
		t.Fatal(err)
	}
	select {
	case ok := <-c:
		if ok || !errors.Is(r.Err(), ErrTruncated) {
			t.Fatalf("blocked Reader after TruncateBack: %d, %v; want ErrTruncated", r.Index(), r.Err())
		}
	case <-time.After(10 * time.Second):
		t.Fatal("a blocked Reader was not woken by TruncateBack")
	}

	r2 := l.NewReader(1)
	defer r2.Close()
	wantIndexes(t, readAll(t, r2), indexes(1, 7))
	c = waitNext(r2)
	if err := l.TruncateFront(8); err != nil {
		t.Fatal(err)
	}
	appendN(t, l, 1)
	if !<-c || r2.Index() != 8 {
		t.Fatalf("after TruncateFront(LastIndex+1) and an append: %d, %v", r2.Index(), r2.Err())
	}
}

// Close leaves no goroutine behind: not the background checkpointer, not
// the Readers waiting in the writer's process or in a read-only Log (they
// return ErrClosed), and a background checkpoint that releases records a
// lagging Reader had yet to read stops it with ErrCompacted.
func TestNoGoroutinesAfterClose(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	dir := t.TempDir()
	var w *Log
	w = openT(t, dir, &Options{SegmentSize: MinSegmentSize, Logger: quiet, Checkpoint: CheckpointOptions{
		EveryBytes: 16 << 10,
		State: func() (uint64, func(io.Writer) error, error) {
			i := w.LastIndex()
			return i, writeState(i), nil
		},
	}})
	defer w.Close()
	appendN(t, w, 1)
	lagging := w.NewReader(1)
	defer lagging.Close()
	if !lagging.Next() {
		t.Fatal(lagging.Err())
	}
	f, _ := openFollower(t, dir)
	defer f.Close()
	stopped := make(chan error, 4)
	for _, l := range []*Log{w, w, f, f} {
		go func() {
			for {
				// A Reader that falls behind a checkpoint starts again
				// after it, as a consumer would.
				r := l.NewReader(0)
				for range r.Follow(context.Background()) {
				}
				r.Close()
				if !errors.Is(r.Err(), ErrCompacted) {
					stopped <- r.Err()
					return
				}
			}
		}()
	}
	appendN(t, w, 2000)
	deadline := time.Now().Add(10 * time.Second)
	for w.FirstIndex() == 1 && time.Now().Before(deadline) {
		appendN(t, w, 10)
	}
	if lagging.Next() || !errors.Is(lagging.Err(), ErrCompacted) {
		t.Fatalf("a Reader overtaken by a background checkpoint: %d, %v", lagging.Index(), lagging.Err())
	}
	must(t, w.Close())
	must(t, f.Close())
	for range 4 {
		if err := <-stopped; !errors.Is(err, ErrClosed) {
			t.Fatalf("a following Reader stopped with %v, want ErrClosed", err)
		}
	}
}
