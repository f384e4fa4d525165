package etcd

import (
	"errors"
	"fmt"
	"path/filepath"

	"github.com/gojournal/journal/wal"
	"go.etcd.io/raft/v3"
	pb "go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"
)

// ErrGap is returned by Append and Save for entries that neither continue
// the log nor overwrite part of it (their first index is past LastIndex()+1),
// or whose indexes are not consecutive. MemoryStorage panics instead.
var ErrGap = errors.New("etcd: entries do not continue the log")

// ErrFailed is returned by every write after a write failed: which of its
// steps reached the disk is unknown, so the Storage refuses to go on. Reads
// go on. Reopen the Storage: Open finds out what the disk holds and
// finishes a compaction or snapshot installation the failure interrupted.
var ErrFailed = errors.New("etcd: storage failed earlier; reopen it")

// do runs a write under the lock. A write is refused once one failed; an
// error other than a refusal of the arguments (which is returned before
// anything is written) fails the Storage.
func (s *Storage) do(write func() error) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.err != nil {
		return fmt.Errorf("%w (%v)", ErrFailed, s.err)
	}
	err := write()
	if err != nil && !refusal(err) {
		s.err = err
	}
	return err
}

func refusal(err error) bool {
	for _, r := range []error{ErrGap, raft.ErrCompacted, raft.ErrUnavailable, raft.ErrSnapOutOfDate} {
		if errors.Is(err, r) {
			return true
		}
	}
	return false
}

// Save persists what one raft.Ready asks to be persisted before its messages
// are sent: the entries (a tail that conflicts with them is dropped first)
// and then the HardState. When Save returns nil, the entries are durable,
// and so is the HardState if its Term or Vote changed (or Options.SyncCommit
// is set); a HardState that only moves Commit forward is written to the
// operating system but not fdatasync'd, so a steady stream of Readys costs
// one fdatasync each (the entries'). A nil or empty HardState is not saved.
//
// The entries are made durable before the HardState is written, so the
// Commit on disk never points past the entries on disk.
func (s *Storage) Save(hs *pb.HardState, ents []*pb.Entry) error {
	return s.do(func() error {
		if err := s.append(ents); err != nil {
			return err
		}
		if raft.IsEmptyHardState(hs) {
			return nil
		}
		next := s.st.withHardState(hs)
		if next == s.st {
			return nil
		}
		sync := s.opts.SyncCommit || next.term != s.st.term || next.vote != s.st.vote
		return s.writeState(next, sync)
	})
}

// SetHardState saves hs durably (it is fdatasync'd before SetHardState
// returns). Save is the cheaper way to persist a Ready.
func (s *Storage) SetHardState(hs *pb.HardState) error {
	return s.do(func() error { return s.writeState(s.st.withHardState(hs), true) })
}

// Append durably appends entries, as MemoryStorage.Append does: entries
// already compacted are skipped, and entries overlapping the log replace
// the tail from their first index (TruncateBack, then append). Entries past
// LastIndex()+1 get ErrGap.
func (s *Storage) Append(ents []*pb.Entry) error {
	return s.do(func() error { return s.append(ents) })
}

func (s *Storage) append(ents []*pb.Entry) error {
	if len(ents) == 0 {
		return nil
	}
	first := ents[0].GetIndex()
	if c := s.st.compactIndex; first <= c {
		if first+uint64(len(ents))-1 <= c {
			return nil
		}
		ents, first = ents[c+1-first:], c+1
	}
	if last := s.lastIndex(); first > last+1 {
		return fmt.Errorf("%w: entry %d after the last index %d", ErrGap, first, last)
	}
	recs, err := encodeEntries(first, ents)
	if err != nil {
		return err
	}
	if first <= s.lastIndex() {
		if err := s.ents.TruncateBack(first - 1); err != nil {
			return err
		}
		s.cutRuns(first)
	}
	for len(recs) > 0 {
		n := batchLen(recs)
		got, err := s.ents.AppendBatch(recs[:n])
		if err != nil {
			return err
		}
		if got != first {
			return fmt.Errorf("etcd: the log gave index %d to entry %d", got, first)
		}
		s.addRuns(ents[:n])
		recs, ents, first = recs[n:], ents[n:], first+uint64(n)
	}
	return nil
}

