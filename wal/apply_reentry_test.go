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
