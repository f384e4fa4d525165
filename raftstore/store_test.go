package raftstore

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"path/filepath"
	"testing"
	"time"

	"github.com/gojournal/journal/vfs/crashfs"
	"github.com/gojournal/journal/wal"
	"github.com/hashicorp/raft"
)

var quiet = slog.New(slog.DiscardHandler)

func testOptions() *Options {
	return &Options{Log: &wal.Options{SegmentSize: wal.MinSegmentSize, Logger: quiet}}
}

// testStore is what the contract tests call: a Store, or one group of a
// Shared store.
type testStore interface {
	raft.LogStore
	raft.StableStore
	raft.MonotonicLogStore
	Close() error
	stableLog() *wal.Log
}

func (s *Store) stableLog() *wal.Log { return s.stable.log }

// sharedGroup is group 7 of a Shared store; closing it closes the store.
type sharedGroup struct {
	*GroupStore
	sh *Shared
}

func (g sharedGroup) Close() error        { return g.sh.Close() }
func (g sharedGroup) stableLog() *wal.Log { return g.sh.stable.log }

// kind is a kind of store the contract tests run against.
type kind struct {
	name string
	open func(dir string, o *Options) (testStore, error)
}

var kinds = []kind{
	{"Store", func(dir string, o *Options) (testStore, error) {
		s, err := Open(dir, o)
		if err != nil {
			return nil, err
		}
		return s, nil
	}},
	{"Shared", openSharedGroup},
}

// openSharedGroup opens group 7 of the Shared store in dir. A new store
// gets a neighbour first, group 3 with entries 1-5 and a stable key of
// the same name as raft's, which group 7 must never see.
func openSharedGroup(dir string, o *Options) (testStore, error) {
	sh, err := OpenShared(dir, o)
	if err != nil {
		return nil, err
	}
	n, err := sh.Group(3)
	if err == nil {
		err = neighbour(n)
	}
	var g *GroupStore
	if err == nil {
		g, err = sh.Group(7)
	}
	if err != nil {
		sh.Close()
		return nil, err
	}
	return sharedGroup{g, sh}, nil
}

func neighbour(n *GroupStore) error {
	if last, err := n.LastIndex(); err != nil || last != 0 {
		return err
	}
	return errors.Join(n.StoreLogs(entries(1, 5, 9)), n.SetUint64([]byte("CurrentTerm"), 99),
		n.Set([]byte("neighbour"), []byte("group 3 only")))
}

// forKinds runs test against each kind of store.
func forKinds(t *testing.T, test func(t *testing.T, k kind)) {
	for _, k := range kinds {
		t.Run(k.name, func(t *testing.T) { test(t, k) })
	}
}

func (k kind) openT(t *testing.T, dir string, o *Options) testStore {
	t.Helper()
	s, err := k.open(dir, o)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	return s
}

// reopen closes s and opens its directory again.
func (k kind) reopen(t *testing.T, s testStore, dir string, o *Options) testStore {
	t.Helper()
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	return k.openT(t, dir, o)
}

// entry is the entry the tests store at index i in term: every field set,
// sizes varying with i.
func entry(i, term uint64) *raft.Log {
	e := &raft.Log{Index: i, Term: term, Type: raft.LogType(i % 6),
		Data:       bytes.Repeat([]byte{byte(i)}, int(i%300)),
		AppendedAt: time.Unix(1700000000, int64(i)*1001).UTC()}
	if i%3 == 0 {
		e.Extensions = []byte(fmt.Sprintf("ext-%d", i))
	}
	if i%5 == 0 {
		e.AppendedAt = time.Time{}
	}
	return e
}

func entries(from, to, term uint64) []*raft.Log {
	var logs []*raft.Log
	for i := from; i <= to; i++ {
		logs = append(logs, entry(i, term))
	}
	return logs
}

func sameEntry(a, b *raft.Log) bool {
	return a.Index == b.Index && a.Term == b.Term && a.Type == b.Type && bytes.Equal(a.Data, b.Data) &&
		bytes.Equal(a.Extensions, b.Extensions) && a.AppendedAt.Equal(b.AppendedAt)
}

