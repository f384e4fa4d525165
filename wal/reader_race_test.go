package wal

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"runtime"
	"strings"
	"sync"
	"testing"

	"github.com/gojournal/journal/internal/seedtest"
)

// truncations is what the one mutating goroutine of
// TestReadersRacingTruncations has done, as the readers check against it.
type truncations struct {
	mu      sync.Mutex
	first   uint64 // FirstIndex after the last TruncateFront that returned
	started []back // TruncateBacks begun
	done    []back // TruncateBacks returned
}

// back is one TruncateBack(index); records appended before it carry a
// version below ver.
type back struct{ ver, index uint64 }

func (tr *truncations) view() (first uint64, started, done []back) {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	return tr.first, tr.started, tr.done
}

// versioned is the record appended at index while ver TruncateBacks had
// run: an index reused after a TruncateBack gets different bytes. The
// padding makes it long enough to be compressed.
func versioned(index, ver uint64) []byte {
	return fmt.Appendf(nil, "%d@%d %s", index, ver, strings.Repeat("pad ", 20))
}

func parseVersioned(b []byte) (index, ver uint64, err error) {
	_, err = fmt.Sscanf(string(b), "%d@%d", &index, &ver)
	return index, ver, err
}

// Readers run alongside appends, TruncateFront and TruncateBack. Whatever
// the interleaving, a Reader returns consecutive records, each the one the
// log held at that index when Next was called: never one a truncation had
// removed before Next began, never a skip; it stops only with ErrCompacted
// or ErrTruncated, when a truncation did remove what it was at, and never
// with ErrCorrupt or a file error.
func TestReadersRacingTruncations(t *testing.T) {
	rng := seedtest.Rand(t)
	codec := Compression(rng.IntN(3))
	t.Logf("compression %d", codec)
	l := openT(t, t.TempDir(), &Options{SegmentSize: MinSegmentSize, NoSync: true, Logger: quiet, Compression: codec})
	defer l.Close()
	tr := &truncations{first: 1}
	const readers = 3
	seeds := make([]uint64, readers)
	for i := range seeds {
		seeds[i] = rng.Uint64()
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	stats := make([]readerStats, readers)
	for i := range readers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rr := rand.New(rand.NewPCG(seeds[i], uint64(i)))
			for {
				select {
				case <-stop:
					return
				default:
				}
				if err := raceReader(l, tr, rr, &stats[i]); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	err := mutate(l, tr, rng, 2000)
	close(stop)
	wg.Wait()
	if err != nil {
		t.Fatal(err)
	}
	var sum readerStats
	for _, s := range stats {
		sum.records += s.records
		sum.compacted += s.compacted
		sum.truncated += s.truncated
		sum.readers += s.readers
	}
	t.Logf("%d readers returned %d records; %d stopped by ErrCompacted, %d by ErrTruncated",
		sum.readers, sum.records, sum.compacted, sum.truncated)
	if sum.records == 0 || sum.compacted+sum.truncated == 0 {
		t.Fatalf("the readers met no truncation: %+v", sum)
	}
}

type readerStats struct{ readers, records, compacted, truncated int }

// mutate appends and truncates at random, ops times, recording each
// truncation in tr.
func mutate(l *Log, tr *truncations, rng *rand.Rand, ops int) error {
	var ver uint64
	for range ops {
		first, last := l.FirstIndex(), l.LastIndex()
		switch p := rng.IntN(100); {
		case p < 6 && last >= first:
			index := first + rng.Uint64N(min(last-first+2, 300))
			if err := l.TruncateFront(index); err != nil {
				return err
			}
			tr.mu.Lock()
			tr.first = index
			tr.mu.Unlock()
		case p < 12 && last+1 >= first:
			index := last - rng.Uint64N(min(last+2-first, 40))
			b := back{ver: ver + 1, index: index}
			tr.mu.Lock()
			tr.started = append(tr.started, b)
			tr.mu.Unlock()
			if err := l.TruncateBack(index); err != nil {
				return err
			}
			ver++
			tr.mu.Lock()
			tr.done = append(tr.done, b)
			tr.mu.Unlock()
		default:
			want := last + 1
			if got, err := l.Append(versioned(want, ver)); err != nil || got != want {
				return fmt.Errorf("Append = %d, %v; want %d", got, err, want)
			}
		}
		if rng.IntN(8) == 0 {
			runtime.Gosched()
		}
	}
	return nil
}

// raceReader runs one Reader from a random index until it stops with an
// error or has been at the end of the log a few times, checking every
// record and error against tr.
func raceReader(l *Log, tr *truncations, rng *rand.Rand, st *readerStats) error {
	var from uint64
	switch first, last := l.FirstIndex(), l.LastIndex(); rng.IntN(3) {
	case 0: // from the start
	case 1: // around the start, perhaps below it
		from = max(1, first-min(first-1, rng.Uint64N(4)))
	default:
		from = first + rng.Uint64N(max(last+1, first)-first+1)
	}
	st.readers++
	r := l.NewReader(from)
	defer r.Close()
	var prev, prevVer uint64 // the last record returned, 0 if none
	for ends := 0; ends < 3; {
		first, _, done := tr.view()
		if !r.Next() {
			err := r.Err()
			if err == nil {
				ends++
				runtime.Gosched()
				continue
			}
			return justify(l, tr, err, from, prev, prevVer, st)
		}
		i := r.Index()
		index, ver, err := parseVersioned(r.Record())
		switch {
		case err != nil || index != i:
			return fmt.Errorf("reader from %d: record %d holds %q", from, i, r.Record())
		case prev != 0 && i != prev+1, prev == 0 && from != 0 && i != from:
			return fmt.Errorf("reader from %d: record %d follows %d", from, i, prev)
		case i < first:
			return fmt.Errorf("reader from %d: returned record %d, released (log starts at %d) before Next", from, i, first)
		}
		for _, b := range done {
			if b.ver > ver && b.index < i {
				return fmt.Errorf("reader from %d: returned record %d@%d, dropped by TruncateBack(%d) before Next", from, i, ver, b.index)
			}
		}
		prev, prevVer = i, ver
		st.records++
	}
	return nil
}

// justify checks that a truncation explains the error that stopped a
// Reader whose last record was prev (0 if none).
func justify(l *Log, tr *truncations, err error, from, prev, prevVer uint64, st *readerStats) error {
	next := prev + 1
	if prev == 0 {
		next = from
	}
	switch {
	case errors.Is(err, ErrCompacted):
		// A Reader from 0 that returned nothing was at the FirstIndex of
		// its first Next, unknown here: any TruncateFront explains it.
		if next == 0 && l.FirstIndex() > 1 {
			st.compacted++
			return nil
		}
		if next == 0 || next >= l.FirstIndex() {
			return fmt.Errorf("reader from %d at %d: %v, but the log starts at %d", from, next, err, l.FirstIndex())
		}
		st.compacted++
		return nil
	case errors.Is(err, ErrTruncated):
		_, started, _ := tr.view()
		for _, b := range started {
			if b.ver > prevVer && b.index < prev {
				st.truncated++
				return nil
			}
		}
		return fmt.Errorf("reader from %d after %d@%d: %v, but no TruncateBack dropped it", from, prev, prevVer, err)
	}
	return fmt.Errorf("reader from %d after %d: %v", from, prev, err)
}
