package wal

import (
	"bytes"
	"context"
	"errors"
	"io"
	"math"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gojournal/journal/checkpoint"
	"github.com/gojournal/journal/internal/apitest"
	"github.com/gojournal/journal/recovery"
	"github.com/gojournal/journal/segment"
	"github.com/gojournal/journal/vfs"
)

// This file attacks the public API from outside, as a careless caller
// would: indexes at the ends of the uint64 range, calls after Close,
// options out of range. Each refusal must be a sentinel error and leave
// the log as it was.

// The index space ends: the largest index a record may take is
// MaxUint64-1, so that the index after it (the next one to assign, which
// Open computes from the last record) is still a uint64. A TruncateFront
// or an append that would go past it is refused with ErrOutOfRange and
// changes nothing; before the fix TruncateFront(MaxUint64) was accepted,
// the second Append then returned index 0 with a nil error, a Reader
// returned the last record forever, and the directory no longer opened.
func TestIndexSpaceEnds(t *testing.T) {
	dir := t.TempDir()
	l := openT(t, dir, &Options{Logger: quiet})
	appendN(t, l, 2)
	if err := l.TruncateFront(math.MaxUint64); !errors.Is(err, ErrOutOfRange) {
		t.Fatalf("TruncateFront(MaxUint64): %v, want ErrOutOfRange", err)
	}
	checkRange(t, l, 1, 2)
	const last = math.MaxUint64 - 1
	if err := l.TruncateFront(last - 2); err != nil {
		t.Fatal(err)
	}
	if _, err := l.AppendBatch([][]byte{record(last - 2), record(last - 1), record(last), record(last + 1)}); !errors.Is(err, ErrOutOfRange) {
		t.Fatalf("AppendBatch past the last index: %v, want ErrOutOfRange", err)
	}
	checkRange(t, l, last-2, last-3)
	if i, err := l.AppendBatch([][]byte{record(last - 2), record(last - 1)}); err != nil || i != last-2 {
		t.Fatalf("AppendBatch = %d, %v; want %d", i, err, uint64(last-2))
	}
	appendN(t, l, 1)
	for _, app := range []func() (uint64, error){
		func() (uint64, error) { return l.Append(nil) },
		func() (uint64, error) { return l.AppendBatch([][]byte{nil}) },
		func() (uint64, error) { return l.AppendApply(nil, func(uint64) {}) },
		func() (uint64, error) { return l.AppendBatchApply([][]byte{nil}, func(uint64) {}) },
	} {
		if i, err := app(); !errors.Is(err, ErrOutOfRange) {
			t.Fatalf("append after index %d = %d, %v; want ErrOutOfRange", uint64(last), i, err)
		}
	}
	checkRange(t, l, last-2, last)
	r := l.NewReader(0)
	n := 0
	for ; n < 4 && r.Next(); n++ {
	}
	if n != 3 || r.Err() != nil || r.Index() != last {
		t.Fatalf("a Reader returned %d records up to %d (%v), want 3 up to %d", n, r.Index(), r.Err(), uint64(last))
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	l = openT(t, dir, &Options{Logger: quiet})
	checkRange(t, l, last-2, last)
	// A checkpoint of the last record releases every record, which
	// takes TruncateFront to MaxIndex+1: allowed there, and appends
	// are still refused.
	if err := l.Checkpoint(last, func(io.Writer) error { return nil }); err != nil {
		t.Fatalf("Checkpoint(%d): %v", uint64(last), err)
	}
	checkRange(t, l, last+1, last)
	if _, err := l.Append(nil); !errors.Is(err, ErrOutOfRange) {
		t.Fatalf("Append after a checkpoint of index %d: %v, want ErrOutOfRange", uint64(last), err)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	l = openT(t, dir, &Options{Logger: quiet})
	checkRange(t, l, last+1, last)
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
}

// noErrClosed are the methods of a closed Log whose error result reports
// something else than the call: the last background failure.
var noErrClosed = map[string]bool{"CheckpointErr": true, "RetentionErr": true}

// Every exported method of a closed Log and of its Readers, found by
// reflection so that a method added later is covered too, returns without
// panicking or hanging, every error it returns is ErrClosed (the Reader's
// own Close aside), and nothing in the directory changes.
func TestEveryMethodAfterClose(t *testing.T) {
	dir := t.TempDir()
	l := openT(t, dir, &Options{Logger: quiet, SegmentSize: MinSegmentSize})
	appendN(t, l, 3)
	if err := l.Checkpoint(2, func(w io.Writer) error { _, err := w.Write([]byte("state")); return err }); err != nil {
		t.Fatal(err)
	}
	appendN(t, l, 2)
	mid := l.NewReader(0) // a Reader part way through when the log closes
	if !mid.Next() {
		t.Fatal(mid.Err())
	}
	fresh := l.NewReader(0)
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	before := snapshot(t, dir)
	for _, c := range apitest.CallAll(t, l, 10*time.Second) {
		switch {
		case c.Panic != nil:
			t.Errorf("Log.%v", c)
		case c.HasErr && !noErrClosed[c.Name] && !errors.Is(c.Err, ErrClosed):
			t.Errorf("Log.%v, want ErrClosed", c)
		}
	}
	for _, r := range []*Reader{mid, fresh, l.NewReader(4)} {
		for _, c := range apitest.CallAll(t, r, 10*time.Second) {
			switch {
			case c.Panic != nil:
				t.Errorf("Reader.%v", c)
			case c.HasErr && c.Name != "Close" && !errors.Is(c.Err, ErrClosed):
				t.Errorf("Reader.%v, want ErrClosed", c)
			}
		}
		if r.Next() || !errors.Is(r.Err(), ErrClosed) {
			t.Errorf("Reader.Next after Close and the Reader's Close: %v, want ErrClosed", r.Err())
		}
	}
	sameSnapshot(t, dir, before)
	if f, g := l.FirstIndex(), l.LastIndex(); f != 3 || g != 5 {
		t.Errorf("a closed log reports [%d, %d], want [3, 5] as Close left it", f, g)
	}
}

// The log keeps no reference to a caller's record once Append or
// AppendBatch has returned: scribbling over the slices afterwards changes
// nothing that is read back, through Read, a Reader or after a reopen,
// with and without NoSync and compression (where the bytes may go to disk
// as they are).
func TestCallerReusesRecordSlices(t *testing.T) {
	for _, o := range []Options{{}, {NoSync: true}, {Compression: Zstd}, {Compression: S2, NoSync: true}} {
		dir := t.TempDir()
		o.Logger = quiet
		l := openT(t, dir, &o)
		buf := make([]byte, 100)
		for i := uint64(1); i <= 20; i++ {
			want := payload(i, 100)
			copy(buf, want)
			var err error
			if i%2 == 0 {
				_, err = l.Append(buf)
			} else {
				_, err = l.AppendBatch([][]byte{buf})
			}
			if err != nil {
				t.Fatal(err)
			}
			clear(buf)
		}
		check := func(l *Log) {
			t.Helper()
			r := l.NewReader(0)
			for i := uint64(1); i <= 20; i++ {
				got, err := l.Read(i)
				if err != nil || !bytes.Equal(got, payload(i, 100)) {
					t.Fatalf("%+v: Read(%d) = %q, %v; want the bytes appended", o, i, got, err)
				}
				if !r.Next() || !bytes.Equal(r.Record(), payload(i, 100)) {
					t.Fatalf("%+v: Reader at %d: %q, %v; want the bytes appended", o, i, r.Record(), r.Err())
				}
			}
		}
		if err := l.Sync(); err != nil {
			t.Fatal(err)
		}
		check(l)
		if err := l.Close(); err != nil {
			t.Fatal(err)
		}
		l = openT(t, dir, &o)
		check(l)
		if err := l.Close(); err != nil {
			t.Fatal(err)
		}
	}
}

// Every exported method of a Log, found by reflection, called over and
// over from a goroutine of its own while Close runs: none panics or
// hangs, each error before Close is one its contract allows for the
// arguments (ErrClosed once Close has begun), every call after Close
// returns ErrClosed, a following Reader stops with ErrClosed (or the
// truncation that overtook it), and the directory reopens.
func TestEveryMethodDuringClose(t *testing.T) {
	allowed := []error{ErrClosed, ErrNotFound, ErrOutOfRange, ErrTruncated, ErrNoSnapshot}
	for round := range 5 {
		dir := t.TempDir()
		l := openT(t, dir, &Options{Logger: quiet, SegmentSize: MinSegmentSize})
		appendN(t, l, 100)
		var closed atomic.Bool
		var wg sync.WaitGroup
		for _, m := range apitest.Methods(l) {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for {
					after := closed.Load()
					c := m.Call()
					switch {
					case c.Panic != nil:
						t.Errorf("round %d: Log.%v", round, c)
						return
					case !c.HasErr || noErrClosed[c.Name] || c.Err == nil:
					case after && !errors.Is(c.Err, ErrClosed):
						t.Errorf("round %d: Log.%v after Close, want ErrClosed", round, c)
					case !slices.ContainsFunc(allowed, func(e error) bool { return errors.Is(c.Err, e) }):
						t.Errorf("round %d: Log.%v while Close ran", round, c)
					}
					if after {
						return
					}
				}
			}()
		}
		followed := make(chan error, 1)
		go func() {
			r := l.NewReader(0)
			for range r.Follow(context.Background()) {
			}
			followed <- r.Err()
		}()
		time.Sleep(time.Duration(20*(round+1)) * time.Millisecond)
		// Close is also one of the methods called above: either may be
		// the one that closes.
		if err := l.Close(); err != nil && !errors.Is(err, ErrClosed) {
			t.Errorf("round %d: Close: %v", round, err)
		}
		closed.Store(true)
		waitGroupWithin(t, &wg, 30*time.Second)
		select {
		case err := <-followed:
			if !errors.Is(err, ErrClosed) && !errors.Is(err, ErrCompacted) && !errors.Is(err, ErrTruncated) {
				t.Errorf("round %d: a following Reader stopped with %v, want ErrClosed", round, err)
			}
		case <-time.After(30 * time.Second):
			t.Fatalf("round %d: a following Reader did not stop at Close", round)
		}
		l = openT(t, dir, &Options{Logger: quiet})
		if err := l.Close(); err != nil {
			t.Fatal(err)
		}
	}
}

// waitGroupWithin waits for wg, failing the test after timeout.
func waitGroupWithin(t *testing.T, wg *sync.WaitGroup, timeout time.Duration) {
	t.Helper()
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(timeout):
		t.Fatalf("calls still running %v after Close", timeout)
	}
}