// checkLog checks that s holds exactly the entries [first, last] as
// entry(i, term) made them, and nothing around them.
func checkLog(t *testing.T, s raft.LogStore, first, last, term uint64) {
	t.Helper()
	f, err1 := s.FirstIndex()
	l, err2 := s.LastIndex()
	if err := errors.Join(err1, err2); err != nil || f != first || l != last {
		t.Fatalf("FirstIndex, LastIndex = %d, %d (%v); want %d, %d", f, l, err, first, last)
	}
	for i := first; i <= last && last != 0; i++ {
		var got raft.Log
		if err := s.GetLog(i, &got); err != nil {
			t.Fatalf("GetLog(%d): %v", i, err)
		}
		if want := entry(i, term); !sameEntry(&got, want) {
			t.Fatalf("GetLog(%d) = %+v, want %+v", i, got, *want)
		}
	}
	for _, i := range []uint64{first - 1, last + 1, 0} {
		if last != 0 && first <= i && i <= last {
			continue
		}
		var got raft.Log
		if err := s.GetLog(i, &got); err != raft.ErrLogNotFound {
			t.Fatalf("GetLog(%d) outside [%d, %d]: %v, want raft.ErrLogNotFound itself", i, first, last, err)
		}
	}
}

func TestEmptyStore(t *testing.T) { forKinds(t, testEmptyStore) }

func testEmptyStore(t *testing.T, k kind) {
	dir := t.TempDir()
	s := k.openT(t, dir, testOptions())
	defer func() { s.Close() }()
	checkLog(t, s, 0, 0, 1)
	var l raft.Log
	if err := s.GetLog(1, &l); err != raft.ErrLogNotFound {
		t.Fatalf("GetLog(1) of an empty store: %v, want raft.ErrLogNotFound", err)
	}
	if v, err := s.Get([]byte("missing")); err != nil || len(v) != 0 {
		t.Fatalf("Get(missing) = %q, %v; want empty, nil", v, err)
	}
	if v, err := s.GetUint64([]byte("missing")); err != nil || v != 0 {
		t.Fatalf("GetUint64(missing) = %d, %v; want 0, nil", v, err)
	}
	if v, err := s.Get([]byte("neighbour")); err != nil || len(v) != 0 {
		t.Fatalf("Get(neighbour) = %q, %v; want empty, nil (another group's key)", v, err)
	}
	if !s.IsMonotonic() {
		t.Fatal("IsMonotonic() = false")
	}
	s = k.reopen(t, s, dir, testOptions())
	checkLog(t, s, 0, 0, 1)
}

func TestStoreAndGetRoundTrip(t *testing.T) { forKinds(t, testStoreAndGetRoundTrip) }

func testStoreAndGetRoundTrip(t *testing.T, k kind) {
	dir := t.TempDir()
	s := k.openT(t, dir, testOptions())
	defer func() { s.Close() }()
	if err := s.StoreLog(entry(1, 1)); err != nil {
		t.Fatal(err)
	}
	for from := uint64(2); from < 2000; from += 64 {
		if err := s.StoreLogs(entries(from, from+63, 1)); err != nil {
			t.Fatal(err)
		}
	}
	checkLog(t, s, 1, 2049, 1)
	s = k.reopen(t, s, dir, testOptions())
	checkLog(t, s, 1, 2049, 1)
	// Empty and nil fields round-trip as empty.
	e := &raft.Log{Index: 2050, Term: 1<<63 + 5}
	if err := s.StoreLog(e); err != nil {
		t.Fatal(err)
	}
	var got raft.Log
	if err := s.GetLog(2050, &got); err != nil || !sameEntry(&got, e) || !got.AppendedAt.IsZero() {
		t.Fatalf("GetLog(2050) = %+v, %v; want %+v", got, err, *e)
	}
}

func TestStoreLogsMustContinueTheLog(t *testing.T) { forKinds(t, testStoreLogsMustContinueTheLog) }

func testStoreLogsMustContinueTheLog(t *testing.T, k kind) {
	dir := t.TempDir()
	s := k.openT(t, dir, testOptions())
	defer func() { s.Close() }()
	if err := s.StoreLogs(entries(1, 10, 1)); err != nil {
		t.Fatal(err)
	}
	bad := map[string][]*raft.Log{
		"gap after the log":     entries(12, 13, 1),
		"overlap with the log":  entries(10, 12, 1),
		"gap inside the batch":  {entry(11, 1), entry(13, 1)},
		"batch out of order":    {entry(12, 1), entry(11, 1)},
		"duplicate in a batch":  {entry(11, 1), entry(11, 1)},
		"index zero on the log": {entry(0, 1)},
	}
	for name, logs := range bad {
		if err := s.StoreLogs(logs); !errors.Is(err, ErrNotContiguous) {
			t.Errorf("%s: StoreLogs = %v, want ErrNotContiguous", name, err)
		}
	}
	checkLog(t, s, 1, 10, 1)
	// Index 0 on an empty log: raft never uses it, and journal indexes
	// start at 1.
	e := k.openT(t, t.TempDir(), testOptions())
	defer e.Close()
	if err := e.StoreLog(entry(0, 1)); err == nil {
		t.Fatal("StoreLog(index 0) = nil, want an error")
	}
}

