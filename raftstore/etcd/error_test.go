package etcd

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/gojournal/journal/internal/seedtest"
	"github.com/gojournal/journal/vfs/crashfs"
	"github.com/gojournal/journal/vfs/errorfs"
	"go.etcd.io/raft/v3"
	pb "go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"
)

// TestFailedIO fails, in turn, each write, sync, rename, directory sync,
// truncate and remove that the crash workload makes. The call that meets
// the failure returns an error; every later write gets ErrFailed; and the
// Storage reopened on the same disk (the process went on) and after a power
// loss (only what was synced) shows the state before the failed call or
// after it.
func TestFailedIO(t *testing.T) {
	views := reference(t)
	ops := []errorfs.Op{errorfs.OpWrite, errorfs.OpSync, errorfs.OpRename, errorfs.OpSyncDir,
		errorfs.OpTruncate, errorfs.OpRemove, errorfs.OpCreate}
	clean := errorfs.Wrap(crashfs.New())
	if n := runCrashOps(t, clean); n != len(crashOps) {
		t.Fatalf("the workload failed without an injected error at call %d", n)
	}
	cases := 0
	sample := sampler(rand.New(rand.NewPCG(seedtest.Seed(t), 2)))
	for _, op := range ops {
		for k := 1; k <= clean.Count(op); k++ {
			if !sample() {
				continue
			}
			disk := crashfs.New()
			fsys := errorfs.Wrap(disk, errorfs.Rule{Op: op, N: k})
			name := fmt.Sprintf("%v #%d", op, k)
			acked, err := runFailing(fsys)
			if fsys.Injected() == 0 {
				continue // the k-th call came from Close
			}
			if acked < len(crashOps) && !errors.Is(err, errorfs.ErrInjected) {
				t.Fatalf("%s: call %d failed with %v, want the injected error", name, acked, err)
			}
			cases++
			for _, after := range []*crashfs.FS{disk, disk.Crash(crashfs.SyncedOnly, nil)} {
				if after == disk {
					disk.Kill()
				}
				s, err := Open("/db", &Options{FS: after, Logger: quiet()})
				if err != nil {
					t.Fatalf("%s: reopen: %v", name, err)
				}
				got := viewOf(t, s)
				if !crashedBetween(got, views[acked], views[min(acked+1, len(crashOps))]) {
					t.Fatalf("%s (%d calls acknowledged):\n got %+v\nwant %+v\n  or %+v",
						name, acked, got, views[acked], views[min(acked+1, len(crashOps))])
				}
				must(t, s.Close())
			}
		}
	}
	t.Logf("%d injected failures", cases)
}

// runFailing runs the crash workload until a call fails, checks that the
// Storage then refuses writes, and returns how many calls succeeded and the
// error of the one that failed.
func runFailing(fsys *errorfs.FS) (int, error) {
	s, err := Open("/db", &Options{FS: fsys, SegmentSize: 64 << 10, Logger: quiet()})
	if err != nil {
		return 0, err
	}
	defer s.Close()
	for i, op := range crashOps {
		if err := op(s); err != nil {
			if again := s.Append(dents(1, 1, 1, "x")); !errors.Is(again, ErrFailed) {
				return i, fmt.Errorf("a write after %v got %v, want ErrFailed", err, again)
			}
			return i, err
		}
	}
	return len(crashOps), nil
}

// Refusals of the arguments do not fail the Storage.
func TestRefusalsDoNotFail(t *testing.T) {
	s := fixture(t, ents(4, 4, 5)...)
	if err := s.Compact(2); !errors.Is(err, raft.ErrCompacted) {
		t.Fatal(err)
	}
	if err := s.Append(ents(9, 5)); !errors.Is(err, ErrGap) {
		t.Fatal(err)
	}
	old := &pb.Snapshot{Metadata: &pb.SnapshotMetadata{Index: proto.Uint64(2), Term: proto.Uint64(2)}}
	if err := s.ApplySnapshot(old); !errors.Is(err, raft.ErrSnapOutOfDate) {
		t.Fatal(err)
	}
	if _, err := s.CreateSnapshot(9, nil, nil); !errors.Is(err, raft.ErrUnavailable) {
		t.Fatal(err)
	}
	must(t, s.Append(ents(6, 5)))
}
