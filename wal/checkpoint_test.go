package wal

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gojournal/journal/checkpoint"
	"github.com/gojournal/journal/vfs"
	"github.com/gojournal/journal/vfs/crashfs"
)

func stateOf(index uint64) string { return fmt.Sprintf("state as of %d\n", index) }

func writeState(index uint64) func(w io.Writer) error {
	return func(w io.Writer) error {
		_, err := io.WriteString(w, stateOf(index))
		return err
	}
}

func readSnapshot(t *testing.T, l *Log) (uint64, string) {
	t.Helper()
	index, r, err := l.Snapshot()
	if err != nil {
		t.Fatalf("Snapshot: %v", err)
	}
	defer r.Close()
	b, err := io.ReadAll(r)
	if err != nil {
		t.Fatalf("reading the snapshot: %v", err)
	}
	return index, string(b)
}

func TestCheckpointReleasesTheLogAndRestartReplays(t *testing.T) {
	for _, compress := range []bool{false, true} {
		t.Run(fmt.Sprint("compress=", compress), func(t *testing.T) {
			dir := t.TempDir()
			o := &Options{SegmentSize: MinSegmentSize, Checkpoint: CheckpointOptions{Compress: compress}}
			l := openT(t, dir, o)
			if _, _, err := l.Snapshot(); !errors.Is(err, ErrNoSnapshot) {
				t.Fatalf("Snapshot of a new log: %v, want ErrNoSnapshot", err)
			}
			appendN(t, l, 3000)
			if err := l.Checkpoint(2500, writeState(2500)); err != nil {
				t.Fatal(err)
			}
			checkRange(t, l, 2501, 3000)
			appendN(t, l, 10)
			l.Close()

			l = openT(t, dir, o)
			defer l.Close()
			index, state := readSnapshot(t, l)
			if index != 2500 || state != stateOf(2500) {
				t.Fatalf("snapshot = %d %q", index, state)
			}
			r := l.NewReader(index + 1)
			defer r.Close()
			want := index + 1
			for ; r.Next(); want++ {
				if r.Index() != want || !bytes.Equal(r.Record(), record(want)) {
					t.Fatalf("replay: %d %q, want %d", r.Index(), r.Record(), want)
				}
			}
			if r.Err() != nil || want != 3011 {
				t.Fatalf("replay ended at %d: %v", want, r.Err())
			}
		})
	}
}

func TestCheckpointRange(t *testing.T) {
	l := openT(t, t.TempDir(), nil)
	defer l.Close()
	// Found by the concurrent model check: index 0 lies in
	// [FirstIndex-1, LastIndex] of a new log, but no snapshot can cover it.
	if err := l.Checkpoint(0, writeState(0)); !errors.Is(err, ErrOutOfRange) {
		t.Fatalf("Checkpoint(0) of an empty log: %v, want ErrOutOfRange", err)
	}
	appendN(t, l, 5)
	if err := l.Checkpoint(6, writeState(6)); !errors.Is(err, ErrOutOfRange) {
		t.Fatalf("Checkpoint past the log: %v, want ErrOutOfRange", err)
	}
	if err := l.Checkpoint(5, writeState(5)); err != nil {
		t.Fatal(err)
	}
	checkRange(t, l, 6, 5) // everything released; appends continue at 6
	if err := l.Checkpoint(3, writeState(3)); !errors.Is(err, ErrOutOfRange) {
		t.Fatalf("Checkpoint before the log: %v, want ErrOutOfRange", err)
	}
	failing := errors.New("disk on fire")
	if err := l.Checkpoint(5, func(io.Writer) error { return failing }); !errors.Is(err, failing) {
		t.Fatalf("failing write: %v", err)
	}
	if index, state := readSnapshot(t, l); index != 5 || state != stateOf(5) {
		t.Fatalf("a failed checkpoint replaced the snapshot: %d %q", index, state)
	}
	appendN(t, l, 1)
	checkRange(t, l, 6, 6)
}

func TestOpenRefusesASnapshotTheLogDoesNotContinue(t *testing.T) {
	dir := t.TempDir()
	l := openT(t, dir, nil)
	appendN(t, l, 5)
	l.Close()
	if err := checkpoint.Write(vfs.Default, dir, 100, checkpoint.WriteOptions{}, writeState(100)); err != nil {
		t.Fatal(err)
	}
	_, err := Open(dir, nil)
	if !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), "missing between") {
		t.Fatalf("Open with a gap between snapshot and log: %v, want ErrCorrupt", err)
	}
}

