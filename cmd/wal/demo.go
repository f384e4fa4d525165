package main

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/gojournal/journal/checkpoint"
	"github.com/gojournal/journal/recovery"
	"github.com/gojournal/journal/segment"
	"github.com/gojournal/journal/vfs"
	"github.com/gojournal/journal/wal"
)

// demoSegmentSize keeps the demo's segments small, so it rotates and
// releases segment files.
const demoSegmentSize = 4 * wal.MinSegmentSize

type demoOptions struct {
	dir       string
	writers   int
	records   int
	killAfter int
}

func newDemo() *command {
	var o demoOptions
	cmd := &command{
		Use:   "demo",
		Short: "Append, checkpoint, SIGKILL a writer mid-append, recover, and verify every acknowledged record",
		Long: `demo shows journal's promise end to end, in a temporary directory (or --dir):

  1. concurrent writers append records durably (group commit)
  2. a checkpoint: a snapshot of the state, then the records it covers released
  3. a child process (this binary, re-executed) appends from several writers
     and reports each acknowledged index; it is killed with SIGKILL mid-append
  4. the log is reopened and recovered (what Recovered() reports)
  5. every acknowledged record is checked: in the snapshot or in the log, byte
     for byte; then the whole directory is verified

Exit codes: 0 every acknowledged record survived, 1 one was lost,
2 usage or I/O error.`,
		Example: `  wal demo
  wal demo --writers 16 --records 10000 --dir /tmp/demo`,
		Args: noArgs,
		RunE: func(cmd *command, args []string) error {
			if o.writers < 1 || o.records < 2 || o.killAfter < 1 {
				return fail("--writers must be at least 1, --records at least 2 and --kill-after at least 1")
			}
			return demo(cmd.OutOrStdout(), o)
		},
	}
	cmd.Flags().StringVar(&o.dir, "dir", "", "log directory (default: a new temporary directory, removed afterwards)")
	cmd.Flags().IntVar(&o.writers, "writers", 8, "concurrent writers, in this process and in the child")
	cmd.Flags().IntVar(&o.records, "records", 4000, "records to append before the checkpoint")
	cmd.Flags().IntVar(&o.killAfter, "kill-after", 500, "kill the child after this many acknowledged appends")
	return cmd
}

// newDemoChild is the hidden command demo re-executes: it appends until it
// is killed, printing each acknowledged index and payload on stdout.
func newDemoChild() *command {
	var writers int
	cmd := &command{
		Use:    "demo-child DIR",
		Hidden: true,
		Args:   dirArg,
		RunE: func(cmd *command, args []string) error {
			l, err := wal.Open(args[0], &wal.Options{SegmentSize: demoSegmentSize})
			if err != nil {
				return fail("%v", err)
			}
			var mu sync.Mutex
			var wg sync.WaitGroup
			for i := range writers {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for n := 0; ; n++ {
						rec := fmt.Sprintf("child w=%d n=%d", i, n)
						index, err := l.Append([]byte(rec))
						if err != nil {
							fmt.Fprintf(os.Stderr, "append: %v\n", err)
							os.Exit(exitError)
						}
						// One write per line: a line in the pipe is an
						// acknowledgement, whole or not at all.
						mu.Lock()
						os.Stdout.WriteString(strconv.FormatUint(index, 10) + " " + rec + "\n")
						mu.Unlock()
					}
				}()
			}
			wg.Wait()
			return nil
		},
	}
	cmd.Flags().IntVar(&writers, "writers", 8, "concurrent writers")
	return cmd
}

// Optional methods of *wal.Log: used when the log has them.
type (
	checkpointer interface {
		Checkpoint(index uint64, write func(w io.Writer) error) error
	}
	snapshotter interface {
		Snapshot() (uint64, io.ReadCloser, error)
	}
)

type demoRun struct {
	w     io.Writer
	o     demoOptions
	dir   string
	acked map[uint64]string // every acknowledged record
	step  int
}

func (d *demoRun) say(format string, args ...any) {
	d.step++
	fmt.Fprintf(d.w, "%d. %s\n", d.step, fmt.Sprintf(format, args...))
}

func (d *demoRun) detail(format string, args ...any) {
	fmt.Fprintf(d.w, "   %s\n", fmt.Sprintf(format, args...))
}

