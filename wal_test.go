//go:build unix

package journal_test

// TestKill is the end-to-end crash test: a child process (this test binary,
// re-executed to run TestKillChild) appends with fdatasync from several
// goroutines and reports every index the log acknowledged; the parent
// SIGKILLs it at a random moment, reopens the log (which runs recovery) and
// checks it. Rounds repeat on the same directory.
//
// What the parent checks after each kill:
//
//  1. Every acknowledged record is present, at its index, with exactly the
//     bytes appended.
//  2. The log is [FirstIndex, LastIndex] without holes, every record in it is
//     one some writer appended (no garbage, no duplicates), each writer's
//     records follow one another without gaps or reordering, a batch is
//     there whole or not at all, and a writer has at most one operation in
//     the log that was not acknowledged (the one in flight when the child
//     died). FirstIndex is where the last acknowledged TruncateFront left it,
//     or where the one in flight would have.
//  3. Recovery is idempotent: closing and reopening reports nothing repaired
//     and the same range.
//
// Writers draw their calls from crashtest streams, a function of the seed
// and the writer: the parent replays them to know the exact bytes of every
// record acknowledged, and of the call each writer had in flight, and checks
// the log with crashtest.Model, the checker the crash battery and powercut
// use. Writer ids are unique across rounds.
//
// Rounds vary. The kill lands mid-append (5-80 ms after Open returned), just
// after Open (0-2 ms), inside Open (0-1 ms after it was called: recovery
// interrupted) or at process start. Some children append with NoSync (a
// process crash must lose nothing even so) or call TruncateFront while
// appending. Some rounds skip the parent's check, so the next child's Open
// does the recovery. Between rounds the parent sometimes truncates the
// front.
//
// JOURNAL_KILL_ROUNDS sets the number of rounds, JOURNAL_SEED the seed of
// every random choice (timing still varies from run to run). go test caches
// a passing run: use -count=1 to run again with a new seed.

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/gojournal/journal/internal/crashtest"
	"github.com/gojournal/journal/internal/seedtest"
	"github.com/gojournal/journal/recovery"
	"github.com/gojournal/journal/segment"
	"github.com/gojournal/journal/wal"
)

const (
	envChild    = "JOURNAL_KILL_CHILD" // the log directory; set only in the child
	envRound    = "JOURNAL_KILL_ROUND"
	envCodec    = "JOURNAL_KILL_CODEC"
	envTruncate = "JOURNAL_KILL_TRUNCATE"
	envNoSync   = "JOURNAL_KILL_NOSYNC"
	envRounds   = "JOURNAL_KILL_ROUNDS"
	envSeed     = seedtest.Env

	killWriters     = 8
	killSegmentSize = wal.MinSegmentSize // small, so segments rotate during a round
	defaultRounds   = 100
	// defaultBudget stops the default run early on a slow machine (each
	// round issues a dozen fsyncs); JOURNAL_KILL_ROUNDS lifts it.
	defaultBudget = 20 * time.Second
	maxReported   = 25 // violations printed in full; the rest are counted
)

// killShape is how the kill test's writers draw calls: 30% batches of 2
// to 5 records; records mostly small, some of a few KiB, a few up to 20 KiB.
var killShape = crashtest.Shape{
	Batch: func(r *rand.Rand) int {
		if r.IntN(10) < 3 {
			return 2 + r.IntN(4)
		}
		return 1
	},
	Size: func(r *rand.Rand) int {
		switch k := r.IntN(20); {
		case k < 12:
			return r.IntN(256)
		case k < 18:
			return r.IntN(4 << 10)
		}
		return r.IntN(20 << 10)
	},
}

// TestKillChild is the child side of TestKill; it does nothing unless
// TestKill started it.
func TestKillChild(t *testing.T) {
	dir := os.Getenv(envChild)
	if dir == "" {
		t.Skip("helper process: TestKill re-executes the test binary to run it")
	}
	killChild(dir)
}

