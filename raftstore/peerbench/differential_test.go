package peerbench

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"math/rand/v2"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gojournal/journal/internal/seedtest"
	"github.com/gojournal/journal/raftstore"
	"github.com/gojournal/journal/wal"
	"github.com/hashicorp/raft"
	raftboltdb "github.com/hashicorp/raft-boltdb/v2"
)

// The differential test runs one random sequence of the calls raft makes
// on raft-boltdb (the reference: the LogStore raft was written against)
// and on journal's stores, and compares everything they answer after
// every call. Calls raft never makes (a StoreLogs leaving a gap, a
// DeleteRange inside the log) go to journal's stores alone: they must
// refuse them with raftstore.ErrNotContiguous and change nothing, where
// raft-boltdb would store a gap.

// diffStore is a store under comparison, reopened as a restart would.
type diffStore struct {
	name   string
	s      store
	reopen func(t *testing.T) // closes s and opens it again
}

var diffOptions = &raftstore.Options{CompactAfter: 8,
	Log: &wal.Options{SegmentSize: wal.MinSegmentSize, Logger: slog.New(slog.DiscardHandler)}}

func openBolt(t *testing.T, dir string) *diffStore {
	d := &diffStore{name: "raft-boltdb"}
	path := filepath.Join(dir, "raft.db")
	open := func() {
		s, err := raftboltdb.NewBoltStore(path)
		if err != nil {
			t.Fatal(err)
		}
		d.s = s
	}
	open()
	d.reopen = func(t *testing.T) { closeT(t, d.s); open() }
	return d
}

func openJournalStore(t *testing.T, dir string) *diffStore {
	d := &diffStore{name: "Store"}
	open := func() {
		s, err := raftstore.Open(dir, diffOptions)
		if err != nil {
			t.Fatal(err)
		}
		d.s = s
	}
	open()
	d.reopen = func(t *testing.T) { closeT(t, d.s); open() }
	return d
}

// sharedStore is group 0 of a Shared store, beside groups 1 and
// MaxUint64 that the test keeps busy (noise) so that the shared log's
// front is released under group 0's feet.
type sharedStore struct {
	*raftstore.GroupStore
	sh *raftstore.Shared
}

func (s sharedStore) Close() error { return s.sh.Close() }

var noiseGroups = []uint64{1, math.MaxUint64}

func openJournalShared(t *testing.T, dir string) *diffStore {
	d := &diffStore{name: "Shared group 0"}
	open := func() {
		sh, err := raftstore.OpenShared(dir, diffOptions)
		if err != nil {
			t.Fatal(err)
		}
		g, err := sh.Group(0)
		if err != nil {
			t.Fatal(err)
		}
		d.s = sharedStore{g, sh}
	}
	open()
	d.reopen = func(t *testing.T) { closeT(t, d.s); open() }
	return d
}

func closeT(t *testing.T, s store) {
	t.Helper()
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
}

// diffGen makes the calls: raft's shapes, with entries of every field and
// size, terms that only grow.
type diffGen struct {
	rng  *rand.Rand
	term uint64
	high uint64 // the highest index ever stored, for restarts below it
}

func (g *diffGen) entry(i uint64) *raft.Log {
	rng := g.rng
	e := &raft.Log{Index: i, Term: g.term, Type: raft.LogType(rng.IntN(7))}
	switch r := rng.IntN(500); {
	case r == 0:
		e.Data = bytes.Repeat([]byte{byte(i)}, 1<<20+rng.IntN(4096))
	case r < 100: // no data
	default:
		e.Data = bytes.Repeat([]byte{byte(i)}, rng.IntN(600))
	}
	if rng.IntN(3) == 0 {
		e.Extensions = []byte(fmt.Sprintf("ext-%d-%d", i, rng.IntN(1000)))
	}
	switch rng.IntN(40) {
	case 0, 1, 2, 3, 4, 5, 6, 7, 8, 9: // the zero time: not set
	case 10: // outside the years of int64 Unix nanoseconds
		e.AppendedAt = time.Unix(-20_000_000_000+rng.Int64N(1e12), rng.Int64N(1e9))
	default:
		e.AppendedAt = time.Unix(1_700_000_000+rng.Int64N(1e8), rng.Int64N(1e9))
	}
	return e
}

func (g *diffGen) entries(from, n uint64) []*raft.Log {
	logs := make([]*raft.Log, n)
	for k := range logs {
		logs[k] = g.entry(from + uint64(k))
	}
	g.high = max(g.high, from+n-1)
	return logs
}

// diffCall is one call: run on every store, or refused by journal's (then
// raft-boltdb is not called).
type diffCall struct {
	name    string
	call    func(s store) error
	refused bool
}