func demo(w io.Writer, o demoOptions) error {
	d := &demoRun{w: w, o: o, dir: o.dir, acked: map[uint64]string{}}
	if d.dir == "" {
		tmp, err := os.MkdirTemp("", "wal-demo-")
		if err != nil {
			return fail("%v", err)
		}
		defer os.RemoveAll(tmp)
		d.dir = tmp
	}
	quiet := &wal.Options{SegmentSize: demoSegmentSize, Logger: slog.New(slog.DiscardHandler)}
	l, err := wal.Open(d.dir, quiet)
	if err != nil {
		return fail("%v", err)
	}
	d.say("opened a log in %s (segments of %s)", d.dir, bytesIEC(demoSegmentSize))
	if err := d.appendAll(l); err != nil {
		l.Close()
		return err
	}
	snapAt, err := d.checkpoint(l)
	if cerr := l.Close(); err == nil && cerr != nil {
		err = fail("%v", cerr)
	}
	if err != nil {
		return err
	}
	if err := d.killChild(); err != nil {
		return err
	}

	l, err = wal.Open(d.dir, quiet)
	if err != nil {
		return fail("reopen after the kill: %v", err)
	}
	defer l.Close()
	rec := l.Recovered()
	d.say("reopened the log: wal.Open recovered it; records %d to %d", l.FirstIndex(), l.LastIndex())
	if t := rec.Torn; t != nil {
		d.detail("Recovered(): cut a torn tail of %s in %s at offset %d (%s)", plural(t.Bytes, "byte"),
			filepath.Base(t.Path), t.Offset, cmpOr(t.Reason, "end of file"))
	} else {
		d.detail("Recovered(): no torn tail: SIGKILL ends a process, but every write it made is already in the")
		d.detail("kernel; only a power loss or an OS crash tears writes")
	}
	if len(rec.Removed) > 0 {
		d.detail("Recovered(): removed %s", strings.Join(relAll(d.dir, rec.Removed), ", "))
	}
	lost, err := d.verify(l, snapAt)
	if err != nil {
		return err
	}
	if lost > 0 {
		return damaged()
	}
	return nil
}

// appendAll appends o.records records from o.writers goroutines.
func (d *demoRun) appendAll(l *wal.Log) error {
	var mu sync.Mutex
	var wg sync.WaitGroup
	errs := make(chan error, d.o.writers)
	start := time.Now()
	for i := range d.o.writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for n := i; n < d.o.records; n += d.o.writers {
				rec := fmt.Sprintf("parent w=%d n=%d", i, n)
				index, err := l.Append([]byte(rec))
				if err != nil {
					errs <- err
					return
				}
				mu.Lock()
				d.acked[index] = rec
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		return fail("append: %v", err)
	}
	el := time.Since(start)
	st := l.Stats()
	d.say("%d writers appended %d records durably in %v", d.o.writers, d.o.records, el.Round(time.Millisecond))
	d.detail("group commit: %d fdatasyncs, %.1f records each (wal.Stats)", st.Syncs, float64(st.Records)/float64(max(st.Syncs, 1)))
	return nil
}

// checkpoint snapshots the state (every record up to the middle of the log,
// one "index payload" line each) and releases the records it covers.
func (d *demoRun) checkpoint(l *wal.Log) (uint64, error) {
	at := l.LastIndex() / 2
	state := func(w io.Writer) error {
		for i := l.FirstIndex(); i <= at; i++ {
			rec, err := l.Read(i)
			if err != nil {
				return err
			}
			if _, err := fmt.Fprintf(w, "%d %s\n", i, rec); err != nil {
				return err
			}
		}
		return nil
	}
	before := segmentFiles(d.dir)
	how := "checkpoint.Write, then TruncateFront"
	if c, ok := any(l).(checkpointer); ok {
		how = "Log.Checkpoint"
		if err := c.Checkpoint(at, state); err != nil {
			return 0, fail("checkpoint: %v", err)
		}
	} else if err := checkpoint.Write(vfs.Default, d.dir, at, checkpoint.WriteOptions{}, state); err != nil {
		return 0, fail("checkpoint: %v", err)
	}
	if l.FirstIndex() <= at {
		if err := l.TruncateFront(at + 1); err != nil {
			return 0, fail("truncate front: %v", err)
		}
	}
	h, err := checkpoint.ReadHeader(vfs.Default, d.dir)
	if err != nil {
		return 0, fail("read the snapshot back: %v", err)
	}
	d.say("checkpoint at index %d (%s): snapshot of %s; records 1 to %d released, %d of %d segment files removed",
		at, how, bytesIEC(h.FileSize), at, before-segmentFiles(d.dir), before)
	return at, nil
}

func segmentFiles(dir string) int {
	names, _ := vfs.Default.ReadDir(dir)
	n := 0
	for _, name := range names {
		if _, ok := segment.ParseName(name); ok {
			n++
		}
	}
	return n
}