// killChild opens the log and appends until it is killed. It reports on
// stdout, one write per report (a pipe write up to PIPE_BUF bytes is atomic,
// so reports never tear or interleave), and only after the call succeeded:
//
//	opening                           about to call Open
//	ready FIRST LAST TORNBYTES TORNRECORDS REMOVED
//	ack INDEX WRITER SEQ              one line per record of a call
//	trunc-begin INDEX                 about to call TruncateFront
//	trunc INDEX                       TruncateFront returned
func killChild(dir string) {
	fail := func(format string, args ...any) {
		fmt.Fprintf(os.Stderr, "kill child: "+format+"\n", args...)
		os.Exit(3)
	}
	emit := func(b []byte) {
		if _, err := os.Stdout.Write(b); err != nil {
			fail("report: %v", err)
		}
	}
	round, err1 := strconv.Atoi(os.Getenv(envRound))
	seed, err2 := strconv.ParseUint(os.Getenv(envSeed), 10, 64)
	codec, err3 := strconv.Atoi(os.Getenv(envCodec))
	if err := errors.Join(err1, err2, err3); err != nil {
		fail("bad environment: %v", err)
	}
	emit([]byte("opening\n"))
	opts := &wal.Options{SegmentSize: killSegmentSize, Compression: wal.Compression(codec), NoSync: os.Getenv(envNoSync) == "1"}
	l, err := wal.Open(dir, opts)
	if err != nil {
		fail("open: %v", err)
	}
	var tornBytes int64
	var tornRecords int
	rec := l.Recovered()
	if rec.Torn != nil {
		tornBytes, tornRecords = rec.Torn.Bytes, rec.Torn.Records
	}
	emit(fmt.Appendf(nil, "ready %d %d %d %d %d\n", l.FirstIndex(), l.LastIndex(), tornBytes, tornRecords, len(rec.Removed)))

	// printed[g] is the last index goroutine g has reported.
	var printed [killWriters]atomic.Uint64
	for g := range killWriters {
		go func() {
			writer := uint32(round*killWriters + g)
			stream := crashtest.NewStream(seed, writer, killShape)
			var line []byte
			for {
				c := stream.Next()
				var first uint64
				var err error
				if c.Batch {
					first, err = l.AppendBatch(c.Recs)
				} else {
					first, err = l.Append(c.Recs[0])
				}
				if err != nil {
					fail("writer %d, seq %d: append: %v", writer, c.Seq, err)
				}
				line = line[:0]
				for p := range c.Recs {
					line = fmt.Appendf(line, "ack %d %d %d\n", first+uint64(p), writer, c.Seq+uint64(p))
				}
				emit(line)
				printed[g].Store(first + uint64(len(c.Recs)) - 1)
			}
		}()
	}
	if os.Getenv(envTruncate) == "1" {
		// Truncate only at reported indexes, so the parent knows what the
		// new first record is even if it is an empty batch member.
		go func() {
			rng := rand.New(rand.NewPCG(seed, uint64(round)<<32|1<<31))
			for {
				time.Sleep(time.Duration(1+rng.IntN(15)) * time.Millisecond)
				index := printed[rng.IntN(killWriters)].Load()
				if index == 0 || index <= l.FirstIndex() {
					continue
				}
				emit(fmt.Appendf(nil, "trunc-begin %d\n", index))
				if err := l.TruncateFront(index); err != nil {
					fail("TruncateFront(%d): %v", index, err)
				}
				emit(fmt.Appendf(nil, "trunc %d\n", index))
			}
		}()
	}
	time.Sleep(10 * time.Minute)
	fail("not killed")
}

// killMode is when the parent kills the child.
type killMode int

const (
	killLate       killMode = iota // 5-80 ms after Open returned: mid-append
	killEarly                      // 0-2 ms after Open returned
	killInOpen                     // 0-1 ms after Open was called: during recovery
	killAfterStart                 // 0-3 ms after the process started
	numKillModes
)

var killModeNames = [numKillModes]string{"late", "early", "in-open", "after-start"}

// child is what one child process reported.
type child struct {
	opening, ready chan struct{} // closed when the line arrives
	done           chan struct{} // closed at the end of its stdout
	lines          []string      // complete report lines, in order
	exit           error         // from Wait
	stderr         string
}

