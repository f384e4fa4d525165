package wal

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/gojournal/journal/checkpoint"
	"github.com/gojournal/journal/segment"
	"github.com/gojournal/journal/vfs"
	"github.com/gojournal/journal/vfs/crashfs"
	"github.com/gojournal/journal/vfs/errorfs"
)

// This file holds the regression tests of issue 9: operations that race
// one another (truncations, checkpoints, Close) must stay correct.

// within fails the test if fn does not return within d: a call that spins
// or deadlocks is a failure, not a hung test run.
func within(t *testing.T, d time.Duration, what string, fn func()) {
	t.Helper()
	done := make(chan struct{})
	go func() {
		defer close(done)
		fn()
	}()
	select {
	case <-done:
	case <-time.After(d):
		t.Fatalf("%s did not return within %v", what, d)
	}
}

// appendResult is what one Append or AppendBatch call returned.
type appendResult struct {
	recs  [][]byte
	index uint64
	err   error
}

// gateFS holds the next record write after arm() until release(), so a
// test can gather appends behind a flush in flight.
type gateFS struct {
	vfs.FS
	armed   atomic.Bool
	held    chan struct{} // receives when a write is held
	release chan struct{}
}

type gateFile struct {
	vfs.File
	g *gateFS
}

func newGateFS(fsys vfs.FS) *gateFS {
	return &gateFS{FS: fsys, held: make(chan struct{}), release: make(chan struct{})}
}

func (g *gateFS) OpenFile(name string, flag int, perm fs.FileMode) (vfs.File, error) {
	f, err := g.FS.OpenFile(name, flag, perm)
	if err != nil {
		return nil, err
	}
	return gateFile{f, g}, nil
}

func (f gateFile) WriteAt(p []byte, off int64) (int, error) {
	if off >= segment.DataStart && f.g.armed.CompareAndSwap(true, false) {
		f.g.held <- struct{}{}
		<-f.g.release
	}
	return f.File.WriteAt(p, off)
}

// assigned is the number of indexes handed out so far.
func (l *Log) assigned() uint64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.next
}

// TestAppendDroppedByTruncateBackFails gathers appends behind a held write,
// then races them against a TruncateBack that drops them all. An append
// whose record the truncation dropped must return ErrTruncated: before the
// fix, one whose waiter woke after the truncation committed spun forever
// (no later append came to lift LastIndex past it), and with later appends
// it returned an index that held another caller's record.
func TestAppendDroppedByTruncateBackFails(t *testing.T) {
	for _, noSync := range []bool{false, true} {
		t.Run(fmt.Sprint("NoSync=", noSync), func(t *testing.T) {
			// On the in-memory file system with one P, the truncation
			// runs to its commit before the woken appenders are
			// scheduled: the interleaving that used to spin.
			defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(1))
			g := newGateFS(crashfs.New())
			l := openT(t, "/log", &Options{NoSync: noSync, SegmentSize: MinSegmentSize, Logger: quiet, FS: g})
			defer func() {
				if !t.Failed() { // an append still spinning would hold Close up
					l.Close()
				}
			}()
			truncated := 0
			for round := range 100 {
				truncated += raceRound(t, l, g, round)
			}
			t.Logf("appends that got ErrTruncated: %d of 600", truncated)
		})
	}
}

