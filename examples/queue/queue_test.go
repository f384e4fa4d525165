package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/gojournal/journal/cursor"
	"github.com/gojournal/journal/internal/seedtest"
	"github.com/gojournal/journal/wal"
)

// The child side: the test binary re-executed as `queue consume`.
func TestMain(m *testing.M) {
	if os.Getenv("QUEUE_CONSUMER") == "1" {
		if err := consumeMain(os.Args[1:]); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// TestQueue runs a producer and consumer "billing" in this process and
// consumer "audit" in a child process, which it SIGKILLs mid-stream (at a
// random moment) and restarts. Every event is delivered to each consumer
// at least once and in order (audit's restart may deliver the event it
// was handling again, never one out of order), and retention releases
// old segments while the consumers run, never one a consumer still needs.
func TestQueue(t *testing.T) {
	rng := seedtest.Rand(t)
	const n = 3000
	root := t.TempDir()
	logDir, auditState := filepath.Join(root, "log"), filepath.Join(root, "audit")
	out := filepath.Join(root, "audit.events")

	store, err := cursor.Open(cursor.Dir(logDir), &cursor.Options{Log: wal.Options{Logger: quiet}})
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	must(t, Register(store, "billing"))
	audit, err := cursor.Open(auditState, &cursor.Options{Log: wal.Options{Logger: quiet}})
	if err != nil {
		t.Fatal(err)
	}
	must(t, Register(audit, "audit"))
	must(t, audit.Close())

	l, err := wal.Open(logDir, producerOptions(acked(store, auditState)))
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()

	var wg sync.WaitGroup
	var produceErr, billingErr error
	var releasedWhileRunning uint64
	wg.Add(2)
	go func() {
		defer wg.Done()
		produceErr = produce(l, n)
		releasedWhileRunning = l.Metrics().RetentionSegments
	}()
	go func() {
		defer wg.Done()
		want := uint64(1)
		billingErr = Consume(context.Background(), l, store, "billing", func(index uint64, ev []byte) error {
			if index != want || !bytes.Equal(ev, event(index)) {
				return fmt.Errorf("billing got event %d (%.20q), want %d", index, ev, want)
			}
			want++
			return nil
		}, func(index uint64) bool { return index >= n })
	}()

	// audit: started, killed once it has handled some events, restarted.
	killAt := 200 + rng.IntN(1500)
	runConsumer(t, logDir, auditState, out, n, func(cmd *exec.Cmd) {
		waitLines(t, out, killAt)
		cmd.Process.Signal(syscall.SIGKILL)
	})
	runConsumer(t, logDir, auditState, out, n, nil)
	wg.Wait()
	must(t, produceErr)
	must(t, billingErr)

	checkAtLeastOnceInOrder(t, out, n)
	if pos, _ := store.Position("billing"); pos != n {
		t.Fatalf("billing at %d, want %d", pos, n)
	}
	if releasedWhileRunning == 0 {
		t.Fatalf("retention released nothing while the consumers ran")
	}
	// Once both have acknowledged everything, every sealed segment goes.
	deadline := time.Now().Add(10 * time.Second)
	for l.Metrics().Segments > 1 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	m := l.Metrics()
	if m.Segments != 1 || l.FirstIndex() == 1 {
		t.Fatalf("after both consumers acknowledged all: %d segments, first index %d", m.Segments, l.FirstIndex())
	}
	must(t, l.RetentionErr())
	t.Logf("audit killed after %d events; retention released %d segments (%d while producing)", killAt, m.RetentionSegments, releasedWhileRunning)
}

// runConsumer runs the audit consumer as a child process until it exits;
// during, if set, runs meanwhile (and may kill it).
func runConsumer(t *testing.T, logDir, state, out string, until int, during func(*exec.Cmd)) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-log", logDir, "-state", state, "-name", "audit", "-out", out, "-until", strconv.Itoa(until))
	cmd.Env = append(os.Environ(), "QUEUE_CONSUMER=1")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	must(t, cmd.Start())
	if during != nil {
		during(cmd)
	}
	err := cmd.Wait()
	killed := during != nil
	if killed && !strings.Contains(fmt.Sprint(err), "killed") {
		t.Fatalf("consumer ended with %v before it was killed: %s", err, stderr.String())
	}
	if !killed && err != nil {
		t.Fatalf("consumer: %v: %s", err, stderr.String())
	}
}

// waitLines waits until file holds at least n lines.
func waitLines(t *testing.T, file string, n int) {
	t.Helper()
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(time.Millisecond) {
		b, _ := os.ReadFile(file)
		if bytes.Count(b, []byte("\n")) >= n {
			return
		}
	}
	t.Fatalf("the consumer never handled %d events", n)
}

// checkAtLeastOnceInOrder reads the events the consumer handled, in the
// order it handled them: each is the event produced at its index, each
// follows the one before it, except at a restart, which goes back at most
// to the event after the last acknowledged (the events handled since are
// delivered again); and every event up to n is there.
func checkAtLeastOnceInOrder(t *testing.T, file string, n uint64) {
	t.Helper()
	f, err := os.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var prev uint64
	restarts, redelivered := 0, 0
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		idx, ev, _ := strings.Cut(sc.Text(), " ")
		index, err := strconv.ParseUint(idx, 10, 64)
		if err != nil || ev != string(event(index)) {
			t.Fatalf("line %q: not event %d as produced", sc.Text(), index)
		}
		switch {
		case index == prev+1:
		case index <= prev && index >= 1:
			// A restart: the acknowledged position was at or after
			// index-1, and Ack follows handling by one event at most.
			restarts++
			redelivered += int(prev - index + 1)
			if prev-index+1 > 1 {
				t.Fatalf("restart at %d after %d: more than the one unacknowledged event delivered again", index, prev)
			}
		default:
			t.Fatalf("event %d after %d: an event lost or out of order", index, prev)
		}
		prev = index
	}
	must(t, sc.Err())
	if prev != n || restarts > 1 {
		t.Fatalf("the consumer ended at %d (want %d) after %d restarts", prev, n, restarts)
	}
	t.Logf("audit: %d events redelivered after the SIGKILL", redelivered)
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