func (c *child) read(r io.Reader) {
	defer close(c.done)
	br := bufio.NewReader(r)
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			// A line without its newline was not written whole: it
			// acknowledges nothing.
			return
		}
		line = strings.TrimSuffix(line, "\n")
		c.lines = append(c.lines, line)
		switch {
		case line == "opening":
			close(c.opening)
		case strings.HasPrefix(line, "ready "):
			close(c.ready)
		}
	}
}

// killTest is the parent's state across rounds.
type killTest struct {
	t     *testing.T
	dir   string
	seed  uint64
	rng   *rand.Rand
	round int

	m       *crashtest.Model   // what the children were told since the last check
	writers *crashtest.Writers // the records of every writer
	acked   map[uint32]uint64  // per writer of the last child: its records acknowledged
	first   uint64             // FirstIndex and LastIndex at the last check
	last    uint64
	clean   bool // the parent closed the log after the last round

	st         killStats
	violations int
}

type killStats struct {
	kills           [numKillModes]int
	beforeOpening   int // children killed before they called Open
	inOpen          int // children killed after calling Open, before it returned
	chained         int // rounds whose child left the log to the next child
	noSync          int // rounds whose child appended with Options.NoSync
	acked           int // records acknowledged
	ackedChecked    int // acknowledged records found intact by checks (each counted once)
	reads           int // records read and compared by checks
	unackedFound    int // records not acknowledged (in flight at the kill) found by checks
	childTruncs     int // TruncateFront acknowledged by children
	childTruncsOpen int // TruncateFront in flight when the child died
	parentTruncs    int // TruncateFront by the parent between rounds
	torn, childTorn int // torn tails cut by the parent's and the children's Open
	tornBytes       int64
	childTornBytes  int64
	tornRecords     int // valid records of unfinished batches cut with torn tails
	removed         int // leftover files removed by the parent's Open
	childRemoved    int // and by the children's
	checks          int // rounds checked by the parent
	maxLog          int // most records the log held at a check
	segments        int // segment files at the last check
	maxSegments     int
}

func (k *killTest) violate(format string, args ...any) {
	k.t.Helper()
	k.violations++
	if k.violations <= maxReported {
		k.t.Errorf("round %d (%s=%d): "+format, append([]any{k.round, envSeed, k.seed}, args...)...)
	}
}

func TestKill(t *testing.T) {
	rounds, budget := defaultRounds, defaultBudget
	if testing.Short() {
		rounds = 10
	}
	if s := os.Getenv(envRounds); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 {
			t.Fatalf("%s=%q: want a positive number", envRounds, s)
		}
		rounds, budget = n, 0
	}
	seed := seedtest.Seed(t)
	t.Logf("%d rounds", rounds)
	k := &killTest{
		t: t, dir: filepath.Join(t.TempDir(), "log"), seed: seed,
		rng: rand.New(rand.NewPCG(seed, 0x6b696c6c)),
		m:   crashtest.NewModel(), writers: crashtest.NewWriters(seed, killShape),
		first: 1, clean: true,
	}
	start := time.Now()
	prevChained := false
	for k.round = 0; k.round < rounds && k.violations == 0; k.round++ {
		if budget > 0 && time.Since(start) > budget && k.clean {
			t.Logf("stopping after %d rounds: the %v budget is spent (set %s to run a fixed number)", k.round, budget, envRounds)
			break
		}
		mode := killLate
		switch x := k.rng.IntN(20); {
		case prevChained && x < 10, x < 3:
			mode = killInOpen // most useful when the previous child left a torn tail
		case x < 6:
			mode = killEarly
		case x < 8:
			mode = killAfterStart
		}
		chain := k.round+1 < rounds && k.rng.IntN(5) == 0
		c := k.runChild(mode, childOptions{
			codec:    k.rng.IntN(3),
			truncate: k.rng.IntN(3) == 0,
			noSync:   k.rng.IntN(4) == 0,
		})
		k.absorb(c)
		prevChained = chain
		if chain {
			k.st.chained++
			k.clean = false
			continue
		}
		k.check()
	}
	k.report(time.Since(start))
	if k.violations > 0 {
		t.Fatalf("%d violations; reproduce the choices with %s=%d (timing differs)", k.violations, envSeed, k.seed)
	}
}