// A log opened in a directory that holds another program's files leaves
// them alone, byte for byte, even one whose name starts with ".tmp-" like
// journal's own temporary files: Open removes only the leftovers journal
// writes (segments, the spare, the meta, manifest, tail and snapshot files
// being replaced), which it lists in Recovered().Removed.
func TestOpenLeavesOtherProgramsFilesAlone(t *testing.T) {
	dir := t.TempDir()
	foreign := map[string]string{
		"notes.txt":         "mine",
		".tmp-upload":       "half an upload by another program",
		".tmp-journal.meta": "no random suffix: not journal's",
		".tmpfile":          "x",
	}
	for name, b := range foreign {
		writeFile(t, filepath.Join(dir, name), []byte(b))
	}
	ours := []string{
		vfs.TempPrefix + segment.Name(1),
		segment.SpareName,
		vfs.TempPrefix + recovery.MetaName + "-3k9x2a",
		vfs.TempPrefix + recovery.ManifestName + "-1",
		vfs.TempPrefix + recovery.TailName + "-zz",
		vfs.TempPrefix + checkpoint.FileName + "-5",
	}
	var want []string
	for _, name := range ours {
		writeFile(t, filepath.Join(dir, name), []byte("partial"))
		want = append(want, filepath.Join(dir, name))
	}
	l := openT(t, dir, &Options{Logger: quiet})
	if got := slices.Sorted(slices.Values(l.Recovered().Removed)); !slices.Equal(got, slices.Sorted(slices.Values(want))) {
		t.Errorf("Recovered().Removed = %v, want %v", got, want)
	}
	appendN(t, l, 3)
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	l = openT(t, dir, &Options{Logger: quiet})
	checkRange(t, l, 1, 3)
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	for name, b := range foreign {
		if got, err := os.ReadFile(filepath.Join(dir, name)); err != nil || string(got) != b {
			t.Errorf("%s: %q, %v; want it untouched", name, got, err)
		}
	}
}