// killChild runs the child writer and kills it with SIGKILL once it has
// acknowledged o.killAfter appends, collecting every acknowledgement.
func (d *demoRun) killChild() error {
	exe, err := os.Executable()
	if err != nil {
		return fail("find this binary to re-execute it: %v", err)
	}
	cmd := exec.Command(exe, "demo-child", d.dir, "--writers", strconv.Itoa(d.o.writers))
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		return fail("%v", err)
	}
	start := time.Now()
	if err := cmd.Start(); err != nil {
		return fail("start the child writer: %v", err)
	}
	timer := time.AfterFunc(time.Minute, func() { cmd.Process.Kill() })
	defer timer.Stop()
	sc := bufio.NewScanner(out)
	acks, killed := 0, false
	var killedAt time.Duration
	for sc.Scan() {
		index, rec, ok := strings.Cut(sc.Text(), " ")
		i, err := strconv.ParseUint(index, 10, 64)
		if !ok || err != nil {
			continue
		}
		d.acked[i] = rec
		acks++
		if acks == d.o.killAfter && !killed {
			cmd.Process.Signal(syscall.SIGKILL)
			killed, killedAt = true, time.Since(start)
		}
	}
	werr := cmd.Wait()
	if !killed {
		return fail("the child writer stopped by itself after %d acknowledged appends: %v\n%s", acks, werr, stderr.String())
	}
	d.say("a child process (pid %d) appended from %d writers; killed with SIGKILL mid-append after %v",
		cmd.Process.Pid, d.o.writers, killedAt.Round(time.Millisecond))
	d.detail("it had acknowledged %d appends on its stdout (%s)", acks, cmpOr(fmt.Sprint(werr), "exit 0"))
	return nil
}

// verify checks every acknowledged record, in the snapshot or the log,
// and then the whole directory. It returns how many were lost.
func (d *demoRun) verify(l *wal.Log, snapAt uint64) (int, error) {
	var index uint64
	var r io.ReadCloser
	var err error
	if s, ok := any(l).(snapshotter); ok {
		index, r, err = s.Snapshot()
	} else {
		index, r, err = checkpoint.Load(vfs.Default, d.dir)
	}
	if err != nil {
		return 0, fail("load the snapshot: %v", err)
	}
	snap := map[uint64]string{}
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		i, rec, _ := strings.Cut(sc.Text(), " ")
		n, _ := strconv.ParseUint(i, 10, 64)
		snap[n] = rec
	}
	_, rerr := io.Copy(io.Discard, r) // the reader checks the checksum at the end
	r.Close()
	if err := sc.Err(); err != nil || (rerr != nil && rerr != io.EOF) {
		return 0, fail("read the snapshot: %v %v", err, rerr)
	}
	lost, fromSnap, fromLog := 0, 0, 0
	var maxAck uint64
	for i, want := range d.acked {
		maxAck = max(maxAck, i)
		var got string
		if i <= index {
			got, fromSnap = snap[i], fromSnap+1
		} else {
			b, err := l.Read(i)
			if err != nil {
				fmt.Fprintf(d.w, "   LOST: record %d: %v\n", i, err)
				lost++
				continue
			}
			got, fromLog = string(b), fromLog+1
		}
		if got != want {
			fmt.Fprintf(d.w, "   LOST: record %d holds %q, want %q\n", i, got, want)
			lost++
		}
	}
	if lost > 0 {
		d.say("verification FAILED: %d of %d acknowledged records lost", lost, len(d.acked))
		return lost, nil
	}
	d.say("verified all %d acknowledged records, byte for byte: %d in the snapshot (index %d), %d in the log",
		len(d.acked), fromSnap, snapAt, fromLog)
	if extra := l.LastIndex() - maxAck; l.LastIndex() > maxAck {
		d.detail("the log also holds %s the child appended but was killed before it could report", plural(int64(extra), "record"))
	}
	rep, err := recovery.Check(vfs.Default, d.dir, recovery.CheckOptions{})
	if err != nil {
		return 0, fail("%v", err)
	}
	if len(rep.Damage) > 0 {
		d.say("wal verify: %d damaged places (%s)", len(rep.Damage), rep.Damage[0])
		return len(rep.Damage), nil
	}
	d.say("wal verify: every checksum of %s in %d segments verified, no damage", plural(int64(rep.Records()), "record"), len(rep.Segments))
	return 0, nil
}

func relAll(dir string, paths []string) []string {
	out := make([]string, len(paths))
	for i, p := range paths {
		out[i] = rel(dir, p)
	}
	return out
}
