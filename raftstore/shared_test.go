package raftstore

import (
	"encoding/hex"
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gojournal/journal/vfs/crashfs"
	"github.com/gojournal/journal/wal"
	"github.com/hashicorp/raft"
)

func openSharedT(t *testing.T, dir string, o *Options) *Shared {
	t.Helper()
	sh, err := OpenShared(dir, o)
	if err != nil {
		t.Fatalf("OpenShared: %v", err)
	}
	return sh
}

func groupT(t *testing.T, sh *Shared, id uint64) *GroupStore {
	t.Helper()
	g, err := sh.Group(id)
	if err != nil {
		t.Fatalf("Group(%d): %v", id, err)
	}
	return g
}

// groupsState is what a shared store holds: each group's state.
type groupsState map[uint64]state

func (m groupsState) clone() groupsState {
	c := groupsState{}
	for id, st := range m {
		c[id] = st.clone()
	}
	return c
}

func (m groupsState) equal(o groupsState) bool {
	return maps.EqualFunc(m, o, func(a, b state) bool { return a.equal(b) })
}

func (m groupsState) String() string {
	var b strings.Builder
	for _, id := range slices.Sorted(maps.Keys(m)) {
		fmt.Fprintf(&b, "group %d: %v; ", id, m[id])
	}
	return b.String()
}

// readShared reads groups ids of sh.
func readShared(sh *Shared, ids []uint64) (groupsState, error) {
	m := groupsState{}
	for _, id := range ids {
		g, err := sh.Group(id)
		if err != nil {
			return nil, err
		}
		if m[id], err = readStore(g); err != nil {
			return nil, fmt.Errorf("group %d: %w", id, err)
		}
	}
	return m, nil
}

// checkShared checks that sh holds exactly want.
func checkShared(t *testing.T, sh *Shared, want groupsState, when string) {
	t.Helper()
	got, err := readShared(sh, slices.Sorted(maps.Keys(want)))
	if err != nil {
		t.Fatalf("%s: %v", when, err)
	}
	if !got.equal(want) {
		t.Fatalf("%s: store holds %v\nwant %v", when, got, want)
	}
}

// bounds returns st's range of entries; first > last when there is none.
func (s state) bounds() (first, last uint64) {
	if len(s.terms) == 0 {
		return 1, 0
	}
	idx := slices.Sorted(maps.Keys(s.terms))
	return idx[0], idx[len(idx)-1]
}

// randomOp picks the next call of a raft-like workload on a group in
// state st: appends, head and tail deletes, snapshot installs (delete
// everything, go on from anywhere), a forbidden middle delete, votes.
// Entries of group g carry terms g*1000+epoch, so that no group's entries
// equal another's.
func randomOp(rng *rand.Rand, g uint64, st state, epoch uint64) (o op, wantErr error) {
	first, last := st.bounds()
	n := last - first + 1 // wraps when empty; used only when not
	empty := first > last
	term := g*1000 + epoch
	switch r := rng.IntN(100); {
	case r < 45 || empty && r < 70:
		from := last + 1
		if empty {
			from = 1 + rng.Uint64N(500)
		}
		return storeOp(from, from+rng.Uint64N(16), term), nil
	case r < 55:
		return deleteOp(first-rng.Uint64N(min(first, 3)), first+rng.Uint64N(n+4)), nil
	case r < 65 && n >= 2:
		return deleteOp(first+1+rng.Uint64N(n-1), last+rng.Uint64N(3)), nil
	case r < 70:
		// A snapshot install: raft deletes everything (here with a
		// range past both ends) before continuing after the snapshot.
		return deleteOp(0, last+rng.Uint64N(100)), nil
	case r < 75 && n >= 3:
		mid := first + 1 + rng.Uint64N(n-2)
		return deleteOp(mid, mid), ErrNotContiguous
	case r < 90:
		key := []string{"CurrentTerm", "LastVoteTerm"}[rng.IntN(2)]
		return setOp(key, term), nil
	}
	return op{name: "nothing", call: func(raftStore) error { return nil }, apply: func(*state) {}}, nil
}