func TestBackgroundCheckpoints(t *testing.T) {
	dir := t.TempDir()
	var last atomic.Uint64
	var failNext atomic.Bool
	errs := make(chan error, 10)
	o := &Options{SegmentSize: MinSegmentSize, Checkpoint: CheckpointOptions{
		EveryBytes: 32 << 10,
		State: func() (uint64, func(io.Writer) error, error) {
			if failNext.Swap(false) {
				return 0, nil, errors.New("state unavailable")
			}
			i := last.Load()
			return i, writeState(i), nil
		},
		OnError: func(err error) { errs <- err },
	}}
	l := openT(t, dir, o)
	defer l.Close()
	for range 2000 {
		i, err := l.Append(make([]byte, 100))
		if err != nil {
			t.Fatal(err)
		}
		last.Store(i)
	}
	deadline := time.Now().Add(10 * time.Second)
	for l.FirstIndex() == 1 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	if l.FirstIndex() == 1 {
		t.Fatal("no background checkpoint released the log")
	}
	// The first index is read before the snapshot: a background
	// checkpoint may commit between the two reads, and snapshots only
	// move forward, so the snapshot read after it still covers every
	// record before that first index (read the other way round, such a
	// checkpoint made the test fail: snapshot 1990, log from 2001).
	first := l.FirstIndex()
	index, state := readSnapshot(t, l)
	if state != stateOf(index) || index+1 < first {
		t.Fatalf("snapshot %d %q, log from %d", index, state, first)
	}
	failNext.Store(true)
	for range 1000 {
		if _, err := l.Append(make([]byte, 100)); err != nil {
			t.Fatal(err)
		}
	}
	select {
	case err := <-errs:
		if !strings.Contains(err.Error(), "state unavailable") {
			t.Fatalf("OnError got %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("a failing background checkpoint was not reported")
	}
}

// The fuzzer found that TruncateFront past a snapshot left a log that Open
// refused: the log must continue the snapshot.
func TestTruncationsKeepTheLogContinuingTheSnapshot(t *testing.T) {
	dir := t.TempDir()
	l := openT(t, dir, nil)
	appendN(t, l, 10)
	if err := l.Checkpoint(4, writeState(4)); err != nil {
		t.Fatal(err)
	}
	if err := l.TruncateFront(6); !errors.Is(err, ErrOutOfRange) {
		t.Fatalf("TruncateFront past the snapshot: %v, want ErrOutOfRange", err)
	}
	if err := l.TruncateBack(3); !errors.Is(err, ErrOutOfRange) {
		t.Fatalf("TruncateBack below the snapshot: %v, want ErrOutOfRange", err)
	}
	if err := l.TruncateBack(4); err != nil {
		t.Fatal(err)
	}
	l.Close()
	l = openT(t, dir, nil)
	defer l.Close()
	checkRange(t, l, 5, 4)
}

// TestOpenRemovesCheckpointLeftovers: a power loss in the middle of a
// checkpoint leaves its temporary snapshot file. Open removes it with the
// log's other leftovers and reports it, and the previous snapshot stays in
// force with every record after it.
func TestOpenRemovesCheckpointLeftovers(t *testing.T) {
	mem := crashfs.New()
	o := &Options{SegmentSize: MinSegmentSize, Logger: quiet, FS: mem}
	l := openT(t, "db", o)
	appendN(t, l, 100)
	if err := l.Checkpoint(50, writeState(50)); err != nil {
		t.Fatal(err)
	}
	appendN(t, l, 20)
	var temp string
	err := l.Checkpoint(110, func(w io.Writer) error {
		if _, err := io.WriteString(w, "half of the state as of 110"); err != nil {
			return err
		}
		// The temporary file's entry becomes durable, as when the log
		// syncs the directory for a new segment during a long
		// checkpoint; then the power goes.
		names, err := mem.ReadDir("db")
		if err != nil {
			return err
		}
		for _, name := range names {
			if strings.HasPrefix(name, vfs.TempPrefix+checkpoint.FileName+"-") {
				temp = filepath.Join("db", name)
			}
		}
		if err := mem.SyncDir("db"); err != nil {
			return err
		}
		mem.SetCrashAfter(mem.Ops())
		return nil
	})
	if !errors.Is(err, crashfs.ErrCrashed) {
		t.Fatalf("Checkpoint across the power loss: %v, want ErrCrashed", err)
	}
	if temp == "" {
		t.Fatal("the checkpoint wrote no temporary file")
	}
	l.Close()

	after := mem.Crash(crashfs.SyncedOnly, nil)
	if _, err := after.Stat(temp); err != nil {
		t.Fatalf("the power loss left no temporary file: %v", err)
	}
	o.FS = after
	l = openT(t, "db", o)
	defer l.Close()
	if removed := l.Recovered().Removed; !slices.Contains(removed, temp) {
		t.Errorf("Recovered().Removed = %q, want it to list %s", removed, temp)
	}
	if _, err := after.Stat(temp); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("after Open, %s: %v; want it removed", temp, err)
	}
	if index, state := readSnapshot(t, l); index != 50 || state != stateOf(50) {
		t.Errorf("snapshot %d %q, want the one as of 50", index, state)
	}
	checkRange(t, l, 51, 120)
}

// TestNoSyncTruncationCrash crashes a TruncateFront and a TruncateBack of
// a NoSync log whose records were never synced, after each of their file
// operations in turn: the log must open. TruncateBack's meta file used to
// commit it before the records it keeps were durable, and Open refused
// the log they were then missing from.
func TestNoSyncTruncationCrash(t *testing.T) {
	for _, tc := range []struct {
		name     string
		truncate func(l *Log) error
	}{
		{"TruncateFront", func(l *Log) error { return l.TruncateFront(4) }},
		{"TruncateBack", func(l *Log) error { return l.TruncateBack(2) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for k := 1; ; k++ {
				mem := crashfs.New()
				o := &Options{SegmentSize: MinSegmentSize, Logger: quiet, FS: mem, NoSync: true}
				l := openT(t, "db", o)
				appendN(t, l, 5)
				mem.SetCrashAfter(mem.Ops() + k)
				err := tc.truncate(l)
				l.Close()
				o.FS = mem.Crash(crashfs.SyncedOnly, nil)
				r, oerr := Open("db", o)
				if oerr != nil {
					t.Fatalf("crash after op %d of %s (%v): Open: %v", k, tc.name, err, oerr)
				}
				checkRange(t, r, r.FirstIndex(), r.LastIndex())
				r.Close()
				if err == nil {
					return // the truncation completed before the crash point
				}
			}
		})
	}
}
