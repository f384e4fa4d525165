package wal

import (
	"errors"
	"io"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func noState() (uint64, func(io.Writer) error, error) { return 0, nil, errors.New("unused") }

// Options that would be ignored or misread are refused, naming the field,
// and Open creates nothing.
func TestOpenRefusesInvalidOptions(t *testing.T) {
	cases := []struct {
		name  string
		field string // named in the error
		opts  Options
	}{
		{"SegmentSizeNotASectorMultiple", "SegmentSize", Options{SegmentSize: MinSegmentSize + 100}},
		{"SegmentSizeBelowTheMinimum", "SegmentSize", Options{SegmentSize: MinSegmentSize - 512}},
		{"UnknownCompression", "Compression", Options{Compression: Zstd + 1}},
		{"SlowSyncBelowAMicrosecond", "SlowSync", Options{SlowSync: time.Nanosecond}},
		{"EveryBytesWithoutState", "Checkpoint.State", Options{Checkpoint: CheckpointOptions{EveryBytes: 1 << 20}}},
		{"EveryIntervalWithoutState", "Checkpoint.State", Options{Checkpoint: CheckpointOptions{EveryInterval: time.Second}}},
		{"OnErrorWithoutState", "Checkpoint.OnError", Options{Checkpoint: CheckpointOptions{OnError: func(error) {}}}},
		{"StateWithoutTrigger", "Checkpoint.State", Options{Checkpoint: CheckpointOptions{State: noState}}},
		{"NegativeEveryBytes", "Checkpoint.EveryBytes", Options{Checkpoint: CheckpointOptions{EveryBytes: -1, EveryInterval: time.Second, State: noState}}},
		{"NegativeEveryInterval", "Checkpoint.EveryInterval", Options{Checkpoint: CheckpointOptions{EveryBytes: 1, EveryInterval: -time.Second, State: noState}}},
		// A bare number is nanoseconds: measured before they were refused,
		// 1 checkpointed an idle log 240 times a second and 1 as the
		// retention interval took a third of a core.
		{"EveryIntervalInNanoseconds", "Checkpoint.EveryInterval", Options{Checkpoint: CheckpointOptions{EveryInterval: 5, State: noState}}},
		{"EveryIntervalBelowAMillisecond", "Checkpoint.EveryInterval", Options{Checkpoint: CheckpointOptions{EveryInterval: time.Millisecond - 1, State: noState}}},
		{"RetentionIntervalInNanoseconds", "Retention.Interval", Options{Retention: RetentionOptions{MaxBytes: 1 << 30, Interval: 1}}},
		{"NegativeRetentionMaxBytes", "Retention.MaxBytes", Options{Retention: RetentionOptions{MaxBytes: -1}}},
		{"NegativeRetentionMaxAge", "Retention.MaxAge", Options{Retention: RetentionOptions{MaxAge: -time.Hour}}},
		{"NegativeRetentionInterval", "Retention.Interval", Options{Retention: RetentionOptions{MaxBytes: 1, Interval: -time.Second}}},
		{"RetentionOnErrorWithoutAPolicy", "Retention.OnError", Options{Retention: RetentionOptions{OnError: func(error) {}}}},
		{"NegativeSegmentSize", "SegmentSize", Options{SegmentSize: -MinSegmentSize}},
		{"SegmentSizeAboveTheMaximum", "SegmentSize", Options{SegmentSize: MaxSegmentSize + 512}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "log")
			c.opts.Logger = quiet
			l, err := Open(dir, &c.opts)
			if err == nil {
				l.Close()
				t.Fatalf("Open accepted %+v", c.opts)
			}
			if !errors.Is(err, ErrInvalidOptions) || !strings.Contains(err.Error(), c.field) {
				t.Fatalf("Open: %v; want ErrInvalidOptions naming %s", err, c.field)
			}
			if exists(t, dir) {
				t.Fatalf("the refused Open created %s", dir)
			}
		})
	}
}

// The combinations that do something are accepted.
func TestOpenAcceptsValidCheckpointOptions(t *testing.T) {
	for _, co := range []CheckpointOptions{
		{},
		{Compress: true, MaxRate: -1},
		{EveryBytes: 1 << 20, State: noState},
		{EveryInterval: time.Hour, State: noState, OnError: func(error) {}},
	} {
		l := openT(t, t.TempDir(), &Options{Logger: quiet, SegmentSize: MinSegmentSize + 512, Checkpoint: co})
		if err := l.Close(); err != nil {
			t.Fatal(err)
		}
	}
}
