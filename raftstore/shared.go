package raftstore

import (
	"encoding/binary"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"

	"github.com/gojournal/journal/wal"
	"github.com/hashicorp/raft"
)

// Shared holds the raft logs and stable stores of many raft groups in one
// directory: one journal log of entries for all of them, so that
// concurrent StoreLogs calls of different groups share one write and one
// fdatasync (the journal's group commit), and one stable log. Group
// returns the store of one group. See the package doc for the formats.
//
// A Shared is safe for concurrent use: different groups run fully
// concurrently, and within a group GetLog, FirstIndex and LastIndex may
// run beside StoreLogs and DeleteRange (raft's own use).
type Shared struct {
	log    *wal.Log
	noSync bool
	stable *stable
	closed atomic.Bool // read by every group's keys

	// mu guards groups, every group's pending, releasing and again.
	mu     sync.Mutex
	groups map[uint64]*GroupStore
	// releasing is set while a release runs; again asks it to run once
	// more, for a head delete that came meanwhile. Releases thus run one
	// at a time (each truncates to a floor it computed, which a
	// concurrent one could already have passed) and never queue up.
	releasing, again bool

	// appended, when set (by tests), runs after each append of a group,
	// its records durable, and before the group records where they went:
	// the moment only pending keeps a release from dropping them.
	appended func(g *GroupStore)
}

// GroupStore is the raft.LogStore, raft.StableStore and
// raft.MonotonicLogStore of one raft group in a Shared store. Its methods
// behave as Store's. It stays valid until the Shared store is closed.
type GroupStore struct {
	sh   *Shared
	id   uint64
	keys // the StableStore's methods, under the group's prefix

	// wmu serialises StoreLogs and DeleteRange: each reads the group's
	// range and changes it according to what it read. The encoding
	// buffers are used under it.
	wmu  sync.Mutex
	buf  []byte
	recs [][]byte
	ends []int

	// mu guards first and at, which only a writer holding wmu changes.
	mu sync.RWMutex
	// Invariant: at[k] is the journal index of the record holding raft
	// index first+k; the group is empty when at is. 8 bytes a live entry.
	first uint64
	at    []uint64

	// pending is, from before an append of this group is written until
	// the group has recorded where its records went, a journal index at
	// or below the first one the append gets (0 otherwise): a release
	// must keep it though the group does not know it yet. Guarded by
	// Shared.mu.
	pending uint64
}

var (
	_ raft.LogStore          = (*GroupStore)(nil)
	_ raft.StableStore       = (*GroupStore)(nil)
	_ raft.MonotonicLogStore = (*GroupStore)(nil)
)

// OpenShared opens (creating it if needed) the shared store in dir,
// recovering both logs as wal.Open does after a crash, and rebuilds every
// group's index by replaying the entry log.
func OpenShared(dir string, opts *Options) (*Shared, error) {
	l, st, lo, err := openLogs(dir, opts, sharedLog, storeLog)
	if err != nil {
		return nil, err
	}
	sh := &Shared{log: l, noSync: lo.NoSync, stable: st, groups: map[uint64]*GroupStore{}}
	if err := sh.replay(); err != nil {
		sh.Close()
		return nil, err
	}
	return sh, nil
}

// replay rebuilds every group's range and index from the records, in
// journal order. The log may start anywhere a release left it: see
// release for why replaying a suffix gives the same groups.
func (sh *Shared) replay() error {
	r := sh.log.NewReader(0)
	defer r.Close()
	for j, rec := range r.All() {
		if err := sh.replayRecord(j, rec); err != nil {
			return err
		}
	}
	return r.Err()
}

func (sh *Shared) replayRecord(j uint64, rec []byte) error {
	r, err := decodeShared(rec, j)
	if err != nil {
		return err
	}
	g := sh.group(r.group)
	switch r.kind {
	case kindEntry:
		if len(g.at) > 0 && r.index != g.last()+1 {
			return fmt.Errorf("%w: record %d: %s does not continue [%d, %d]", wal.ErrCorrupt, j, r, g.first, g.last())
		}
		g.add(r.index, j, 1)
	case kindDelete:
		g.drop(r.index, r.to)
	}
	return nil
}

// Close closes both logs. Later calls of any group's methods return
// wal.ErrClosed.
func (sh *Shared) Close() error {
	if !sh.closed.CompareAndSwap(false, true) {
		return wal.ErrClosed
	}
	return errors.Join(sh.log.Close(), sh.stable.close())
}

func (sh *Shared) usable() error {
	if sh.closed.Load() {
		return wal.ErrClosed
	}
	return nil
}

// Group returns the store of raft group id, an empty one if the group has
// never stored anything. Every call for an id returns the same store.
func (sh *Shared) Group(id uint64) (*GroupStore, error) {
	if err := sh.usable(); err != nil {
		return nil, err
	}
	sh.mu.Lock()
	defer sh.mu.Unlock()
	return sh.group(id), nil
}

