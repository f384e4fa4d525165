package etcd

import (
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"sort"
	"sync"

	"github.com/gojournal/journal/vfs"
	"github.com/gojournal/journal/wal"
	"go.etcd.io/raft/v3"
	pb "go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
)

// Names of the three parts of a Storage directory.
const (
	logDir   = "log"   // the entries: journal index i holds raft entry i
	stateDir = "state" // state records (HardState, compaction point)
	snapDir  = "snap"  // the raft snapshot
)

// The state log's shape. Each state record written on its own takes a
// 512-byte sector (a write never shares a sector with durable bytes), so a
// segment of stateSegmentSize holds about 2000 of them; a segment rotation
// (create, preallocate, syncs) and a TruncateFront (a meta file replaced)
// each cost milliseconds, and spread over thousands of Readys they stay
// under a microsecond each. The state log holds at most about three
// segments. Measured (BenchmarkReady/entries=0/Save) with 64 KiB segments
// and a TruncateFront every 512 records, a Commit-only Save cost about
// 40 µs; with these, about 7 µs.
const (
	stateKeep        = 4096
	stateSegmentSize = 1 << 20
)

// Options configures a Storage. The zero value (or nil) gives the defaults.
type Options struct {
	// FS is the file system (default vfs.Default, the OS). Tests pass a
	// vfs/crashfs or vfs/errorfs FS.
	FS vfs.FS
	// SegmentSize is the entries log's segment size (default
	// wal.DefaultSegmentSize).
	SegmentSize int64
	// SyncCommit makes every HardState change durable before Save returns.
	// By default a change of Commit alone is written but not fdatasync'd
	// (raft.MustSync's rule): a power loss may take the commit index back,
	// never past the compaction point, and raft learns it again from the
	// leader. Set it if the application's state machine is durable on its
	// own and restarts with Config.Applied beyond what InitialState's
	// Commit may then say.
	SyncCommit bool
	// Logger receives the journal logs' recovery reports (default
	// slog.Default()).
	Logger *slog.Logger
}

// Storage is a raft.Storage kept in a journal directory. Its methods are safe
// for concurrent use; entries returned by Entries are fresh copies the caller
// owns.
//
// Errors: raft.ErrCompacted, raft.ErrUnavailable and raft.ErrSnapOutOfDate
// are returned unwrapped where raft and MemoryStorage return them (raft
// compares them with ==); arguments a write cannot take (ErrGap, those three)
// are refused before anything is written. Any other error from a write
// means its outcome on disk is unknown: the Storage then refuses every
// write with ErrFailed until it is reopened.
type Storage struct {
	mu      sync.Mutex
	fsys    vfs.FS
	dir     string
	opts    Options
	ents    *wal.Log     // raft entries, journal index = raft index
	stLog   *wal.Log     // state records, opened NoSync: Save chooses when to sync
	st      state        // the state as last recorded
	stCount int          // state records written since the state log was last truncated
	snap    *pb.Snapshot // the snapshot's metadata; its data stays in the file
	hasSnap bool         // a snapshot file exists
	// runs holds the term of every entry in the log as runs of equal
	// terms, so that Term, which raft calls for every append it receives
	// and every commit it considers, reads no disk. Terms only grow along
	// the log, so there are as many runs as elections the log spans.
	runs []termRun
	err  error // the error that failed a write; later writes are refused
}

// termRun says that the entries from first up to the next run's first
// (or the end of the log) have term term.
type termRun struct{ first, term uint64 }

var _ raft.Storage = (*Storage)(nil)

// Open opens the Storage in dir, creating it if needed, and finishes a
// compaction or snapshot installation that a crash interrupted.
func Open(dir string, opts *Options) (*Storage, error) {
	s := &Storage{dir: dir}
	if opts != nil {
		s.opts = *opts
	}
	s.fsys = s.opts.FS
	if s.fsys == nil {
		s.fsys = vfs.Default
	}
	if err := s.open(); err != nil {
		s.closeLogs()
		return nil, fmt.Errorf("etcd: open %s: %w", dir, err)
	}
	return s, nil
}

func (s *Storage) open() (err error) {
	s.ents, err = wal.Open(filepath.Join(s.dir, logDir), &wal.Options{
		FS: s.fsys, SegmentSize: s.opts.SegmentSize, Logger: s.opts.Logger,
	})
	if err != nil {
		return err
	}
	s.stLog, err = wal.Open(filepath.Join(s.dir, stateDir), &wal.Options{
		FS: s.fsys, SegmentSize: stateSegmentSize, NoSync: true, Logger: s.opts.Logger,
	})
	if err != nil {
		return err
	}
	if err := s.loadState(); err != nil {
		return err
	}
	if err := prepareSnapDir(s.fsys, s.snapPath()); err != nil {
		return err
	}
	var kind snapKind
	if s.snap, kind, err = readSnap(s.fsys, s.snapPath()); err != nil {
		return err
	}
	s.hasSnap, s.snap.Data = kind != 0, nil
	if err := s.reconcile(kind); err != nil {
		return err
	}
	return s.loadRuns()
}

func (s *Storage) loadState() error {
	last := s.stLog.LastIndex()
	if last < s.stLog.FirstIndex() {
		return nil // a new Storage
	}
	b, err := s.stLog.Read(last)
	if err != nil {
		return err
	}
	s.st, err = decodeState(b)
	s.stCount = int(last - s.stLog.FirstIndex() + 1)
	return err
}