// TestSharedRandomGroups runs raft-like calls on several groups of one
// shared store at random, checking the group called against a model after
// each step and every group after each reopen. Small segments, so that
// head deletes release segments of the shared log as they go.
func TestSharedRandomGroups(t *testing.T) {
	rng := newRand(t)
	dir := t.TempDir()
	o := testOptions()
	o.CompactAfter = 20
	sh := openSharedT(t, dir, o)
	defer func() { sh.Close() }()
	ids := []uint64{1, 2, 3, 40, 1 << 40}
	model := groupsState{}
	for _, id := range ids {
		model[id] = newState()
	}
	epoch := uint64(1)
	steps := 1500
	if testing.Short() {
		steps = 400
	}
	released := uint64(1)
	for step := range steps {
		if rng.IntN(100) == 0 {
			sh = reopenShared(t, sh, dir, o)
			checkShared(t, sh, model, fmt.Sprintf("step %d, after reopen", step))
			continue
		}
		id := ids[rng.IntN(len(ids))]
		g := groupT(t, sh, id)
		op, wantErr := randomOp(rng, id, model[id], epoch)
		epoch++
		err := op.call(g)
		if !errors.Is(err, wantErr) || (err == nil) != (wantErr == nil) {
			t.Fatalf("step %d: group %d: %s = %v, want %v", step, id, op.name, err, wantErr)
		}
		if err == nil {
			st := model[id]
			op.apply(&st)
		}
		checkShared(t, sh, groupsState{id: model[id]}, fmt.Sprintf("step %d: group %d after %s", step, id, op.name))
		released = max(released, sh.log.FirstIndex())
	}
	sh = reopenShared(t, sh, dir, o)
	checkShared(t, sh, model, "the end, after reopen")
	t.Logf("%d steps; the shared log starts at %d of %d", steps, sh.log.FirstIndex(), sh.log.LastIndex())
	if released == 1 {
		t.Fatal("the shared log's front was never released")
	}
}

func reopenShared(t *testing.T, sh *Shared, dir string, o *Options) *Shared {
	t.Helper()
	if err := sh.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	return openSharedT(t, dir, o)
}

// segments counts the segment files of the shared entry log in dir.
func segments(t *testing.T, dir string) int {
	t.Helper()
	names, err := filepath.Glob(filepath.Join(dir, sharedLog, "*.wal"))
	if err != nil {
		t.Fatal(err)
	}
	return len(names)
}

// TestSharedReleasesSegments: while one group keeps its entries, head
// deletes of the others release nothing; once every group deleted its
// head, the segments before the first live entry go, and the store reopens
// with the same groups. A group emptied by a snapshot install holds
// nothing back.
func TestSharedReleasesSegments(t *testing.T) {
	dir := t.TempDir()
	o := testOptions()
	sh := openSharedT(t, dir, o)
	defer func() { sh.Close() }()
	model := groupsState{1: newState(), 2: newState(), 3: newState(), 4: newState()}
	do := func(id uint64, o op) {
		t.Helper()
		if err := o.call(groupT(t, sh, id)); err != nil {
			t.Fatalf("group %d: %s: %v", id, o.name, err)
		}
		st := model[id]
		o.apply(&st)
	}
	store := func(ids []uint64, from, to uint64) {
		for ; from <= to; from += 50 { // interleaved, as concurrent groups write
			for _, id := range ids {
				do(id, storeOp(from, from+49, id))
			}
		}
	}
	store([]uint64{1, 2, 3, 4}, 1, 2000)
	full := segments(t, dir)
	for _, id := range []uint64{1, 2, 3} {
		do(id, deleteOp(1, 1990))
	}
	if n := segments(t, dir); n != full {
		t.Fatalf("%d segments, %d before the head deletes: released while group 4 holds its entry 1", n, full)
	}
	checkShared(t, sh, model, "groups 1-3 compacted")
	do(4, deleteOp(1, 1990))
	compacted := segments(t, dir)
	if compacted > 2 || compacted >= full {
		t.Fatalf("%d segments after every group compacted to its last 10 entries, %d before", compacted, full)
	}
	checkShared(t, sh, model, "every group compacted")
	sh = reopenShared(t, sh, dir, o)
	checkShared(t, sh, model, "every group compacted, after reopen")
	// Group 4 stops at 2000; the others go on and compact again.
	store([]uint64{1, 2, 3}, 2001, 4000)
	for _, id := range []uint64{1, 2, 3} {
		do(id, deleteOp(1, 3990))
	}
	if n := segments(t, dir); n < full/2 {
		t.Fatalf("%d segments: released past group 4's entries", n)
	}
	do(4, deleteOp(0, 1<<40)) // a snapshot install empties group 4
	if n := segments(t, dir); n > 2 {
		t.Fatalf("%d segments once group 4 is empty, want at most 2", n)
	}
	t.Logf("segments: %d full, %d compacted", full, segments(t, dir))
	sh = reopenShared(t, sh, dir, o)
	checkShared(t, sh, model, "group 4 emptied, after reopen")
	do(4, storeOp(7, 9, 4)) // and it goes on anywhere
	sh = reopenShared(t, sh, dir, o)
	checkShared(t, sh, model, "group 4 restarted at 7, after reopen")
}

