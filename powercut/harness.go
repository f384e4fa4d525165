package powercut

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/gojournal/journal/internal/crashtest"
	"github.com/gojournal/journal/wal"
)

// Config is one file system's run of power cuts.
type Config struct {
	FS     FileSystem
	Rounds int    // power cuts during appends
	Seed   uint64 // drives cut moments, cut modes and the workload
	Work   string // scratch directory (FUSE and file-system mount points)
	// Child returns the command that runs ChildMain with its environment
	// (the test binary run again).
	Child func(env []string) *exec.Cmd
	// Logf reports progress, one line per round.
	Logf func(format string, args ...any)
	// Evidence is where a failing round leaves what it found.
	Evidence string
}

// Figures are what a run did and found.
type Figures struct {
	FS             string
	Cuts           int // power cuts, the final one after the clean appends included
	DropAll        int // cuts that lost the whole cache
	DropSome       int // cuts that lost a random subset of it
	DropNone       int // cuts that found the cache written
	OnTimer        int // cuts at a random moment
	OnWrite        int // cuts that tore a random write request
	OnFlush        int // cuts just before a random flush
	CachedSectors  uint64
	DroppedSectors uint64
	Acked          int // records acknowledged before a cut
	AckedVerified  int // of those, found byte for byte after recovery
	Unacked        int // unacknowledged records found after recovery (in flight at the cut)
	Checked        int // record reads checked, all rounds
	TornTails      int // recoveries that cut a torn tail
	TornBytes      int64
	Removed        int // leftover files recovery removed
	FsckComplaints int // file-system check complaints (the file system's, for information)
	Syncs          uint64
	DeadSyncs      uint64 // flushes refused after a cut: acks that could not happen
	LogRecords     int    // records in the log at the end
	Violations     []string
	Elapsed        time.Duration
}

func (f *Figures) String() string {
	return fmt.Sprintf("%s: %d power cuts (%d at a random moment, %d tearing a write, %d before a flush; "+
		"cache lost whole %d, in part %d, not at all %d; %d of %d cached sectors dropped), "+
		"%d acknowledged records, %d verified after recovery, %d unacknowledged survivors, %d record reads checked, "+
		"%d torn tails cut (%d bytes), %d leftover files removed, %d fsck complaints, %d disk flushes (%d refused after cuts), "+
		"%d records in the log at the end, %d violations, %v",
		f.FS, f.Cuts, f.OnTimer, f.OnWrite, f.OnFlush, f.DropAll, f.DropSome, f.DropNone, f.DroppedSectors, f.CachedSectors,
		f.Acked, f.AckedVerified, f.Unacked, f.Checked,
		f.TornTails, f.TornBytes, f.Removed, f.FsckComplaints, f.Syncs, f.DeadSyncs,
		f.LogRecords, len(f.Violations), f.Elapsed.Round(time.Millisecond))
}

// Timeouts.
const (
	firstAckTimeout = 30 * time.Second
	triggerTimeout  = 3 * time.Second
	childExitWait   = 10 * time.Second
	// maxLogBytes is where the checker truncates the front of the log so
	// long runs fit the disk.
	maxLogBytes = 48 << 20
)

// DiskSize is the size of the simulated disk: what the largest minimum of
// the file systems needs.
func DiskSize() int64 {
	var n int64 = 64 << 20
	for _, f := range FileSystems {
		n = max(n, f.MinSize)
	}
	return (n + 20<<20) &^ (SectorSize - 1)
}

// machine is the simulated computer: a disk behind FUSE, a loop device, a
// mounted file system.
type machine struct {
	cfg    Config
	disk   *Disk
	srv    *Server
	mnt    string
	dev    string // attached loop device, "" when none
	mounts bool   // the file system is mounted
}

func (m *machine) logDir() string { return filepath.Join(m.mnt, "wal") }

// boot attaches the disk and mounts the file system (replaying its journal
// after a cut).
func (m *machine) boot() error {
	dev, err := AttachLoop(m.srv.Image())
	if err != nil {
		return err
	}
	m.dev = dev
	if err := Mount(m.cfg.FS, dev, m.mnt); err != nil {
		return err
	}
	m.mounts = true
	return nil
}

// halt unmounts and detaches.
func (m *machine) halt() error {
	var errs []error
	if m.mounts {
		if err := Unmount(m.mnt); err != nil {
			errs = append(errs, err)
		} else {
			m.mounts = false
		}
	}
	if m.dev != "" {
		if err := DetachLoop(m.dev); err != nil {
			errs = append(errs, err)
		} else {
			m.dev = ""
		}
	}
	return errors.Join(errs...)
}

