package fuzz

import (
	"errors"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"os"
	"path"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/gojournal/journal/internal/crashtest"
	"github.com/gojournal/journal/internal/seedtest"
	"github.com/gojournal/journal/segment"
	"github.com/gojournal/journal/vfs"
	"github.com/gojournal/journal/vfs/crashfs"
	"github.com/gojournal/journal/wal"
)

// workload is a sequence of log calls run until it ends or the simulated
// machine crashes.
type workload struct {
	name string
	opts wal.Options
	run  func(d *crashtest.Driver)
}

// small segments make rotation part of most workloads.
var small = wal.Options{SegmentSize: wal.MinSegmentSize}

// noSync is small without an fdatasync per group commit.
var noSync = wal.Options{SegmentSize: wal.MinSegmentSize, NoSync: true}

// recycling is small with released segments recycled.
var recycling = wal.Options{SegmentSize: wal.MinSegmentSize, RecycleSegments: true}

func appendAll(d *crashtest.Driver, n, size int) bool {
	for i := range n {
		if !d.Append(size + i%7*13) {
			return false
		}
	}
	return true
}

var workloads = []workload{
	{"single appends", small, func(d *crashtest.Driver) {
		appendAll(d, 30, 0)
	}},
	{"concurrent appends", small, func(d *crashtest.Driver) {
		d.Parallel(4, func(w int) { appendAll(d, 8, 50*w) })
	}},
	{"batches", small, func(d *crashtest.Driver) {
		for i := range 12 {
			if !d.Batch(make([]int, 1+i%4)...) {
				return
			}
		}
	}},
	{"segment rotation", small, func(d *crashtest.Driver) {
		appendAll(d, 24, 9000)
		d.Batch(20000, 20000, 20000, 20000) // a batch larger than the room left
		d.Append(70000)                     // a record larger than a segment
		appendAll(d, 3, 100)
	}},
	{"TruncateFront", small, func(d *crashtest.Driver) {
		_ = appendAll(d, 30, 6000) &&
			d.TruncateFront(5) && // inside the first segment
			d.TruncateFront(22) && // releases segments
			appendAll(d, 3, 10) &&
			d.TruncateFront(34) && // empties the log
			appendAll(d, 2, 10)
	}},
	// An empty log may start anywhere: past the end, every segment goes
	// and the log continues at the index given.
	{"TruncateFront past the end", small, func(d *crashtest.Driver) {
		_ = appendAll(d, 30, 6000) &&
			d.TruncateFront(50) && // releases every segment
			appendAll(d, 3, 10) &&
			d.TruncateFront(60) && // again, from a restarted log
			appendAll(d, 2, 10)
	}},
	{"TruncateFront past the end of a new log", small, func(d *crashtest.Driver) {
		_ = d.TruncateFront(7) &&
			appendAll(d, 3, 10) &&
			d.TruncateFront(40) &&
			d.TruncateFront(12) && // an empty log may move its start back
			appendAll(d, 2, 10)
	}},
	{"TruncateBack", small, func(d *crashtest.Driver) {
		_ = appendAll(d, 30, 6000) &&
			d.TruncateBack(28) && // inside the active segment
			d.TruncateBack(9) && // into a sealed segment
			appendAll(d, 3, 10) &&
			d.Batch(5, 5, 5, 5) &&
			d.TruncateBack(14) && // cuts the batch short
			appendAll(d, 2, 10)
	}},
	{"checkpoints", small, func(d *crashtest.Driver) {
		_ = appendAll(d, 20, 3000) &&
			d.Checkpoint(8) &&
			appendAll(d, 6, 3000) &&
			d.Checkpoint(22) && // releases a segment
			d.Checkpoint(26) && // everything
			appendAll(d, 2, 10)
	}},
	// Close seals the newest segment; Open lifts its footer and appends
	// go on where it was. Rotations prepare their next segment ahead.
	{"reopen and rotate", small, func(d *crashtest.Driver) {
		_ = appendAll(d, 3, 100) &&
			d.Reopen() && // one small segment, sealed then lifted
			appendAll(d, 10, 9000) && // rotations
			d.Reopen() &&
			d.Reopen() && // lifted, nothing appended, sealed again
			appendAll(d, 2, 100) &&
			d.TruncateBack(12) &&
			d.Reopen() && // the segment TruncateBack started
			appendAll(d, 2, 10)
	}},
	// Close writes the manifest (recovery.ManifestName) and Open trusts
	// it, then removes it before changing anything: every mutation after
	// a clean reopen, crashed at every step, Close's write and Open's
	// removal included, must reopen as the log really is.
	{"clean close, then each mutation", small, func(d *crashtest.Driver) {
		_ = appendAll(d, 30, 6000) &&
			d.Reopen() && // the manifest describes the sealed segments
			appendAll(d, 10, 6000) && // rotations
			d.Reopen() &&
			d.TruncateFront(12) && // releases a segment
			d.Reopen() &&
			d.TruncateBack(18) && // into a sealed segment
			d.Reopen() &&
			appendAll(d, 6, 6000) &&
			d.Checkpoint(21) && // releases a segment
			d.Reopen() &&
			appendAll(d, 3, 100) // then the crash: an Open without the manifest
	}},
	// Released segment files become later segments: a crash while one is
	// renamed, cut and preallocated, or while the segment that reuses it
	// is written (the old segment's bytes past its frames), must open as
	// before or after.
	{"recycled segments", recycling, func(d *crashtest.Driver) {
		_ = appendAll(d, 30, 6000) &&
			d.TruncateFront(22) && // releases segments: the largest is recycled
			appendAll(d, 20, 6000) && // rotations into the recycled file
			d.Checkpoint(40) && // releases more: one recycled again
			appendAll(d, 12, 6000) &&
			d.Reopen() && // Close drops the spare held
			appendAll(d, 3, 100)
	}},
	{"NoSync reopen", noSync, func(d *crashtest.Driver) {
		_ = appendAll(d, 12, 3000) &&
			d.Reopen() &&
			appendAll(d, 3, 3000) &&
			d.Sync() &&
			d.Reopen() &&
			appendAll(d, 2, 10)
	}},
	{"NoSync killed, then synced appends", noSync, func(d *crashtest.Driver) {
		_ = appendAll(d, 5, 700) &&
			d.Kill(small) && // what the dead process wrote is only in the page cache
			appendAll(d, 3, 700)
	}},
	// NoSync truncations: the records a truncation keeps were never
	// synced, yet after a power loss at any point the directory must open
	// as before or after the truncation.
	{"NoSync TruncateFront", noSync, func(d *crashtest.Driver) {
		_ = appendAll(d, 12, 3000) &&
			d.TruncateFront(5) && // the kept records are not synced
			appendAll(d, 4, 3000) &&
			d.TruncateFront(17) && // empties the log
			appendAll(d, 3, 3000) &&
			d.Sync() &&
			appendAll(d, 2, 3000) &&
			d.TruncateFront(19)
	}},
	{"NoSync TruncateFront past the end", noSync, func(d *crashtest.Driver) {
		_ = appendAll(d, 12, 3000) &&
			d.TruncateFront(40) && // the records dropped were never synced
			appendAll(d, 3, 3000) &&
			d.Sync() &&
			d.TruncateFront(45) && // the records dropped were synced
			appendAll(d, 2, 3000)
	}},
	{"NoSync TruncateBack", noSync, func(d *crashtest.Driver) {
		_ = appendAll(d, 30, 6000) && // rotation seals some
			d.TruncateBack(28) && // inside the unsynced active segment
			appendAll(d, 3, 10) &&
			d.Batch(5, 5, 5) &&
			d.TruncateBack(32) && // cuts the batch short
			d.Sync() &&
			appendAll(d, 2, 10) &&
			d.TruncateBack(9) && // into a sealed segment
			appendAll(d, 2, 10)
	}},
	{"NoSync with Sync", wal.Options{SegmentSize: wal.MinSegmentSize, NoSync: true}, func(d *crashtest.Driver) {
		for range 6 {
			if !appendAll(d, 5, 3000) || !d.Sync() {
				return
			}
		}
	}},
}