func encodeEntries(first uint64, ents []*pb.Entry) ([][]byte, error) {
	recs := make([][]byte, len(ents))
	for i, e := range ents {
		if e.GetIndex() != first+uint64(i) {
			return nil, fmt.Errorf("%w: entry %d where %d belongs", ErrGap, e.GetIndex(), first+uint64(i))
		}
		b, err := proto.Marshal(e)
		if err != nil {
			return nil, fmt.Errorf("etcd: encode entry %d: %w", e.GetIndex(), err)
		}
		recs[i] = b
	}
	return recs, nil
}

// batchLen is how many of recs fit in one AppendBatch: a Ready holds far
// less than wal.MaxBatchSize, but nothing stops a caller from passing more.
// Half the limit leaves room for the frames' headers.
func batchLen(recs [][]byte) int {
	size := 0
	for i, r := range recs {
		size += len(r)
		if i > 0 && size > wal.MaxBatchSize/2 {
			return i
		}
	}
	return len(recs)
}

// cutRuns forgets the terms of the entries from index first on.
func (s *Storage) cutRuns(first uint64) {
	for len(s.runs) > 0 && s.runs[len(s.runs)-1].first >= first {
		s.runs = s.runs[:len(s.runs)-1]
	}
}

func (s *Storage) addRuns(ents []*pb.Entry) {
	for _, e := range ents {
		if n := len(s.runs); n == 0 || s.runs[n-1].term != e.GetTerm() {
			s.runs = append(s.runs, termRun{e.GetIndex(), e.GetTerm()})
		}
	}
}

// Compact releases the entries up to and including i, which must lie in
// (FirstIndex()-1, LastIndex()]; Term(i) stays known. It returns
// ErrCompacted for i <= FirstIndex()-1. The application compacts only
// applied entries, so the HardState's Commit is raised to i if it was below.
// The new compaction point is recorded durably before the entries are
// released; Open finishes a release a crash interrupted.
func (s *Storage) Compact(i uint64) error {
	return s.do(func() error { return s.compact(i) })
}

func (s *Storage) compact(i uint64) error {
	if i <= s.st.compactIndex {
		return raft.ErrCompacted
	}
	if i > s.lastIndex() {
		return fmt.Errorf("etcd: compact %d past the last index %d: %w", i, s.lastIndex(), raft.ErrUnavailable)
	}
	t, err := s.term(i)
	if err != nil {
		return err
	}
	next := s.st
	next.compactIndex, next.compactTerm, next.commit = i, t, max(next.commit, i)
	if err := s.writeState(next, true); err != nil {
		return err
	}
	if err := s.ents.TruncateFront(i + 1); err != nil {
		return err
	}
	k := len(s.runs) - 1
	for k > 0 && s.runs[k].first > i+1 {
		k--
	}
	s.runs = s.runs[k:]
	if i == s.lastIndex() {
		s.runs = nil
	} else {
		s.runs[0].first = max(s.runs[0].first, i+1)
	}
	return nil
}

// CreateSnapshot records, durably, a snapshot of the state as of entry i
// (which must be in [FirstIndex()-1, LastIndex()]) with the ConfState cs
// (nil keeps the previous snapshot's) and data, and returns it. It releases
// no entries (Compact does). It returns ErrSnapOutOfDate if i is not newer
// than the current snapshot.
func (s *Storage) CreateSnapshot(i uint64, cs *pb.ConfState, data []byte) (snap *pb.Snapshot, err error) {
	err = s.do(func() error {
		snap, err = s.createSnapshot(i, cs, data)
		return err
	})
	return snap, err
}

