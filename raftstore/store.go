package raftstore

import (
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"sync/atomic"

	"github.com/gojournal/journal/vfs"
	"github.com/gojournal/journal/wal"
	"github.com/hashicorp/raft"
)

var (
	// ErrNotContiguous is returned by StoreLogs when the entries do not
	// continue the log (or each other) index by index, and by DeleteRange
	// for a range that is neither a prefix nor a suffix of the log.
	ErrNotContiguous = errors.New("raftstore: entries not contiguous with the log")
	// ErrFormat is returned when a stored entry or stable record was
	// written in a format this build does not read.
	ErrFormat = errors.New("raftstore: unknown format")
	// ErrOtherKind is returned by Open for a Shared store's directory,
	// and by OpenShared for a Store's.
	ErrOtherKind = errors.New("raftstore: the directory holds the other kind of store")
)

// Options configures a Store. The zero value (or nil) works.
type Options struct {
	// Log configures the journal holding the entries; nil means the
	// defaults. Its FS is used for the stable log too. With NoSync set,
	// StoreLogs syncs before it returns, as raft requires. Checkpoints
	// and retention policies are refused (wal.ErrInvalidOptions): raft
	// alone decides which entries go.
	Log *wal.Options
	// CompactAfter is how many stable records accumulate before the
	// stable log is compacted into a checkpoint of the latest values;
	// 0 means 1024.
	CompactAfter int
}

// Store is a raft.LogStore, raft.StableStore and raft.MonotonicLogStore
// backed by journal logs in one directory.
type Store struct {
	log    *wal.Log
	noSync bool
	// wmu serialises StoreLogs and DeleteRange: each reads the log's
	// range and changes it according to what it read.
	wmu  sync.Mutex
	buf  []byte // encoding buffer, under wmu
	recs [][]byte
	ends []int

	keys   // the StableStore's methods
	closed atomic.Bool
}

var (
	_ raft.LogStore          = (*Store)(nil)
	_ raft.StableStore       = (*Store)(nil)
	_ raft.MonotonicLogStore = (*Store)(nil)
)

// Open opens (creating it if needed) the store in dir, recovering both
// logs as wal.Open does after a crash.
func Open(dir string, opts *Options) (*Store, error) {
	l, st, lo, err := openLogs(dir, opts, storeLog, sharedLog)
	if err != nil {
		return nil, err
	}
	s := &Store{log: l, noSync: lo.NoSync}
	s.keys = keys{stable: st, closed: &s.closed}
	return s, nil
}

// Close closes both logs. Later calls return wal.ErrClosed.
func (s *Store) Close() error {
	if !s.closed.CompareAndSwap(false, true) {
		return wal.ErrClosed
	}
	return errors.Join(s.log.Close(), s.stable.close())
}

// usable returns wal.ErrClosed once Close has begun: the reads that the
// journal does not answer themselves (stable values are held in memory).
func (s *Store) usable() error {
	if s.closed.Load() {
		return wal.ErrClosed
	}
	return nil
}

// IsMonotonic reports true: the log never has gaps (raft then deletes
// every entry after restoring a snapshot rather than leave a gap).
func (s *Store) IsMonotonic() bool { return true }

// FirstIndex returns the index of the first entry, 0 when there is none.
func (s *Store) FirstIndex() (uint64, error) { return firstOf(s.bounds()) }

// LastIndex returns the index of the last entry, 0 when there is none.
func (s *Store) LastIndex() (uint64, error) { return lastOf(s.bounds()) }

// firstOf and lastOf turn a log's bounds into raft's FirstIndex and
// LastIndex: 0 for an empty log (first > last), as raft expects.
func firstOf(first, last uint64, err error) (uint64, error) {
	if err != nil || first > last {
		return 0, err
	}
	return first, nil
}

func lastOf(first, last uint64, err error) (uint64, error) {
	if err != nil || first > last {
		return 0, err
	}
	return last, nil
}

// bounds reads the log's range. An empty log may have its start anywhere,
// so FirstIndex and LastIndex report 0 for it, as raft expects.
func (s *Store) bounds() (first, last uint64, err error) {
	if err := s.usable(); err != nil {
		return 0, 0, err
	}
	// Not under wmu: raft reads while it appends. The two calls may see
	// an append between them, which only widens the range.
	first = s.log.FirstIndex()
	last = s.log.LastIndex()
	return first, last, nil
}

// GetLog reads the entry at index into log. It returns raft.ErrLogNotFound
// itself (raft compares with ==) when the log does not hold index.
func (s *Store) GetLog(index uint64, log *raft.Log) error {
	rec, err := s.log.Read(index)
	if errors.Is(err, wal.ErrNotFound) {
		return raft.ErrLogNotFound
	}
	if err != nil {
		return err
	}
	return decodeEntry(rec, index, log)
}

// StoreLog stores one entry; see StoreLogs.
func (s *Store) StoreLog(log *raft.Log) error { return s.StoreLogs([]*raft.Log{log}) }

