package wal

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cespare/xxhash/v2"
	"github.com/gojournal/journal/internal/seedtest"
)

// chainLog is a writer whose records form a hash chain: each carries its
// index, the number of TruncateBacks before its append (its generation)
// and the hash of the record before it. A Reader that returned a record a
// TruncateBack dropped and then one appended after the truncation breaks
// the chain, as does one that skips a record. It also remembers each
// truncation, so a Reader can check that a step begun after a truncation
// returned never yields a record it removed.
type chainLog struct {
	mu     sync.Mutex
	l      atomic.Pointer[Log]
	hashes []uint64 // hashes[i-1]: the hash of record i, for i <= LastIndex
	backs  []uint64 // backs[g]: the index the (g+1)th TruncateBack kept up to
	front  uint64   // the highest TruncateFront that returned
	// retention: background retention releases records too, so a
	// truncation chosen from FirstIndex may find it moved past.
	retention bool
}

// overtaken reports whether err is a truncation refused because
// retention released the records it was to keep meanwhile.
func (c *chainLog) overtaken(err error) bool {
	return c.retention && errors.Is(err, ErrOutOfRange)
}

// chainRecord encodes record index of generation gen after a record whose
// hash is prev, padded to size bytes.
func chainRecord(index, gen, prev uint64, size int) []byte {
	b := make([]byte, max(size, 24))
	binary.LittleEndian.PutUint64(b, index)
	binary.LittleEndian.PutUint64(b[8:], gen)
	binary.LittleEndian.PutUint64(b[16:], prev)
	for i := 24; i < len(b); i++ {
		b[i] = byte(index*31 + gen + uint64(i))
	}
	return b
}

// truncs is what a Reader step must respect: the truncations that had
// returned when it began.
type truncs struct {
	backs []uint64
	front uint64
}

func (c *chainLog) done() truncs {
	c.mu.Lock()
	defer c.mu.Unlock()
	return truncs{backs: c.backs[:len(c.backs):len(c.backs)], front: c.front}
}

// dropped says why record index of generation gen may not be returned by
// a step that began after the truncations in tr, or "".
func (tr truncs) dropped(index, gen uint64) string {
	if index < tr.front {
		return fmt.Sprintf("below TruncateFront(%d)", tr.front)
	}
	for g := gen; g < uint64(len(tr.backs)); g++ {
		if index > tr.backs[g] {
			return fmt.Sprintf("dropped by TruncateBack(%d) (generation %d)", tr.backs[g], g)
		}
	}
	return ""
}

// step runs one random writer operation.
func (c *chainLog) step(t *testing.T, rng *rand.Rand) {
	l := c.l.Load()
	first, last := l.FirstIndex(), l.LastIndex()
	switch n := rng.IntN(100); {
	case n < 8 && last >= first:
		k := first - 1 + rng.Uint64N(last-first+2)
		if err := l.TruncateBack(k); !c.overtaken(err) {
			must(t, err)
		} else {
			break
		}
		c.mu.Lock()
		c.backs = append(c.backs, k)
		c.hashes = c.hashes[:k]
		c.mu.Unlock()
	case n < 11 && last > first:
		k := first + rng.Uint64N(last-first)
		if err := l.TruncateFront(k); !c.overtaken(err) {
			must(t, err)
		} else {
			break
		}
		c.mu.Lock()
		c.front = max(c.front, k)
		c.mu.Unlock()
	default:
		for range 1 + rng.IntN(8) {
			c.mu.Lock()
			index, gen, prev := uint64(len(c.hashes))+1, uint64(len(c.backs)), uint64(0)
			if index > 1 {
				prev = c.hashes[index-2]
			}
			rec := chainRecord(index, gen, prev, 24+rng.IntN(3000))
			c.hashes = append(c.hashes, xxhash.Sum64(rec))
			c.mu.Unlock()
			if got, err := l.Append(rec); err != nil || got != index {
				t.Errorf("Append = %d, %v; want %d", got, err, index)
				return
			}
		}
	}
}