// group returns group id's store, creating it. Called with mu held, or
// before the Shared is shared (replay).
func (sh *Shared) group(id uint64) *GroupStore {
	g := sh.groups[id]
	if g == nil {
		g = &GroupStore{sh: sh, id: id,
			keys: keys{stable: sh.stable, prefix: binary.AppendUvarint(nil, id), closed: &sh.closed}}
		sh.groups[id] = g
	}
	return g
}

// beginAppend records that g is about to append: its records get journal
// indexes above the log's last index now.
func (sh *Shared) beginAppend(g *GroupStore) {
	sh.mu.Lock()
	g.pending = sh.log.LastIndex() + 1
	sh.mu.Unlock()
}

func (sh *Shared) endAppend(g *GroupStore) {
	sh.mu.Lock()
	g.pending = 0
	sh.mu.Unlock()
}

// release drops the front of the entry log up to the first record any
// group still needs: the journal index of its first live entry, or of an
// append in flight.
//
// Why a suffix of the log replays to the same groups: replaying from
// journal index p with every group empty yields, for each group, its
// true range cut to the raft indexes from some x on (an entry starts an
// empty group anywhere; a later entry continues it; a delete record cuts
// both alike). Once the record of the group's first live entry f is
// replayed, the cut range holds f, and so x <= f: the cut changes nothing.
// A group that is empty needs no record at all (it may restart anywhere).
// Delete records need not be kept either: what one deleted lies before
// it.
//
// A release asked for while another runs makes that one go round again
// and returns at once: the caller's delete is durable already, and the
// release only frees space.
func (sh *Shared) release() error {
	sh.mu.Lock()
	defer sh.mu.Unlock()
	sh.again = true
	if sh.releasing {
		return nil // the release running will go round once more
	}
	sh.releasing = true
	defer func() { sh.releasing = false }()
	for sh.again {
		sh.again = false
		floor := sh.floor()
		if floor <= sh.log.FirstIndex() {
			continue
		}
		sh.mu.Unlock()
		err := sh.log.TruncateFront(floor)
		sh.mu.Lock()
		if err != nil {
			return err
		}
	}
	return nil
}

// floor is the journal index release may truncate to. An append that
// begins after this call gets indexes above the last index read here, so
// it needs nothing below last+1; one in flight shows its pending index, or
// has already published its entries into its group. Called with mu held.
func (sh *Shared) floor() uint64 {
	floor := sh.log.LastIndex() + 1
	for _, g := range sh.groups {
		if g.pending != 0 {
			floor = min(floor, g.pending)
		}
		g.mu.RLock()
		if len(g.at) > 0 {
			floor = min(floor, g.at[0])
		}
		g.mu.RUnlock()
	}
	return floor
}

// last is the group's last raft index (first-1 when empty). Called with
// mu or wmu held.
func (g *GroupStore) last() uint64 { return g.first + uint64(len(g.at)) - 1 }

// add records that raft indexes from index on, n of them, are at journal
// indexes from j on. An empty group starts at index. Called with mu held
// (or during replay).
func (g *GroupStore) add(index, j uint64, n int) {
	if len(g.at) == 0 {
		g.first, g.at = index, g.at[:0]
	}
	for k := range uint64(n) {
		g.at = append(g.at, j+k)
	}
}

// drop forgets raft indexes [from, to], a prefix or a suffix of the
// group's range (or all of it). Called with mu held (or during replay).
func (g *GroupStore) drop(from, to uint64) {
	if len(g.at) == 0 || to < g.first || from > g.last() {
		return
	}
	if from <= g.first {
		n := min(to-g.first+1, uint64(len(g.at)))
		g.at = g.at[n:]
		g.first += n
		if len(g.at) < cap(g.at)/4 {
			// Let the dropped front go: raft deletes heads forever.
			g.at = append([]uint64(nil), g.at...)
		}
		return
	}
	g.at = g.at[:from-g.first]
}

// bounds returns the group's range; first > last when it is empty.
func (g *GroupStore) bounds() (first, last uint64, err error) {
	if err := g.sh.usable(); err != nil {
		return 0, 0, err
	}
	g.mu.RLock()
	defer g.mu.RUnlock()
	if len(g.at) == 0 {
		return 1, 0, nil
	}
	return g.first, g.last(), nil
}

// FirstIndex returns the index of the group's first entry, 0 when there
// is none.
func (g *GroupStore) FirstIndex() (uint64, error) { return firstOf(g.bounds()) }

// LastIndex returns the index of the group's last entry, 0 when there is
// none.
func (g *GroupStore) LastIndex() (uint64, error) { return lastOf(g.bounds()) }

// IsMonotonic reports true: a group's log never has gaps.
func (g *GroupStore) IsMonotonic() bool { return true }

