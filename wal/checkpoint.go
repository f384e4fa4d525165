package wal

import (
	"cmp"
	"fmt"
	"io"
	"path/filepath"
	"sync/atomic"
	"time"

	"github.com/gojournal/journal/checkpoint"
	"github.com/gojournal/journal/vfs"
)

// ErrNoSnapshot is returned by Snapshot when no checkpoint was written.
var ErrNoSnapshot = checkpoint.ErrNoSnapshot

// CheckpointOptions configures checkpoints (Options.Checkpoint). With State
// set, the log checkpoints in the background: after EveryBytes bytes have
// been appended since the last checkpoint, or EveryInterval has passed,
// whichever comes first. State needs at least one of the two triggers, and
// each trigger (and OnError) needs State: Open refuses the others with
// ErrInvalidOptions. Compress and MaxRate apply to explicit Checkpoint
// calls too.
type CheckpointOptions struct {
	// Compress stores snapshots zstd-compressed.
	Compress bool
	// MaxRate bounds how fast a checkpoint writes, in bytes per second
	// (before compression), so that a large snapshot leaves the disk and
	// CPU to appends. Zero means DefaultCheckpointRate; negative means no
	// bound.
	MaxRate int64
	// EveryBytes and EveryInterval trigger background checkpoints; zero
	// disables that trigger, a negative value is refused, and so is an
	// EveryInterval below a millisecond (a bare number is nanoseconds).
	EveryBytes    int64
	EveryInterval time.Duration
	// State captures the state to checkpoint in the background (explicit
	// Checkpoint calls are given theirs): it returns the index of the
	// last record the state includes and a function that streams it. It
	// runs on the checkpoint goroutine while appends go on, so it must take
	// a consistent view (a copy, a copy-on-write tree, a read transaction);
	// write may run after State returns. There is no checkpoint, and no
	// error, when the index is 0 (the state covers no record yet) or the
	// snapshot already covers it; State is not called while the snapshot
	// covers every record of the log.
	State func() (index uint64, write func(w io.Writer) error, err error)
	// OnError, if set, is called with every background checkpoint error
	// (they are also logged and kept for CheckpointErr). It runs on the
	// checkpoint goroutine and may call Close.
	OnError func(error)
}

// DefaultCheckpointRate is the default CheckpointOptions.MaxRate. Measured
// on a 2-core machine: unbounded, a checkpoint streaming continuously cut
// the appends of 8 concurrent writers to 0.70 of their rate; at 128 MiB/s
// to 0.96 (BenchmarkAppendDuringCheckpoint).
const DefaultCheckpointRate = 128 << 20

// throttle passes writes through at no more than rate bytes per second.
// It stops holding a write back once closing is set: a single large
// Write may owe seconds or hours of sleep, which Close must not wait for.
type throttle struct {
	w       io.Writer
	rate    int64
	start   time.Time
	n       int64
	closing *atomic.Bool
}

// throttleTick bounds each sleep of a throttle, and so how long Close
// waits for one to notice it.
const throttleTick = 10 * time.Millisecond

func (t *throttle) Write(p []byte) (int, error) {
	n, err := t.w.Write(p)
	t.n += int64(n)
	due := time.Duration(float64(t.n) / float64(t.rate) * float64(time.Second))
	for ahead := due - time.Since(t.start); ahead > time.Millisecond && !t.closing.Load(); ahead = due - time.Since(t.start) {
		time.Sleep(min(ahead, throttleTick))
	}
	return n, err
}