// TestWorkloadsRunToTheEnd runs every workload without a crash: each must
// complete without a failed call, or the enumeration would silently test a
// workload cut short.
// A workload with RecycleSegments must recycle, or its crash points would
// silently test deletion again.
func TestWorkloadsRunToTheEnd(t *testing.T) {
	for _, w := range workloads {
		fsys := &recycleCount{FS: crashfs.New()}
		d, ok := crashtest.NewDriver(fsys, w.opts)
		if !ok {
			t.Fatalf("%s: Open failed", w.name)
		}
		w.run(d)
		if d.Failed() {
			t.Errorf("%s: a call failed without a crash", w.name)
		}
		d.Close()
		if w.opts.RecycleSegments && fsys.recycled < 2 {
			t.Errorf("%s: %d segments recycled, want at least 2", w.name, fsys.recycled)
		}
	}
}

// recycleCount counts the renames of a segment to the spare's name: the
// segments recycled (segment.Recycle).
type recycleCount struct {
	vfs.FS
	recycled int
}

func (c *recycleCount) Rename(oldname, newname string) error {
	if _, seg := segment.ParseName(path.Base(oldname)); seg && path.Base(newname) == segment.SpareName {
		c.recycled++
	}
	return c.FS.Rename(oldname, newname)
}

func (c *recycleCount) Unwrap() vfs.FS { return c.FS }

