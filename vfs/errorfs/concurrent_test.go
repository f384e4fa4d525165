package errorfs

import (
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"syscall"
	"testing"

	"github.com/gojournal/journal/vfs/crashfs"
)

// TestCountsPerKindUnderConcurrency has goroutines mix writes, syncs and
// reads, with one once-rule per kind, and checks that each kind counts
// only its own calls, that each rule fails exactly one call, the N-th of
// its kind (Error.Call), and that the errors wrap both sentinels.
func TestCountsPerKindUnderConcurrency(t *testing.T) {
	const goroutines, rounds = 8, 50
	fsys := Wrap(base(t),
		Rule{Op: OpWrite, N: 77},
		Rule{Op: OpSync, N: 13, Err: syscall.ENOSPC},
		Rule{Op: OpRead, N: 200})
	var wg sync.WaitGroup
	var mu sync.Mutex
	var failed []error
	for g := range goroutines {
		wg.Go(func() {
			f, err := fsys.OpenFile(fmt.Sprintf("db/f%d", g), os.O_RDWR|os.O_CREATE, 0o644)
			if err != nil {
				t.Error(err)
				return
			}
			defer f.Close()
			for i := range rounds {
				_, werr := f.WriteAt([]byte{byte(i)}, int64(i))
				_, rerr := f.ReadAt(make([]byte, 1), int64(i))
				var serr error
				if i%5 == 0 {
					serr = f.Sync()
				}
				mu.Lock()
				for _, err := range []error{werr, rerr, serr} {
					// A read past a write that failed meets the end.
					if err != nil && !errors.Is(err, io.EOF) {
						failed = append(failed, err)
					}
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	want := map[Op]int{OpWrite: goroutines * rounds, OpRead: goroutines * rounds, OpSync: goroutines * rounds / 5, OpCreate: goroutines, OpClose: goroutines}
	for op, n := range want {
		if got := fsys.Count(op); got != n {
			t.Errorf("Count(%v) = %d, want %d", op, got, n)
		}
	}
	calls := map[Op]int{}
	for _, err := range failed {
		var e *Error
		if !errors.As(err, &e) || !errors.Is(err, ErrInjected) || !errors.Is(err, e.Err) {
			t.Fatalf("failure %v is not an injected *Error wrapping its rule's error", err)
		}
		calls[e.Op] = e.Call
	}
	if len(failed) != 3 || calls[OpWrite] != 77 || calls[OpSync] != 13 || calls[OpRead] != 200 {
		t.Errorf("failed calls %v (%d in all), want write 77, sync 13, read 200", calls, len(failed))
	}
	for _, err := range failed {
		if e := (*Error)(nil); errors.As(err, &e) && e.Op == OpSync && !errors.Is(err, syscall.ENOSPC) {
			t.Errorf("sync failure %v does not wrap ENOSPC", err)
		}
	}
}

// A failed Sync is not passed on: over a crashfs, what it was asked to
// make durable is only as durable as a crash chooses, and a later Sync
// that succeeds makes it durable.
func TestFailedSyncOverCrashFS(t *testing.T) {
	mem := crashfs.New()
	fsys := Wrap(mem, Rule{Op: OpSync, N: 1})
	f, err := fsys.OpenFile("f", os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := mem.SyncDir("/"); err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt([]byte("data"), 0); err != nil {
		t.Fatal(err)
	}
	if err := f.Sync(); !errors.Is(err, syscall.EIO) || !errors.Is(err, ErrInjected) {
		t.Fatalf("Sync: %v, want the injected EIO", err)
	}
	if got := contents(t, mem.Crash(crashfs.SyncedOnly, nil), "f"); got != "" {
		t.Errorf("after a failed Sync a power loss kept %q in SyncedOnly mode", got)
	}
	if err := f.Sync(); err != nil {
		t.Fatal(err)
	}
	if got := contents(t, mem.Crash(crashfs.SyncedOnly, nil), "f"); got != "data" {
		t.Errorf("after a Sync that succeeded a power loss left %q", got)
	}
}