// sharedOp is an op on one group of a shared store.
type sharedOp struct {
	group uint64
	op
}

// interleave runs the raft-like workload on groups 1 and 2 of one shared
// store, their calls alternating (terms 1-3 for group 1, 101-103 for group
// 2: same indexes, different entries).
func interleave() []sharedOp {
	a, b := raftLike(0), raftLike(100)
	var ops []sharedOp
	for i := range max(len(a), len(b)) {
		if i < len(a) {
			ops = append(ops, sharedOp{1, a[i]})
		}
		if i < len(b) {
			ops = append(ops, sharedOp{2, b[i]})
		}
	}
	return ops
}

// segmentsReleased fills a few segments from groups 1 and 2 in turn, then
// compacts both so that release deletes segment files, and goes on.
func segmentsReleased() []sharedOp {
	var ops []sharedOp
	for from := uint64(1); from <= 600; from += 100 {
		ops = append(ops, sharedOp{1, storeOp(from, from+99, 1)}, sharedOp{2, storeOp(from, from+99, 101)})
	}
	return append(ops,
		sharedOp{1, deleteOp(1, 550)},
		sharedOp{2, deleteOp(1, 590)}, // releases the segments before group 1's 551
		sharedOp{2, storeOp(601, 610, 102)},
		sharedOp{1, deleteOp(0, 1000)}, // a snapshot install: group 1 empty, more released
		sharedOp{1, storeOp(300, 305, 2)},
	)
}

// TestSharedCrashPoints crashes workloads of two groups (appends,
// conflicting tails, compactions that release the shared log's front and
// its segments, snapshot installs, votes) after each file operation in
// turn: every crash state opens with every acknowledged call there and
// the one in flight all or nothing, and each group holds only its own
// entries.
func TestSharedCrashPoints(t *testing.T) {
	workloads := []struct {
		name     string
		ops      []sharedOp
		releases bool // segment files are deleted on the way
	}{
		{"RaftLikeInterleaved", interleave(), false},
		{"SegmentsReleased", segmentsReleased(), true},
	}
	for _, w := range workloads {
		t.Run(w.name, func(t *testing.T) {
			most, end := 0, 0
			runShared(crashfs.New(), w.ops, func(fsys *crashfs.FS) {
				end = segmentFiles(t, fsys)
				most = max(most, end)
			})
			t.Logf("segment files: at most %d, at the end %d", most, end)
			if w.releases && end >= most {
				t.Fatalf("no segment file released: at most %d, at the end %d", most, end)
			}
			crashPoints(t, func(fsys *crashfs.FS) (before, after groupsState, inFlight string) {
				return runShared(fsys, w.ops, nil)
			}, func(fsys *crashfs.FS) (groupsState, error) {
				sh, err := OpenShared("db", crashOptions(fsys))
				if err != nil {
					return nil, err
				}
				defer sh.Close()
				return readShared(sh, []uint64{1, 2})
			})
		})
	}
}

