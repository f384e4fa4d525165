package wal

import (
	"context"
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/cespare/xxhash/v2"

	"github.com/gojournal/journal/internal/seedtest"
	"github.com/gojournal/journal/vfs/crashfs"
)

// A follower returns only records the writer made durable: a NoSync
// writer on a crash-simulating FS appends (hash-chained records), syncs
// now and then, rotates small segments and truncates both ends, while a
// read-only Log on the same FS follows it. At a random moment the power
// is cut (the state a crash would leave is taken, the syncs not done lost,
// the rest at random); every record the follower had returned by then
// must be in the log Open recovers from that state, byte for byte, unless
// a truncation that had begun dropped or released it.
func TestReadOnlyReturnsOnlyDurableRecords(t *testing.T) {
	rng := seedtest.Rand(t)
	for round := range 25 {
		if msg := durableRound(t, rand.New(rand.NewPCG(rng.Uint64(), 0))); msg != "" {
			t.Fatalf("round %d: %s", round, msg)
		}
	}
}

// seen is a record a follower returned.
type seen struct{ index, gen, hash uint64 }

// durableRound runs one writer and follower until the cut and checks the
// recovered log; it returns what went wrong, or "".
func durableRound(t *testing.T, rng *rand.Rand) string {
	mem := crashfs.New()
	const dir = "/log"
	opts := &Options{SegmentSize: MinSegmentSize, NoSync: true, Logger: quiet, FS: mem}
	w := openT(t, dir, opts)
	defer w.Close()
	f, err := OpenReadOnly(dir, opts)
	must(t, err)
	defer f.Close()

	var mu sync.Mutex // guards got, intend
	var got []seen
	intend := map[uint64]uint64{} // generation -> index TruncateBack keeps
	ctx, cancel := context.WithCancel(context.Background())
	readerDone := make(chan struct{})
	go func() {
		defer close(readerDone)
		r := f.NewReader(0)
		defer func() { r.Close() }()
		for ctx.Err() == nil {
			if !r.NextContext(ctx) {
				r.Close() // overtaken by a truncation: start again
				r = f.NewReader(0)
				continue
			}
			rec := r.Record()
			mu.Lock()
			got = append(got, seen{r.Index(), binary.LittleEndian.Uint64(rec[8:]), xxhash.Sum64(rec)})
			mu.Unlock()
		}
	}()

	var gen uint64
	hashes := map[uint64]uint64{}
	cut := time.Now().Add(time.Duration(5+rng.IntN(60)) * time.Millisecond)
	for time.Now().Before(cut) {
		first, last := w.FirstIndex(), w.LastIndex()
		switch x := rng.IntN(100); {
		case x < 5 && last > first:
			k := last - uint64(rng.IntN(int(min(last-first, 30))))
			mu.Lock()
			gen++
			intend[gen] = k
			mu.Unlock()
			must(t, w.TruncateBack(k))
		case x < 8 && last > first:
			must(t, w.TruncateFront(first+uint64(rng.IntN(int(last-first)))))
		case x < 20:
			must(t, w.Sync())
		default:
			for range 1 + rng.IntN(5) {
				i := w.LastIndex() + 1
				rec := chainRecord(i, gen, hashes[i-1], 24+rng.IntN(900))
				hashes[i] = xxhash.Sum64(rec)
				if _, err := w.Append(rec); err != nil {
					t.Fatal(err)
				}
			}
		}
	}
	// The cut: what the follower returned before it, and the disk after.
	mu.Lock()
	returned := got
	truncs := intend
	img := mem.Crash(crashfs.RandomSectors, rng)
	mu.Unlock()
	cancel()
	<-readerDone

	opts2 := *opts
	opts2.FS = img
	l, err := Open(dir, &opts2)
	if err != nil {
		return fmt.Sprintf("Open after the cut: %v", err)
	}
	defer l.Close()
	for _, s := range returned {
		if s.index < l.FirstIndex() {
			continue // released
		}
		rec, err := l.Read(s.index)
		if err == nil && xxhash.Sum64(rec) == s.hash {
			continue
		}
		explained := false
		for g, k := range truncs {
			explained = explained || (g > s.gen && k < s.index)
		}
		if !explained {
			return fmt.Sprintf("the follower returned record %d (generation %d), which the log recovered after the cut does not hold (log [%d, %d], Read: %v)",
				s.index, s.gen, l.FirstIndex(), l.LastIndex(), err)
		}
	}
	return ""
}
