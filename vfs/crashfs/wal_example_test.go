package crashfs_test

import (
	"fmt"
	"log"
	"log/slog"
	"math/rand/v2"

	"github.com/gojournal/journal/vfs/crashfs"
	"github.com/gojournal/journal/wal"
)

// Crash-test an application built on journal: run it on a crashfs.FS, take
// the state a power loss would leave, and reopen the log on that.
func Example_log() {
	fsys := crashfs.New()
	opts := &wal.Options{FS: fsys, NoSync: true, SegmentSize: wal.MinSegmentSize, Logger: slog.New(slog.DiscardHandler)}
	l, err := wal.Open("bank", opts)
	if err != nil {
		log.Fatal(err)
	}
	l.Append([]byte("deposit 100"))
	l.Append([]byte("withdraw 30"))
	if err := l.Sync(); err != nil { // the two records are durable
		log.Fatal(err)
	}
	l.Append([]byte("withdraw 50")) // with NoSync: handed to the OS only

	// The power goes. The old Log is a process that died: its state is
	// what Crash copied, so closing it changes nothing there.
	after := fsys.Crash(crashfs.SyncedOnly, nil)
	l.Close()

	opts.FS = after
	l, err = wal.Open("bank", opts)
	if err != nil {
		log.Fatal(err)
	}
	defer l.Close()
	for i := l.FirstIndex(); i <= l.LastIndex(); i++ {
		rec, err := l.Read(i)
		if err != nil {
			log.Fatal(err)
		}
		fmt.Printf("%d %s\n", i, rec)
	}
	// Output:
	// 1 deposit 100
	// 2 withdraw 30
}

// Crash a workload after each of its file-system operations in turn, keep
// a random part of what was not synced, and check the log's promise: every
// record whose Append returned nil is there after Open, unchanged.
func Example_everyCrashPoint() {
	opts := func(fsys *crashfs.FS) *wal.Options {
		return &wal.Options{FS: fsys, SegmentSize: wal.MinSegmentSize, Logger: slog.New(slog.DiscardHandler)}
	}
	// workload appends until the FS crashes and returns the records
	// acknowledged.
	workload := func(fsys *crashfs.FS) []string {
		var acked []string
		l, err := wal.Open("db", opts(fsys))
		if err != nil {
			return nil
		}
		defer l.Close()
		for i := range 5 {
			rec := fmt.Sprintf("record %d", i+1)
			if _, err := l.Append([]byte(rec)); err != nil {
				break
			}
			acked = append(acked, rec)
		}
		return acked
	}

	clean := crashfs.New()
	workload(clean)
	rng := rand.New(rand.NewPCG(1, 2)) // print and reuse the seed in a real test
	failures := 0
	for k := 1; k <= clean.Ops(); k++ {
		fsys := crashfs.New()
		fsys.SetCrashAfter(k)
		acked := workload(fsys)
		l, err := wal.Open("db", opts(fsys.Crash(crashfs.Garbled, rng)))
		if err != nil {
			fmt.Printf("crash after operation %d: Open: %v\n", k, err)
			failures++
			continue
		}
		for i, want := range acked {
			if got, err := l.Read(uint64(i + 1)); err != nil || string(got) != want {
				fmt.Printf("crash after operation %d: record %d = %q, %v; want %q\n", k, i+1, got, err, want)
				failures++
			}
		}
		l.Close()
	}
	fmt.Println("acknowledged records lost or changed:", failures)
	// Output:
	// acknowledged records lost or changed: 0
}
