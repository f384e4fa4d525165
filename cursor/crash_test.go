package cursor

import (
	"bufio"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gojournal/journal/internal/seedtest"
	"github.com/gojournal/journal/vfs/crashfs"
	"github.com/gojournal/journal/wal"
)

// ackLedger tracks, per consumer, the highest Ack that returned nil and
// the highest attempted: after a crash the position must lie between.
type ackLedger struct {
	acked, tried map[string]uint64
}

func (lg *ackLedger) check(s *Store) error {
	pos := make(map[string]uint64)
	for _, c := range s.List() {
		pos[c.Name] = c.Index
	}
	for name, tried := range lg.tried {
		got, ok := pos[name]
		if acked := lg.acked[name]; acked > 0 && (!ok || got < acked) {
			return fmt.Errorf("%s at %d (known %v) after an Ack of %d returned", name, got, ok, acked)
		}
		if got > tried {
			return fmt.Errorf("%s at %d, beyond the highest Ack tried (%d)", name, got, tried)
		}
	}
	if len(pos) > len(lg.tried) {
		return fmt.Errorf("positions %v name consumers never acknowledged", pos)
	}
	return nil
}

// crashWorkload acknowledges for three consumers, interleaved, on fsys
// until its crash point, with compaction every few acknowledgements so
// that crashes land in checkpoints too.
func crashWorkload(fsys *crashfs.FS, rng *rand.Rand) *ackLedger {
	lg := &ackLedger{acked: map[string]uint64{}, tried: map[string]uint64{}}
	s, err := Open("cursors", crashOpts(fsys))
	if err != nil {
		return lg
	}
	defer s.Close()
	for i := range 120 {
		if i%25 == 24 {
			if err := s.Compact(); err != nil {
				break
			}
		}
		name := fmt.Sprintf("c%d", rng.IntN(3))
		index := lg.tried[name] + 1 + uint64(rng.IntN(3))
		lg.tried[name] = index
		if err := s.Ack(name, index); err != nil {
			break
		}
		lg.acked[name] = index
	}
	return lg
}

func crashOpts(fsys *crashfs.FS) *Options {
	return &Options{CompactBytes: 4 << 10, Log: wal.Options{FS: fsys, Logger: quiet, SegmentSize: wal.MinSegmentSize}}
}

// TestAcksSurviveEveryCrashPoint crashes the workload after each of its
// file-system operations in turn, keeping a random (garbled) part of what
// was not synced: the store always opens, and every position is at least
// the last acknowledgement that returned and at most the last tried.
func TestAcksSurviveEveryCrashPoint(t *testing.T) {
	rng := seedtest.Rand(t)
	workSeed := rng.Uint64()
	clean := crashfs.New()
	crashWorkload(clean, rand.New(rand.NewPCG(workSeed, 1)))
	ops := clean.Ops()
	// The workload must have compacted, so that crashes land in
	// checkpoints and in the release of what they cover.
	s, err := Open("cursors", crashOpts(clean))
	if err != nil {
		t.Fatal(err)
	}
	if s.Log().FirstIndex() == 1 {
		t.Fatal("the workload never compacted")
	}
	s.Close()
	if testing.Short() {
		ops = min(ops, 60)
	}
	for k := 1; k <= ops; k++ {
		fsys := crashfs.New()
		fsys.SetCrashAfter(k)
		lg := crashWorkload(fsys, rand.New(rand.NewPCG(workSeed, 1)))
		mode := crashfs.CrashMode(k % 3)
		after := fsys.Crash(mode, rng)
		s, err := Open("cursors", crashOpts(after))
		if err != nil {
			t.Fatalf("crash after op %d of %d (mode %d): Open: %v", k, ops, mode, err)
		}
		if err := lg.check(s); err != nil {
			t.Fatalf("crash after op %d of %d (mode %d): %v", k, ops, mode, err)
		}
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
	}
	t.Logf("%d crash points", ops)
}

// The child side of TestAcksSurviveSIGKILL: acknowledges forever and
// prints each Ack that returned.
func TestMain(m *testing.M) {
	if dir := os.Getenv("CURSOR_KILL_CHILD"); dir != "" {
		killChild(dir)
		return
	}
	os.Exit(m.Run())
}

func killChild(dir string) {
	s, err := Open(dir, &Options{CompactBytes: 8 << 10, Log: wal.Options{Logger: quiet}})
	if err != nil {
		fmt.Println("open:", err)
		os.Exit(1)
	}
	start, _ := s.Position("c0")
	out := bufio.NewWriter(os.Stdout)
	for i := start + 1; ; i++ {
		for c := range 3 {
			if err := s.Ack(fmt.Sprintf("c%d", c), i); err != nil {
				fmt.Println("ack:", err)
				os.Exit(1)
			}
		}
		fmt.Fprintln(out, i)
		out.Flush()
	}
}

// TestAcksSurviveSIGKILL runs a process that acknowledges as fast as it
// can, SIGKILLs it at a random moment, several times, and reopens the
// store: every consumer is at least where the last Ack the child reported
// put it.
func TestAcksSurviveSIGKILL(t *testing.T) {
	rng := seedtest.Rand(t)
	dir := t.TempDir()
	for round := range 4 {
		cmd := exec.Command(os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(), "CURSOR_KILL_CHILD="+dir)
		stdout, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		killAfter := time.Duration(50+rng.IntN(250)) * time.Millisecond
		timer := time.AfterFunc(killAfter, func() { cmd.Process.Signal(syscall.SIGKILL) })
		var last uint64
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			n, err := strconv.ParseUint(sc.Text(), 10, 64)
			if err != nil {
				t.Fatalf("child: %s", sc.Text())
			}
			last = n
		}
		err = cmd.Wait()
		timer.Stop()
		if !strings.Contains(fmt.Sprint(err), "killed") {
			t.Fatalf("round %d: child ended with %v, not killed", round, err)
		}
		s := open(t, dir, quietOpts())
		for c := range 3 {
			if got, _ := s.Position(fmt.Sprintf("c%d", c)); got < last {
				t.Fatalf("round %d: c%d at %d, but Ack(%d) had returned before SIGKILL at %v", round, c, got, last, killAfter)
			}
		}
		t.Logf("round %d: killed after %v, %d acknowledged rounds", round, killAfter, last)
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
	}
}
