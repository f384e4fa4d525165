package wal

import (
	"errors"
	"fmt"
	"io"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gojournal/journal/vfs"
)

// TestCancelledCheckpointNotCommittedWhenWriteIgnoresErrors: Close cancels
// a checkpoint still writing by failing its writes with ErrClosed. A state
// writer that ignores write errors (fmt.Fprintf unchecked, a common
// shortcut) then returns nil having written only part of the state; the
// snapshot package refuses to commit such a snapshot when the file's own
// writes fail, and the cancellation must be refused the same way: a
// partial snapshot, committed and with the records it covers released,
// loses the state.
func TestCancelledCheckpointNotCommittedWhenWriteIgnoresErrors(t *testing.T) {
	for _, compress := range []bool{false, true} {
		t.Run(fmt.Sprintf("compress=%v", compress), func(t *testing.T) {
			dir := t.TempDir()
			o := &Options{Logger: quiet, Checkpoint: CheckpointOptions{Compress: compress}}
			l := openT(t, dir, o)
			appendN(t, l, 10)
			const lines = 100
			halfway := make(chan struct{})
			ckpt := make(chan error, 1)
			go func() {
				ckpt <- l.Checkpoint(10, func(w io.Writer) error {
					for i := range lines {
						fmt.Fprintf(w, "line %d\n", i) // error ignored
						if i == lines/10 {
							close(halfway)
							// Wait for Close to begin: the remaining
							// writes fail with ErrClosed.
							for !errors.Is(l.Sync(), ErrClosed) {
								runtime.Gosched()
							}
						}
					}
					return nil
				})
			}()
			<-halfway
			within(t, 10*time.Second, "Close beside a checkpoint", func() {
				if err := l.Close(); err != nil {
					t.Errorf("Close: %v", err)
				}
			})
			err := <-ckpt
			l = openT(t, dir, &Options{Logger: quiet})
			defer l.Close()
			index, r, serr := l.Snapshot()
			if errors.Is(serr, ErrNoSnapshot) {
				if err == nil {
					t.Fatal("Checkpoint returned nil, yet no snapshot was committed")
				}
				checkRange(t, l, 1, 10)
				return
			}
			if serr != nil {
				t.Fatalf("Snapshot: %v", serr)
			}
			defer r.Close()
			b, rerr := io.ReadAll(r)
			if n := strings.Count(string(b), "\n"); rerr != nil || n != lines {
				t.Fatalf("the checkpoint Close cancelled (returned %v) committed a snapshot at %d of %d lines of %d (read error %v): the state is lost",
					err, index, n, lines, rerr)
			}
		})
	}
}