// runShared runs ops on a shared store on fsys until one fails (the
// crash), calling each after every call, and returns the state
// acknowledged, the state the call in flight would have left, and its
// name.
func runShared(fsys *crashfs.FS, ops []sharedOp, each func(*crashfs.FS)) (before, after groupsState, inFlight string) {
	before = groupsState{1: newState(), 2: newState()}
	after, inFlight = before, "OpenShared"
	sh, err := OpenShared("db", crashOptions(fsys))
	if err != nil {
		return before, after, inFlight
	}
	defer sh.Close()
	for _, o := range ops {
		after, inFlight = before.clone(), fmt.Sprintf("group %d: %s", o.group, o.name)
		st := after[o.group]
		o.apply(&st)
		g, err := sh.Group(o.group)
		if err == nil {
			err = o.call(g)
		}
		if err != nil {
			return before, after, inFlight
		}
		before = after
		if each != nil {
			each(fsys)
		}
	}
	return before, before, "nothing"
}

func segmentFiles(t *testing.T, fsys *crashfs.FS) int {
	t.Helper()
	names, err := fsys.ReadDir(filepath.Join("db", sharedLog))
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, name := range names {
		if strings.HasSuffix(name, ".wal") {
			n++
		}
	}
	return n
}

// TestSharedConcurrentGroups runs 8 groups at once, each appending,
// compacting its head, emptying itself as a snapshot install does, and
// reading its entries back from another goroutine
// while it appends (raft's own use); then checks every group, and again
// after reopen. Run with -race.
func TestSharedConcurrentGroups(t *testing.T) {
	dir := t.TempDir()
	o := testOptions()
	sh := openSharedT(t, dir, o)
	defer func() { sh.Close() }()
	const groups, batches = 8, 60
	model := groupsState{}
	var wg sync.WaitGroup
	errs := make(chan error, 2*groups)
	for id := uint64(1); id <= groups; id++ {
		g := groupT(t, sh, id)
		st := newState()
		model[id] = st
		done := make(chan struct{})
		wg.Go(func() {
			defer close(done)
			for b := range uint64(batches) {
				from := b*10 + 1
				ops := []op{storeOp(from, from+9, id)}
				switch b % 6 {
				case 2:
					ops = append(ops, deleteOp(0, from-15)) // compaction
				case 5:
					// A snapshot install: the next batch goes into an
					// empty group, whose append a concurrent release
					// must not overtake.
					ops = append(ops, deleteOp(0, from+9))
				}
				for _, o := range ops {
					if err := o.call(g); err != nil {
						errs <- fmt.Errorf("group %d: %s: %w", id, o.name, err)
						return
					}
					o.apply(&st)
				}
			}
		})
		wg.Go(func() { errs <- readWhileWriting(g, id, done) })
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	checkShared(t, sh, model, "after the concurrent calls")
	sh = reopenShared(t, sh, dir, o)
	checkShared(t, sh, model, "after reopen")
}

// readWhileWriting reads group g's entries in its current range until
// done: each is there and the group's own, or gone (raft.ErrLogNotFound)
// because a head delete overtook the read.
func readWhileWriting(g *GroupStore, id uint64, done <-chan struct{}) error {
	for {
		select {
		case <-done:
			return nil
		default:
		}
		time.Sleep(100 * time.Microsecond) // 8 readers spinning would starve the writers of 2 cores
		first, _ := g.FirstIndex()
		last, _ := g.LastIndex()
		for i := first; i <= last && last != 0; i++ {
			var e raft.Log
			err := g.GetLog(i, &e)
			if err == raft.ErrLogNotFound {
				continue
			}
			if err != nil {
				return fmt.Errorf("group %d: GetLog(%d): %w", id, i, err)
			}
			if want := entry(i, id); !sameEntry(&e, want) {
				return fmt.Errorf("group %d: GetLog(%d) = term %d, want the group's entry", id, i, e.Term)
			}
		}
	}
}

// TestSharedRecordGolden pins the shared log's record formats to the
// bytes the package doc shows.
func TestSharedRecordGolden(t *testing.T) {
	e := &raft.Log{Index: 300, Term: 5, Type: raft.LogCommand, Data: []byte("hi")}
	cases := []struct {
		name string
		rec  []byte
		want string
	}{
		{"entry", appendEntry(appendShared(nil, kindEntry, 7, 300), e), "0107ac020100000500" + "6869"},
		{"delete", appendDelete(nil, 7, 1, 300), "020701ac02"},
	}
	for _, c := range cases {
		if got := hex.EncodeToString(c.rec); got != c.want {
			t.Errorf("%s record: %s, want %s", c.name, got, c.want)
		}
	}
	r, err := decodeShared(cases[1].rec, 1)
	if err != nil || r.kind != kindDelete || r.group != 7 || r.index != 1 || r.to != 300 {
		t.Fatalf("decodeShared(delete) = %+v, %v", r, err)
	}
	for _, bad := range []string{"", "00", "03", "01", "0107", "010700", "02070201", "0207020100", "020702"} {
		b, _ := hex.DecodeString(bad)
		if _, err := decodeShared(b, 1); !errors.Is(err, ErrFormat) {
			t.Errorf("decodeShared(%s) = %v, want ErrFormat", bad, err)
		}
	}
}

// TestSharedClosed: after Close, Group and every group's methods return
// wal.ErrClosed.
func TestSharedClosed(t *testing.T) {
	sh := openSharedT(t, t.TempDir(), testOptions())
	g := groupT(t, sh, 1)
	if err := sh.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := sh.Group(2); !errors.Is(err, wal.ErrClosed) {
		t.Fatalf("Group after Close: %v, want wal.ErrClosed", err)
	}
	if err := g.StoreLog(entry(1, 1)); !errors.Is(err, wal.ErrClosed) {
		t.Fatalf("StoreLog after Close: %v, want wal.ErrClosed", err)
	}
}

// TestSharedReleaseSparesAppendInFlight: an empty group's entries are
// durable in the shared log before the group records where they are; a
// release run by another group in that moment must keep them.
func TestSharedReleaseSparesAppendInFlight(t *testing.T) {
	dir := t.TempDir()
	o := testOptions()
	sh := openSharedT(t, dir, o)
	defer func() { sh.Close() }()
	g1, g2 := groupT(t, sh, 1), groupT(t, sh, 2)
	if err := g2.StoreLogs(entries(1, 100, 2)); err != nil {
		t.Fatal(err)
	}
	inFlight, release := make(chan struct{}), make(chan struct{})
	sh.appended = func(g *GroupStore) {
		if g == g1 {
			close(inFlight)
			<-release
		}
	}
	stored := make(chan error)
	go func() { stored <- g1.StoreLogs(entries(50, 59, 1)) }()
	<-inFlight
	sh.appended = nil // group 2's calls go through; the race detector sees the channel order
	if err := g2.DeleteRange(1, 100); err != nil {
		t.Fatal(err)
	}
	close(release)
	if err := <-stored; err != nil {
		t.Fatal(err)
	}
	want := groupsState{1: newState(), 2: newState()}
	st := want[1]
	storeOp(50, 59, 1).apply(&st)
	checkShared(t, sh, want, "after the release")
	sh = reopenShared(t, sh, dir, o)
	checkShared(t, sh, want, "after reopen")
}

// TestStoreKindsRefuseEachOther: a Store's entries would misread as a
// Shared store's records and the other way round; each refuses the
// other's directory.
func TestStoreKindsRefuseEachOther(t *testing.T) {
	storeDir, sharedDir := t.TempDir(), t.TempDir()
	s := kinds[0].openT(t, storeDir, testOptions())
	if err := s.StoreLog(entry(1, 1)); err != nil {
		t.Fatal(err)
	}
	s.Close()
	openSharedT(t, sharedDir, testOptions()).Close()
	if _, err := OpenShared(storeDir, testOptions()); !errors.Is(err, ErrOtherKind) {
		t.Fatalf("OpenShared of a Store's directory: %v, want ErrOtherKind", err)
	}
	if _, err := Open(sharedDir, testOptions()); !errors.Is(err, ErrOtherKind) {
		t.Fatalf("Open of a Shared store's directory: %v, want ErrOtherKind", err)
	}
}