// raceRound runs 6 appenders (some with batches) gathered behind a held
// write, and one TruncateBack(LastIndex) that drops all they append. It
// returns how many were told their records were dropped.
func raceRound(t *testing.T, l *Log, g *gateFS, round int) int {
	t.Helper()
	appendN(t, l, 1)
	back := l.LastIndex()
	results := make([]appendResult, 6)
	var wg sync.WaitGroup
	within(t, 10*time.Second, "a round of appends racing TruncateBack", func() {
		g.armed.Store(true)
		want := l.assigned()
		for w := range results {
			r := &results[w]
			r.recs = [][]byte{[]byte(fmt.Sprintf("round %d writer %d", round, w))}
			if w%3 == 2 {
				r.recs = append(r.recs, []byte(fmt.Sprintf("round %d writer %d second", round, w)))
			}
			want += uint64(len(r.recs))
			wg.Add(1)
			go func() {
				defer wg.Done()
				if len(r.recs) > 1 {
					r.index, r.err = l.AppendBatch(r.recs)
				} else {
					r.index, r.err = l.Append(r.recs[0])
				}
			}()
		}
		<-g.held
		for l.assigned() < want {
			time.Sleep(50 * time.Microsecond)
		}
		truncated := make(chan error)
		go func() { truncated <- l.TruncateBack(back) }()
		close(g.release)
		if err := <-truncated; err != nil {
			t.Errorf("TruncateBack(%d): %v", back, err)
		}
		wg.Wait()
		g.release = make(chan struct{})
	})
	if t.Failed() {
		t.FailNow()
	}
	dropped := 0
	for _, r := range results {
		switch {
		case errors.Is(r.err, ErrTruncated):
			dropped++
		case r.err != nil:
			t.Fatalf("round %d: append: %v", round, r.err)
		case r.index <= back:
			t.Fatalf("round %d: append returned %d, at or below the TruncateBack(%d) it raced", round, r.index, back)
		}
	}
	if last := l.LastIndex(); last != back {
		t.Fatalf("round %d: LastIndex %d after TruncateBack(%d) with no later appends", round, last, back)
	}
	return dropped
}

// slowState writes stateOf(index) after signalling started and sleeping,
// so that a call made meanwhile races the checkpoint.
func slowState(index uint64, started chan<- struct{}) func(w io.Writer) error {
	return func(w io.Writer) error {
		close(started)
		time.Sleep(30 * time.Millisecond)
		return writeState(index)(w)
	}
}

// TestCheckpointSerialisedWithTruncations races a checkpoint against a
// truncation the snapshot rule forbids in one order or the other: whatever
// the interleaving, the directory must open afterwards and the log must
// continue the snapshot.
func TestCheckpointSerialisedWithTruncations(t *testing.T) {
	cases := []struct {
		name       string
		checkpoint uint64
		truncate   func(l *Log) error
	}{
		{"Checkpoint(15)+TruncateBack(10)", 15, func(l *Log) error { return l.TruncateBack(10) }},
		{"Checkpoint(5)+TruncateFront(12)", 5, func(l *Log) error { return l.TruncateFront(12) }},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			o := &Options{Logger: quiet}
			l := openT(t, dir, o)
			appendN(t, l, 20)
			started := make(chan struct{})
			var ckptErr error
			var wg sync.WaitGroup
			wg.Add(1)
			go func() {
				defer wg.Done()
				ckptErr = l.Checkpoint(c.checkpoint, slowState(c.checkpoint, started))
			}()
			<-started
			truncErr := c.truncate(l)
			wg.Wait()
			if ckptErr != nil && truncErr != nil {
				t.Fatalf("both failed: checkpoint %v, truncation %v", ckptErr, truncErr)
			}
			for _, err := range []error{ckptErr, truncErr} {
				if err != nil && !errors.Is(err, ErrOutOfRange) {
					t.Fatalf("the call that lost the race: %v, want ErrOutOfRange", err)
				}
			}
			first, last := l.FirstIndex(), l.LastIndex()
			if err := l.Close(); err != nil {
				t.Fatal(err)
			}
			l, err := Open(dir, o)
			if err != nil {
				t.Fatalf("Open after the race (checkpoint: %v, truncation: %v): %v", ckptErr, truncErr, err)
			}
			defer l.Close()
			if l.FirstIndex() != first || l.LastIndex() != last {
				t.Fatalf("reopened [%d, %d], was [%d, %d]", l.FirstIndex(), l.LastIndex(), first, last)
			}
			if index, _, err := l.Snapshot(); err == nil && (index+1 < first || index > last) {
				t.Fatalf("snapshot as of %d, log [%d, %d]", index, first, last)
			}
		})
	}
}

