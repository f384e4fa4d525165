package wal

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"maps"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gojournal/journal/internal/seedtest"
	"github.com/gojournal/journal/vfs"
	"github.com/gojournal/journal/vfs/crashfs"
)

// machine is a key-value state machine a database would build on the log:
// every change goes through AppendApply or AppendBatchApply and is applied
// in index order; checkpoints stream a copy of the map. It keeps the
// history of every record it applied (hist[i-1] is record i), from which
// the test computes the state the directory must hold at any index.
type machine struct {
	t    *testing.T
	mu   sync.Mutex
	data map[string]string
	hist []string
	snap atomic.Uint64 // the highest index a checkpoint committed
}

// apply applies the records starting at first; they must continue the
// history exactly: applies run in index order, without gaps, once each.
func (m *machine) apply(first uint64, recs []string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if want := uint64(len(m.hist)) + 1; first != want {
		m.t.Errorf("apply(%d) after the apply of record %d: want apply(%d)", first, len(m.hist), want)
	}
	for _, rec := range recs {
		m.hist = append(m.hist, rec)
		applyOp(m.data, rec)
	}
}

// applyOp applies one record: "set KEY VALUE" or "del KEY".
func applyOp(data map[string]string, rec string) {
	f := strings.Fields(rec)
	switch {
	case len(f) == 3 && f[0] == "set":
		data[f[1]] = f[2]
	case len(f) == 2 && f[0] == "del":
		delete(data, f[1])
	}
}

// encodeState lays out a map as sorted "key=value" lines: equal maps
// encode equally.
func encodeState(data map[string]string) string {
	var b strings.Builder
	for _, k := range slices.Sorted(maps.Keys(data)) {
		fmt.Fprintf(&b, "%s=%s\n", k, data[k])
	}
	return b.String()
}

// stateAt is the encoded state after records [1, index] of hist.
func stateAt(hist []string, index uint64) string {
	data := map[string]string{}
	for _, rec := range hist[:index] {
		applyOp(data, rec)
	}
	return encodeState(data)
}

// state captures the map for a checkpoint, as CheckpointOptions.State does.
func (m *machine) state() (uint64, func(io.Writer) error, error) {
	m.mu.Lock()
	index, s := uint64(len(m.hist)), encodeState(m.data)
	m.mu.Unlock()
	return index, func(w io.Writer) error {
		// Written in small pieces, so that Close can cut it anywhere.
		bw := bufio.NewWriterSize(w, 64)
		if _, err := bw.WriteString(s); err != nil {
			return err
		}
		return bw.Flush()
	}, nil
}

// randomOp returns a change to one of a few keys, so that later changes
// overwrite and delete earlier ones.
func randomOp(rng *rand.Rand, w, i int) string {
	k := fmt.Sprintf("k%d", rng.IntN(12))
	if rng.IntN(4) == 0 {
		return "del " + k
	}
	return fmt.Sprintf("set %s w%d.%d", k, w, i)
}

// smRound is one run of the workload, until Close or a crash.
type smRound struct {
	t      *testing.T
	l      *Log
	m      *machine
	stop   chan struct{} // closed once the log is closed (or crashed)
	wg     sync.WaitGroup
	crash  bool
	opened uint64 // the snapshot's index when the round began
}

// allowed reports whether err is one a call may meet as the round ends.
func (r *smRound) allowed(err error) bool {
	return errors.Is(err, ErrClosed) || (r.crash && (errors.Is(err, ErrFailed) || errors.Is(err, crashfs.ErrCrashed)))
}

