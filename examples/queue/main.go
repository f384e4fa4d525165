// Command queue is a durable event queue on journal, written to be copied:
// a producer appends events to a log, consumers follow it with tailing
// Readers and acknowledge what they have handled in a cursor store, and
// retention releases the segments every consumer has acknowledged.
//
// A consumer that stops (a crash, a SIGKILL, a deploy) resumes after the
// last event it acknowledged: every event is delivered at least once, in
// order; the one it was handling when it stopped may come again.
//
//	go run ./examples/queue                 # producer and two consumers for a few seconds
//	go run ./examples/queue -events 20000
//
// A consumer can also run in a process of its own (queue_test.go kills one
// with SIGKILL and restarts it): it opens the log read-only and keeps its
// position in a cursor store in its own directory, which the producer's
// retention reads with cursor.Inspect.
//
//	queue consume -log DIR -state DIR -name NAME -out FILE -until N
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/gojournal/journal/cursor"
	"github.com/gojournal/journal/vfs"
	"github.com/gojournal/journal/wal"
)

func main() {
	if len(os.Args) > 1 && os.Args[1] == "consume" {
		if err := consumeMain(os.Args[2:]); err != nil {
			log.Fatal(err)
		}
		return
	}
	dir := flag.String("dir", "", "queue directory (default: a new temporary directory, removed afterwards)")
	events := flag.Int("events", 5000, "events to produce")
	flag.Parse()
	if *dir == "" {
		tmp, err := os.MkdirTemp("", "journal-queue-")
		if err != nil {
			log.Fatal(err)
		}
		defer os.RemoveAll(tmp)
		*dir = tmp
	}
	if err := demo(*dir, uint64(*events)); err != nil {
		log.Fatal(err)
	}
}

// quiet discards the log's Info lines (opened, rotated, released).
var quiet = slog.New(slog.DiscardHandler)

// Consume delivers the events of l to handle, in order, starting after
// consumer name's acknowledged position in store, and acknowledges each
// event once handle has returned nil. It follows the log (waiting for new
// events) until ctx ends (it then returns nil) or until stop returns
// true for an event handled. If retention released events the consumer
// had not acknowledged (RetentionOptions.Overrun), it returns an error
// satisfying errors.Is(err, wal.ErrCompacted) that names them.
func Consume(ctx context.Context, l *wal.Log, store *cursor.Store, name string,
	handle func(index uint64, event []byte) error, stop func(index uint64) bool) error {
	pos, _ := store.Position(name)
	r := l.NewReader(pos + 1)
	defer r.Close()
	for index, event := range r.Follow(ctx) {
		if err := handle(index, event); err != nil {
			return err
		}
		// The event was handled: from now on a restart resumes after
		// it. A crash between handle and Ack delivers it again.
		if err := store.Ack(name, index); err != nil {
			return err
		}
		if stop(index) {
			return nil
		}
	}
	if err := r.Err(); err != nil && !errors.Is(err, ctx.Err()) {
		return fmt.Errorf("consumer %s: %w", name, err)
	}
	return nil
}

// Register makes consumer name known at the start of the log, so that
// retention keeps every event for it from now on. A consumer already
// known keeps its position.
func Register(store *cursor.Store, name string) error { return store.Ack(name, 0) }

// acked is the producer's RetentionOptions.Acked: the highest event every
// consumer has acknowledged, over the producer's own cursor store and the
// stores of consumers that run in processes of their own (read without
// opening them). A store it cannot read protects every event.
func acked(local *cursor.Store, remote ...string) func() (uint64, bool) {
	return func() (uint64, bool) {
		index, ok := local.Acked()
		for _, dir := range remote {
			cs, err := cursor.Inspect(vfs.Default, dir)
			if err != nil {
				return 0, true
			}
			for _, c := range cs {
				if !ok || c.Index < index {
					index, ok = c.Index, true
				}
			}
		}
		return index, ok
	}
}