// TestCheckpointCommitFailurePoisonsTheLog fails the rename or the
// directory sync that commits a snapshot: the log no longer knows which
// snapshot is durable, so every later write gets ErrFailed (before the
// fix, TruncateBack below the new snapshot was allowed and the directory
// no longer opened).
func TestCheckpointCommitFailurePoisonsTheLog(t *testing.T) {
	for _, op := range []errorfs.Op{errorfs.OpRename, errorfs.OpSyncDir} {
		t.Run(op.String(), func(t *testing.T) {
			dir := t.TempDir()
			efs := errorfs.Wrap(vfs.Default)
			o := &Options{FS: efs, Logger: quiet}
			l := openT(t, dir, o)
			appendN(t, l, 10)
			efs.Add(errorfs.Rule{Op: op})
			if err := l.Checkpoint(8, writeState(8)); !errors.Is(err, ErrFailed) || !errors.Is(err, errorfs.ErrInjected) {
				t.Fatalf("Checkpoint with a failed %s: %v, want ErrFailed wrapping the injected error", op, err)
			}
			if _, err := l.Append(record(11)); !errors.Is(err, ErrFailed) {
				t.Fatalf("Append after the failed checkpoint: %v, want ErrFailed", err)
			}
			if err := l.TruncateBack(5); !errors.Is(err, ErrFailed) {
				t.Fatalf("TruncateBack after the failed checkpoint: %v, want ErrFailed", err)
			}
			l.Close()
			l = openT(t, dir, &Options{Logger: quiet})
			defer l.Close()
			checkRange(t, l, l.FirstIndex(), 10)
		})
	}
}

// TestCheckpointWriteErrorLeavesTheLogUsable: an error before the commit
// (the state could not be written, or the disk is full) leaves the old
// snapshot in place and the log usable.
func TestCheckpointWriteErrorLeavesTheLogUsable(t *testing.T) {
	dir := t.TempDir()
	efs := errorfs.Wrap(vfs.Default)
	l := openT(t, dir, &Options{FS: efs, Logger: quiet})
	defer l.Close()
	appendN(t, l, 10)
	efs.Add(errorfs.Rule{Op: errorfs.OpSync, Err: syscall.ENOSPC, Match: func(p string) bool { return strings.Contains(p, ".tmp-") }})
	if err := l.Checkpoint(8, writeState(8)); !errors.Is(err, syscall.ENOSPC) || errors.Is(err, ErrFailed) {
		t.Fatalf("Checkpoint whose file sync fails: %v, want ENOSPC, not ErrFailed", err)
	}
	appendN(t, l, 1)
}