// figures counts what the enumeration did.
type figures struct {
	crashPoints, states, recoveryCrashes, flips atomic.Int64
	violations                                  atomic.Int64
}

// statesPerPoint is how many random crash states each crash point gets per
// mode beyond SyncedOnly; JOURNAL_CRASH_LONG=1 runs many more.
func statesPerPoint() int {
	switch {
	case os.Getenv("JOURNAL_CRASH_LONG") != "":
		return 20
	case raceEnabled || testing.Short():
		// The race detector looks at the goroutines of each workload
		// and recovery, which one random state per point runs as well
		// as four; CI checks four per point in its other test steps.
		return 1
	}
	return 4
}

// TestCrashPoints runs every workload, crashes it after each mutating file
// operation in turn, and checks several crash states of each point.
func TestCrashPoints(t *testing.T) {
	s := seedtest.Seed(t)
	t.Log("JOURNAL_CRASH_LONG=1 checks more states per point")
	var fig figures
	for wi, w := range workloads {
		t.Run(strings.ReplaceAll(w.name, " ", "_"), func(t *testing.T) {
			rng := rand.New(rand.NewPCG(s, uint64(wi)))
			enumerate(t, w, rng, &fig, modes(), crashPointStride())
		})
	}
	t.Logf("workloads %d, crash points %d, crash states checked %d, crashes during recovery %d, bit flips in sealed segments %d, violations %d",
		len(workloads), fig.crashPoints.Load(), fig.states.Load(), fig.recoveryCrashes.Load(), fig.flips.Load(), fig.violations.Load())
}

// crashPointStride is 1 (every crash point) but under the race detector,
// which finds its races in the goroutines of a workload run whichever
// operation it crashes after: there every fourth point, so that the race
// step stays within CI's time (it took over 400 s; the other test steps
// enumerate every point).
func crashPointStride() int {
	if raceEnabled {
		return 4
	}
	return 1
}

// enumerate crashes w after its k-th mutating operation for k = 1, 2, ...
// until it completes; with stride > 1, only every stride-th k, from an
// offset the rng draws.
func enumerate(t testing.TB, w workload, rng *rand.Rand, fig *figures, modes []crashfs.CrashMode, stride int) {
	k := 1
	if stride > 1 {
		k += rng.IntN(stride) // only here, so stride 1 replays a seed's old states
	}
	for ; ; k += stride {
		fsys := crashfs.New()
		fsys.SetCrashAfter(k)
		d, ok := crashtest.NewDriver(fsys, w.opts)
		if ok {
			w.run(d)
			d.Close()
		}
		closed := !fsys.Crashed() // the workload ran to its end and closed the log
		fig.crashPoints.Add(1)
		for i, mode := range modes {
			st := fsys.Crash(mode, rng)
			deep := i < 2 // recovery crashes on SyncedOnly and one random state
			err := checkState(st, d.Model(), w.opts, rng, fig, deep)
			if err == nil && closed {
				err = flipLastRecord(st, d.Model(), w.opts, fig)
			}
			if err != nil {
				fig.violations.Add(1)
				t.Errorf("%s: crash after op %d, %v state: %v", w.name, k, mode, err)
				if fig.violations.Load() > 20 {
					t.FailNow()
				}
			}
		}
		if !fsys.Crashed() {
			return
		}
	}
}