func (g *diffGen) next(first, last uint64) diffCall {
	rng := g.rng
	empty := last == 0
	appendAt := func(from, n uint64) diffCall {
		logs := g.entries(from, n)
		return diffCall{name: fmt.Sprintf("StoreLogs(%d..%d, term %d)", from, from+n-1, g.term),
			call: func(s store) error { return s.StoreLogs(logs) }}
	}
	del := func(lo, hi uint64) diffCall {
		return diffCall{name: fmt.Sprintf("DeleteRange(%d, %d)", lo, hi),
			call: func(s store) error { return s.DeleteRange(lo, hi) }}
	}
	n := 1 + rng.Uint64N(8)
	if rng.IntN(10) == 0 {
		n = 64 // raft's MaxAppendEntries
	}
	switch r := rng.IntN(100); {
	case empty && r < 60:
		// A new log, or one emptied by a snapshot install: anywhere,
		// below or past where it was.
		return appendAt(1+rng.Uint64N(g.high+50), n)
	case r < 40:
		return appendAt(last+1, n)
	case r < 50:
		// A conflicting tail: raft deletes [k, last] and stores from
		// k in a newer term (the next call, when it continues the log).
		g.term++
		return del(first+rng.Uint64N(last-first+1), last)
	case r < 58:
		// Compaction after a snapshot, keeping a trailing part.
		return del(first, first+rng.Uint64N(last-first+1))
	case r < 61:
		// removeOldLogs after a restore, and ranges reaching past both
		// ends or up to the largest index.
		return del([]uint64{first, 0, 1}[rng.IntN(3)], []uint64{last, last + 10, math.MaxUint64}[rng.IntN(3)])
	case r < 64 && !empty:
		return diffCall{name: fmt.Sprintf("StoreLogs(%d) leaving a gap", last+2), refused: true,
			call: func(s store) error { return s.StoreLogs(g.entries(last+2, 1)) }}
	case r < 66 && last-first >= 2:
		mid := first + 1 + rng.Uint64N(last-first-1)
		return diffCall{name: fmt.Sprintf("DeleteRange(%d, %d) inside [%d, %d]", mid, mid, first, last), refused: true,
			call: func(s store) error { return s.DeleteRange(mid, mid) }}
	case r < 74:
		key, val := g.key(), bytes.Repeat([]byte{byte(r)}, rng.IntN(3)*rng.IntN(100))
		return diffCall{name: fmt.Sprintf("Set(%q, %d bytes)", key, len(val)),
			call: func(s store) error { return s.Set(key, val) }}
	case r < 82:
		key, val := g.key(), rng.Uint64()
		return diffCall{name: fmt.Sprintf("SetUint64(%q, %d)", key, val),
			call: func(s store) error { return s.SetUint64(key, val) }}
	}
	return appendAt(last+1, n)
}

// key is one of a few stable keys, raft's among them (not the empty key,
// which bbolt refuses).
func (g *diffGen) key() []byte {
	return []byte([]string{"CurrentTerm", "LastVoteTerm", "LastVoteCand", "k\x00"}[g.rng.IntN(4)])
}

func TestDifferentialAgainstBoltDB(t *testing.T) {
	rng := rand.New(rand.NewPCG(seedtest.Seed(t), 0)) // stream 0, as before, so old seeds replay
	steps := 1500
	if testing.Short() {
		steps = 300
	}
	ref := openBolt(t, t.TempDir())
	stores := []*diffStore{openJournalStore(t, t.TempDir()), openJournalShared(t, t.TempDir())}
	defer func() {
		for _, d := range append(stores, ref) {
			d.s.Close()
		}
	}()
	gen := &diffGen{rng: rng, term: 1}
	noise := &diffGen{rng: rng, term: 1}
	calls := map[string]int{}
	defer func() { t.Logf("calls: %v", calls) }()
	for step := range steps {
		if rng.IntN(60) == 0 {
			for _, d := range append(stores, ref) {
				d.reopen(t)
			}
			calls["reopen"]++
			compareAll(t, ref, stores, rng, fmt.Sprintf("step %d, after reopen", step))
			continue
		}
		first, last := bounds(t, ref.s)
		c := gen.next(first, last)
		where := fmt.Sprintf("step %d: %s on [%d, %d]", step, c.name, first, last)
		kind, _, _ := strings.Cut(c.name, "(")
		if c.refused {
			kind += ", refused"
		}
		calls[kind]++
		var want error
		if c.refused {
			want = raftstore.ErrNotContiguous
		} else {
			want = c.call(ref.s)
			if want != nil {
				t.Fatalf("%s: raft-boltdb: %v", where, want)
			}
		}
		for _, d := range stores {
			if err := c.call(d.s); !errors.Is(err, want) || (err == nil) != (want == nil) {
				t.Fatalf("%s: %s: %v, want %v", where, d.name, err, want)
			}
		}
		compareAll(t, ref, stores, rng, where)
		stirNoise(t, stores[1], noise)
	}
}