// child is a running workload process.
type child struct {
	cmd    *exec.Cmd
	stderr bytes.Buffer
	ready  chan string // the ready line
	first  chan struct{}
	done   chan struct{} // stdout closed

	mu       sync.Mutex
	acks     []Ack
	fails    []string
	powered  func() bool // whether the disk has power
	early    []string    // fail lines read while the disk had power
	badLines []string
}

func (c *child) read(sc *bufio.Scanner) {
	defer close(c.done)
	gotFirst := false
	for sc.Scan() {
		line := sc.Text()
		f := strings.Fields(line)
		c.mu.Lock()
		switch {
		case len(f) == 4 && f[0] == "ready":
			select {
			case c.ready <- line:
			default:
				c.badLines = append(c.badLines, line)
			}
		case len(f) == 4 && f[0] == "ack":
			i, e1 := strconv.ParseUint(f[1], 10, 64)
			w, e2 := strconv.ParseUint(f[2], 10, 32)
			s, e3 := strconv.ParseUint(f[3], 10, 64)
			if e1 != nil || e2 != nil || e3 != nil {
				c.badLines = append(c.badLines, line)
				break
			}
			c.acks = append(c.acks, Ack{Index: i, Writer: uint32(w), Seq: s})
			if !gotFirst {
				gotFirst = true
				close(c.first)
			}
		case len(f) >= 2 && f[0] == "fail":
			c.fails = append(c.fails, line)
			if c.powered() {
				c.early = append(c.early, line)
			}
		case line == "idle":
		default:
			c.badLines = append(c.badLines, line)
		}
		c.mu.Unlock()
	}
}

func (m *machine) startChild(round uint32, seed uint64) (*child, error) {
	cmd := m.cfg.Child([]string{
		EnvChildDir + "=" + m.logDir(),
		EnvChildRound + "=" + strconv.FormatUint(uint64(round), 10),
		EnvChildSeed + "=" + strconv.FormatUint(seed, 10),
	})
	c := &child{cmd: cmd, ready: make(chan string, 1), first: make(chan struct{}), done: make(chan struct{}), powered: m.disk.Powered}
	cmd.Stderr = &c.stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	sc := bufio.NewScanner(out)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	go c.read(sc)
	return c, nil
}

// kill kills the child and waits until its output is read.
func (c *child) kill() error {
	c.cmd.Process.Kill()
	select {
	case <-c.done:
	case <-time.After(childExitWait):
		return fmt.Errorf("powercut: workload output not closed %v after SIGKILL", childExitWait)
	}
	c.cmd.Wait()
	return nil
}

// Run cuts the power cfg.Rounds times while a workload appends, recovers
// after each cut and checks I1 to I3. Violations are in the Figures; an
// error means the harness itself could not go on.
func Run(cfg Config) (fig *Figures, err error) {
	start := time.Now()
	fig = &Figures{FS: cfg.FS.Name}
	defer func() { fig.Elapsed = time.Since(start) }()
	rng := rand.New(rand.NewPCG(cfg.Seed, 0x706f776572637574))

	fuseDir := filepath.Join(cfg.Work, "fuse")
	mnt := filepath.Join(cfg.Work, "mnt")
	for _, d := range []string{fuseDir, mnt} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return fig, err
		}
	}
	disk := NewDisk(DiskSize())
	srv, err := Serve(fuseDir, disk)
	if err != nil {
		return fig, err
	}
	m := &machine{cfg: cfg, disk: disk, srv: srv, mnt: mnt}
	defer func() {
		herr := m.halt()
		if serr := srv.Close(); herr == nil {
			herr = serr
		}
		if err == nil {
			err = herr
		}
		st := disk.Stats()
		fig.Syncs, fig.DeadSyncs = st.Syncs, st.DeadSyncs
	}()

	// Install: make the file system and an empty log on it (mkfs and
	// the log's own syncs make them durable); the first round runs on it.
	dev, err := AttachLoop(srv.Image())
	if err != nil {
		return fig, err
	}
	m.dev = dev
	if _, err := run(2*time.Minute, cfg.FS.Mkfs[0], append(cfg.FS.Mkfs[1:], dev)...); err != nil {
		return fig, err
	}
	if err := Mount(cfg.FS, dev, mnt); err != nil {
		return fig, err
	}
	m.mounts = true
	l, err := wal.Open(m.logDir(), LogOptions())
	if err != nil {
		return fig, fmt.Errorf("powercut: create the log: %w", err)
	}
	if err := l.Close(); err != nil {
		return fig, err
	}
	model := crashtest.Log{First: 1, Records: map[uint64][]byte{}}

	for round := uint32(1); round <= uint32(cfg.Rounds); round++ {
		var stop bool
		model, stop, err = m.round(round, rng, model, fig)
		if err != nil || stop {
			return fig, err
		}
	}
	// I3's last part: after the last recovery, appends are accepted and
	// survive the next cut.
	model, _, err = m.finalRound(uint32(cfg.Rounds)+1, rng, model, fig)
	fig.LogRecords = len(model.Records)
	return fig, err
}