// Checkpoint writes a snapshot of the state as of index (write streams it;
// nothing is held in memory) and then releases the records up to index, as
// TruncateFront(index+1) does. The snapshot is durable (written to a
// temporary file, fdatasync'd, renamed over the snapshot file, directory
// synced) before any record is released, so after a crash the directory
// holds the old snapshot and the longer log, the new snapshot and the
// shorter log, or (a crash between the two steps) the new snapshot and the
// longer log: the records up to index are then still there as well as in
// the snapshot, and a restart that loads the snapshot and replays from
// index+1 sees the same state. index must lie in [FirstIndex-1, LastIndex]
// and be at least 1 (a snapshot covers at least one record); otherwise
// Checkpoint returns ErrOutOfRange.
//
// Checkpoints, truncations and Close are serialised: a truncation waits
// for a checkpoint in flight, so the snapshot rule is checked against the
// snapshot that exists when each commits. Close cancels a checkpoint
// still writing its snapshot: its writes fail with ErrClosed, and the
// previous snapshot stays (also if write ignores that error and returns
// nil: Checkpoint then returns ErrClosed). A checkpoint whose snapshot is written when
// Close begins completes (commit and release) before Close goes on, and
// returns nil. If the rename or the directory
// sync that commits the snapshot fails, which snapshot is durable is
// unknown and the log fails (ErrFailed) until reopened; an error before
// that (from write, or writing the temporary file) leaves the previous
// snapshot and the log usable. write must not call Checkpoint, a
// truncation or Close on the same Log: they wait for it.
func (l *Log) Checkpoint(index uint64, write func(w io.Writer) error) error {
	start := time.Now()
	l.opMu.Lock()
	defer l.opMu.Unlock()
	committed, err := l.checkpoint(index, write)
	if !committed {
		return err
	}
	took := time.Since(start)
	l.mu.Lock()
	l.noteCheckpoint(took)
	l.mu.Unlock()
	var size int64
	if fi, serr := l.fs.Stat(filepath.Join(l.dir, checkpoint.FileName)); serr == nil {
		size = fi.Size()
	}
	l.opts.Logger.Info("journal: checkpoint", "dir", l.dir, "index", index, "bytes", size, "took", took)
	return err
}

// checkpoint is Checkpoint with opMu held. It reports whether the snapshot
// was committed: the checkpoint happened, even if releasing the records
// then failed. Called with opMu held.
func (l *Log) checkpoint(index uint64, write func(w io.Writer) error) (committed bool, _ error) {
	if err := l.checkpointable(index); err != nil {
		return false, err
	}
	opts := checkpoint.WriteOptions{Compress: l.opts.Checkpoint.Compress}
	rate := cmp.Or(l.opts.Checkpoint.MaxRate, DefaultCheckpointRate)
	watch := &commitWatch{FS: l.fs}
	err := checkpoint.Write(watch, l.dir, index, opts, func(w io.Writer) error {
		if rate > 0 {
			w = &throttle{w: w, rate: rate, start: time.Now(), closing: &l.closing}
		}
		c := &cancellable{w: w, closing: &l.closing}
		if err := write(c); err != nil {
			return err
		}
		// A write that ignored the cancellation returned nil with part of
		// the state: the snapshot must not commit.
		return c.err
	})
	l.mu.Lock()
	defer l.mu.Unlock()
	if err != nil {
		err = fmt.Errorf("journal: checkpoint at %d: %w", index, err)
		if watch.renamed {
			return false, l.fail(err)
		}
		return false, err
	}
	l.sinceCheckpoint, l.snapshot = 0, index
	if index+1 <= l.first {
		return true, nil
	}
	// Even if Close began since the snapshot was written: the snapshot is
	// committed, so the checkpoint happened and must not report ErrClosed.
	return true, l.truncateFront(index+1, true)
}

// checkpointable checks that a checkpoint at index may start and makes the
// records it covers durable: the snapshot must never cover records a crash
// could still take. Called with opMu held.
func (l *Log) checkpointable(index uint64) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if err := l.usable(); err != nil {
		return err
	}
	if index == 0 || index+1 < l.first || index > l.last {
		return fmt.Errorf("%w: Checkpoint(%d), log holds [%d, %d]", ErrOutOfRange, index, l.first, l.last)
	}
	if l.opts.NoSync {
		return l.syncAll()
	}
	return nil
}

