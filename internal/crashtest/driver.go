package crashtest

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"

	"github.com/gojournal/journal/vfs"
	"github.com/gojournal/journal/wal"
)

// Dir is where workloads put the log on the simulated file system.
const Dir = "/log"

// Driver runs a workload's calls against a log and records each in a
// Model. After the first failed call (the simulated crash) every call
// returns false without running.
type Driver struct {
	Opts   wal.Options
	fs     vfs.FS
	mu     sync.Mutex
	m      *Model
	log    *wal.Log
	nextID atomic.Uint64
	failed atomic.Bool
	// CheckpointFailed is set when the call that failed was a Checkpoint
	// whose error left the log usable (its snapshot could not be written).
	CheckpointFailed bool
}

// Wrap, when set, wraps the file system of every log the package opens
// (workloads and recoveries alike). The sync-removal mutation check uses it
// to drop the syncs of one call site.
var Wrap func(vfs.FS) vfs.FS

func wrap(fsys vfs.FS) vfs.FS {
	if Wrap == nil {
		return fsys
	}
	return Wrap(fsys)
}

// Quiet discards the log's messages.
var Quiet = slog.New(slog.DiscardHandler)

// NewDriver opens a log on fsys with opts (FS and Logger are set here).
// ok is false if Open failed (a crash during Open).
func NewDriver(fsys vfs.FS, opts wal.Options) (d *Driver, ok bool) {
	opts.FS, opts.Logger = wrap(fsys), Quiet
	d = &Driver{Opts: opts, m: NewModel(), fs: fsys}
	l, err := wal.Open(Dir, &d.Opts)
	if err != nil {
		d.failed.Store(true)
		return d, false
	}
	d.log = l
	return d, true
}

// Model returns what the workload was told.
func (d *Driver) Model() *Model { return d.m }

// Log is the open log (nil if Open failed).
func (d *Driver) Log() *wal.Log { return d.log }

func (d *Driver) stop(err error) bool {
	if err != nil {
		d.failed.Store(true)
	}
	return err == nil
}

// Append appends one record with n bytes of filler.
func (d *Driver) Append(n int) bool { return d.Batch(n) }

// Batch appends one record per size given, with AppendBatch when there are
// several.
func (d *Driver) Batch(sizes ...int) bool {
	if d.failed.Load() {
		return false
	}
	return d.stop(d.batch(sizes))
}

// AppendNow appends one record with n bytes of filler, even after a call
// failed, and returns the log's error: for tests of what a failed log
// does. The model learns of it like of any append.
func (d *Driver) AppendNow(n int) error { return d.batch([]int{n}) }

func (d *Driver) batch(sizes []int) error {
	ids := make([]uint64, len(sizes))
	recs := make([][]byte, len(sizes))
	for i, n := range sizes {
		ids[i] = d.nextID.Add(1)
		recs[i] = Payload(ids[i], n)
	}
	d.mu.Lock()
	d.m.Begin(ids, recs)
	d.mu.Unlock()
	var first uint64
	var err error
	if len(recs) == 1 {
		first, err = d.log.Append(recs[0])
	} else {
		first, err = d.log.AppendBatch(recs)
	}
	if err == nil {
		d.mu.Lock()
		d.m.Ack(ids, first, d.Opts.NoSync)
		d.mu.Unlock()
	}
	return err
}