// chainReader reads log() with NextContext until ctx ends, checking every
// record, and starts a new Reader at FirstIndex whenever one stops with
// ErrTruncated, ErrCompacted or (on the writer's log, reopened) ErrClosed.
// It returns how many records it checked and how often it restarted.
func chainReader(ctx context.Context, c *chainLog, log func() *Log) (n, restarts int, err error) {
	for ctx.Err() == nil {
		l := log()
		r := l.NewReader(0)
		var prevIndex, prevHash, prevGen uint64
		var prevWhere string
		for {
			tr := c.done()
			if !r.NextContext(ctx) {
				break
			}
			rec := r.Record()
			index, gen := binary.LittleEndian.Uint64(rec), binary.LittleEndian.Uint64(rec[8:])
			switch {
			case index != r.Index():
				err = fmt.Errorf("Reader at %d returned record %d", r.Index(), index)
			case prevIndex != 0 && index != prevIndex+1:
				err = fmt.Errorf("Reader returned %d after %d", index, prevIndex)
			case prevIndex != 0 && binary.LittleEndian.Uint64(rec[16:]) != prevHash:
				err = fmt.Errorf("Reader returned record %d (generation %d) after a record %d (generation %d) it does not follow; truncations before the step: back %v, front %d; prev from %s, now %s",
					index, gen, prevIndex, prevGen, tr.backs[max(len(tr.backs), 5)-5:], tr.front, prevWhere, where(r))
			case tr.dropped(index, gen) != "":
				err = fmt.Errorf("Reader returned record %d (generation %d), %s before the step began", index, gen, tr.dropped(index, gen))
			}
			if err != nil {
				r.Close()
				return n, restarts, err
			}
			prevIndex, prevHash, prevGen, prevWhere = index, xxhash.Sum64(rec), gen, where(r)
			n++
		}
		rerr := r.Err()
		r.Close()
		switch {
		case ctx.Err() != nil:
		case errors.Is(rerr, ErrTruncated), errors.Is(rerr, ErrCompacted):
			restarts++
		case errors.Is(rerr, ErrClosed) && l.ro == nil:
			for log() == l && ctx.Err() == nil {
				time.Sleep(time.Millisecond)
			}
		default:
			return n, restarts, fmt.Errorf("Reader stopped with %v", rerr)
		}
	}
	return n, restarts, nil
}

// TestReadersFollowTruncationsAndRewrites: a writer appends, truncates the
// back (then appends different records at the same indexes), truncates
// the front and closes and reopens the log, while a Reader of its own
// Log and one of a read-only Log follow it. Neither ever returns a record
// a truncation that had returned removed, a record that does not follow
// the one before it (a dropped record followed by its replacement's
// successor), or skips one: they stop with ErrTruncated or ErrCompacted
// instead, and start again.
func TestReadersFollowTruncationsAndRewrites(t *testing.T) {
	rng := seedtest.Rand(t)
	dir := t.TempDir()
	opts := &Options{SegmentSize: MinSegmentSize, Logger: quiet}
	c := &chainLog{}
	c.l.Store(openT(t, dir, opts))
	f, err := OpenReadOnly(dir, &Options{Logger: quiet})
	must(t, err)
	defer f.Close()

	ctx, cancel := context.WithCancel(context.Background())
	type result struct {
		who         string
		n, restarts int
		err         error
	}
	results := make(chan result, 2)
	for _, rd := range []struct {
		who string
		log func() *Log
	}{{"writer's Log", c.l.Load}, {"read-only Log", func() *Log { return f }}} {
		go func() {
			n, restarts, err := chainReader(ctx, c, rd.log)
			results <- result{rd.who, n, restarts, err}
		}()
	}
	steps := 3000
	if testing.Short() {
		steps = 600
	}
	for i := range steps {
		if i%500 == 499 {
			must(t, c.l.Load().Close())
			c.l.Store(openT(t, dir, opts))
		}
		c.step(t, rng)
		if t.Failed() {
			break
		}
	}
	time.Sleep(50 * time.Millisecond) // let the Readers catch up
	cancel()
	for range 2 {
		r := <-results
		t.Logf("%s: %d records checked, %d restarts", r.who, r.n, r.restarts)
		if r.err != nil {
			t.Errorf("%s: %v", r.who, r.err)
		}
	}
	must(t, c.l.Load().Close())
}

// where describes the segment a Reader's current record came from and
// the view it was read in, for failure messages.
func where(r *Reader) string {
	var seq uint64
	if r.l.ro != nil {
		seq = r.l.viewSeq()
	}
	r.l.mu.Lock()
	defer r.l.mu.Unlock()
	return fmt.Sprintf("{%s salt %x active %p(first %d salt %x) view %d first %d last %d sealed %d}", r.path, r.salt, r.active, r.active.first(), r.active.h.Salt, seq, r.l.first, r.l.last, len(r.l.sealed))
}