// reconcile brings the entries log in line with the state and the snapshot
// after a crash: an ApplySnapshot is finished if its snapshot file was
// written, and the entries a recorded compaction released are dropped.
func (s *Storage) reconcile(kind snapKind) error {
	meta := s.snap.GetMetadata()
	if kind == snapApplied && meta.GetIndex() > s.st.compactIndex {
		return s.resetTo(meta.GetIndex(), meta.GetTerm())
	}
	if first := s.ents.FirstIndex(); first <= s.st.compactIndex {
		return s.ents.TruncateFront(s.st.compactIndex + 1)
	} else if first > s.st.compactIndex+1 {
		return fmt.Errorf("%w: the entries log starts at %d, after the compaction point %d",
			wal.ErrCorrupt, first, s.st.compactIndex)
	}
	return nil
}

// loadRuns rebuilds runs by bisection: a range whose first and last entries
// have the same term is one run, so this reads about (runs × log entries)
// entries, not the whole log.
func (s *Storage) loadRuns() error {
	first, last := s.ents.FirstIndex(), s.ents.LastIndex()
	s.runs = nil
	if first > last {
		return nil
	}
	tf, err := s.readTerm(first)
	if err != nil {
		return err
	}
	tl, err := s.readTerm(last)
	if err != nil {
		return err
	}
	s.runs = append(s.runs, termRun{first, tf})
	return s.bisect(first, tf, last, tl)
}

// bisect appends the runs that start in (lo, hi], given the terms at both.
func (s *Storage) bisect(lo, tlo, hi, thi uint64) error {
	if tlo == thi {
		return nil
	}
	if hi == lo+1 {
		s.runs = append(s.runs, termRun{hi, thi})
		return nil
	}
	mid := lo + (hi-lo)/2
	tm, err := s.readTerm(mid)
	if err != nil {
		return err
	}
	if err := s.bisect(lo, tlo, mid, tm); err != nil {
		return err
	}
	return s.bisect(mid, tm, hi, thi)
}

// readTerm reads the term of entry i from the log, decoding only that field.
func (s *Storage) readTerm(i uint64) (uint64, error) {
	b, err := s.ents.Read(i)
	if err != nil {
		return 0, err
	}
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			break
		}
		b = b[n:]
		if num == 2 && typ == protowire.VarintType { // Entry.Term
			t, n := protowire.ConsumeVarint(b)
			if n < 0 {
				break
			}
			return t, nil
		}
		if n = protowire.ConsumeFieldValue(num, typ, b); n < 0 {
			break
		}
		b = b[n:]
	}
	return 0, fmt.Errorf("%w: entry %d has no readable term", wal.ErrCorrupt, i)
}

// Close closes the logs. The Storage must not be used afterwards.
func (s *Storage) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.closeLogs()
}

func (s *Storage) closeLogs() error {
	var errs []error
	for _, l := range []*wal.Log{s.ents, s.stLog} {
		if l != nil {
			errs = append(errs, l.Close())
		}
	}
	return errors.Join(errs...)
}

// InitialState implements raft.Storage: the last HardState saved and the
// ConfState of the snapshot.
func (s *Storage) InitialState() (*pb.HardState, *pb.ConfState, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	cs := proto.Clone(pb.EnsureConfState(s.snap.GetMetadata().GetConfState())).(*pb.ConfState)
	return s.st.hardState(), cs, nil
}

// HardState returns the last HardState saved.
func (s *Storage) HardState() *pb.HardState {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.st.hardState()
}

// FirstIndex implements raft.Storage.
func (s *Storage) FirstIndex() (uint64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.st.compactIndex + 1, nil
}

// LastIndex implements raft.Storage.
func (s *Storage) LastIndex() (uint64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.lastIndex(), nil
}

// lastIndex is the raft log's last index: the entries log's, which equals
// the compaction index when the log is empty.
func (s *Storage) lastIndex() uint64 { return s.ents.LastIndex() }

// Term implements raft.Storage: ErrCompacted below FirstIndex()-1,
// ErrUnavailable past LastIndex().
func (s *Storage) Term(i uint64) (uint64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.term(i)
}

func (s *Storage) term(i uint64) (uint64, error) {
	switch {
	case i < s.st.compactIndex:
		return 0, raft.ErrCompacted
	case i == s.st.compactIndex:
		return s.st.compactTerm, nil
	case i > s.lastIndex():
		return 0, raft.ErrUnavailable
	}
	k := sort.Search(len(s.runs), func(k int) bool { return s.runs[k].first > i })
	return s.runs[k-1].term, nil
}

// Entries implements raft.Storage: the entries [lo, hi), at least one if
// there is any, and no more than fit in maxSize bytes (their encoded size, as
// raft counts it). It returns ErrCompacted for lo <= FirstIndex()-1 and
// ErrUnavailable for hi > LastIndex()+1 or an empty log.
func (s *Storage) Entries(lo, hi, maxSize uint64) ([]*pb.Entry, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if lo <= s.st.compactIndex {
		return nil, raft.ErrCompacted
	}
	if hi > s.lastIndex()+1 || s.lastIndex() == s.st.compactIndex {
		return nil, raft.ErrUnavailable
	}
	var ents []*pb.Entry
	var size uint64
	for i := lo; i < hi; i++ {
		b, err := s.ents.Read(i)
		if err != nil {
			return nil, err
		}
		size += uint64(len(b))
		if len(ents) > 0 && size > maxSize {
			break
		}
		e := new(pb.Entry)
		if err := proto.Unmarshal(b, e); err != nil {
			return nil, fmt.Errorf("%w: entry %d: %v", wal.ErrCorrupt, i, err)
		}
		ents = append(ents, e)
	}
	return ents, nil
}

// Snapshot implements raft.Storage: the snapshot last created or applied (an
// empty one if none), read from its file.
func (s *Storage) Snapshot() (*pb.Snapshot, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.hasSnap {
		return emptySnap(), nil
	}
	snap, _, err := readSnap(s.fsys, s.snapPath())
	return snap, err
}