// TestPanickingCheckpointWriteLeavesTheLogUsable: a state writer that
// panics midway (a bug in the database's encoder) must not leave the log
// locked, a temporary file behind, or a snapshot committed: the panic
// reaches the caller, and the log goes on as if the checkpoint had not
// been tried.
func TestPanickingCheckpointWriteLeavesTheLogUsable(t *testing.T) {
	dir := t.TempDir()
	l := openT(t, dir, &Options{Logger: quiet})
	appendN(t, l, 10)
	func() {
		defer func() {
			if recover() == nil {
				t.Error("the state writer's panic did not reach the Checkpoint caller")
			}
		}()
		l.Checkpoint(8, func(w io.Writer) error {
			io.WriteString(w, "half a state")
			panic("encoder bug")
		})
	}()
	within(t, 5*time.Second, "calls after a panicking checkpoint", func() {
		appendN(t, l, 1)
		if err := l.TruncateBack(10); err != nil {
			t.Errorf("TruncateBack after a panicking checkpoint: %v", err)
		}
		if _, _, err := l.Snapshot(); !errors.Is(err, ErrNoSnapshot) {
			t.Errorf("Snapshot after a panicking checkpoint: %v, want ErrNoSnapshot", err)
		}
		if err := l.Checkpoint(9, writeState(9)); err != nil {
			t.Errorf("Checkpoint after a panicking one: %v", err)
		}
		if err := l.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	if leftovers := listDir(t, dir); slices.ContainsFunc(leftovers, func(n string) bool { return strings.HasPrefix(n, vfs.TempPrefix) }) {
		t.Fatalf("the panicking checkpoint left a temporary file: %v", leftovers)
	}
	l = openT(t, dir, &Options{Logger: quiet})
	defer l.Close()
	if index, state := readSnapshot(t, l); index != 9 || state != stateOf(9) {
		t.Fatalf("snapshot after reopening: %d, %q; want 9, %q", index, state, stateOf(9))
	}
	checkRange(t, l, 10, 10)
}

// TestCloseCancelsAThrottledCheckpoint: Close cancels a checkpoint still
// writing its snapshot, also one that MaxRate holds back: a state writer
// that hands over a large buffer in one Write (an encoded state, say) must
// not keep Close waiting for as long as the throttle would take to pass it
// (here 16 s).
func TestCloseCancelsAThrottledCheckpoint(t *testing.T) {
	for _, background := range []bool{false, true} {
		t.Run(fmt.Sprintf("background=%v", background), func(t *testing.T) {
			writing := make(chan struct{})
			var once sync.Once
			state := func(w io.Writer) error {
				once.Do(func() { close(writing) })
				_, err := w.Write(make([]byte, 1<<20))
				return err
			}
			o := &Options{Logger: quiet, Checkpoint: CheckpointOptions{MaxRate: 64 << 10}}
			if background {
				o.Checkpoint.EveryInterval = time.Millisecond
				o.Checkpoint.State = func() (uint64, func(io.Writer) error, error) { return 1, state, nil }
			}
			dir := t.TempDir()
			l := openT(t, dir, o)
			appendN(t, l, 1)
			ckpt := make(chan error, 1)
			if !background {
				go func() { ckpt <- l.Checkpoint(1, state) }()
			}
			<-writing
			start := time.Now()
			within(t, 20*time.Second, "Close beside a throttled checkpoint", func() {
				if err := l.Close(); err != nil {
					t.Errorf("Close: %v", err)
				}
			})
			if took := time.Since(start); took > 2*time.Second {
				t.Fatalf("Close took %v beside a checkpoint the throttle holds back: it did not cancel it", took)
			}
			if !background {
				if err := <-ckpt; !errors.Is(err, ErrClosed) {
					t.Fatalf("the checkpoint Close cancelled: %v, want ErrClosed", err)
				}
			}
		})
	}
}

// TestIntervalCheckpointsOfAnIdleDatabase: with EveryInterval, a database
// whose state covers no record yet (a new log, or applies not caught up)
// has nothing to checkpoint, and one whose snapshot already covers its
// state has nothing new: neither is a failure (reported to OnError, which
// may close the log), and neither rewrites the snapshot every interval
// (a large state written out again and again while nothing changes).
func TestIntervalCheckpointsOfAnIdleDatabase(t *testing.T) {
	var applied atomic.Uint64 // the index the state covers
	var writes atomic.Int64   // snapshots streamed
	errs := make(chan error, 100)
	o := &Options{Logger: quiet, Checkpoint: CheckpointOptions{
		EveryInterval: time.Millisecond,
		State: func() (uint64, func(io.Writer) error, error) {
			i := applied.Load()
			return i, func(w io.Writer) error {
				writes.Add(1)
				return writeState(i)(w)
			}, nil
		},
		OnError: func(err error) { errs <- err },
	}}
	dir := t.TempDir()
	l := openT(t, dir, o)
	defer l.Close()
	idle := func(what string) {
		t.Helper()
		before := writes.Load()
		time.Sleep(50 * time.Millisecond)
		select {
		case err := <-errs:
			t.Fatalf("%s: a background checkpoint failed: %v", what, err)
		default:
		}
		if err := l.CheckpointErr(); err != nil {
			t.Fatalf("%s: CheckpointErr: %v", what, err)
		}
		if n := writes.Load() - before; n > 0 {
			t.Fatalf("%s: %d snapshots written while the state did not change", what, n)
		}
	}
	idle("a new log")
	appendN(t, l, 5)
	idle("records not applied yet")
	applied.Store(5)
	within(t, 5*time.Second, "a background checkpoint of the state", func() {
		for l.FirstIndex() != 6 {
			time.Sleep(time.Millisecond)
		}
	})
	idle("the snapshot covers the state")
}