// TestEmptyLogStartsAnywhere: a brand-new store, and one raft emptied after
// a snapshot, take their first entry at any index, lower or higher.
func TestEmptyLogStartsAnywhere(t *testing.T) { forKinds(t, testEmptyLogStartsAnywhere) }

func testEmptyLogStartsAnywhere(t *testing.T, k kind) {
	dir := t.TempDir()
	o := testOptions()
	s := k.openT(t, dir, o)
	defer func() { s.Close() }()
	if err := s.StoreLogs(entries(100, 110, 1)); err != nil {
		t.Fatalf("StoreLogs at 100 on a new store: %v", err)
	}
	checkLog(t, s, 100, 110, 1)
	s = k.reopen(t, s, dir, o)
	checkLog(t, s, 100, 110, 1)
	// raft after installing a snapshot at 200: removeOldLogs deletes
	// everything, then the leader sends 201 on.
	if err := s.DeleteRange(100, 110); err != nil {
		t.Fatal(err)
	}
	checkLog(t, s, 0, 0, 1)
	if err := s.StoreLogs(entries(201, 210, 1)); err != nil {
		t.Fatal(err)
	}
	checkLog(t, s, 201, 210, 1)
	// A follower that held an uncommitted tail past the snapshot the
	// leader sends: everything goes, and the log continues below its old
	// end.
	if err := s.DeleteRange(201, 210); err != nil {
		t.Fatal(err)
	}
	s = k.reopen(t, s, dir, o)
	checkLog(t, s, 0, 0, 1)
	if err := s.StoreLogs(entries(205, 206, 2)); err != nil {
		t.Fatalf("StoreLogs at 205 after the log ended at 210: %v", err)
	}
	s = k.reopen(t, s, dir, o)
	checkLog(t, s, 205, 206, 2)
}

func TestDeleteRange(t *testing.T) { forKinds(t, testDeleteRange) }

func testDeleteRange(t *testing.T, k kind) {
	cases := []struct {
		name        string
		min, max    uint64
		first, last uint64 // the log afterwards (0, 0: empty)
		err         error
	}{
		{"PrefixAfterSnapshot", 1, 40, 41, 100, nil},
		{"PrefixStartingBeforeTheLog", 0, 40, 41, 100, nil},
		{"ConflictingSuffix", 61, 100, 1, 60, nil},
		{"SuffixPastTheEnd", 61, 500, 1, 60, nil},
		{"Everything", 1, 100, 0, 0, nil},
		{"EverythingAndBeyond", 1, 1000, 0, 0, nil},
		// The widest range a caller can name: max+1 does not exist.
		{"EverythingToMaxUint64", 1, math.MaxUint64, 0, 0, nil},
		{"ZeroToMaxUint64", 0, math.MaxUint64, 0, 0, nil},
		{"SuffixToMaxUint64", 61, math.MaxUint64, 1, 60, nil},
		{"BeforeTheLog", 0, 0, 1, 100, nil},
		{"AfterTheLog", 101, 200, 1, 100, nil},
		{"EmptyRange", 50, 40, 1, 100, nil},
		{"Middle", 20, 30, 1, 100, ErrNotContiguous},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			o := testOptions()
			s := k.openT(t, dir, o)
			defer func() { s.Close() }()
			if err := s.StoreLogs(entries(1, 100, 3)); err != nil {
				t.Fatal(err)
			}
			if err := s.DeleteRange(c.min, c.max); !errors.Is(err, c.err) || (c.err == nil) != (err == nil) {
				t.Fatalf("DeleteRange(%d, %d) = %v, want %v", c.min, c.max, err, c.err)
			}
			checkLog(t, s, c.first, c.last, 3)
			s = k.reopen(t, s, dir, o)
			checkLog(t, s, c.first, c.last, 3)
			// The log goes on after it: from its end, or from anywhere
			// when empty.
			next := c.last + 1
			if c.last == 0 {
				next = 7
			}
			if err := s.StoreLog(entry(next, 3)); err != nil {
				t.Fatalf("StoreLog(%d) after DeleteRange: %v", next, err)
			}
		})
	}
}

func TestStableStore(t *testing.T) { forKinds(t, testStableStore) }