// GetLog reads the group's entry at index into log. It returns
// raft.ErrLogNotFound itself (raft compares with ==) when the group does
// not hold index.
func (g *GroupStore) GetLog(index uint64, log *raft.Log) error {
	if err := g.sh.usable(); err != nil {
		return err
	}
	g.mu.RLock()
	var j uint64
	if len(g.at) > 0 && g.first <= index && index <= g.last() {
		j = g.at[index-g.first]
	}
	g.mu.RUnlock()
	if j == 0 {
		return raft.ErrLogNotFound
	}
	// Journal indexes are never reused (the shared log is never cut at
	// the back), so record j is this entry, or gone: a DeleteRange and a
	// release since the lookup removed it.
	rec, err := g.sh.log.Read(j)
	if errors.Is(err, wal.ErrNotFound) {
		return raft.ErrLogNotFound
	}
	if err != nil {
		return err
	}
	r, err := decodeShared(rec, j)
	if err != nil {
		return err
	}
	if r.kind != kindEntry || r.group != g.id || r.index != index {
		return fmt.Errorf("%w: record %d holds %s, want group %d entry %d", wal.ErrCorrupt, j, r, g.id, index)
	}
	return decodeEntry(r.body, index, log)
}

// StoreLog stores one entry; see StoreLogs.
func (g *GroupStore) StoreLog(log *raft.Log) error { return g.StoreLogs([]*raft.Log{log}) }

// StoreLogs appends the entries to the group atomically and durably, as
// Store.StoreLogs does: contiguous, continuing the group's log, or from
// any index >= 1 when the group is empty (ErrNotContiguous otherwise).
// Calls of different groups at the same time share one group commit.
func (g *GroupStore) StoreLogs(logs []*raft.Log) error {
	if len(logs) == 0 {
		return nil
	}
	if err := contiguous(logs); err != nil {
		return err
	}
	if err := g.sh.usable(); err != nil {
		return err
	}
	g.wmu.Lock()
	defer g.wmu.Unlock()
	next := logs[0].Index
	if next == 0 || (len(g.at) > 0 && next != g.last()+1) {
		first, last, _ := g.bounds()
		return fmt.Errorf("%w: entry %d does not continue group %d's log [%d, %d]", ErrNotContiguous, next, g.id, first, last)
	}
	g.encode(logs)
	return g.append(func(j uint64) { g.add(next, j, len(logs)) })
}

// append writes g.recs as one batch, durably, then runs publish (under
// mu) with the journal index of the first, which makes the call's change
// to the group visible. Called with wmu held. The append stays pending until
// publish has run: a release in between would otherwise find the records
// neither pending nor in the group, and truncate past an empty group's
// new entries after StoreLogs had acknowledged them.
func (g *GroupStore) append(publish func(j uint64)) error {
	sh := g.sh
	sh.beginAppend(g)
	defer sh.endAppend(g)
	var j uint64
	var err error
	if len(g.recs) == 1 {
		j, err = sh.log.Append(g.recs[0])
	} else {
		j, err = sh.log.AppendBatch(g.recs)
	}
	if err == nil && sh.noSync {
		err = sh.log.Sync()
	}
	if err != nil {
		return err
	}
	if sh.appended != nil {
		sh.appended(g)
	}
	g.mu.Lock()
	publish(j)
	g.mu.Unlock()
	return nil
}

// encode encodes the entries as shared-log records into g.buf and points
// g.recs at each (sliced once the buffer has stopped growing).
func (g *GroupStore) encode(logs []*raft.Log) {
	g.buf, g.recs, g.ends = g.buf[:0], g.recs[:0], g.ends[:0]
	for _, e := range logs {
		g.buf = appendShared(g.buf, kindEntry, g.id, e.Index)
		g.buf = appendEntry(g.buf, e)
		g.ends = append(g.ends, len(g.buf))
	}
	start := 0
	for _, end := range g.ends {
		g.recs = append(g.recs, g.buf[start:end:end])
		start = end
	}
}

// DeleteRange deletes the group's entries in [min, max], a prefix or a
// suffix of its log as Store.DeleteRange allows (ErrNotContiguous
// otherwise). It appends a delete record, durably, then forgets the
// entries; after deleting a prefix it releases the front of the shared
// log that no group needs any more.
func (g *GroupStore) DeleteRange(min, max uint64) error {
	if err := g.sh.usable(); err != nil {
		return err
	}
	head, err := g.deleteRange(min, max)
	if err != nil || !head {
		return err
	}
	// Outside wmu: the group's appends need not wait for the release.
	return g.sh.release()
}

// deleteRange does DeleteRange's deletion and reports whether it deleted
// a prefix.
func (g *GroupStore) deleteRange(from, to uint64) (head bool, err error) {
	g.wmu.Lock()
	defer g.wmu.Unlock()
	if from > to || len(g.at) == 0 || to < g.first || from > g.last() {
		return false, nil
	}
	lo, hi := max(from, g.first), min(to, g.last())
	head = lo == g.first
	if !head && hi != g.last() {
		return false, fmt.Errorf("%w: DeleteRange(%d, %d) inside group %d's log [%d, %d]: only a prefix or a suffix may be deleted",
			ErrNotContiguous, from, to, g.id, g.first, g.last())
	}
	g.recs = append(g.recs[:0], appendDelete(nil, g.id, lo, hi))
	if err := g.append(func(uint64) { g.drop(lo, hi) }); err != nil {
		return false, err
	}
	return head, nil
}