// violation records a violation of a round and saves the evidence.
func (m *machine) violation(fig *Figures, round uint32, msgs ...string) {
	for _, s := range msgs {
		fig.Violations = append(fig.Violations, fmt.Sprintf("%s seed %d round %d: %s", m.cfg.FS.Name, m.cfg.Seed, round, s))
	}
	if m.cfg.Evidence == "" || !m.mounts {
		return
	}
	dst := filepath.Join(m.cfg.Evidence, fmt.Sprintf("%s-seed%d-round%d", m.cfg.FS.Name, m.cfg.Seed, round))
	if _, err := run(time.Minute, "cp", "-a", m.logDir(), dst); err == nil {
		m.cfg.Logf("%s round %d: the log directory as recovered is copied to %s", m.cfg.FS.Name, round, dst)
	}
}

// cutMode draws how much of the cache a cut keeps.
func cutMode(rng *rand.Rand) float64 {
	switch p := rng.IntN(100); {
	case p < 40:
		return 0
	case p < 85:
		return rng.Float64()
	default:
		return 1
	}
}

// cutDelay draws how long after the first acknowledgement the power goes.
func cutDelay(rng *rand.Rand) time.Duration {
	switch p := rng.IntN(100); {
	case p < 30:
		return time.Duration(rng.Int64N(int64(10 * time.Millisecond)))
	case p < 90:
		return 10*time.Millisecond + time.Duration(rng.Int64N(int64(400*time.Millisecond)))
	default:
		return 400*time.Millisecond + time.Duration(rng.Int64N(int64(1100*time.Millisecond)))
	}
}

// cut cuts the power with doCut and brings the machine back up from what
// the disk kept. kill, if not nil, runs right after the cut (before the
// dying file system is taken down).
func (m *machine) cut(fig *Figures, doCut func() CutResult, kill func() error) (CutResult, error) {
	res := doCut()
	var errs []error
	if kill != nil {
		errs = append(errs, kill())
	}
	errs = append(errs, m.halt())
	m.disk.PowerOn()
	if err := errors.Join(errs...); err != nil {
		return res, err
	}
	fig.Cuts++
	switch {
	case res.KeepP == 0:
		fig.DropAll++
	case res.KeepP >= 1:
		fig.DropNone++
	default:
		fig.DropSome++
	}
	switch {
	case strings.HasPrefix(res.Event, "write"):
		fig.OnWrite++
	case strings.HasPrefix(res.Event, "before flush"):
		fig.OnFlush++
	default:
		fig.OnTimer++
	}
	fig.CachedSectors += uint64(res.Cached)
	fig.DroppedSectors += uint64(res.Dropped)
	return res, m.boot()
}

// powerCut draws when and how the power goes under a running workload,
// cuts it then, and returns what the cut did: at a random moment, at a
// random write request (torn), or just before a random flush.
func (m *machine) powerCut(rng *rand.Rand) CutResult {
	keep := cutMode(rng)
	var t Trigger
	switch p := rng.IntN(100); {
	case p < 20:
		time.Sleep(cutDelay(rng))
		return m.disk.Cut(rng, keep)
	case p < 60:
		t.Write = 1 + rng.IntN(500)
	default:
		t.Sync = 1 + rng.IntN(150)
	}
	time.Sleep(time.Duration(rng.Int64N(int64(200 * time.Millisecond))))
	fired := m.disk.Arm(t, keep, rand.New(rand.NewPCG(rng.Uint64(), rng.Uint64())))
	select {
	case res := <-fired:
		return res
	case <-time.After(triggerTimeout):
		res := m.disk.Cut(rng, keep)
		if res.Event == "" {
			res.Event = fmt.Sprintf("timer (%+v did not fire within %v)", t, triggerTimeout)
		}
		return res
	}
}

