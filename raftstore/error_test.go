package raftstore

import (
	"errors"
	"fmt"
	"syscall"
	"testing"

	"github.com/gojournal/journal/vfs"
	"github.com/gojournal/journal/vfs/crashfs"
	"github.com/gojournal/journal/vfs/errorfs"
	"github.com/gojournal/journal/wal"
)

// opener opens a kind of store on fsys and returns its groups (a Store
// is its one group) and its Close.
type opener func(fsys vfs.FS) (group func(id uint64) (raftStore, error), close func() error, err error)

func openStoreOn(fsys vfs.FS) (func(uint64) (raftStore, error), func() error, error) {
	s, err := Open("db", errorOptions(fsys))
	if err != nil {
		return nil, nil, err
	}
	return func(uint64) (raftStore, error) { return s, nil }, s.Close, nil
}

func openSharedOn(fsys vfs.FS) (func(uint64) (raftStore, error), func() error, error) {
	sh, err := OpenShared("db", errorOptions(fsys))
	if err != nil {
		return nil, nil, err
	}
	return func(id uint64) (raftStore, error) { return sh.Group(id) }, sh.Close, nil
}

func errorOptions(fsys vfs.FS) *Options {
	return &Options{Log: &wal.Options{FS: fsys, SegmentSize: wal.MinSegmentSize, Logger: quiet}, CompactAfter: 3}
}

// runUntilError runs ops until one fails and returns the state
// acknowledged, the state the failed call would have left, its name and
// its error (nil when every call succeeded).
func runUntilError(open opener, fsys vfs.FS, ops []sharedOp, groups []uint64) (before, after groupsState, inFlight string, err error) {
	before = groupsState{}
	for _, id := range groups {
		before[id] = newState()
	}
	group, closeStore, err := open(fsys)
	if err != nil {
		return before, before, "Open", err
	}
	defer closeStore()
	for _, o := range ops {
		after, inFlight = before.clone(), fmt.Sprintf("group %d: %s", o.group, o.name)
		st := after[o.group]
		o.apply(&st)
		s, err := group(o.group)
		if err == nil {
			err = o.call(s)
		}
		if err != nil {
			return before, after, inFlight, err
		}
		before = after
	}
	return before, before, "nothing", nil
}

// TestFailedIO fails, in turn, each write, sync, create, truncate,
// remove, rename and directory sync that raft-like workloads make on a
// Store and on a Shared store (whose compactions release segment files).
// The call that meets the failure must return it (never nil: its outcome
// is unknown), and the store, reopened as the process left the disk and
// after a power loss, must open and show the state before that call or
// after it.
func TestFailedIO(t *testing.T) {
	cases := faultWorkloads()
	kinds := []errorfs.Op{errorfs.OpWrite, errorfs.OpSync, errorfs.OpCreate, errorfs.OpTruncate,
		errorfs.OpRemove, errorfs.OpRename, errorfs.OpSyncDir, errorfs.OpPreallocate}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			clean := errorfs.Wrap(crashfs.New())
			final, _, _, err := runUntilError(c.open, clean, c.ops, c.groups)
			if err != nil {
				t.Fatalf("the workload failed without an injected error: %v", err)
			}
			failures := 0
			for _, kind := range kinds {
				for k := 1; k <= clean.Count(kind); k++ {
					disk := crashfs.New()
					fsys := errorfs.Wrap(disk, errorfs.Rule{Op: kind, N: k})
					before, after, inFlight, err := runUntilError(c.open, fsys, c.ops, c.groups)
					if fsys.Injected() == 0 {
						continue // the k-th call came from Close
					}
					failures++
					name := fmt.Sprintf("%v #%d (during %s)", kind, k, inFlight)
					if err != nil && !errors.Is(err, errorfs.ErrInjected) {
						t.Fatalf("%s: the call failed with %v, want the injected error", name, err)
					}
					if err == nil {
						// The failure met work no call waited for (a
						// spare segment prepared ahead): nothing lost.
						before, after = final, final
					}
					checkReopened(t, c.open, disk, c.groups, before, after, name)
				}
			}
			t.Logf("%d injected failures", failures)
		})
	}
}