// writer makes AppendApply and AppendBatchApply calls until the log
// closes. Some applies truncate the log back to their own record, which
// drops the later records still waiting for their turn: those calls must
// return ErrTruncated and skip their applies.
func (r *smRound) writer(w int, seed uint64) {
	defer r.wg.Done()
	rng := rand.New(rand.NewPCG(seed, uint64(w)))
	for i := 0; ; i++ {
		recs := []string{randomOp(rng, w, i)}
		for range rng.IntN(3) {
			recs = append(recs, randomOp(rng, w, i))
		}
		cut := rng.IntN(25) == 0
		var ran atomic.Int32
		apply := func(first uint64) {
			ran.Add(1)
			r.m.apply(first, recs)
			if cut {
				if err := r.l.TruncateBack(first + uint64(len(recs)) - 1); err != nil && !r.allowed(err) {
					r.t.Errorf("TruncateBack in apply(%d): %v", first, err)
				}
			}
		}
		var err error
		if len(recs) == 1 {
			_, err = r.l.AppendApply([]byte(recs[0]), apply)
		} else {
			b := make([][]byte, len(recs))
			for j, rec := range recs {
				b[j] = []byte(rec)
			}
			_, err = r.l.AppendBatchApply(b, apply)
		}
		if n := ran.Load(); (err == nil) != (n == 1) || n > 1 {
			r.t.Errorf("writer %d: apply call returned %v and ran its apply %d times", w, err, n)
		}
		switch {
		case err == nil, errors.Is(err, ErrTruncated):
		case r.allowed(err):
			return
		default:
			r.t.Errorf("writer %d: %v", w, err)
			return
		}
	}
}

// checkpointer checkpoints the machine's state now and then.
func (r *smRound) checkpointer(seed uint64) {
	defer r.wg.Done()
	rng := rand.New(rand.NewPCG(seed, 1))
	for {
		select {
		case <-r.stop:
			return
		case <-time.After(time.Duration(rng.IntN(1500)) * time.Microsecond):
		}
		index, write, _ := r.m.state()
		if index == 0 {
			continue
		}
		err := r.l.Checkpoint(index, write)
		switch {
		case err == nil:
			for s := r.m.snap.Load(); s < index && !r.m.snap.CompareAndSwap(s, index); s = r.m.snap.Load() {
			}
		case errors.Is(err, ErrOutOfRange) && index+1 < r.l.FirstIndex():
			// A background checkpoint of a later state released the log
			// since this state was captured.
		case r.allowed(err):
		default:
			r.t.Errorf("Checkpoint(%d): %v", index, err)
		}
	}
}

// truncator releases records the snapshot covers, as a database may do on
// its own schedule.
func (r *smRound) truncator(seed uint64) {
	defer r.wg.Done()
	rng := rand.New(rand.NewPCG(seed, 2))
	for {
		select {
		case <-r.stop:
			return
		case <-time.After(time.Duration(rng.IntN(1500)) * time.Microsecond):
		}
		s := r.m.snap.Load()
		if s == 0 {
			continue
		}
		first := r.l.FirstIndex()
		if first > s+1 {
			continue
		}
		index := first + rng.Uint64N(s+2-first)
		if err := r.l.TruncateFront(index); err != nil && !r.allowed(err) &&
			!(errors.Is(err, ErrOutOfRange) && index < r.l.FirstIndex()) {
			r.t.Errorf("TruncateFront(%d) with the snapshot at %d: %v", index, s, err)
		}
	}
}

// restore rebuilds the machine from the reopened directory (snapshot, then
// the log after it) and checks it against the history: the snapshot holds
// exactly the state after its index, the log continues it with the records
// applied, in order, and what follows them was never acknowledged (a
// record in flight at Close or the crash).
func restore(t *testing.T, l *Log, hist []string) (*machine, error) {
	index, rd, err := l.Snapshot()
	data := map[string]string{}
	switch {
	case errors.Is(err, ErrNoSnapshot):
		index = 0
	case err != nil:
		return nil, err
	default:
		b, err := io.ReadAll(rd)
		rd.Close()
		if err != nil {
			return nil, fmt.Errorf("reading the snapshot at %d: %w", index, err)
		}
		if index > uint64(len(hist)) {
			return nil, fmt.Errorf("the snapshot covers [1, %d], but only [1, %d] were applied", index, len(hist))
		}
		if want := stateAt(hist, index); string(b) != want {
			return nil, fmt.Errorf("the snapshot at %d holds\n%s\nwant the state after the first %d applies\n%s", index, b, index, want)
		}
		for _, line := range strings.Split(strings.TrimSuffix(string(b), "\n"), "\n") {
			if k, v, ok := strings.Cut(line, "="); ok {
				data[k] = v
			}
		}
	}
	if first := l.FirstIndex(); first > index+1 {
		return nil, fmt.Errorf("the log starts at %d, after the snapshot at %d: records %d to %d are lost", first, index, index+1, first-1)
	}
	if last := l.LastIndex(); last < uint64(len(hist)) {
		return nil, fmt.Errorf("the log ends at %d, but records up to %d were applied", last, len(hist))
	}
	m := &machine{t: t, data: data, hist: slices.Clone(hist[:index])}
	m.snap.Store(index)
	rd2 := l.NewReader(index + 1)
	defer rd2.Close()
	for rd2.Next() {
		i, rec := rd2.Index(), string(rd2.Record())
		if i <= uint64(len(hist)) && rec != hist[i-1] {
			return nil, fmt.Errorf("record %d replays %q, applied as %q", i, rec, hist[i-1])
		}
		m.hist = append(m.hist, rec)
		applyOp(m.data, rec)
	}
	if err := rd2.Err(); err != nil {
		return nil, err
	}
	return m, nil
}