// Sync calls Sync.
func (d *Driver) Sync() bool {
	if d.failed.Load() {
		return false
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	err := d.log.Sync()
	if err == nil {
		d.m.Synced()
	}
	return d.stop(err)
}

// TruncateFront calls TruncateFront(index).
func (d *Driver) TruncateFront(index uint64) bool { return d.truncate(true, index) }

// TruncateBack calls TruncateBack(index).
func (d *Driver) TruncateBack(index uint64) bool { return d.truncate(false, index) }

func (d *Driver) truncate(front bool, index uint64) bool {
	if d.failed.Load() {
		return false
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	d.m.BeginTruncate(front, index)
	var err error
	if front {
		err = d.log.TruncateFront(index)
	} else {
		err = d.log.TruncateBack(index)
	}
	if err == nil {
		d.m.EndTruncate()
	} else if errors.Is(err, wal.ErrOutOfRange) {
		panic(fmt.Sprintf("workload bug: %v", err))
	}
	return d.stop(err)
}

// Checkpoint calls Checkpoint(index) with SnapshotState(index).
func (d *Driver) Checkpoint(index uint64) bool {
	if d.failed.Load() {
		return false
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	d.m.BeginCheckpoint(index)
	err := d.log.Checkpoint(index, func(w io.Writer) error {
		_, err := w.Write(SnapshotState(index))
		return err
	})
	if err == nil {
		d.m.EndCheckpoint()
	} else if !errors.Is(err, wal.ErrFailed) {
		d.CheckpointFailed = true
		d.m.AbortCheckpoint()
	}
	return d.stop(err)
}

// Kill kills the process holding the log (the file system must be a
// *crashfs.FS: written data stays, durable or not, and the lock goes) and
// opens the log again with opts, as a restarted process would. Open makes
// what it recovers durable before anything new claims it, so every record
// it holds is then durable.
func (d *Driver) Kill(opts wal.Options) bool {
	if d.failed.Load() {
		return false
	}
	kill(d.fs)
	opts.FS, opts.Logger = wrap(d.fs), Quiet
	d.mu.Lock()
	defer d.mu.Unlock()
	l, err := wal.Open(Dir, &opts)
	d.log = l // nil when Open failed: the dead process's log is gone either way
	if err == nil {
		d.Opts = opts
		d.m.Synced()
	}
	return d.stop(err)
}

// Reopen closes the log cleanly and opens it again, as a restarted
// process would: Close seals the newest segment and Open reopens it from
// its footer, so crashes around both are enumerated. When Close or Open
// fails the Driver holds no log (Log returns nil), as after Kill.
func (d *Driver) Reopen() bool {
	if d.failed.Load() {
		return false
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	err := d.log.Close()
	d.log = nil // closed, or failed to close: the process gives it up either way
	if err == nil {
		d.m.Synced() // Close syncs
		opts := d.Opts
		opts.FS, opts.Logger = wrap(d.fs), Quiet
		d.log, err = wal.Open(Dir, &opts)
	}
	return d.stop(err)
}

// kill kills the process of fsys, the crashfs.FS under any wrappers.
func kill(fsys vfs.FS) {
	for {
		switch f := fsys.(type) {
		case interface{ Kill() }:
			f.Kill()
			return
		case interface{ Unwrap() vfs.FS }:
			fsys = f.Unwrap()
		default:
			panic(fmt.Sprintf("crashtest: Kill needs a crashfs.FS, not %T", fsys))
		}
	}
}

// Failed reports whether a call failed (the simulated crash, or a bug when
// nothing crashed).
func (d *Driver) Failed() bool { return d.failed.Load() }

// Resume lets calls run again after a failure that left the log usable.
func (d *Driver) Resume() { d.failed.Store(false) }

// Parallel runs fn(w) for w in [0, n) concurrently.
func (d *Driver) Parallel(n int, fn func(w int)) {
	var wg sync.WaitGroup
	for w := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			fn(w)
		}()
	}
	wg.Wait()
}

// Open opens the log on fsys with opts, as workloads do.
func Open(fsys vfs.FS, opts wal.Options) (*wal.Log, error) {
	opts.FS, opts.Logger = wrap(fsys), Quiet
	return wal.Open(Dir, &opts)
}

// Close closes the log (its error is the crash's, or nil).
func (d *Driver) Close() {
	if d.log != nil {
		if d.log.Close() == nil {
			d.mu.Lock()
			d.m.Synced() // Close syncs
			d.mu.Unlock()
		}
	}
}

// Recover opens the log on fsys and reads it whole. The log is closed
// again unless keep is set.
func Recover(fsys vfs.FS, opts wal.Options, keep bool) (*wal.Log, Log, error) {
	opts.FS, opts.Logger = wrap(fsys), Quiet
	l, err := wal.Open(Dir, &opts)
	if err != nil {
		return nil, Log{}, err
	}
	got, err := ReadLog(l)
	if err != nil || !keep {
		if cerr := l.Close(); err == nil {
			err = cerr
		}
		return nil, got, err
	}
	return l, got, nil
}

// ReadLog reads an open log whole with a Reader, compares a few records
// with what Read returns, and loads the snapshot (whose state must be
// SnapshotState of its index).
func ReadLog(l *wal.Log) (Log, error) {
	got := Log{First: l.FirstIndex(), Last: l.LastIndex(), Records: map[uint64][]byte{}}
	r := l.NewReader(got.First)
	for r.Next() {
		got.Records[r.Index()] = append([]byte(nil), r.Record()...)
	}
	err := r.Err()
	r.Close()
	if err == nil {
		got.Snapshot, err = readSnapshot(l)
	}
	for i := got.First; err == nil && i <= got.Last; i += max(1, (got.Last-got.First)/7) {
		var rec []byte
		if rec, err = l.Read(i); err == nil && string(rec) != string(got.Records[i]) {
			err = fmt.Errorf("Read(%d) and the Reader disagree", i)
		}
	}
	return got, err
}

// readSnapshot loads the log's snapshot, checking its contents.
func readSnapshot(l *wal.Log) (uint64, error) {
	index, r, err := l.Snapshot()
	if errors.Is(err, wal.ErrNoSnapshot) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	defer r.Close()
	b, err := io.ReadAll(r)
	if err != nil {
		return 0, err
	}
	if !bytes.Equal(b, SnapshotState(index)) {
		return 0, fmt.Errorf("snapshot as of %d holds the wrong state", index)
	}
	return index, nil
}