// childOptions vary from round to round.
type childOptions struct {
	codec    int  // wal.Compression
	truncate bool // a goroutine calls TruncateFront now and then
	// noSync appends without fdatasync. A process crash must lose nothing
	// even so (see Options.NoSync), and with the time spent in fdatasync
	// gone, a kill is far more likely to land inside a write.
	noSync bool
}

// runChild runs one child and kills it.
func (k *killTest) runChild(mode killMode, o childOptions) *child {
	t := k.t
	cmd := exec.Command(os.Args[0], "-test.run=^TestKillChild$")
	cmd.Env = append(os.Environ(),
		envChild+"="+k.dir,
		envRound+"="+strconv.Itoa(k.round),
		envSeed+"="+strconv.FormatUint(k.seed, 10),
		envCodec+"="+strconv.Itoa(o.codec),
		envTruncate+"="+flag(o.truncate),
		envNoSync+"="+flag(o.noSync),
	)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	c := &child{opening: make(chan struct{}), ready: make(chan struct{}), done: make(chan struct{})}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start child: %v", err)
	}
	go c.read(out)
	var wait <-chan struct{}
	var delay time.Duration
	switch mode {
	case killLate:
		wait, delay = c.ready, time.Duration(5000+k.rng.IntN(75000))*time.Microsecond
	case killEarly:
		wait, delay = c.ready, time.Duration(k.rng.IntN(2000))*time.Microsecond
	case killInOpen:
		wait, delay = c.opening, time.Duration(k.rng.IntN(1000))*time.Microsecond
	case killAfterStart:
		delay = time.Duration(k.rng.IntN(3000)) * time.Microsecond
	}
	if wait != nil {
		select {
		case <-wait:
		case <-c.done:
		case <-time.After(2 * time.Minute):
			k.violate("child did not start within 2 minutes")
		}
	}
	time.Sleep(delay)
	if err := cmd.Process.Kill(); err != nil && !errors.Is(err, os.ErrProcessDone) {
		t.Fatalf("kill child: %v", err)
	}
	<-c.done
	c.exit = cmd.Wait()
	c.stderr = stderr.String()
	k.st.kills[mode]++
	if o.noSync {
		k.st.noSync++
	}
	return c
}

func flag(b bool) string {
	if b {
		return "1"
	}
	return "0"
}

// absorb takes in what a killed child reported.
func (k *killTest) absorb(c *child) {
	var ws syscall.WaitStatus
	var ee *exec.ExitError
	if errors.As(c.exit, &ee) {
		ws, _ = ee.Sys().(syscall.WaitStatus)
	}
	if !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
		k.violate("child ended on its own (%v) instead of being killed; stderr:\n%s", c.exit, c.stderr)
	}
	if strings.Contains(c.stderr, "DATA RACE") || strings.Contains(c.stderr, "panic:") {
		k.violate("child failed; stderr:\n%s", c.stderr)
	}
	inflight := false // a TruncateFront in flight
	opening, ready := false, false
	k.acked = map[uint32]uint64{}
	for _, line := range c.lines {
		f := strings.Fields(line)
		nums := make([]uint64, len(f))
		bad := len(f) == 0
		for i := 1; i < len(f); i++ {
			var err error
			if nums[i], err = strconv.ParseUint(f[i], 10, 64); err != nil {
				bad = true
			}
		}
		switch {
		case bad:
		case f[0] == "opening" && len(f) == 1:
			opening = true
			continue
		case f[0] == "ready" && len(f) == 6:
			ready = true
			k.childOpened(nums[1], nums[2], int64(nums[3]), int(nums[4]), int(nums[5]))
			continue
		case f[0] == "ack" && len(f) == 4:
			k.ack(nums[1], uint32(nums[2]), nums[3])
			continue
		case f[0] == "trunc-begin" && len(f) == 2 && !inflight:
			k.m.BeginTruncate(true, nums[1])
			inflight = true
			continue
		case f[0] == "trunc" && len(f) == 2 && inflight:
			k.m.EndTruncate()
			inflight = false
			k.st.childTruncs++
			continue
		}
		k.violate("child reported %q", line)
	}
	if inflight {
		// Either as before or as after: both are allowed.
		k.st.childTruncsOpen++
	}
	// Each writer had at most one call in flight: the one after its last
	// acknowledged record. It may be in the log, whole, or not at all.
	for g := range killWriters {
		w := uint32(k.round*killWriters + g)
		k.writers.Pending(k.m, w, k.acked[w])
	}
	switch {
	case !opening:
		k.st.beforeOpening++
	case !ready:
		k.st.inOpen++
	}
}