// stirNoise gives a noise group of the shared store a call: appends, and
// compactions that release the shared log's front.
func stirNoise(t *testing.T, d *diffStore, gen *diffGen) {
	t.Helper()
	sh := d.s.(sharedStore).sh
	g, err := sh.Group(noiseGroups[gen.rng.IntN(len(noiseGroups))])
	if err != nil {
		t.Fatal(err)
	}
	first, last := bounds(t, g)
	if last == 0 {
		first = 1 + gen.rng.Uint64N(1000)
		last = first - 1
	}
	if gen.rng.IntN(3) == 0 && last >= first {
		err = g.DeleteRange(first, first+gen.rng.Uint64N(last-first+1))
	} else {
		err = g.StoreLogs(gen.entries(last+1, 1+gen.rng.Uint64N(4)))
	}
	if err != nil {
		t.Fatalf("noise group: %v", err)
	}
}

func bounds(t *testing.T, s raft.LogStore) (first, last uint64) {
	t.Helper()
	first, err1 := s.FirstIndex()
	last, err2 := s.LastIndex()
	if err := errors.Join(err1, err2); err != nil {
		t.Fatal(err)
	}
	return first, last
}

// compareAll compares every store with the reference: bounds, every
// entry and the indexes around them, and every stable key.
func compareAll(t *testing.T, ref *diffStore, stores []*diffStore, rng *rand.Rand, where string) {
	t.Helper()
	first, last := bounds(t, ref.s)
	probe := []uint64{0, 1, first - 1, last + 1, last + 2, rng.Uint64N(last + 100), math.MaxUint64}
	for i := first; i <= last && last != 0; i++ {
		probe = append(probe, i)
	}
	for _, d := range stores {
		if f, l := bounds(t, d.s); f != first || l != last {
			t.Fatalf("%s: %s holds [%d, %d], raft-boltdb [%d, %d]", where, d.name, f, l, first, last)
		}
		for _, i := range probe {
			var want, got raft.Log
			werr, gerr := ref.s.GetLog(i, &want), d.s.GetLog(i, &got)
			if werr != nil && werr != raft.ErrLogNotFound {
				t.Fatalf("%s: GetLog(%d): raft-boltdb: %v", where, i, werr)
			}
			// raft compares with ==: the sentinel itself, never wrapped.
			if gerr != werr {
				t.Fatalf("%s: GetLog(%d): %s: %v, raft-boltdb: %v", where, i, d.name, gerr, werr)
			}
			if werr == nil && !sameLog(&want, &got) {
				t.Fatalf("%s: GetLog(%d): %s: %s\nraft-boltdb: %s", where, i, d.name, show(&got), show(&want))
			}
		}
		for _, k := range []string{"CurrentTerm", "LastVoteTerm", "LastVoteCand", "k\x00", "never set"} {
			compareKey(t, ref.s, d, []byte(k), where)
		}
	}
}

// compareKey compares one stable key. raft-boltdb answers a missing key
// with an error whose text is "not found" (what raft checks for); journal
// with an empty value (or 0) and a nil error, which raft takes the same
// way. A key set to an empty value is found but empty in raft-boltdb.
func compareKey(t *testing.T, ref store, d *diffStore, k []byte, where string) {
	t.Helper()
	want, werr := ref.Get(k)
	got, gerr := d.s.Get(k)
	if gerr != nil || (werr != nil && werr.Error() != "not found") || !bytes.Equal(want, got) {
		t.Fatalf("%s: Get(%q): %s: %q, %v; raft-boltdb: %q, %v", where, k, d.name, got, gerr, want, werr)
	}
	if len(want) != 8 {
		return
	}
	wantU, _ := ref.GetUint64(k)
	if gotU, err := d.s.GetUint64(k); err != nil || gotU != wantU {
		t.Fatalf("%s: GetUint64(%q): %s: %d, %v; raft-boltdb: %d", where, k, d.name, gotU, err, wantU)
	}
}

func sameLog(a, b *raft.Log) bool {
	return a.Index == b.Index && a.Term == b.Term && a.Type == b.Type && bytes.Equal(a.Data, b.Data) &&
		bytes.Equal(a.Extensions, b.Extensions) && a.AppendedAt.Equal(b.AppendedAt)
}

func show(l *raft.Log) string {
	return fmt.Sprintf("{index %d term %d type %d data %d bytes ext %q at %v}",
		l.Index, l.Term, l.Type, len(l.Data), l.Extensions, l.AppendedAt)
}
