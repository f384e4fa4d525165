package main

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/gojournal/journal/checkpoint"
	"github.com/gojournal/journal/recovery"
	"github.com/gojournal/journal/vfs"
	"github.com/gojournal/journal/wal"
)

func newTruncate() *command {
	var front, back uint64
	var segSize int64
	cmd := &command{
		Use:   "truncate DIR (--front I | --back J)",
		Short: "Drop the records before index I (--front) or after index J (--back)",
		Long: `truncate opens the log in DIR (taking its lock and recovering it as Open does)
and drops records durably and crash-atomically:

  --front I   drop every record before I: the log then starts at I
              (I may lie past the last record: the log is then empty and
              the next append gets I, unless a checkpoint exists, which
              the log must continue without a gap)
  --back J    drop every record after J: the next append gets J+1

Exit codes: 0 done, 1 the log is damaged (Open refused it: see verify and
recover), 2 usage or I/O error, an index out of range, or the directory is
locked.`,
		Example: `  wal truncate /var/lib/myapp/wal --front 1000
  wal truncate /var/lib/myapp/wal --back 4711`,
		Args: dirArg,
		RunE: func(cmd *command, args []string) error {
			if cmd.changed("front") == cmd.changed("back") {
				return errors.New("truncate takes one of --front and --back")
			}
			dir := args[0]
			if err := checkDir(dir); err != nil {
				return err
			}
			l, err := openLog(dir, segSize)
			if err != nil {
				return err
			}
			w := cmd.OutOrStdout()
			fmt.Fprintf(w, "truncate %s\n", dir)
			fmt.Fprintf(w, "before:   %s\n", span(l.FirstIndex(), l.LastIndex()))
			if cmd.changed("front") {
				err = l.TruncateFront(front)
			} else {
				err = l.TruncateBack(back)
			}
			first, last := l.FirstIndex(), l.LastIndex()
			if cerr := l.Close(); err == nil {
				err = cerr
			}
			if errors.Is(err, wal.ErrOutOfRange) {
				return fail("%v", err)
			}
			if err != nil {
				return fail("truncate %s: %v", dir, err)
			}
			fmt.Fprintf(w, "after:    %s\n", span(first, last))
			return nil
		},
	}
	cmd.Flags().Uint64Var(&front, "front", 0, "drop the records before this index")
	cmd.Flags().Uint64Var(&back, "back", 0, "drop the records after this index")
	cmd.Flags().Int64Var(&segSize, "segment-size", wal.DefaultSegmentSize, "segment size the log is written with (wal.Options.SegmentSize)")
	return cmd
}

func span(first, last uint64) string {
	if last < first {
		return fmt.Sprintf("empty (next index %d)", first)
	}
	return fmt.Sprintf("records %d to %d (%d)", first, last, last-first+1)
}

// openLog opens a log for the commands that change it, turning Open's
// errors into advice.
func openLog(dir string, segSize int64) (*wal.Log, error) {
	// Warnings and failures only: the commands report what they did
	// themselves.
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	// Judged first as recover judges it, without the clean-close manifest
	// (read-only; Open then takes the lock): a default Open believes the
	// manifest and opens no sealed segment, so it would change a log whose
	// sealed segments were damaged since Close, which verify and recover
	// call damaged.
	// The lock is asked for first: on a directory a live process owns,
	// the judgement below reads a log changing under it and may see
	// damage that is not there, and "locked" is the answer (wal truncate
	// on a live log said "cannot be opened", exit 1: found by
	// TestLiveToolsOnAnotherProcessesLog).
	if lk, lerr := vfs.Default.Lock(filepath.Join(dir, wal.LockName)); errors.Is(lerr, wal.ErrLocked) {
		return nil, lockedFail(dir)
	} else if lerr == nil {
		lk.Close()
	}
	st, err := recovery.Scan(vfs.Default, dir, recovery.Options{})
	if err == nil {
		st.Close()
	}
	var l *wal.Log
	if err == nil || !(errors.Is(err, wal.ErrCorrupt) || errors.Is(err, wal.ErrFormat)) {
		// Other errors are Open's to report, with the lock's first.
		l, err = wal.Open(dir, &wal.Options{SegmentSize: segSize, Logger: logger})
	}
	switch {
	case errors.Is(err, wal.ErrLocked):
		return nil, lockedFail(dir)
	case errors.Is(err, wal.ErrCorrupt) || errors.Is(err, wal.ErrFormat):
		return nil, &exit{code: exitDamage, err: fmt.Errorf("%v\nthe log cannot be opened: run `wal verify %s`, then `wal recover --salvage --dry-run %s`", err, dir, dir)}
	case err != nil:
		return nil, fail("%v", err)
	}
	return l, nil
}

func newCheckpoint() *command {
	return &command{
		Use:   "checkpoint DIR",
		Short: "Show the snapshot's header: index, size, compression, age (read-only)",
		Long: `checkpoint shows the header of the snapshot in DIR (the file "snapshot"): the log
index it covers, the size of its contents, whether they are compressed, and
when it was written. It checks the header and trailer, not the contents:
verify reads those too.

Exit codes: 0 shown, or there is no snapshot; 1 the snapshot is damaged;
2 usage or I/O error.`,
		Example: `  wal checkpoint /var/lib/myapp/wal`,
		Args:    dirArg,
		RunE: func(cmd *command, args []string) error {
			dir := args[0]
			if err := checkDir(dir); err != nil {
				return err
			}
			w := cmd.OutOrStdout()
			h, err := checkpoint.ReadHeader(vfs.Default, dir)
			if errors.Is(err, checkpoint.ErrNoSnapshot) {
				fmt.Fprintf(w, "no snapshot in %s\n", dir)
				return nil
			}
			path := filepath.Join(dir, checkpoint.FileName)
			if errors.Is(err, wal.ErrCorrupt) || errors.Is(err, wal.ErrFormat) {
				fmt.Fprintf(w, "snapshot %s is damaged: %v\n", path, err)
				fmt.Fprintf(w, "restore it from a backup, or have the application write a new one\n")
				return damaged()
			}
			if err != nil {
				return fail("%v", err)
			}
			fmt.Fprintf(w, "snapshot %s\n", path)
			fmt.Fprintf(w, "index:     %d\n", h.Index)
			if h.Compressed {
				fmt.Fprintf(w, "contents:  %d bytes, stored zstd-compressed in %d\n", h.Size, h.StoredSize)
			} else {
				fmt.Fprintf(w, "contents:  %d bytes, uncompressed\n", h.Size)
			}
			fmt.Fprintf(w, "file:      %d bytes, format version %d\n", h.FileSize, h.Version)
			fmt.Fprintf(w, "written:   %s (%s ago)\n", h.ModTime.UTC().Format(time.RFC3339), age(time.Now(), h.ModTime))
			return nil
		},
	}
}

// lockedFail is truncate's answer when a process has the log open.
func lockedFail(dir string) error {
	return fail("%s is locked: a process (the application, or another wal command) has the log open; stop it first", dir)
}