// round runs one workload, cuts the power under it, recovers and checks.
func (m *machine) round(round uint32, rng *rand.Rand, model crashtest.Log, fig *Figures) (crashtest.Log, bool, error) {
	name := m.cfg.FS.Name
	r := Round{Round: round, Seed: rng.Uint64(), Writers: Writers}
	c, err := m.startChild(round, r.Seed)
	if err != nil {
		return model, true, err
	}
	fail := func(msg string) (crashtest.Log, bool, error) {
		c.kill()
		m.violation(fig, round, fmt.Sprintf("%s (workload stderr: %q)", msg, strings.TrimSpace(c.stderr.String())))
		return model, true, nil
	}
	select {
	case line := <-c.ready:
		want := fmt.Sprintf("ready %d %d 1", model.First, model.Last)
		if line != want {
			return fail(fmt.Sprintf("I3: after a clean close, unmount and mount the workload's Open says %q, expected %q", line, want))
		}
	case <-c.done:
		return fail("I3: the workload could not open the recovered log")
	case <-time.After(firstAckTimeout):
		return fail("the workload did not open the log in time")
	}
	select {
	case <-c.first:
	case <-c.done:
		return fail(fmt.Sprintf("I3: the recovered log accepted no append: %s", strings.Join(c.fails, "; ")))
	case <-time.After(firstAckTimeout):
		return fail("I3: the recovered log acknowledged no append in time")
	}
	res, err := m.cut(fig, func() CutResult { return m.powerCut(rng) }, c.kill)
	if err != nil {
		return model, true, err
	}
	if len(c.early) > 0 || len(c.badLines) > 0 {
		return model, true, fmt.Errorf("powercut: %s round %d: the workload failed before the power cut: %s %s (stderr: %s)",
			name, round, strings.Join(c.early, "; "), strings.Join(c.badLines, "; "), c.stderr.String())
	}
	event := res.Event
	if event == "" {
		event = "timer"
	}
	what := fmt.Sprintf("cut on %s (kept %d of %d cached sectors, p=%.2f), %d acked",
		event, res.Kept, res.Cached, res.KeepP, len(c.acks))
	return m.recover(r, model, c.acks, fig, what)
}

// finalRound appends from this process to the recovered log until it has
// made a batch and a single append, closes it, cuts the power (the whole
// cache goes) and checks that they survived.
func (m *machine) finalRound(round uint32, rng *rand.Rand, model crashtest.Log, fig *Figures) (crashtest.Log, bool, error) {
	l, err := wal.Open(m.logDir(), LogOptions())
	if err != nil {
		m.violation(fig, round, fmt.Sprintf("I3: open the recovered log to append: %v", err))
		return model, true, nil
	}
	r := Round{Round: round, Seed: rng.Uint64(), Writers: 1}
	stream := crashtest.NewStream(r.Seed, writerID(round, 0), Shape)
	var acks []Ack
	for batch, single := false, false; !batch || !single; {
		c := stream.Next()
		var first uint64
		if c.Batch {
			first, err = l.AppendBatch(c.Recs)
		} else {
			first, err = l.Append(c.Recs[0])
		}
		if err != nil {
			l.Close()
			m.violation(fig, round, fmt.Sprintf("I3: the recovered log refused an append: %v", err))
			return model, true, nil
		}
		for k := range c.Recs {
			acks = append(acks, Ack{Index: first + uint64(k), Seq: c.Seq + uint64(k)})
		}
		batch, single = batch || c.Batch, single || !c.Batch
	}
	if err := l.Close(); err != nil {
		return model, true, err
	}
	if _, err := m.cut(fig, func() CutResult { return m.disk.Cut(rng, 0) }, nil); err != nil {
		return model, true, err
	}
	return m.recover(r, model, acks, fig, fmt.Sprintf("%d records appended after the last recovery, log closed, power cut", len(acks)))
}

