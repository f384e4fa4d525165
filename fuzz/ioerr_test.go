package fuzz

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/gojournal/journal/internal/crashtest"
	"github.com/gojournal/journal/internal/seedtest"
	"github.com/gojournal/journal/segment"
	"github.com/gojournal/journal/vfs/crashfs"
	"github.com/gojournal/journal/vfs/errorfs"
	"github.com/gojournal/journal/wal"
)

// failingOps are the calls whose failure the log must survive.
var failingOps = []errorfs.Op{
	errorfs.OpWrite, errorfs.OpSync, errorfs.OpSyncDir, errorfs.OpCreate,
	errorfs.OpRename, errorfs.OpTruncate, errorfs.OpPreallocate, errorfs.OpRemove,
}

// TestIOErrors fails each write, fdatasync, directory sync, create, rename,
// truncate, preallocate and remove of every workload in turn. The failing
// call must return the error, every later call must fail (the log is
// poisoned), and after reopening (and after a power loss) nothing
// acknowledged may be missing and nothing unacknowledged claimed.
func TestIOErrors(t *testing.T) {
	s := seedtest.Seed(t)
	injected, checked := 0, 0
	for wi, w := range workloads {
		rng := rand.New(rand.NewPCG(s, uint64(wi)))
		counts := countOps(w)
		for _, op := range failingOps {
			for n := 1; n <= counts[op]; n++ {
				rule := errorfs.Rule{Op: op, N: n}
				if err := failOnce(w, rule, rng); err != nil {
					t.Errorf("%s, %v #%d fails: %v", w.name, op, n, err)
				}
				injected++
				checked += 2
			}
		}
	}
	t.Logf("workloads %d, injected errors %d, recoveries checked %d", len(workloads), injected, checked)
}

// countOps runs w without faults and counts its calls of each kind.
func countOps(w workload) map[errorfs.Op]int {
	efs := errorfs.Wrap(crashfs.New())
	if d, ok := crashtest.NewDriver(efs, w.opts); ok {
		w.run(d)
		d.Close()
	}
	counts := map[errorfs.Op]int{}
	for _, op := range failingOps {
		counts[op] = efs.Count(op)
	}
	return counts
}

// failOnce runs w with one injected failure and checks what follows.
func failOnce(w workload, rule errorfs.Rule, rng *rand.Rand) error {
	mem := crashfs.New()
	efs := errorfs.Wrap(mem, rule)
	d, ok := crashtest.NewDriver(efs, w.opts)
	if ok {
		w.run(d)
	}
	if efs.Injected() == 0 {
		d.Close()
		return nil // the workload took another path this time
	}
	if l := d.Log(); l != nil && d.CheckpointFailed {
		// A snapshot that could not be written leaves the log usable.
		d.Resume()
		if !d.Append(10) {
			return fmt.Errorf("append after a failed checkpoint: the log was failed")
		}
		d.Close()
	} else if l != nil {
		if err := poisoned(l); err != nil {
			return err
		}
		l.Close()
	}
	// The injected fault is gone: a reopened log must hold every
	// acknowledged record, and so must what a power loss leaves.
	crashed := mem.Crash(crashfs.SyncedOnly, rng)
	for _, fsys := range []*crashfs.FS{mem, crashed} {
		_, got, err := crashtest.Recover(fsys, w.opts, false)
		if err != nil {
			return fmt.Errorf("reopen: %w", err)
		}
		if err := d.Model().Check(got); err != nil {
			return err
		}
	}
	return nil
}

// poisoned checks that a log whose file operation failed refuses to go on.
// A failure in the log's background work (preparing the spare segment of
// the next rotation) fails the log when that work finishes, not when the
// workload's last call returned: the log must be failed within a bound,
// seen through Sync (which appends nothing the model would not know).
func poisoned(l *wal.Log) error {
	for deadline := time.Now().Add(5 * time.Second); !errors.Is(l.Sync(), wal.ErrFailed); {
		if time.Now().After(deadline) {
			return fmt.Errorf("Sync 5 s after a failed operation: %v, want ErrFailed", l.Sync())
		}
		time.Sleep(time.Millisecond)
	}
	if _, err := l.Append([]byte("after the failure")); !errors.Is(err, wal.ErrFailed) {
		return fmt.Errorf("Append after a failed operation: %v, want ErrFailed", err)
	}
	if err := l.Sync(); !errors.Is(err, wal.ErrFailed) {
		return fmt.Errorf("Sync after a failed operation: %v, want ErrFailed", err)
	}
	if err := l.TruncateFront(l.FirstIndex()); !errors.Is(err, wal.ErrFailed) {
		return fmt.Errorf("TruncateFront after a failed operation: %v, want ErrFailed", err)
	}
	return nil
}

// TestDiskFull fills the disk part way through each workload: appends
// fail cleanly, nothing acknowledged is lost, and once space returns a
// reopened log appends again.
func TestDiskFull(t *testing.T) {
	for _, w := range workloads {
		counts := countOps(w)
		for _, op := range []errorfs.Op{errorfs.OpWrite, errorfs.OpPreallocate} {
			for _, n := range []int{1, counts[op] / 2, counts[op]} {
				rule := errorfs.Rule{Op: op, N: max(n, 1), Sticky: true, Err: syscall.ENOSPC}
				if err := diskFull(w, rule); err != nil {
					t.Errorf("%s, disk full from %v #%d: %v", w.name, op, n, err)
				}
			}
		}
	}
}

func diskFull(w workload, rule errorfs.Rule) error {
	mem := crashfs.New()
	efs := errorfs.Wrap(mem, rule)
	d, ok := crashtest.NewDriver(efs, w.opts)
	if ok {
		w.run(d)
		if l := d.Log(); l != nil && efs.Injected() > 0 {
			// An Append either fails (ENOSPC, or the log failed earlier)
			// or succeeds without meeting a full disk: Open of an existing
			// log goes on without preallocating when only that fails.
			before := efs.Injected()
			err := d.AppendNow(8)
			met := appendPathFaults(efs.InjectedErrors()[before:])
			switch {
			case err == nil && met > 0:
				return fmt.Errorf("Append on a full disk succeeded after %d injected ENOSPC", met)
			case err != nil && !errors.Is(err, syscall.ENOSPC) && !errors.Is(err, wal.ErrFailed):
				return fmt.Errorf("Append on a full disk: %v", err)
			}
		}
		d.Close()
	}
	efs.Clear() // space returns
	l, got, err := crashtest.Recover(efs, w.opts, true)
	if err != nil {
		return fmt.Errorf("reopen after space returned: %w", err)
	}
	defer l.Close()
	if err := d.Model().Check(got); err != nil {
		return err
	}
	if _, err := l.Append([]byte("space is back")); err != nil {
		return fmt.Errorf("append after space returned: %w", err)
	}
	return nil
}

// appendPathFaults counts the faults an Append's own calls met. The log
// prepares the next rotation's spare segment in the background, and a
// spare that finds the disk full is by design not an error (the log goes
// on in its active segment), so a fault on the spare while an Append runs
// is not the Append's.
func appendPathFaults(errs []errorfs.Error) int {
	n := 0
	for _, e := range errs {
		if filepath.Base(e.Path) != segment.SpareName {
			n++
		}
	}
	return n
}
