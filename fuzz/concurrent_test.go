package fuzz

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/anishathalye/porcupine"
	"github.com/gojournal/journal/internal/crashtest"
	"github.com/gojournal/journal/internal/seedtest"
	"github.com/gojournal/journal/vfs/crashfs"
	"github.com/gojournal/journal/wal"
)

// The concurrent model check. Several goroutines call the log at once on
// the crash-simulating file system (Append, AppendBatch, Read,
// TruncateFront, TruncateBack, Checkpoint, Sync, Reader.Next, Close), in
// sync and NoSync modes, with and without compression; the power is cut at
// a random file-system operation (or after the last call); the directory
// is recovered. The history of calls, followed by the recovery, must be
// linearizable against crashtest.LinModel: the calls behave as if they ran
// one at a time, each at a point between its invocation and its response,
// and the recovered log is what a power loss may leave of that sequential
// log (every acknowledged record, a prefix, batches whole). Recovery must
// then be idempotent.
//
//	JOURNAL_SEED=n                  the seed of every history's choices
//	JOURNAL_LINCHECK_TIME=2m        run histories for that long (default 10s, -short 3s)
//	JOURNAL_LINCHECK_HISTORY=n      run the history with seed n (20 times: timing varies)
//	JOURNAL_LINCHECK_VIZ=dir        write a porcupine visualization of each violation there
//	JOURNAL_LINCHECK_EXCLUDE=a,b    make no calls of these kinds (e.g. Reader.Next,Checkpoint),
//	                                to look past a known bug
//	JOURNAL_LINCHECK_NOSYNC=0|1     only sync (0) or only NoSync (1) histories
//	JOURNAL_LINCHECK_MAXFAIL=n      stop after n violations (default 5)

// linFigures counts what the concurrent model check did.
type linFigures struct {
	histories, calls, crashStates, crashedMid, dropped, recycled, timeouts, violations atomic.Int64
	hung                                                                               atomic.Bool // calls still running: stop
}

func (f *linFigures) String() string {
	return fmt.Sprintf("histories %d, operations %d, crash states %d (%d cut mid-history), appends dropped by a truncation %d, segment files recycled %d, checker timeouts %d, violations %d",
		f.histories.Load(), f.calls.Load(), f.crashStates.Load(), f.crashedMid.Load(), f.dropped.Load(), f.recycled.Load(), f.timeouts.Load(), f.violations.Load())
}

// linTimeout bounds the linearizability check of one history.
const linTimeout = 20 * time.Second

func linBudget(t *testing.T) time.Duration {
	if s := os.Getenv("JOURNAL_LINCHECK_TIME"); s != "" {
		d, err := time.ParseDuration(s)
		if err != nil {
			t.Fatalf("JOURNAL_LINCHECK_TIME: %v", err)
		}
		return d
	}
	if testing.Short() {
		return 3 * time.Second
	}
	return 10 * time.Second
}

// historySeed is the seed of history i of a run with seed base.
func historySeed(base uint64, i int) uint64 {
	return rand.New(rand.NewPCG(base, uint64(i))).Uint64()
}

// newHistory draws a history: 2 to 4 clients of 6 to 15 calls each, small
// enough to check in milliseconds.
func newHistory(t testing.TB, seed uint64) crashtest.Concurrent {
	r := rand.New(rand.NewPCG(seed, 1))
	c := crashtest.NewConcurrent(seed, 2+r.IntN(3), 6+r.IntN(10))
	c.Exclude = excluded(t)
	switch os.Getenv("JOURNAL_LINCHECK_NOSYNC") {
	case "0":
		c.NoSync = false
	case "1":
		c.NoSync = true
	}
	return c
}

// linEnv is the settings that shape a history, as a shell prefix.
func linEnv() string {
	var s string
	for _, k := range []string{"JOURNAL_LINCHECK_EXCLUDE", "JOURNAL_LINCHECK_NOSYNC"} {
		if v := os.Getenv(k); v != "" {
			s += k + "=" + v + " "
		}
	}
	return s
}

func excluded(t testing.TB) []crashtest.OpKind {
	var ks []crashtest.OpKind
	for name := range strings.SplitSeq(os.Getenv("JOURNAL_LINCHECK_EXCLUDE"), ",") {
		if name == "" {
			continue
		}
		k := slices.IndexFunc(crashtest.AllOps, func(k crashtest.OpKind) bool { return k.String() == name })
		if k < 0 {
			t.Fatalf("JOURNAL_LINCHECK_EXCLUDE: no call %q (calls: %v)", name, crashtest.AllOps)
		}
		ks = append(ks, crashtest.AllOps[k])
	}
	return ks
}