// recover opens the log after a cut, checks it (I1, I2), reopens it (I3),
// and checks the file system, for information, on a clean unmount.
func (m *machine) recover(r Round, model crashtest.Log, acks []Ack, fig *Figures, what string) (crashtest.Log, bool, error) {
	name, round := m.cfg.FS.Name, r.Round
	l, err := wal.Open(m.logDir(), LogOptions())
	if err != nil {
		m.violation(fig, round, fmt.Sprintf("recovery failed: wal.Open: %v (the log held [%d, %d] before the round; %d acks)", err, model.First, model.Last, len(acks)))
		return model, true, nil
	}
	rec := l.Recovered()
	repaired := "nothing repaired"
	if rec.Torn != nil {
		fig.TornTails++
		fig.TornBytes += rec.Torn.Bytes
		repaired = fmt.Sprintf("torn tail cut at %s+%d (%d bytes, %d records of an unfinished batch: %s)",
			filepath.Base(rec.Torn.Path), rec.Torn.Offset, rec.Torn.Bytes, rec.Torn.Records, rec.Torn.Reason)
	}
	if len(rec.Removed) > 0 {
		fig.Removed += len(rec.Removed)
		repaired += fmt.Sprintf(", removed %d leftover files", len(rec.Removed))
	}
	next, err := crashtest.ReadLog(l)
	if err != nil {
		l.Close()
		m.violation(fig, round, fmt.Sprintf("I2: read the recovered log: %v (%s; %s)", err, what, repaired))
		return model, true, nil
	}
	res := Check(next, model, r, acks)
	fig.Checked += res.Read
	fig.Acked += res.Acked
	fig.AckedVerified += res.AckedFound
	fig.Unacked += res.Unacked
	if res.Violation != "" {
		l.Close()
		m.violation(fig, round, res.Violation, fmt.Sprintf("(%s; recovered [%d, %d]; %s)", what, next.First, next.Last, repaired))
		return model, true, nil
	}
	// Keep the log within the disk on long runs.
	if logBytes(next) > maxLogBytes {
		to := next.First + (next.Last+1-next.First)/2
		if err := l.TruncateFront(to); err != nil {
			l.Close()
			m.violation(fig, round, fmt.Sprintf("TruncateFront(%d): %v", to, err))
			return model, true, nil
		}
		for i := next.First; i < to; i++ {
			delete(next.Records, i)
		}
		next.First = to
	}
	if err := l.Close(); err != nil {
		m.violation(fig, round, fmt.Sprintf("close the recovered log: %v", err))
		return model, true, nil
	}
	// I3: recovery is idempotent.
	l2, err := wal.Open(m.logDir(), LogOptions())
	if err != nil {
		m.violation(fig, round, fmt.Sprintf("I3: reopen the recovered log: %v", err))
		return model, true, nil
	}
	var bad []string
	if r2 := l2.Recovered(); r2.Torn != nil || len(r2.Removed) > 0 {
		bad = append(bad, fmt.Sprintf("I3: the second Open repaired again: torn %+v, removed %v", r2.Torn, r2.Removed))
	}
	if again, err := crashtest.ReadLog(l2); err != nil {
		bad = append(bad, fmt.Sprintf("I3: read the reopened log: %v", err))
	} else if v := Same(again, next); v != "" {
		bad = append(bad, v)
	}
	fig.Checked += len(next.Records)
	if err := l2.Close(); err != nil {
		bad = append(bad, fmt.Sprintf("I3: close the reopened log: %v", err))
	}
	if len(bad) > 0 {
		m.violation(fig, round, bad...)
		return model, true, nil
	}
	m.cfg.Logf("%s round %d: %s; recovered [%d, %d]: %s; %d acked verified, %d unacked survived; ok",
		name, round, what, next.First, next.Last, repaired, res.AckedFound, res.Unacked)

	// For information: does the file system itself check clean?
	if err := Unmount(m.mnt); err != nil {
		return next, true, err
	}
	m.mounts = false
	m.fsck(round, fig)
	if err := Mount(m.cfg.FS, m.dev, m.mnt); err != nil {
		return next, true, err
	}
	m.mounts = true
	return next, false, nil
}

// logBytes is the payload volume of a log.
func logBytes(l crashtest.Log) int64 {
	var n int64
	for _, rec := range l.Records {
		n += int64(len(rec))
	}
	return n
}

// fsck checks the cleanly unmounted file system without changing it.
func (m *machine) fsck(round uint32, fig *Figures) {
	out, err := run(2*time.Minute, m.cfg.FS.Check[0], append(m.cfg.FS.Check[1:], m.dev)...)
	if err != nil {
		fig.FsckComplaints++
		m.cfg.Logf("%s round %d: %s complains (the file system's business, not the log's): %v\n%s",
			m.cfg.FS.Name, round, m.cfg.FS.Check[0], err, out)
	}
}