func testStableStore(t *testing.T, k kind) {
	dir := t.TempDir()
	o := testOptions()
	o.CompactAfter = 16
	s := k.openT(t, dir, o)
	defer func() { s.Close() }()
	want := map[string][]byte{}
	for i := range 100 {
		k := fmt.Sprintf("key-%d", i%7)
		v := bytes.Repeat([]byte{byte(i)}, i)
		if err := s.Set([]byte(k), v); err != nil {
			t.Fatal(err)
		}
		want[k] = v
	}
	if err := s.SetUint64([]byte("CurrentTerm"), 42); err != nil {
		t.Fatal(err)
	}
	if err := s.Set([]byte("empty"), nil); err != nil {
		t.Fatal(err)
	}
	check := func(s testStore) {
		t.Helper()
		for k, v := range want {
			got, err := s.Get([]byte(k))
			if err != nil || !bytes.Equal(got, v) {
				t.Fatalf("Get(%s) = %d bytes, %v; want %d bytes", k, len(got), err, len(v))
			}
		}
		if v, err := s.GetUint64([]byte("CurrentTerm")); err != nil || v != 42 {
			t.Fatalf("GetUint64(CurrentTerm) = %d, %v; want 42", v, err)
		}
		if v, err := s.Get([]byte("empty")); err != nil || len(v) != 0 {
			t.Fatalf("Get(empty) = %q, %v", v, err)
		}
		if _, err := s.GetUint64([]byte("key-1")); err == nil {
			t.Fatal("GetUint64 of a 99-byte value: nil error")
		}
	}
	check(s)
	if first := s.stableLog().FirstIndex(); first <= 1 {
		t.Fatalf("stable log starts at %d after 102 sets with CompactAfter 16: never compacted", first)
	}
	s = k.reopen(t, s, dir, o)
	check(s)
	// The stable log lives beside the entries: neither disturbs the other.
	if _, err := filepath.Glob(filepath.Join(dir, "stable", "*.wal")); err != nil {
		t.Fatal(err)
	}
	checkLog(t, s, 0, 0, 1)
}

func TestClosedStore(t *testing.T) { forKinds(t, testClosedStore) }

func testClosedStore(t *testing.T, k kind) {
	s := k.openT(t, t.TempDir(), testOptions())
	if err := s.StoreLog(entry(1, 1)); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	var l raft.Log
	calls := map[string]error{
		"Close":       s.Close(),
		"StoreLog":    s.StoreLog(entry(2, 1)),
		"GetLog":      s.GetLog(1, &l),
		"DeleteRange": s.DeleteRange(1, 1),
		"Set":         s.Set([]byte("k"), []byte("v")),
	}
	_, calls["FirstIndex"] = s.FirstIndex()
	_, calls["LastIndex"] = s.LastIndex()
	_, calls["Get"] = s.Get([]byte("k"))
	_, calls["GetUint64"] = s.GetUint64([]byte("k"))
	for name, err := range calls {
		if !errors.Is(err, wal.ErrClosed) {
			t.Errorf("%s after Close: %v, want wal.ErrClosed", name, err)
		}
	}
}

// TestNoSyncLogIsStillDurable: with NoSync set on the entry log, what
// StoreLogs and Set acknowledged survives a power loss all the same.
func TestNoSyncLogIsStillDurable(t *testing.T) { forKinds(t, testNoSyncLogIsStillDurable) }

func testNoSyncLogIsStillDurable(t *testing.T, k kind) {
	fsys := crashfs.New()
	o := &Options{Log: &wal.Options{NoSync: true, Logger: quiet, FS: fsys, SegmentSize: wal.MinSegmentSize}}
	s := k.openT(t, "db", o)
	if err := s.StoreLogs(entries(1, 5, 1)); err != nil {
		t.Fatal(err)
	}
	if err := s.SetUint64([]byte("CurrentTerm"), 9); err != nil {
		t.Fatal(err)
	}
	o.Log.FS = fsys.Crash(crashfs.SyncedOnly, nil)
	s.Close()
	s = k.openT(t, "db", o)
	defer s.Close()
	checkLog(t, s, 1, 5, 1)
	if v, err := s.GetUint64([]byte("CurrentTerm")); err != nil || v != 9 {
		t.Fatalf("GetUint64 after a power loss = %d, %v; want 9", v, err)
	}
}

func TestEntryLogCheckpointsRefused(t *testing.T) { forKinds(t, testEntryLogCheckpointsRefused) }

func testEntryLogCheckpointsRefused(t *testing.T, k kind) {
	o := testOptions()
	o.Log.Checkpoint = wal.CheckpointOptions{EveryBytes: 1 << 20,
		State: func() (uint64, func(io.Writer) error, error) { return 0, nil, nil }}
	if _, err := k.open(t.TempDir(), o); !errors.Is(err, wal.ErrInvalidOptions) {
		t.Fatalf("Open with background checkpoints of the entry log: %v, want wal.ErrInvalidOptions", err)
	}
}