// TestStateMachineWithCheckpoints is a database built on AppendApply:
// eight writers change a map through the log, applies truncate the log
// back now and then, checkpoints (explicit and background) and
// TruncateFront race with them, and each round ends with Close or, on
// crashfs, a power loss at a random file operation. After every round the
// reopened directory, snapshot plus replay, must hold exactly the records
// applied, in index order, and the snapshot exactly the state after its
// index. The seed replays the workload (not the goroutines' interleaving).
func TestStateMachineWithCheckpoints(t *testing.T) {
	for _, crash := range []bool{false, true} {
		t.Run(fmt.Sprintf("crash=%v", crash), func(t *testing.T) {
			rng := seedtest.Rand(t)
			var fsys vfs.FS = vfs.Default
			dir := t.TempDir()
			var cfs *crashfs.FS
			if crash {
				cfs = crashfs.New()
				fsys, dir = cfs, "/db"
			}
			var hist []string
			for round := range 12 {
				m := &machine{t: t, data: map[string]string{}}
				var mp atomic.Pointer[machine]
				mp.Store(m)
				opts := &Options{FS: fsys, Logger: quiet, SegmentSize: MinSegmentSize, Checkpoint: CheckpointOptions{
					Compress:   rng.IntN(2) == 0,
					EveryBytes: int64(1 + rng.IntN(8<<10)),
					State:      func() (uint64, func(io.Writer) error, error) { return mp.Load().state() },
				}}
				l := openT(t, dir, opts)
				var err error
				if m, err = restore(t, l, hist); err != nil {
					l.Close()
					t.Fatalf("round %d: %v", round, err)
				}
				mp.Store(m)
				r := &smRound{t: t, l: l, m: m, stop: make(chan struct{}), crash: crash, opened: m.snap.Load()}
				if crash {
					cfs.SetCrashAfter(cfs.Ops() + 20 + rng.IntN(3000))
				}
				for w := range 8 {
					r.wg.Add(1)
					go r.writer(w, rng.Uint64())
				}
				r.wg.Add(2)
				go r.checkpointer(rng.Uint64())
				go r.truncator(rng.Uint64())
				if crash {
					for !cfs.Crashed() {
						time.Sleep(time.Millisecond)
					}
				} else {
					time.Sleep(time.Duration(5+rng.IntN(60)) * time.Millisecond)
				}
				if err := l.Close(); err != nil && !crash {
					t.Errorf("round %d: Close: %v", round, err)
				}
				close(r.stop)
				within(t, 20*time.Second, "the workload's goroutines", r.wg.Wait)
				if t.Failed() {
					t.FailNow()
				}
				hist = m.hist
				if crash {
					cfs.SetCrashAfter(-1)
					cfs = cfs.Crash(crashfs.CrashMode(rng.IntN(3)), rng)
					fsys = cfs
				}
				t.Logf("round %d: opened at snapshot %d, %d records applied", round, r.opened, len(hist))
			}
		})
	}
}