// commitWatch notes whether a snapshot's replacement reached its rename:
// from there on a failure (of the rename or of the directory sync after
// it) leaves unknown which snapshot a power loss would keep.
type commitWatch struct {
	vfs.FS
	renamed bool
}

func (c *commitWatch) Rename(oldname, newname string) error {
	c.renamed = true
	return c.FS.Rename(oldname, newname)
}

// cancellable fails writes once Close has begun, so that Close need not
// wait for a long snapshot and never releases the directory while one is
// being written. The failure sticks in err, which the checkpoint checks
// once write returns: the writes it refused never reached the snapshot
// file, so the snapshot package cannot see that they were lost.
type cancellable struct {
	w       io.Writer
	closing *atomic.Bool
	err     error
}

func (c *cancellable) Write(p []byte) (int, error) {
	if c.err == nil && c.closing.Load() {
		c.err = ErrClosed
	}
	if c.err != nil {
		return 0, c.err
	}
	n, err := c.w.Write(p)
	if err == nil && c.closing.Load() {
		// Close began during the write (a throttle holding it back
		// stops at once): cancelled all the same.
		c.err = ErrClosed
		return n, c.err
	}
	return n, err
}

// Snapshot opens the latest snapshot: the index of the last record it
// covers and its contents. Read the contents to io.EOF: the checksum is
// verified at the end, and damage gives an error satisfying
// errors.Is(err, ErrCorrupt). A database restarts by loading the snapshot
// and replaying NewReader(index+1).
func (l *Log) Snapshot() (index uint64, r io.ReadCloser, err error) {
	l.mu.Lock()
	closed := l.isClosed()
	l.mu.Unlock()
	if closed {
		return 0, nil, ErrClosed
	}
	return checkpoint.Load(l.fs, l.dir)
}

// CheckpointErr returns the error of the last background checkpoint, nil
// if it succeeded (or none ran).
func (l *Log) CheckpointErr() error { return l.ckpt.lastErr() }

// startCheckpointer starts background checkpoints if they are configured:
// every EveryInterval, and when EveryBytes were appended (noteAppended).
func (l *Log) startCheckpointer() {
	o := l.opts.Checkpoint
	if o.State == nil || (o.EveryBytes <= 0 && o.EveryInterval <= 0) {
		return
	}
	l.ckpt.what = "checkpoint"
	l.ckpt.start(l, o.EveryInterval, l.checkpointNow, o.OnError)
}

// checkpointNow runs one background checkpoint, unless there is nothing
// to checkpoint: then it does not rewrite the snapshot (an interval would
// otherwise write the whole state out again and again while the database
// is idle) nor report a failure (a state covering no record is no error).
func (l *Log) checkpointNow() error {
	if l.covered(0) {
		return nil // State is not even asked: it may copy a large state
	}
	index, write, err := l.opts.Checkpoint.State()
	if err != nil || index == 0 || l.covered(index) {
		return err
	}
	return l.Checkpoint(index, write)
}

// covered reports whether the snapshot holds the state as of index (or,
// for index 0, every record of the log) with nothing left to release: a
// checkpoint at index would change nothing.
func (l *Log) covered(index uint64) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if index == 0 {
		index = l.last
	}
	return index <= l.snapshot && l.first > index
}

// noteAppended counts bytes toward the next background checkpoint. Called
// with mu held.
func (l *Log) noteAppended(n int) {
	l.sinceCheckpoint += int64(n)
	if every := l.opts.Checkpoint.EveryBytes; every > 0 && l.sinceCheckpoint >= every {
		l.ckpt.poke()
	}
}

// stopCheckpointer stops the loop and waits for it to end, unless Close
// was called from OnError: the loop then ends when the callback returns,
// without touching the log again (Close cancels a checkpoint in flight).
func (l *Log) stopCheckpointer() { l.ckpt.halt() }