func TestConcurrentModel(t *testing.T) {
	var fig linFigures
	start := time.Now()
	if s := os.Getenv("JOURNAL_LINCHECK_HISTORY"); s != "" {
		hs, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			t.Fatalf("JOURNAL_LINCHECK_HISTORY: %v", err)
		}
		for range 20 {
			if checkHistory(t, newHistory(t, hs), hs, &fig); fig.hung.Load() {
				break
			}
		}
	} else {
		base, budget, maxFail := seedtest.Seed(t), linBudget(t), int64(5)
		if s := os.Getenv("JOURNAL_LINCHECK_MAXFAIL"); s != "" {
			n, err := strconv.ParseInt(s, 10, 64)
			if err != nil {
				t.Fatalf("JOURNAL_LINCHECK_MAXFAIL: %v", err)
			}
			maxFail = n
		}
		t.Log("JOURNAL_LINCHECK_TIME runs longer")
		for i := 0; time.Since(start) < budget && fig.violations.Load() < maxFail && !fig.hung.Load(); i++ {
			hs := historySeed(base, i)
			checkHistory(t, newHistory(t, hs), hs, &fig)
		}
	}
	t.Logf("concurrent model check: %s in %v", &fig, time.Since(start).Round(time.Millisecond))
}

// checkHistory runs one history and checks it; hs names it in reports.
func checkHistory(t testing.TB, c crashtest.Concurrent, hs uint64, fig *linFigures) {
	fig.histories.Add(1)
	err := linCheck(t, c, fig)
	if err != nil {
		fig.violations.Add(1)
		fig.hung.Store(errors.Is(err, crashtest.ErrHang))
		t.Errorf("history %d (%v): %v\nreplay: %sJOURNAL_LINCHECK_HISTORY=%d go test ./fuzz -run TestConcurrentModel", hs, c, err, linEnv(), hs)
	}
}

func linCheck(t testing.TB, c crashtest.Concurrent, fig *linFigures) error {
	run, err := c.Execute()
	if run != nil && run.State != nil {
		fig.calls.Add(int64(run.Calls))
		fig.crashStates.Add(1)
		fig.dropped.Add(int64(len(run.Dropped)))
		fig.recycled.Add(int64(run.Recycled))
		if run.Crashed {
			fig.crashedMid.Add(1)
		}
	}
	if errors.Is(err, crashtest.ErrHang) {
		return fmt.Errorf("%w; the calls that returned:\n%s", err, run.Describe())
	}
	if err != nil {
		return err
	}
	res, info := run.Check(c.NoSync, linTimeout)
	switch res {
	case porcupine.Unknown:
		fig.timeouts.Add(1)
	case porcupine.Illegal:
		return fmt.Errorf("not linearizable%s: %s; history:\n%s", visualize(t, c, info), run.Explain(c.NoSync, info), run.Describe())
	}
	if err := idempotent(run.State, run.Recovered, c.Options()); err != nil {
		return fmt.Errorf("I3: %w", err)
	}
	return nil
}

// visualize writes the porcupine visualization of a violation when
// JOURNAL_LINCHECK_VIZ names a directory, and says where.
func visualize(t testing.TB, c crashtest.Concurrent, info porcupine.LinearizationInfo) string {
	dir := os.Getenv("JOURNAL_LINCHECK_VIZ")
	if dir == "" {
		return ""
	}
	path := filepath.Join(dir, fmt.Sprintf("lincheck-%d.html", c.Seed))
	if err := porcupine.VisualizePath(crashtest.LinModel(c.NoSync), info, path); err != nil {
		t.Logf("visualize: %v", err)
		return ""
	}
	return " (visualization: " + path + ")"
}

// FuzzConcurrentOps runs one concurrent history chosen by the input: the
// program (one byte per call, dealt round-robin to the clients), the
// number of clients, the crash point, the flags (bit 0 NoSync, bit 1
// compression, bits 2 and up the crash mode (mod 3), bit 5 recycling) and
// the crash state's seed.
func FuzzConcurrentOps(f *testing.F) {
	f.Add([]byte{0, 1, 2, 0x10, 0x20, 0x3a, 0x07, 0x0d, 0x1e, 0x49, 0x0c}, uint8(3), uint16(0), uint8(0), uint64(1))
	f.Add([]byte{0x50, 0x60, 0x70, 0x0a, 0x1a, 0x0b, 0x1d, 0x0e, 0x05, 0x16, 0x0c, 0x09, 0x03, 0x2b}, uint8(4), uint16(40), uint8(5), uint64(2))
	f.Add([]byte{0xc0, 0xd0, 0xe0, 0xf1, 0x2a, 0x19, 0x3b, 0x1d, 0x2d, 0xff, 0x00, 0x08}, uint8(2), uint16(90), uint8(10), uint64(3))
	f.Fuzz(func(t *testing.T, program []byte, clients uint8, crashAfter uint16, flags uint8, seed uint64) {
		if len(program) > 64 {
			program = program[:64]
		}
		c := crashtest.Concurrent{
			Clients:    1 + int(clients)%4,
			Program:    program,
			NoSync:     flags&1 != 0,
			CrashAfter: int(crashAfter),
			Mode:       crashfs.CrashMode(flags >> 2 % 3),
			Seed:       seed,
		}
		if flags&2 != 0 {
			c.Compression = wal.S2
		}
		c.Recycle = flags&32 != 0
		var fig linFigures
		if err := linCheck(t, c, &fig); err != nil {
			t.Fatalf("%v: %v", c, err)
		}
	})
}