// producerOptions keep small segments, so that retention has segments to
// release in a short demo, and release what every consumer acknowledged.
func producerOptions(acked func() (uint64, bool)) *wal.Options {
	return &wal.Options{SegmentSize: wal.MinSegmentSize, Logger: quiet, Retention: wal.RetentionOptions{
		Acked: acked, ReleaseAcked: true, Interval: 10 * time.Millisecond,
	}}
}

// produce appends events 1 to n, pausing now and then so that consumers
// follow a live stream.
func produce(l *wal.Log, n uint64) error {
	for i := l.LastIndex() + 1; i <= n; i++ {
		if _, err := l.Append(event(i)); err != nil {
			return err
		}
		if i%100 == 0 {
			time.Sleep(5 * time.Millisecond)
		}
	}
	return nil
}

func event(i uint64) []byte { return fmt.Appendf(nil, "event %d: %0100d", i, i) }

// demo runs a producer and two consumers in this process.
func demo(dir string, n uint64) error {
	store, err := cursor.Open(cursor.Dir(dir), &cursor.Options{Log: wal.Options{Logger: quiet}})
	if err != nil {
		return err
	}
	defer store.Close()
	for _, name := range []string{"billing", "audit"} {
		if err := Register(store, name); err != nil {
			return err
		}
	}
	l, err := wal.Open(dir, producerOptions(store.Acked))
	if err != nil {
		return err
	}
	defer l.Close()
	start := time.Now()
	var wg sync.WaitGroup
	errs := make([]error, 3)
	wg.Add(3)
	go func() { defer wg.Done(); errs[0] = produce(l, n) }()
	for k, name := range []string{"billing", "audit"} {
		go func() {
			defer wg.Done()
			next := uint64(0)
			errs[k+1] = Consume(context.Background(), l, store, name, func(index uint64, ev []byte) error {
				if next != 0 && index != next {
					return fmt.Errorf("%s: event %d after %d", name, index, next-1)
				}
				next = index + 1
				return nil
			}, func(index uint64) bool { return index >= n })
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return err
	}
	m := l.Metrics()
	fmt.Printf("%d events produced and consumed twice in %v; acknowledgements: %d (%d fdatasyncs)\n",
		n, time.Since(start).Round(time.Millisecond), store.Log().Stats().Records, store.Log().Stats().Syncs)
	fmt.Printf("retention released %d segments (%d KiB); the log now holds events %d to %d in %d segments\n",
		m.RetentionSegments, m.RetentionBytes>>10, l.FirstIndex(), l.LastIndex(), m.Segments)
	for _, c := range store.List() {
		fmt.Printf("consumer %s at %d\n", c.Name, c.Index)
	}
	return nil
}

// consumeMain is a consumer in a process of its own: it follows the log in
// -log read-only, writes each event it handles to -out (one line, before
// acknowledging it) and keeps its position in the cursor store in -state.
// It exits once it has acknowledged event -until.
func consumeMain(args []string) error {
	fl := flag.NewFlagSet("consume", flag.ContinueOnError)
	logDir := fl.String("log", "", "the log directory")
	state := fl.String("state", "", "the consumer's cursor store directory")
	name := fl.String("name", "", "the consumer's name")
	out := fl.String("out", "", "file the events handled are appended to")
	until := fl.Uint64("until", 0, "exit after acknowledging this event")
	if err := fl.Parse(args); err != nil {
		return err
	}
	store, err := cursor.Open(*state, &cursor.Options{Log: wal.Options{Logger: quiet}})
	if err != nil {
		return err
	}
	defer store.Close()
	l, err := wal.OpenReadOnly(*logDir, &wal.Options{Logger: quiet})
	if err != nil {
		return err
	}
	defer l.Close()
	f, err := os.OpenFile(filepath.Clean(*out), os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		return err
	}
	defer f.Close()
	return Consume(context.Background(), l, store, *name, func(index uint64, ev []byte) error {
		// A write(2) survives the process's SIGKILL: the test reads
		// what was handled from this file.
		_, err := fmt.Fprintf(f, "%d %s\n", index, ev)
		return err
	}, func(index uint64) bool { return index >= *until })
}