func modes() []crashfs.CrashMode {
	m := []crashfs.CrashMode{crashfs.SyncedOnly}
	for range statesPerPoint() {
		m = append(m, crashfs.RandomSectors, crashfs.Garbled)
	}
	return m
}

// checkState recovers a crash state and checks I1-I4 on it, and first
// that every file under a segment's name holds that segment's header.
func checkState(st *crashfs.FS, m *crashtest.Model, opts wal.Options, rng *rand.Rand, fig *figures, deep bool) error {
	fig.states.Add(1)
	if err := namesMatchHeaders(st); err != nil {
		return err
	}
	pristine := st.Crash(crashfs.SyncedOnly, nil) // st itself is all durable: a copy
	l, got, err := crashtest.Recover(st, opts, true)
	if err != nil {
		return fmt.Errorf("recovery failed on a crash state (I4: no damage was done): %w", err)
	}
	if err := m.Check(got); err != nil {
		l.Close()
		return err
	}
	if err := acceptsAppends(l, st, got, opts); err != nil {
		return fmt.Errorf("I3: %w", err)
	}
	if err := idempotent(pristine, got, opts); err != nil {
		return fmt.Errorf("I3: %w", err)
	}
	if deep {
		if err := crashDuringRecovery(pristine, got, opts, fig); err != nil {
			return fmt.Errorf("I3: %w", err)
		}
	}
	return flipInSealed(pristine, m, opts, rng, fig)
}

