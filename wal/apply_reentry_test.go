package wal

import (
	"errors"
	"fmt"
	"testing"
	"time"
)

// TestApplyMayCallBackIntoTheLog: the AppendApply contract lets an apply
// read, sync, checkpoint, truncate or close the Log (only the Apply forms
// are off limits). Each such call from inside an apply must return, the
// AppendApply must return nil (the record was acknowledged before), and an
// AppendApply queued behind it must still get its turn.
func TestApplyMayCallBackIntoTheLog(t *testing.T) {
	calls := []struct {
		name string
		call func(l *Log, index uint64) error
		want error // what the queued AppendApply returns
	}{
		{"Read", func(l *Log, i uint64) error { _, err := l.Read(i); return err }, nil},
		{"LastIndex", func(l *Log, i uint64) error {
			if l.LastIndex() < i {
				return fmt.Errorf("LastIndex %d < %d", l.LastIndex(), i)
			}
			return nil
		}, nil},
		{"Sync", func(l *Log, i uint64) error { return l.Sync() }, nil},
		{"Reader", func(l *Log, i uint64) error {
			r := l.NewReader(1)
			defer r.Close()
			for r.Next() {
			}
			return r.Err()
		}, nil},
		{"Checkpoint", func(l *Log, i uint64) error { return l.Checkpoint(i, writeState(i)) }, nil},
		{"Checkpoint and Snapshot", func(l *Log, i uint64) error {
			if err := l.Checkpoint(i, writeState(i)); err != nil {
				return err
			}
			_, r, err := l.Snapshot()
			if err == nil {
				r.Close()
			}
			return err
		}, nil},
		{"TruncateFront", func(l *Log, i uint64) error { return l.TruncateFront(i) }, nil},
		{"TruncateBack of its own record", func(l *Log, i uint64) error { return l.TruncateBack(i - 1) }, ErrTruncated},
		{"Close", func(l *Log, i uint64) error { return l.Close() }, nil},
	}
	for _, noSync := range []bool{false, true} {
		for _, c := range calls {
			t.Run(fmt.Sprintf("%s/NoSync=%v", c.name, noSync), func(t *testing.T) {
				l := openT(t, t.TempDir(), &Options{Logger: quiet, NoSync: noSync})
				defer l.Close()
				appendN(t, l, 5)
				b := newBlockingApply()
				var callErr error
				outer := goApply(l, "outer", func(i uint64) {
					b.fn(i)
					callErr = c.call(l, i)
				})
				<-b.started
				queued := goApply(l, "queued", nil)
				waitLast(t, l, 7)
				close(b.release)
				within(t, 10*time.Second, "an apply calling "+c.name, func() {
					wait(t, outer, "the AppendApply whose apply calls back")
					wait(t, queued, "the AppendApply queued behind it")
				})
				if callErr != nil || outer.err != nil || outer.index != 6 {
					t.Fatalf("AppendApply = %d, %v with %s in its apply returning %v; want 6, nil, nil", outer.index, outer.err, c.name, callErr)
				}
				if !errors.Is(queued.err, c.want) || (queued.applied.Load() == 1) != (c.want == nil) {
					t.Fatalf("the queued AppendApply returned %v and applied %d times; want %v", queued.err, queued.applied.Load(), c.want)
				}
			})
		}
	}
}

// TestTruncateFrontSkipsAppliesOfDroppedRecords: a TruncateFront that drops
// a record whose apply waits for its turn skips that apply (ErrTruncated),
// as a TruncateBack does: the database dropped the prefix because its state
// is held elsewhere (a snapshot, perhaps installed from another replica),
// and applying the record on that state would apply it twice or apply one
// that state never had. Record 11's apply has started and blocks; record
// 12's waits. A record kept (TruncateFront(12)) still applies, and an
// AppendApply after the truncation gets its turn.
func TestTruncateFrontSkipsAppliesOfDroppedRecords(t *testing.T) {
	for _, c := range []struct {
		name    string
		front   uint64 // 0: Checkpoint(12) instead
		dropped bool   // whether record 12 is dropped
		next    uint64 // index of the next AppendApply
	}{
		{"keeps the waiting record", 12, false, 13},
		{"to the end", 13, true, 13},
		{"past the end", 50, true, 50},
		{"by a checkpoint", 0, true, 13},
	} {
		t.Run(c.name, func(t *testing.T) {
			l := openT(t, t.TempDir(), &Options{Logger: quiet})
			defer l.Close()
			appendN(t, l, 10)
			b := newBlockingApply()
			running := goApply(l, "running", b.fn)
			<-b.started
			waiting := goApply(l, "waiting", nil)
			waitLast(t, l, 12)
			if c.front == 0 {
				// The snapshot holds the state up to 12: record 12's
				// apply must not run on it.
				if err := l.Checkpoint(12, writeState(12)); err != nil {
					t.Fatal(err)
				}
			} else if err := l.TruncateFront(c.front); err != nil {
				t.Fatal(err)
			}
			if c.dropped {
				wait(t, waiting, "an AppendApply whose record TruncateFront dropped")
			}
			after := goApply(l, "after", nil)
			close(b.release)
			wait(t, running, "the AppendApply whose apply was running")
			wait(t, waiting, "the AppendApply whose apply was waiting")
			wait(t, after, "the AppendApply after the truncation")
			if running.err != nil || running.applied.Load() != 1 {
				t.Fatalf("the running apply's call: %v, applied %d times; want nil, once", running.err, running.applied.Load())
			}
			if c.dropped && (!errors.Is(waiting.err, ErrTruncated) || waiting.applied.Load() != 0) {
				t.Fatalf("the waiting apply's call, its record dropped: %v, applied %d times; want ErrTruncated, never", waiting.err, waiting.applied.Load())
			}
			if !c.dropped && (waiting.err != nil || waiting.applied.Load() != 1) {
				t.Fatalf("the waiting apply's call, its record kept: %v, applied %d times; want nil, once", waiting.err, waiting.applied.Load())
			}
			if after.err != nil || after.index != c.next || after.applied.Load() != 1 {
				t.Fatalf("AppendApply after the truncation: %d, %v, applied %d times; want %d, nil, once", after.index, after.err, after.applied.Load(), c.next)
			}
		})
	}
}