// checkReopened reopens the store as a dead process left disk, then after
// a power loss, and checks that it shows before or after.
func checkReopened(t *testing.T, open opener, disk *crashfs.FS, groups []uint64, before, after groupsState, name string) {
	t.Helper()
	lost := disk.Crash(crashfs.SyncedOnly, nil)
	disk.Kill()
	for _, fsys := range []*crashfs.FS{disk, lost} {
		group, closeStore, err := open(fsys)
		if err != nil {
			t.Fatalf("%s: reopen: %v", name, err)
		}
		got := groupsState{}
		for _, id := range groups {
			s, err := group(id)
			if err == nil {
				got[id], err = readStore(s)
			}
			if err != nil {
				t.Fatalf("%s: reopened, group %d: %v", name, id, err)
			}
		}
		if err := closeStore(); err != nil {
			t.Fatalf("%s: Close: %v", name, err)
		}
		if !got.equal(before) && !got.equal(after) {
			t.Fatalf("%s: reopened, the store holds %v\nwant %v\nor   %v", name, got, before, after)
		}
	}
}

// faultWorkload is a workload the fault tests run: ops on the groups of a
// store open opens.
type faultWorkload struct {
	name   string
	open   opener
	ops    []sharedOp
	groups []uint64
}

// faultWorkloads are the workloads TestFailedIO and TestFullDiskRetried
// fail: a Store's, and two of a Shared store's.
func faultWorkloads() []faultWorkload {
	return []faultWorkload{
		{"Store", openStoreOn, alone(raftLike(0)), []uint64{1}},
		{"Shared/Interleaved", openSharedOn, interleave(), []uint64{1, 2}},
		{"Shared/SegmentsReleased", openSharedOn, segmentsReleased(), []uint64{1, 2}},
	}
}

func alone(ops []op) []sharedOp {
	s := make([]sharedOp, len(ops))
	for k, o := range ops {
		s[k] = sharedOp{1, o}
	}
	return s
}

// TestFullDiskRetried fails, in turn, each write, create, preallocate,
// truncate and rename of the workloads with ENOSPC, once, and retries the
// call that met it as raft does (a leader resends what a follower failed
// to store). The retry must succeed, or fail as the store did (a failed
// log stays failed): never find the failed call half done, as a
// StoreLogs that failed yet stored its entries would (its retry gets
// ErrNotContiguous, and raft's follower would be stuck). Reopened, the
// store holds what the calls acknowledged.
func TestFullDiskRetried(t *testing.T) {
	cases := faultWorkloads()
	kinds := []errorfs.Op{errorfs.OpWrite, errorfs.OpCreate, errorfs.OpPreallocate, errorfs.OpTruncate, errorfs.OpRename}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			clean := errorfs.Wrap(crashfs.New())
			if _, _, _, err := runUntilError(c.open, clean, c.ops, c.groups); err != nil {
				t.Fatalf("the workload failed without an injected error: %v", err)
			}
			retried, failed := 0, 0
			for _, kind := range kinds {
				for k := 1; k <= clean.Count(kind); k++ {
					disk := crashfs.New()
					fsys := errorfs.Wrap(disk, errorfs.Rule{Op: kind, N: k, Err: syscall.ENOSPC})
					acked, after, inFlight, err := runRetrying(c.open, fsys, c.ops, c.groups)
					name := fmt.Sprintf("ENOSPC on %v #%d (during %s)", kind, k, inFlight)
					switch {
					case errors.Is(err, ErrNotContiguous):
						t.Fatalf("%s: the retry found the failed call half done: %v", name, err)
					case err != nil:
						failed++
					case fsys.Injected() > 0:
						retried++
					}
					checkReopened(t, c.open, disk, c.groups, acked, after, name)
				}
			}
			t.Logf("%d calls retried after ENOSPC, %d stores failed for good", retried, failed)
		})
	}
}

// runRetrying runs ops, retrying once a call that fails; it stops at a
// call whose retry fails too. It returns the state acknowledged, the state
// that call would have left (its outcome is unknown), its name and the
// retry's error.
func runRetrying(open opener, fsys vfs.FS, ops []sharedOp, groups []uint64) (acked, after groupsState, inFlight string, err error) {
	acked = groupsState{}
	for _, id := range groups {
		acked[id] = newState()
	}
	group, closeStore, err := open(fsys)
	if err != nil {
		// A failed Open is retried as well.
		if group, closeStore, err = open(fsys); err != nil {
			return acked, acked, "Open", err
		}
	}
	defer closeStore()
	for _, o := range ops {
		after, inFlight = acked.clone(), fmt.Sprintf("group %d: %s", o.group, o.name)
		st := after[o.group]
		o.apply(&st)
		s, err := group(o.group)
		if err != nil {
			return acked, after, inFlight, err
		}
		if err := o.call(s); err != nil {
			if err := o.call(s); err != nil {
				return acked, after, inFlight, err
			}
		}
		acked = after
	}
	return acked, acked, "nothing", nil
}