func (s *Storage) createSnapshot(i uint64, cs *pb.ConfState, data []byte) (*pb.Snapshot, error) {
	if i <= s.snap.GetMetadata().GetIndex() {
		return nil, raft.ErrSnapOutOfDate
	}
	if i > s.lastIndex() {
		return nil, fmt.Errorf("etcd: snapshot %d past the last index %d: %w", i, s.lastIndex(), raft.ErrUnavailable)
	}
	t, err := s.term(i)
	if err != nil {
		return nil, err
	}
	if cs == nil {
		cs = s.snap.GetMetadata().GetConfState()
	}
	snap := &pb.Snapshot{
		Data: data,
		Metadata: &pb.SnapshotMetadata{
			Index: &i, Term: &t, ConfState: proto.Clone(pb.EnsureConfState(cs)).(*pb.ConfState),
		},
	}
	if err := s.setSnap(snapCreated, snap); err != nil {
		return nil, err
	}
	return snap, nil
}

// ApplySnapshot installs snap (received from the leader in a Ready): the
// snapshot is stored durably, every entry is dropped, and the log continues
// at the snapshot's index + 1 with its term known, as MemoryStorage does.
// It returns ErrSnapOutOfDate if snap is not newer than the current
// snapshot, or (unlike MemoryStorage, which would move its log backwards)
// not past the compaction point; one of index 0 (a bootstrap ConfState)
// is taken only by a Storage holding no log yet. The snapshot file is
// written first and marked as installed: a crash later in ApplySnapshot
// is finished by Open.
func (s *Storage) ApplySnapshot(snap *pb.Snapshot) error {
	return s.do(func() error { return s.applySnapshot(pb.EnsureSnapshot(snap)) })
}

func (s *Storage) applySnapshot(snap *pb.Snapshot) error {
	idx, cur := snap.GetMetadata().GetIndex(), s.snap.GetMetadata().GetIndex()
	outOfDate := idx <= max(cur, s.st.compactIndex)
	if idx == 0 {
		// A snapshot of index 0 carries only a ConfState (how etcd
		// bootstraps): only a Storage without a log may take it.
		// Anywhere else, resetting to 0 would drop entries that may be
		// committed, and leave Commit past the log.
		outOfDate = cur != 0 || s.lastIndex() != 0
	}
	if outOfDate {
		return raft.ErrSnapOutOfDate
	}
	if err := s.setSnap(snapApplied, snap); err != nil {
		return err
	}
	return s.resetTo(idx, snap.GetMetadata().GetTerm())
}

func (s *Storage) setSnap(kind snapKind, snap *pb.Snapshot) error {
	if err := writeSnap(s.fsys, s.snapPath(), kind, snap); err != nil {
		return err
	}
	s.snap = &pb.Snapshot{Metadata: proto.Clone(snap.GetMetadata()).(*pb.SnapshotMetadata)}
	s.hasSnap = true
	return nil
}

// resetTo empties the log so that it continues at idx+1 after an entry of
// term t. Each step is skipped if done, so Open can finish a reset a crash
// interrupted: drop the entries after idx, drop those up to idx (the log
// may end before idx: it then starts over at idx+1), and record the
// compaction point. The entries dropped conflict with the snapshot (raft
// installs one only where the log does not match it), so none of them was
// committed.
func (s *Storage) resetTo(idx, t uint64) error {
	if s.ents.LastIndex() > idx {
		if err := s.ents.TruncateBack(idx); err != nil {
			return err
		}
	}
	if s.ents.FirstIndex() != idx+1 {
		if err := s.ents.TruncateFront(idx + 1); err != nil {
			return err
		}
	}
	s.runs = nil
	next := s.st
	next.compactIndex, next.compactTerm, next.commit = idx, t, max(next.commit, idx)
	return s.writeState(next, true)
}

// writeState appends next to the state log (fdatasync'd if sync) and, every
// stateKeep records, releases the older ones.
func (s *Storage) writeState(next state, sync bool) error {
	if _, err := s.stLog.Append(next.encode()); err != nil {
		return err
	}
	if sync {
		if err := s.stLog.Sync(); err != nil {
			return err
		}
	}
	s.st = next
	s.stCount++
	if s.stCount < stateKeep {
		return nil
	}
	if err := s.stLog.TruncateFront(s.stLog.LastIndex()); err != nil {
		return err
	}
	s.stCount = 1
	return nil
}

func (s *Storage) snapPath() string { return filepath.Join(s.dir, snapDir) }