// TestAppendedAtRoundTrips: any AppendedAt comes back equal, also times
// whose Unix nanoseconds do not fit in an int64 (before 1678 or after
// 2262), and the nanosecond either side of those bounds.
func TestAppendedAtRoundTrips(t *testing.T) { forKinds(t, testAppendedAtRoundTrips) }

func testAppendedAtRoundTrips(t *testing.T, k kind) {
	times := []time.Time{
		time.Unix(0, 0), time.Unix(-1, 0), time.Unix(0, math.MaxInt64), time.Unix(0, math.MinInt64),
		time.Unix(0, math.MaxInt64).Add(time.Nanosecond), time.Unix(0, math.MinInt64).Add(-time.Nanosecond),
		time.Date(2500, 1, 1, 0, 0, 0, 5, time.UTC), time.Date(1500, 6, 1, 0, 0, 0, 999999999, time.UTC),
		time.Date(1, 1, 1, 0, 0, 0, 1, time.UTC), time.Date(9999, 12, 31, 23, 59, 59, 999999999, time.UTC),
	}
	dir := t.TempDir()
	o := testOptions()
	s := k.openT(t, dir, o)
	defer func() { s.Close() }()
	check := func() {
		t.Helper()
		for i, tm := range times {
			var got raft.Log
			if err := s.GetLog(uint64(i+1), &got); err != nil {
				t.Fatalf("GetLog(%d): %v", i+1, err)
			}
			if !got.AppendedAt.Equal(tm) || string(got.Data) != "x" {
				t.Errorf("AppendedAt %v came back %v (data %q)", tm, got.AppendedAt, got.Data)
			}
		}
	}
	for i, tm := range times {
		if err := s.StoreLog(&raft.Log{Index: uint64(i + 1), Term: 1, AppendedAt: tm, Data: []byte("x")}); err != nil {
			t.Fatal(err)
		}
	}
	check()
	s = k.reopen(t, s, dir, o)
	check()
}

// TestLargeStableValueSurvivesCompaction: a value larger than 64 MiB, which
// Set accepts, is read back after the stable log compacted it into a
// checkpoint and the store reopened (the snapshot reader once refused
// lengths over 64 MiB, and the store no longer opened).
func TestLargeStableValueSurvivesCompaction(t *testing.T) {
	forKinds(t, testLargeStableValueSurvivesCompaction)
}

func testLargeStableValueSurvivesCompaction(t *testing.T, k kind) {
	dir := t.TempDir()
	o := testOptions()
	o.CompactAfter = 2
	s := k.openT(t, dir, o)
	defer func() { s.Close() }()
	big := bytes.Repeat([]byte("0123456789abcdef"), (64<<20)/16+1)
	if err := s.Set([]byte("big"), big); err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		if err := s.SetUint64([]byte("CurrentTerm"), uint64(i)); err != nil {
			t.Fatal(err)
		}
	}
	if first := s.stableLog().FirstIndex(); first <= 2 {
		t.Fatalf("stable log starts at %d: the big value was never compacted", first)
	}
	s = k.reopen(t, s, dir, o)
	if v, err := s.Get([]byte("big")); err != nil || !bytes.Equal(v, big) {
		t.Fatalf("Get(big) after compaction and reopen = %d bytes, %v; want %d bytes", len(v), err, len(big))
	}
}

// TestEntryLogRetentionRefused: a retention policy on the entry log would
// release entries raft never deleted (a Store's FirstIndex moved on its
// own; a Shared group's GetLog failed inside its range, and a reopen
// replayed a cut log), so Open refuses it as it refuses checkpoints.
func TestEntryLogRetentionRefused(t *testing.T) { forKinds(t, testEntryLogRetentionRefused) }

func testEntryLogRetentionRefused(t *testing.T, k kind) {
	policies := map[string]wal.RetentionOptions{
		"MaxAge":       {MaxAge: time.Hour},
		"MaxBytes":     {MaxBytes: 1 << 20},
		"ReleaseAcked": {ReleaseAcked: true, Acked: func() (uint64, bool) { return 0, false }},
	}
	for name, r := range policies {
		o := testOptions()
		o.Log.Retention = r
		s, err := k.open(t.TempDir(), o)
		if err == nil {
			s.Close()
		}
		if !errors.Is(err, wal.ErrInvalidOptions) {
			t.Errorf("Open with Log.Retention.%s set: %v, want wal.ErrInvalidOptions", name, err)
		}
	}
}