// namesMatchHeaders checks, before recovery, that every file under a
// segment's name has a durable header naming that segment's first index
// (segment's doc: a file under a segment name always has a durable
// header), obsolete segments included: recovery removes those unread,
// but salvage and an operator's `wal dump` of the file do read them. A
// recycled file must be under the spare's name, durably, before it
// changes (segment.Recycle).
func namesMatchHeaders(st *crashfs.FS) error {
	names, err := st.ReadDir(crashtest.Dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	for _, n := range names {
		first, ok := segment.ParseName(n)
		if !ok {
			continue
		}
		h, err := segment.OpenHandle(st, path.Join(crashtest.Dir, n))
		if err != nil {
			return fmt.Errorf("names: %s has no header of its own: %w", n, err)
		}
		got := h.Header().FirstIndex
		h.Close()
		if got != first {
			return fmt.Errorf("names: %s holds the header of the segment starting at %d", n, got)
		}
	}
	return nil
}

// acceptsAppends appends to the recovered log, crashes, and checks that the
// new records survived along with the old.
func acceptsAppends(l *wal.Log, st *crashfs.FS, got crashtest.Log, opts wal.Options) error {
	m := crashtest.NewModel()
	m.First, m.Snapshot = got.First, got.Snapshot
	for i, rec := range got.Records {
		m.Acked[i] = rec
	}
	for id := uint64(1 << 40); id < 1<<40+3; id++ {
		rec := crashtest.Payload(id, 100)
		m.Begin([]uint64{id}, [][]byte{rec})
		first, err := l.Append(rec)
		if err != nil {
			l.Close()
			return fmt.Errorf("append after recovery: %w", err)
		}
		m.Ack([]uint64{id}, first, opts.NoSync)
	}
	if err := l.Sync(); err != nil {
		return err
	}
	m.Synced()
	after := st.Crash(crashfs.SyncedOnly, nil)
	l.Close()
	_, again, err := crashtest.Recover(after, opts, false)
	if err != nil {
		return fmt.Errorf("recovery after appends: %w", err)
	}
	if err := m.Check(again); err != nil {
		return fmt.Errorf("appends after recovery: %w", err)
	}
	return nil
}

// idempotent recovers twice: the same log, and nothing left to repair.
func idempotent(st *crashfs.FS, want crashtest.Log, opts wal.Options) error {
	for range 2 {
		l, err := crashtest.Open(st, opts)
		if err != nil {
			return err
		}
		l.Close()
	}
	l, got, err := crashtest.Recover(st, opts, true)
	if err != nil {
		return err
	}
	defer l.Close()
	if r := l.Recovered(); r.Torn != nil || len(r.Removed) > 0 {
		return fmt.Errorf("third recovery still repaired %+v", r)
	}
	if !got.Equal(want) {
		return fmt.Errorf("recovering again changed the log: [%d, %d] -> [%d, %d]", want.First, want.Last, got.First, got.Last)
	}
	return nil
}

// crashDuringRecovery crashes recovery after each of its mutating
// operations: recovering from there must give the same log.
func crashDuringRecovery(st *crashfs.FS, want crashtest.Log, opts wal.Options, fig *figures) error {
	for k := 1; ; k++ {
		sub := st.Crash(crashfs.SyncedOnly, nil)
		sub.SetCrashAfter(k)
		if l, err := crashtest.Open(sub, opts); err == nil {
			l.Close()
		}
		if !sub.Crashed() {
			return nil
		}
		fig.recoveryCrashes.Add(1)
		_, got, err := crashtest.Recover(sub.Crash(crashfs.SyncedOnly, nil), opts, false)
		if err != nil {
			return fmt.Errorf("recovery crashed after op %d, then: %w", k, err)
		}
		if !got.Equal(want) {
			return fmt.Errorf("recovery crashed after op %d gave [%d, %d], want [%d, %d]", k, got.First, got.Last, want.First, want.Last)
		}
	}
}

// flipLastRecord flips a bit in the last record of a log that was closed
// cleanly: Close leaves the proof that it was durable, so recovery must
// report the damage, never cut the record as a torn tail.
func flipLastRecord(st *crashfs.FS, m *crashtest.Model, opts wal.Options, fig *figures) error {
	st = st.Crash(crashfs.SyncedOnly, nil) // a copy to damage
	names, err := st.ReadDir(crashtest.Dir)
	if err != nil {
		return err
	}
	var newest string
	for _, n := range names {
		if _, ok := segment.ParseName(n); ok {
			newest = path.Join(crashtest.Dir, n)
		}
	}
	if newest == "" {
		return nil
	}
	h, err := segment.OpenHandle(st, newest)
	if err != nil {
		return err
	}
	sc := h.Scan()
	last := int64(-1)
	for sc.Next() {
		last = sc.Frame().Offset
	}
	h.Close()
	if last < 0 {
		return nil // no record in the newest segment
	}
	f, err := st.OpenFile(newest, os.O_RDWR, 0)
	if err != nil {
		return err
	}
	b := []byte{0}
	f.ReadAt(b, last+8) // the index, which the checksum covers
	b[0] ^= 0x40
	f.WriteAt(b, last+8)
	f.Sync()
	f.Close()
	fig.flips.Add(1)
	_, got, err := crashtest.Recover(st, opts, false)
	if errors.Is(err, wal.ErrCorrupt) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("I4: bit flip in the last record of a closed log (%s at %d): %w", newest, last, err)
	}
	if err := m.Check(got); err != nil {
		return fmt.Errorf("I4: bit flip in the last record of a closed log (%s at %d) went unreported: %w", newest, last, err)
	}
	return nil
}

// flipInSealed flips one bit in a sealed segment (all of it durable): the
// damage must be reported, or have touched nothing the log relies on.
func flipInSealed(st *crashfs.FS, m *crashtest.Model, opts wal.Options, rng *rand.Rand, fig *figures) error {
	names, err := st.ReadDir(crashtest.Dir)
	if err != nil {
		return err
	}
	var segs []string
	for _, n := range names {
		if _, ok := segment.ParseName(n); ok {
			segs = append(segs, n)
		}
	}
	if len(segs) < 2 {
		return nil
	}
	name := path.Join(crashtest.Dir, segs[rng.IntN(len(segs)-1)])
	f, err := st.OpenFile(name, os.O_RDWR, 0)
	if err != nil {
		return err
	}
	size, _ := f.Size()
	off := rng.Int64N(size)
	b := []byte{0}
	f.ReadAt(b, off)
	b[0] ^= 1 << rng.IntN(8)
	f.WriteAt(b, off)
	f.Sync()
	f.Close()
	fig.flips.Add(1)
	_, got, err := crashtest.Recover(st, opts, false)
	if errors.Is(err, wal.ErrCorrupt) || errors.Is(err, wal.ErrFormat) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("I4: bit flip in %s at %d: %w", name, off, err)
	}
	if err := m.Check(got); err != nil {
		return fmt.Errorf("I4: bit flip in %s at %d went unreported: %w", name, off, err)
	}
	return nil
}