// StoreLogs appends the entries atomically and durably. They must be
// contiguous and continue the log (the first at LastIndex()+1), except on
// an empty log, where they may start at any index >= 1 (after a snapshot
// raft continues from the snapshot's index + 1). Otherwise it returns
// ErrNotContiguous and stores nothing.
func (s *Store) StoreLogs(logs []*raft.Log) error {
	if len(logs) == 0 {
		return nil
	}
	if err := contiguous(logs); err != nil {
		return err
	}
	s.wmu.Lock()
	defer s.wmu.Unlock()
	if err := s.startAt(logs[0].Index); err != nil {
		return err
	}
	s.encode(logs)
	first, err := s.append()
	if err != nil {
		return err
	}
	if first != logs[0].Index {
		// Only a writer outside this Store could cause it.
		return fmt.Errorf("raftstore: entries stored from index %d, want %d", first, logs[0].Index)
	}
	if s.noSync {
		return s.log.Sync()
	}
	return nil
}

// startAt makes the log's next index next: it must be already, or the log
// must be empty (then it restarts there). Called with wmu held.
func (s *Store) startAt(next uint64) error {
	first, last := s.log.FirstIndex(), s.log.LastIndex()
	switch {
	case next == last+1:
		return nil
	case first <= last || next == 0:
		return fmt.Errorf("%w: entry %d does not continue the log [%d, %d]", ErrNotContiguous, next, first, last)
	}
	return s.log.TruncateFront(next)
}

// encode encodes the entries into s.buf and points s.recs at each. The
// records are sliced once the buffer has stopped growing, as append may
// move it.
func (s *Store) encode(logs []*raft.Log) {
	s.buf, s.recs, s.ends = s.buf[:0], s.recs[:0], s.ends[:0]
	for _, e := range logs {
		s.buf = appendEntry(s.buf, e)
		s.ends = append(s.ends, len(s.buf))
	}
	start := 0
	for _, end := range s.ends {
		s.recs = append(s.recs, s.buf[start:end:end])
		start = end
	}
}

// append writes s.recs as one batch (one record alone, when there is one).
func (s *Store) append() (uint64, error) {
	if len(s.recs) == 1 {
		return s.log.Append(s.recs[0])
	}
	return s.log.AppendBatch(s.recs)
}

// DeleteRange deletes the entries in [from, to]. It must be a prefix of
// the log (raft compacting after a snapshot; a to past the end deletes
// everything, and the next StoreLogs may start anywhere) or a suffix (a
// conflicting tail); the part of the range outside the log is ignored.
// Anything else returns ErrNotContiguous.
func (s *Store) DeleteRange(from, to uint64) error {
	if from > to {
		return nil
	}
	s.wmu.Lock()
	defer s.wmu.Unlock()
	first, last := s.log.FirstIndex(), s.log.LastIndex()
	switch {
	case first > last || to < first || from > last:
		return nil
	case from <= first:
		// Not to+1: it overflows for to = MaxUint64. An emptied log
		// may restart anywhere, so stopping at last+1 loses nothing.
		return s.log.TruncateFront(min(to, last) + 1)
	case to >= last:
		return s.log.TruncateBack(from - 1)
	}
	return fmt.Errorf("%w: DeleteRange(%d, %d) inside the log [%d, %d]: only a prefix or a suffix may be deleted",
		ErrNotContiguous, from, to, first, last)
}

// contiguous checks that the entries of one StoreLogs follow each other.
func contiguous(logs []*raft.Log) error {
	for i := 1; i < len(logs); i++ {
		if logs[i].Index != logs[i-1].Index+1 {
			return fmt.Errorf("%w: entry %d follows entry %d in one StoreLogs", ErrNotContiguous, logs[i].Index, logs[i-1].Index)
		}
	}
	return nil
}

// Entry log directories: each kind of store refuses the other's, whose
// records it would misread.
const (
	storeLog  = "log"    // a Store's
	sharedLog = "shared" // a Shared store's
)

// openLogs opens the entry log at dir/name and the stable log at
// dir/stable, as Open and OpenShared need them. It refuses a directory
// holding other, the other kind of store's entry log.
func openLogs(dir string, opts *Options, name, other string) (*wal.Log, *stable, wal.Options, error) {
	var o Options
	if opts != nil {
		o = *opts
	}
	var lo wal.Options
	if o.Log != nil {
		lo = *o.Log
	}
	if lo.Checkpoint.State != nil {
		// A checkpoint would bind the log to its snapshot's index, and
		// raft must be able to restart an empty log anywhere.
		return nil, nil, lo, fmt.Errorf("%w: raftstore: Log.Checkpoint.State is set; raft takes its own snapshots, the entry log none",
			wal.ErrInvalidOptions)
	}
	if r := lo.Retention; r.MaxAge > 0 || r.MaxBytes > 0 || r.ReleaseAcked {
		// Retention would release entries raft never deleted: a
		// Store's front would move on its own, and a Shared group's
		// entries vanish from inside its range.
		return nil, nil, lo, fmt.Errorf("%w: raftstore: Log.Retention releases entries; raft deletes its own with DeleteRange",
			wal.ErrInvalidOptions)
	}
	fsys := lo.FS
	if fsys == nil {
		fsys = vfs.Default
	}
	if _, err := fsys.Stat(filepath.Join(dir, other)); err == nil {
		return nil, nil, lo, fmt.Errorf("%w: %s holds %s/", ErrOtherKind, dir, other)
	}
	l, err := wal.Open(filepath.Join(dir, name), &lo)
	if err != nil {
		return nil, nil, lo, err
	}
	st, err := openStable(filepath.Join(dir, "stable"), lo, o.CompactAfter)
	if err != nil {
		l.Close()
		return nil, nil, lo, err
	}
	return l, st, lo, nil
}