// childOpened checks the range a child's Open found.
func (k *killTest) childOpened(first, last uint64, tornBytes int64, tornRecords, removed int) {
	if tornBytes > 0 || tornRecords > 0 {
		if k.clean {
			k.violate("child's Open cut a torn tail (%d bytes) from a log the parent had closed cleanly", tornBytes)
		}
		k.st.childTorn++
		k.st.childTornBytes += tornBytes
		k.st.tornRecords += tornRecords
	}
	k.st.childRemoved += removed
	switch {
	case k.clean && (first != k.first || last != k.last):
		k.violate("child's Open found [%d, %d]; the parent closed the log at [%d, %d]", first, last, k.first, k.last)
	case !slices.Contains(k.m.Firsts(), first):
		k.violate("child's Open found FirstIndex %d, want one of %v", first, k.m.Firsts())
	case last < k.m.LastAcked():
		k.violate("child's Open found LastIndex %d, below acknowledged index %d", last, k.m.LastAcked())
	}
	k.m.SettleFront(first)
}

// ack records that the child acknowledged the writer's seq-th record at
// index.
func (k *killTest) ack(index uint64, writer uint32, seq uint64) {
	k.st.acked++
	rec := k.writers.Record(writer, seq)
	if prev, ok := k.m.Acked[index]; ok && !bytes.Equal(prev, rec) {
		k.violate("index %d acknowledged twice: to writer %d seq %d after another record", index, writer, seq)
	}
	if seq != k.acked[writer] {
		k.violate("writer %d: seq %d acknowledged after %d records: acknowledgements out of order", writer, seq, k.acked[writer])
	}
	k.acked[writer] = seq + 1
	k.m.AckRecord(index, rec)
}

var discard = slog.New(slog.NewTextHandler(io.Discard, nil))

// check reopens the log after a kill, verifies it, checks that recovery is
// idempotent and sometimes truncates the front.
func (k *killTest) check() {
	k.st.checks++
	opts := &wal.Options{SegmentSize: killSegmentSize, Logger: discard}
	l, err := wal.Open(k.dir, opts)
	if err != nil {
		k.violate("Open after the kill: %v", err)
		return
	}
	rec := l.Recovered()
	if rec.Torn != nil {
		k.st.torn++
		k.st.tornBytes += rec.Torn.Bytes
		k.st.tornRecords += rec.Torn.Records
	}
	k.st.removed += len(rec.Removed)
	got, ok := k.verify(l)
	if err := l.Close(); err != nil {
		k.violate("Close: %v", err)
	}
	if !ok {
		return
	}

	l, err = wal.Open(k.dir, opts)
	if err != nil {
		k.violate("second Open: %v", err)
		return
	}
	defer func() {
		if err := l.Close(); err != nil {
			k.violate("Close: %v", err)
		}
		k.clean = true
	}()
	if rec := l.Recovered(); rec.Torn != nil || len(rec.Removed) > 0 {
		k.violate("recovery is not idempotent: the second Open repaired again: torn %+v, removed %v", rec.Torn, rec.Removed)
	}
	if f, g := l.FirstIndex(), l.LastIndex(); f != k.first || g != k.last {
		k.violate("second Open found [%d, %d], the first [%d, %d]", f, g, k.first, k.last)
	}
	for _, i := range []uint64{k.first, k.last} {
		k.readKnown(l, got, i)
	}
	k.checkDir()

	if k.rng.IntN(4) != 0 && k.last-k.first < 20000 {
		return
	}
	target := k.first + k.rng.Uint64N(k.last-k.first+2) // up to last+1: empty
	if err := l.TruncateFront(target); err != nil {
		k.violate("TruncateFront(%d) on [%d, %d]: %v", target, k.first, k.last, err)
		return
	}
	k.st.parentTruncs++
	if f, g := l.FirstIndex(), l.LastIndex(); f != target || g != k.last {
		k.violate("after TruncateFront(%d): [%d, %d], want [%d, %d]", target, f, g, target, k.last)
	}
	if _, err := l.Read(target - 1); !errors.Is(err, wal.ErrNotFound) {
		k.violate("Read(%d) after TruncateFront(%d): %v, want ErrNotFound", target-1, target, err)
	}
	k.readKnown(l, got, target)
	k.m.BeginTruncate(true, target)
	k.m.EndTruncate()
	k.first = target
}

