package wal

import (
	"errors"
	"fmt"
	"io"
	"runtime"
	"strings"
	"testing"
	"time"
)

// TestCancelledCheckpointNotCommittedWhenWriteIgnoresErrors: Close cancels
// a checkpoint still writing by failing its writes with ErrClosed. A state
// writer that ignores write errors (fmt.Fprintf unchecked, a common
// shortcut) then returns nil having written only part of the state; the
// snapshot package refuses to commit such a snapshot when the file's own
// writes fail, and the cancellation must be refused the same way: a
// partial snapshot, committed and with the records it covers released,
// loses the state.
func TestCancelledCheckpointNotCommittedWhenWriteIgnoresErrors(t *testing.T) {
	for _, compress := range []bool{false, true} {
		t.Run(fmt.Sprintf("compress=%v", compress), func(t *testing.T) {
			dir := t.TempDir()
			o := &Options{Logger: quiet, Checkpoint: CheckpointOptions{Compress: compress}}
			l := openT(t, dir, o)
			appendN(t, l, 10)
			const lines = 100
			halfway := make(chan struct{})
			ckpt := make(chan error, 1)
			go func() {
				ckpt <- l.Checkpoint(10, func(w io.Writer) error {
					for i := range lines {
						fmt.Fprintf(w, "line %d\n", i) // error ignored
						if i == lines/10 {
							close(halfway)
							// Wait for Close to begin: the remaining
							// writes fail with ErrClosed.
							for !errors.Is(l.Sync(), ErrClosed) {
								runtime.Gosched()
							}
						}
					}
					return nil
				})
			}()
			<-halfway
			within(t, 10*time.Second, "Close beside a checkpoint", func() {
				if err := l.Close(); err != nil {
					t.Errorf("Close: %v", err)
				}
			})
			err := <-ckpt
			l = openT(t, dir, &Options{Logger: quiet})
			defer l.Close()
			index, r, serr := l.Snapshot()
			if errors.Is(serr, ErrNoSnapshot) {
				if err == nil {
					t.Fatal("Checkpoint returned nil, yet no snapshot was committed")
				}
				checkRange(t, l, 1, 10)
				return
			}
			if serr != nil {
				t.Fatalf("Snapshot: %v", serr)
			}
			defer r.Close()
			b, rerr := io.ReadAll(r)
			if n := strings.Count(string(b), "\n"); rerr != nil || n != lines {
				t.Fatalf("the checkpoint Close cancelled (returned %v) committed a snapshot at %d of %d lines of %d (read error %v): the state is lost",
					err, index, n, lines, rerr)
			}
		})
	}
}