// TestCloseWaitsForAnExplicitCheckpoint: Close must not release the
// directory lock while a Checkpoint is still writing its temporary file
// (a second owner's Open would delete it under the writer). Close cancels
// the checkpoint; the snapshot stays as it was.
func TestCloseWaitsForAnExplicitCheckpoint(t *testing.T) {
	dir := t.TempDir()
	l := openT(t, dir, &Options{Logger: quiet})
	appendN(t, l, 10)
	started := make(chan struct{})
	var writing atomic.Bool
	ckpt := make(chan error, 1)
	go func() {
		ckpt <- l.Checkpoint(10, func(w io.Writer) error {
			writing.Store(true)
			defer writing.Store(false)
			close(started)
			for range 1000 {
				if _, err := w.Write(make([]byte, 4096)); err != nil {
					return err
				}
				time.Sleep(time.Millisecond)
			}
			return nil
		})
	}()
	<-started
	within(t, 10*time.Second, "Close beside a checkpoint", func() {
		if err := l.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	if writing.Load() {
		t.Fatal("Close returned while the checkpoint was still writing")
	}
	if err := <-ckpt; !errors.Is(err, ErrClosed) {
		t.Fatalf("the checkpoint Close cancelled: %v, want ErrClosed", err)
	}
	l = openT(t, dir, &Options{Logger: quiet})
	defer l.Close()
	if r := l.Recovered(); len(r.Removed) > 0 {
		t.Fatalf("Open found leftovers of the checkpoint: %v", r.Removed)
	}
	if _, _, err := l.Snapshot(); !errors.Is(err, ErrNoSnapshot) {
		t.Fatalf("Snapshot after the cancelled checkpoint: %v, want ErrNoSnapshot", err)
	}
	checkRange(t, l, 1, 10)
}

// renameGateFS holds the first Rename onto the snapshot file until
// release: the point where a checkpoint has written its snapshot and is
// about to commit it.
type renameGateFS struct {
	vfs.FS
	once    sync.Once
	held    chan struct{} // closed when the Rename is held
	release chan struct{}
}

func (g *renameGateFS) Rename(oldname, newname string) error {
	if filepath.Base(newname) == checkpoint.FileName {
		g.once.Do(func() {
			close(g.held)
			<-g.release
		})
	}
	return g.FS.Rename(oldname, newname)
}

// TestCloseDuringACheckpointCommit: Close begins once a Checkpoint has
// written its snapshot and is committing it. Close cancels only the
// writing: the checkpoint must finish (snapshot and release) and return
// nil. Before the fix it committed the snapshot, then refused to release
// the records and returned ErrClosed: the caller was told the checkpoint
// had not happened, yet the snapshot was there after a restart.
func TestCloseDuringACheckpointCommit(t *testing.T) {
	dir := t.TempDir()
	g := &renameGateFS{FS: vfs.Default, held: make(chan struct{}), release: make(chan struct{})}
	l := openT(t, dir, &Options{FS: g, Logger: quiet})
	appendN(t, l, 10)
	ckpt := make(chan error, 1)
	go func() { ckpt <- l.Checkpoint(6, writeState(6)) }()
	<-g.held
	closed := make(chan error, 1)
	go func() { closed <- l.Close() }()
	for !errors.Is(l.Sync(), ErrClosed) { // Close has begun
		runtime.Gosched()
	}
	close(g.release)
	within(t, 10*time.Second, "Checkpoint and Close", func() {
		if err := <-ckpt; err != nil {
			t.Errorf("Checkpoint committing when Close began: %v, want nil", err)
		}
		if err := <-closed; err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	l = openT(t, dir, &Options{Logger: quiet})
	defer l.Close()
	if index, r, err := l.Snapshot(); err != nil || index != 6 {
		t.Fatalf("Snapshot after the checkpoint: index %d, %v; want 6", index, err)
	} else {
		r.Close()
	}
	checkRange(t, l, 7, 10)
}

// TestCloseFromOnError: OnError may close the log; Close must return and
// the log ends closed.
func TestCloseFromOnError(t *testing.T) {
	dir := t.TempDir()
	closed := make(chan error, 1)
	var l *Log
	opened := make(chan struct{})
	o := &Options{Logger: quiet, Checkpoint: CheckpointOptions{
		EveryInterval: time.Millisecond,
		State: func() (uint64, func(io.Writer) error, error) {
			return 0, nil, errors.New("state unavailable")
		},
		OnError: func(error) {
			<-opened
			closed <- l.Close()
		},
	}}
	l = openT(t, dir, o)
	// A record to checkpoint: State is not asked while there is none.
	appendN(t, l, 1)
	close(opened)
	within(t, 10*time.Second, "Close called from OnError", func() {
		if err := <-closed; err != nil {
			t.Errorf("Close from OnError: %v", err)
		}
	})
	if _, err := l.Append(nil); !errors.Is(err, ErrClosed) {
		t.Fatalf("Append after Close: %v, want ErrClosed", err)
	}
	if err := l.Close(); !errors.Is(err, ErrClosed) {
		t.Fatalf("second Close: %v, want ErrClosed", err)
	}
	l2 := openT(t, dir, &Options{Logger: quiet})
	l2.Close()
}

// markFS calls onCommit when a temporary meta or snapshot file is
// created: where a truncation or checkpoint stops waiting and starts its
// own I/O (which appends do not wait for).
type markFS struct {
	vfs.FS
	onCommit func()
}

func (m *markFS) OpenFile(name string, flag int, perm fs.FileMode) (vfs.File, error) {
	if flag&os.O_CREATE != 0 && (strings.Contains(name, ".tmp-journal.meta") || strings.Contains(name, ".tmp-snapshot")) {
		m.onCommit()
	}
	return m.FS.OpenFile(name, flag, perm)
}

// slowSyncFS makes every fdatasync take a millisecond, as on a disk: with
// the instant syncs of tmpfs, the few microseconds a woken caller takes to
// get the mutex back would already span several group commits.
type slowSyncFS struct{ vfs.FS }

type slowSyncFile struct{ vfs.File }

func (s slowSyncFS) OpenFile(name string, flag int, perm fs.FileMode) (vfs.File, error) {
	f, err := s.FS.OpenFile(name, flag, perm)
	if err != nil {
		return nil, err
	}
	return slowSyncFile{f}, nil
}

func (f slowSyncFile) Sync() error {
	time.Sleep(time.Millisecond)
	return f.File.Sync()
}

// TestNoStarvationUnderSustainedAppends: with writers appending
// continuously, Sync, Checkpoint and TruncateFront each wait for a bounded
// number of group commits before their own I/O begins (before the fix
// they waited until nothing at all was pending: seconds, thousands of
// group commits).
func TestNoStarvationUnderSustainedAppends(t *testing.T) {
	for _, noSync := range []bool{false, true} {
		t.Run(fmt.Sprint("NoSync=", noSync), func(t *testing.T) {
			var l *Log
			var waited atomic.Int64 // group commits before the op's I/O; -1 until it begins
			var begin uint64
			mfs := &markFS{FS: slowSyncFS{vfs.Default}, onCommit: func() {
				if waited.Load() < 0 {
					waited.Store(int64(l.Stats().Syncs - begin))
				}
			}}
			l = openT(t, t.TempDir(), &Options{NoSync: noSync, Logger: quiet, FS: mfs})
			defer l.Close()
			stop := loadWriters(t, l, 8)
			defer stop()
			// Until the load is on: a fixed sleep was too short under
			// qemu-arm, where TruncateFront then cut an empty log.
			for l.LastIndex() < 64 {
				time.Sleep(time.Millisecond)
			}
			// A commit in flight, the one the call needs, and one each
			// for a rotation and the release after a checkpoint.
			const bound = 4
			// TruncateFront goes first: once a snapshot exists it may not
			// pass it.
			ops := []struct {
				name string
				op   func() error
			}{
				{"TruncateFront", func() error {
					first := l.FirstIndex()
					return l.TruncateFront(first + (l.LastIndex()-first)/2)
				}},
				{"Sync", l.Sync},
				{"Checkpoint", func() error {
					i := l.LastIndex()
					return l.Checkpoint(i, writeState(i))
				}},
			}
			for _, op := range ops {
				for range 20 {
					waited.Store(-1)
					begin = l.Stats().Syncs
					err := op.op()
					waited.CompareAndSwap(-1, int64(l.Stats().Syncs-begin)) // Sync has no I/O of its own
					if err != nil {
						t.Fatalf("%s: %v", op.name, err)
					}
					if n := waited.Load(); n > bound {
						t.Fatalf("%s waited for %d group commits, want at most %d", op.name, n, bound)
					}
				}
			}
		})
	}
}

// loadWriters starts n goroutines appending continuously; stop ends them.
func loadWriters(t testing.TB, l *Log, n int) (stop func()) {
	var quit atomic.Bool
	var wg sync.WaitGroup
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			data := make([]byte, 128)
			for !quit.Load() {
				if _, err := l.Append(data); err != nil {
					if !errors.Is(err, ErrClosed) {
						t.Error(err)
					}
					return
				}
			}
		}()
	}
	return func() {
		quit.Store(true)
		wg.Wait()
	}
}