// readKnown checks one record the last verify found, if it is in the log.
func (k *killTest) readKnown(l *wal.Log, got crashtest.Log, i uint64) {
	want, ok := got.Records[i]
	if !ok {
		return
	}
	b, err := l.Read(i)
	if err != nil || !bytes.Equal(b, want) {
		k.violate("Read(%d) after reopening: %d bytes, %v; want %d bytes", i, len(b), err, len(want))
	}
}

// checkDir checks that a cleanly opened log directory holds nothing but the
// log's files.
func (k *killTest) checkDir() {
	names, err := os.ReadDir(k.dir)
	if err != nil {
		k.violate("list log directory: %v", err)
		return
	}
	segs := 0
	for _, e := range names {
		switch n := e.Name(); {
		case strings.HasSuffix(n, segment.Ext):
			segs++
		case n == wal.LockName || n == recovery.MetaName || n == recovery.TailName:
		default:
			k.violate("log directory holds %q after a clean Open", n)
		}
	}
	k.st.segments = segs
	k.st.maxSegments = max(k.st.maxSegments, segs)
}

// verify reads the whole log and checks it with the model of what the
// children were told; the log as found is the model from then on.
func (k *killTest) verify(l *wal.Log) (crashtest.Log, bool) {
	got, err := crashtest.ReadLog(l)
	if err != nil {
		k.violate("read the log after the kill: %v", err)
		return got, false
	}
	for _, i := range []uint64{got.First - 1, got.Last + 1} {
		if _, err := l.Read(i); !errors.Is(err, wal.ErrNotFound) {
			k.violate("Read(%d) outside [%d, %d]: %v, want ErrNotFound", i, got.First, got.Last, err)
		}
	}
	counts, err := k.m.Verify(got)
	k.st.reads += counts.Records
	k.st.unackedFound += counts.Unacked
	if err != nil {
		k.violate("%v", err)
		return got, false
	}
	// Acknowledged records before k.last were counted at an earlier check.
	if from := max(got.First, k.first); k.last >= from {
		counts.Acked -= int(k.last + 1 - from)
	}
	k.st.ackedChecked += counts.Acked
	k.m = crashtest.FromLog(got)
	k.first, k.last = got.First, got.Last
	k.st.maxLog = max(k.st.maxLog, int(got.Last+1-got.First))
	return got, true
}

func (k *killTest) report(d time.Duration) {
	s := &k.st
	var modes []string
	for m, n := range s.kills {
		modes = append(modes, fmt.Sprintf("%s %d", killModeNames[m], n))
	}
	k.t.Logf("rounds %d in %v (%d checked by the parent, %d chained to the next child, %d with NoSync); kills: %s; "+
		"killed before Open %d, during Open %d",
		k.round, d.Round(time.Millisecond), s.checks, s.chained, s.noSync, strings.Join(modes, ", "), s.beforeOpening, s.inOpen)
	k.t.Logf("acknowledged records %d, verified intact at a check %d; record reads compared %d; unacknowledged records recovered %d",
		s.acked, s.ackedChecked, s.reads, s.unackedFound)
	k.t.Logf("torn tails cut %d (%d bytes) by the parent's Open, %d (%d bytes) by a child's Open; "+
		"records of unfinished batches dropped %d; leftover files removed %d",
		s.torn, s.tornBytes, s.childTorn, s.childTornBytes, s.tornRecords, s.removed+s.childRemoved)
	k.t.Logf("TruncateFront: %d by the parent, %d by children, %d in flight at a kill; largest log %d records, "+
		"segments now %d (max %d); log now [%d, %d]",
		s.parentTruncs, s.childTruncs, s.childTruncsOpen, s.maxLog, s.segments, s.maxSegments, k.first, k.last)
	k.t.Logf("violations %d", k.violations)
}
