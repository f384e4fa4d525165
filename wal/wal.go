// Package wal is journal's write-ahead log: durable, checksummed,
// group-committed appends of opaque records, indexed from 1, with reads by
// index, truncation at both ends and crash recovery on Open.
//
// A Log owns one directory. Records go into segment files (package
// segment describes the format); concurrent appends are group-committed:
// while one write and fdatasync is in flight, newly arriving records gather,
// and the next write and fdatasync makes all of them durable at once.
// A state machine that must apply records in log order uses AppendApply,
// which runs its apply in index order once the record is durable, rather
// than a lock held across Append (which would defeat group commit).
// Options.Retention releases old records in the background (by age, by
// size, once consumers have acknowledged them: package cursor keeps their
// positions).
//
// Close writes a clean-close manifest describing every sealed segment, so
// that a default Open of a cleanly closed log reads the manifest instead of
// each sealed segment's footer, in a time that does not grow with the
// records; a damaged sealed footer is then reported (ErrCorrupt, naming
// the file) on the segment's first use rather than by Open.
// Options.Verify and `wal verify` check every segment at once.
//
// All methods of a Log are safe for concurrent use.
package wal

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/gojournal/journal/recovery"
	"github.com/gojournal/journal/segment"
	"github.com/gojournal/journal/vfs"
)

// LockName is the lock file Open creates in the log directory.
const LockName = recovery.LockName

// maxSpare is the largest write buffer kept for reuse; a larger one (left by
// a huge record) is dropped so memory does not stay high.
const maxSpare = 4 << 20

// Log is an open write-ahead log.
type Log struct {
	dir   string
	opts  Options
	fs    vfs.FS
	lock  io.Closer
	codec segment.Codec
	found Recovery

	// opMu serialises the operations that change the log's range or
	// snapshot: TruncateFront, TruncateBack, Checkpoint and Close. Each
	// checks the snapshot rule against the snapshot and range that exist
	// when it commits. Take it before filesMu and mu.
	opMu sync.Mutex
	// closing is set when Close begins: new calls get ErrClosed and a
	// checkpoint writing its snapshot is cancelled.
	closing atomic.Bool

	// filesMu is held shared while a read locates and uses a segment file,
	// and exclusively while files are cut, closed or removed. Take it
	// before mu, never while holding mu.
	filesMu sync.RWMutex

	mu   sync.Mutex
	cond sync.Cond // broadcast (see broadcast) whenever a flush or an exclusive operation ends
	// Invariant: first <= last+1 <= next; records in [first, last] are
	// readable (durable, unless NoSync); [last+1, next) are assigned and
	// in flight or pending.
	first, last, next uint64
	// durable is the last record Readers may return: one a crash cannot
	// take back (an fdatasync covered it). It equals last except with
	// NoSync, where it lags until a group commit that fdatasyncs.
	// Invariant: durable <= last.
	durable uint64
	// moved is closed (and set to nil) whenever what Readers see changes:
	// durable advances, a truncation or Close. A Reader waiting at the end
	// of the log creates it; nil when nobody waits, so appends without
	// waiting Readers allocate nothing.
	moved chan struct{}
	// backs tells this process's Readers which TruncateBacks came after
	// the record they returned (see backMarks).
	backs  backMarks
	sealed []*sealedSegment
	active *activeSegment
	// sealing is the full segment a rotation is sealing in the background
	// (nil when none): its records are read through its offsets, and no
	// record of the active segment is acknowledged until the rotation has
	// installed it (see rotate).
	sealing *activeSegment
	// sealedOnClose: Close sealed the active segment (published in the
	// tail file, see recovery.TailName).
	sealedOnClose bool
	// ready is a spare file prepared for the next rotation (nil when
	// none); preparing is set while a goroutine prepares one.
	ready     *spareFile
	preparing bool
	spareFull bool             // preparing a spare found the disk full: the rotation tries again
	bg        sync.WaitGroup   // rotations and spare preparations in flight
	indexed   []*sealedSegment // the sealed segments whose idx is in memory, oldest first
	// spareOffsets is the offsets slice of the last segment sealed, for
	// the next one: a steady stream of appends allocates nothing.
	spareOffsets []int64
	meta         recovery.Meta
	pend         []byte // frames gathering for the next write
	spare        []byte
	// pendMark is the synced field of the last frame in pend; writeMark
	// that of the last frame of the write in flight.
	pendMark, writeMark int64
	flushing            bool  // a write (and fdatasync) is in flight
	busy                bool  // rotation, truncation or Close: no appends may enqueue
	err                 error // sticky failure, wraps ErrFailed
	closed              bool
	stats               Stats
	metrics             Metrics // all but Stats and the segment figures, which Metrics adds
	sinceCheckpoint     int64   // bytes appended since the last checkpoint
	snapshot            uint64  // index the snapshot covers, 0 if none
	waiting, idle       *waiter // appends waiting for their records; recycled waiters
	woken               int     // waiters the last wakeWaiters acknowledged (see gather)
	returning           int     // acknowledged waiters yet to leave waitDurable
	// turns queues the AppendApply calls whose applies have yet to run, in
	// index order; lastTurn is its tail, idleTurns recycled turns.
	turns, lastTurn, idleTurns *turn
	// syncWanted counts NoSync Syncs waiting for a group commit that
	// fdatasyncs; syncsBegun and syncsDone count those commits.
	syncWanted            int
	syncsBegun, syncsDone uint64

	ckpt background // background checkpoints
	keep background // background retention

	pub publisher // the tail file, for readers in other processes
	ro  *follower // set when opened with OpenReadOnly
}

// Stats counts what a Log has done since Open: the small subset of Metrics
// that costs nothing to copy.
type Stats struct {
	Records uint64 // records appended
	// Writes counts group commits: one write call each, but none for a
	// commit that only fdatasyncs (a Sync in NoSync mode with nothing new
	// to write), which counts as a commit of no record and no byte.
	Writes uint64
	Syncs  uint64 // group-commit fdatasyncs (not those that create, seal or close a segment)
	// Bytes counts the bytes the group commits wrote: frames, each write
	// padded to a sector. Segment headers and footers are not counted
	// (the doc said "frames and footers"; no footer ever was).
	Bytes uint64
}

// Stats reports the log's counters. Records per sync (Records/Syncs) shows
// how well group commit batches concurrent appends; Metrics has the rest
// (histograms, segments, checkpoints, recovery) and the same Stats.
func (l *Log) Stats() Stats {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.stats
}

// sealedSegment is a segment that is full and carries its index on disk.
type sealedSegment struct {
	path   string
	h      segment.Header
	footer segment.Footer
	size   int64    // the file's size
	f      vfs.File // kept from recovery's walk, or opened on first read; guarded by Log.mu
	// idx is the footer's index, kept in memory for Read by the last
	// few segments read (Log.indexed); guarded by Log.mu.
	idx segment.Index
	// unchecked: h, footer and size come from the clean-close manifest
	// (recovery.ManifestName), not from the file, which check judges
	// before anything is read from it, taking the file's own if they
	// differ.
	unchecked atomic.Bool
	// doubted: opening or checking the file failed, so it may not hold
	// what the manifest said (damaged, removed): Close writes no
	// manifest vouching for it, and the next Open judges it as a walk
	// does (as Options.Verify and `wal verify` do).
	doubted atomic.Bool
}

// check verifies, before the first read from f (s's file), what Open took
// from the manifest: the header and the footer, its checksum included.
// Damage gives an error satisfying errors.Is(err, ErrCorrupt) naming the
// file. A sound file holding the records the manifest said, under another
// salt, footer or size (a manifest restored from a backup or copied from
// another log, a segment copied back), is no damage: `wal verify` and a
// walk judge it by itself, and so does check (segment.CheckSealed), which
// then gives s the file's header, footer and size, so that the reads and
// the next manifest use them. Concurrent first reads may both check: the
// first to finish sets s. mu is Log.mu, nil when the caller holds it: s's
// fields change only under it, and only while s is unchecked, so once
// check has returned nil they can be read without it.
func (s *sealedSegment) check(f vfs.File, mu *sync.Mutex) error {
	if !s.unchecked.Load() {
		return nil
	}
	lockIf(mu)
	h, ft := s.h, s.footer
	unlockIf(mu)
	size, err := f.Size()
	if err == nil {
		h, ft, err = segment.CheckSealed(f, s.path, size, h, ft)
	} else {
		err = fmt.Errorf("journal: stat %s: %w", s.path, err)
	}
	if err != nil {
		s.doubted.Store(true)
		return err
	}
	lockIf(mu)
	defer unlockIf(mu)
	if s.unchecked.Load() {
		s.h, s.footer, s.size = h, ft, size
		s.unchecked.Store(false)
	}
	return nil
}

func lockIf(mu *sync.Mutex) {
	if mu != nil {
		mu.Lock()
	}
}

func unlockIf(mu *sync.Mutex) {
	if mu != nil {
		mu.Unlock()
	}
}

func (s *sealedSegment) first() uint64 { return s.h.FirstIndex }
func (s *sealedSegment) next() uint64  { return s.footer.Next }

// activeSegment is the segment appends go to.
type activeSegment struct {
	path    string
	h       segment.Header
	f       vfs.File
	offsets []int64 // frame offset of each assigned record, pending ones included
	tail    int64   // where the pending buffer will be written
	synced  int64   // the file is durable up to here
	// proven is how far the frames on disk prove the file durable (their
	// synced fields); dataEnd is where the last write of frames ended.
	// Recovery can tell damage before proven from a torn tail.
	proven, dataEnd int64
	// size is the file's size: preallocated space, or the end of the
	// furthest write past it.
	size int64
	// times are when records were written to the segment (segment.Times,
	// sealed into its footer); firstKnown is false for a segment resumed
	// with records from before the restart, whose first append time is
	// then unknown.
	times      segment.Times
	firstKnown bool
	// syncAt is where the sync frame that ends the data lies, when the
	// last write was one (0 otherwise): Close then seals the segment, and
	// the next Open reopens it from its footer (see segment.Unseal).
	syncAt int64
	// zeroed is how far write has written zeros ahead of the frames
	// (see zeroAhead): below it, the blocks after the data are written.
	// Only write reads and changes it.
	zeroed int64
	// old is where the bytes a recycled file kept from its previous
	// segment end (0 for a fresh file): past the tail they are junk that
	// recovery would read as a torn tail (see sealOnClose).
	old int64
}

func (a *activeSegment) first() uint64 { return a.h.FirstIndex }

// Recovery says what Open repaired.
type Recovery struct {
	// Torn describes the torn tail cut from the newest segment (nil if the
	// log was closed cleanly or crashed between writes).
	Torn *recovery.Torn
	// Removed lists leftover temporary files and obsolete segments removed.
	Removed []string
	// Duration is how long Open took, recovery included.
	Duration time.Duration
}

// Open opens the log in dir, creating the directory and an empty log if
// needed, and recovers it: a torn tail left by a crash is cut (and reported
// through Recovered and the Logger); damage inside durable data fails Open
// with an error satisfying errors.Is(err, ErrCorrupt) that names the file
// and offset. Open locks the directory: a second Open fails with ErrLocked
// until Close. A nil opts means the defaults.
//
// Of a cleanly closed log Open reads the clean-close manifest that Close
// wrote (recovery.ManifestName), which describes every sealed segment, and
// the newest segment's header and footer: it opens no other segment, and
// its cost does not grow with the records' count or bytes. It then removes
// the manifest before it changes anything. A sealed segment taken from the
// manifest is opened, and its header and footer (checksum included)
// checked against the manifest, the first time it is read from (Read, a Reader, a TruncateBack into it,
// retention judging its age): a damaged header or footer, or a file
// removed since, is reported then, as an error satisfying
// errors.Is(err, ErrCorrupt) naming the file (ErrFormat for a file this
// build does not read, as Open would say), not by Open; Close then writes
// no manifest, so the next Open judges every segment. With
// Options.Verify, or without a manifest that matches the directory (after
// a crash, say), Open opens every segment and verifies every footer
// (one open, one fstat and three reads each, and a checksum over 4 bytes a
// record); after a crash it also scans the newest segment's frames. The
// log keeps a sealed segment's file open from its first use (or from Open,
// when Open read it) to Close, and reads records through it.
func Open(dir string, opts *Options) (*Log, error) {
	start := time.Now()
	o, err := opts.withDefaults()
	if err != nil {
		return nil, err
	}
	l := &Log{dir: dir, opts: o, fs: o.FS, codec: o.Compression.codec()}
	l.cond.L = &l.mu
	if err := l.makeDir(); err != nil {
		return nil, err
	}
	if l.lock, err = l.fs.Lock(filepath.Join(dir, LockName)); err != nil {
		return nil, fmt.Errorf("journal: open %s: %w", dir, err)
	}
	// recovery.Scan judges the whole directory, the snapshot included,
	// before anything is changed: a file this build cannot read (a newer
	// format, or damaged) stops Open with the directory as it was.
	if err := l.recover(); err != nil {
		l.closeFiles()
		l.lock.Close()
		return nil, err
	}
	if err := l.openTail(); err != nil {
		l.closeFiles()
		l.lock.Close()
		return nil, err
	}
	l.found.Duration = time.Since(start)
	l.noteRecovery(l.found.Duration)
	l.startCheckpointer()
	l.startRetention()
	return l, nil
}

// makeDir creates the log directory durably. A directory is an entry of
// its parent, durable only once the parent is synced, so for every level
// of the path it creates the parent is synced, from the top down: a power
// loss after the first acknowledged append must not take the directory,
// or any level above it, away. Levels that already existed are not
// synced (Open may lack the permission to open them).
func (l *Log) makeDir() error {
	missing, err := l.missingLevels()
	if err != nil || len(missing) == 0 {
		return err
	}
	if err := l.fs.MkdirAll(l.dir, 0o755); err != nil {
		return fmt.Errorf("journal: create %s: %w", l.dir, err)
	}
	for i := len(missing) - 1; i >= 0; i-- {
		if err := l.fs.SyncDir(filepath.Dir(missing[i])); err != nil {
			return fmt.Errorf("journal: create %s: %w", missing[i], err)
		}
	}
	return nil
}

// missingLevels lists the levels of the log's path that do not exist, the
// deepest first.
func (l *Log) missingLevels() ([]string, error) {
	var missing []string
	for d := filepath.Clean(l.dir); ; d = filepath.Dir(d) {
		_, err := l.fs.Stat(d)
		if err == nil {
			return missing, nil
		}
		if !errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("journal: create %s: %w", l.dir, err)
		}
		missing = append(missing, d)
		if filepath.Dir(d) == d {
			return missing, nil
		}
	}
}

func (l *Log) recover() error {
	// Recovery's walk opens each segment once; the log keeps the files of
	// sealed segments for its reads rather than opening them again.
	st, err := recovery.Scan(l.fs, l.dir, recovery.Options{Verify: l.opts.Verify, KeepFiles: true, Manifest: true, Locked: true})
	if err != nil {
		return err
	}
	// The manifest describes the directory as Close left it; from here on
	// Open may change it, and so may the log it returns: it goes first.
	// The unlink needs no directory sync of its own (recovery.ManifestName
	// says why): the next one makes it durable, before any file the
	// manifest describes can change.
	if err := recovery.RemoveManifest(l.fs, l.dir); err != nil {
		st.Close()
		return err
	}
	segs := st.Segments
	for i := range max(len(segs)-1, 0) {
		l.keepSealed(&segs[i]) // closed with the log's files should Open fail
	}
	defer st.Close() // the newest segment's file, unless kept below
	l.snapshot = st.Snapshot
	if !st.Clean() {
		l.found = Recovery{Torn: st.Torn, Removed: append(append([]string(nil), st.Obsolete...), st.Temps...)}
		if t := st.Torn; t != nil {
			l.opts.Logger.Warn("journal: cut torn tail", "file", t.Path, "offset", t.Offset,
				"bytes", t.Bytes, "records", t.Records, "reason", t.Reason)
		}
		if err := st.Repair(l.fs); err != nil {
			return err
		}
	}
	l.meta, l.first = st.Meta, st.FirstIndex
	l.next = st.NextIndex()
	l.last = l.next - 1
	// Everything recovery kept is durable: sealed segments are synced,
	// and resume syncs the newest one.
	l.durable = l.last
	if n := len(segs); n > 0 {
		if err := l.resume(segs[n-1]); err != nil {
			return err
		}
		if l.active == nil {
			l.keepSealed(&segs[n-1])
		}
	}
	if l.active == nil {
		if err := l.startSegment(len(segs) > 0); err != nil {
			return err
		}
		return l.dropReleased()
	}
	return nil
}

// dropReleased removes the sealed segments all of whose records were
// released, once Open has started a newer segment. Recovery keeps the
// newest segment whatever it holds, so a segment sealed by a rotation
// whose records a TruncateFront then released, before a crash stopped
// the rotation from installing the next segment, is still live when Open
// starts that next one; the next Open would find it obsolete and remove
// it. Removed now, after the new segment is durable, it is reported once,
// and recovery stays idempotent (found by TestKill, seed
// 18374621035599467010).
func (l *Log) dropReleased() error {
	for len(l.sealed) > 0 && l.sealed[0].next() <= l.first {
		s := l.sealed[0]
		if s.f != nil {
			s.f.Close()
			s.f = nil
		}
		if err := l.fs.Remove(s.path); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("journal: remove %s: %w", s.path, err)
		}
		l.found.Removed = append(l.found.Removed, s.path)
		l.sealed = l.sealed[1:]
	}
	return nil
}

// keepSealed makes a segment recovery found a sealed segment of the log, with
// the file recovery kept open, if any.
func (l *Log) keepSealed(s *recovery.Segment) {
	seg := &sealedSegment{path: s.Path, h: s.Header, footer: s.Footer, size: s.Size, f: s.File}
	seg.unchecked.Store(s.Unchecked)
	l.sealed = append(l.sealed, seg)
	s.File = nil
}

// resume makes the newest segment the active one: an unsealed one as
// recovery found it, or one that Close sealed, reopened from its footer
// without reading its records (a segment sealed otherwise stays sealed and
// l.active nil: Open starts a new one). Its preallocation is restored if
// the disk has room: on a full disk the log opens anyway (appends then
// grow the file, each fdatasync persisting the size), so that the
// application can release records to free space.
func (l *Log) resume(s recovery.Segment) error {
	f, err := l.fs.OpenFile(s.Path, os.O_RDWR, 0)
	if err != nil {
		return fmt.Errorf("journal: open %s: %w", s.Path, err)
	}
	offsets, end, size, syncAt := s.Offsets, s.End, s.Size, int64(0)
	dataEnd := end
	// A segment resumed with records from before the restart has no known
	// first append time, unless Close sealed it with one.
	times, firstKnown := segment.Times{}, len(offsets) == 0
	if s.Sealed {
		var ok bool
		offsets, ok, err = segment.Unseal(f, s.Header, s.Footer)
		if err != nil || !ok {
			f.Close()
			if err != nil {
				return fmt.Errorf("journal: reopen %s: %w", s.Path, err)
			}
			return nil
		}
		end, size, syncAt = s.Footer.Offset, s.Footer.Offset, s.Footer.Offset-segment.SectorSize
		// The records' frames end where Close's sync frame begins (the
		// tail file publishes that, the same before and after Close).
		dataEnd = syncAt
		times, firstKnown = s.Footer.Times, len(offsets) == 0 || s.Footer.Times.First != 0
	}
	if err := f.Preallocate(l.opts.SegmentSize); err != nil && !errors.Is(err, syscall.ENOSPC) {
		f.Close()
		return fmt.Errorf("journal: preallocate %s: %w", s.Path, err)
	} else if err != nil {
		l.opts.Logger.Warn("journal: disk full; the active segment is not preallocated", "file", s.Path)
	} else {
		size = max(size, l.opts.SegmentSize)
	}
	// What recovery kept may never have been synced (a NoSync log, or a
	// complete batch of a torn write): the frames written next claim it
	// durable, so it must be before they are written. A segment Close
	// sealed was synced whole; the trim of its footer and the new
	// preallocation become durable with the next fdatasync, and until then
	// a crash leaves the footer in place, or frames of an unacknowledged
	// write over it, which recovery cuts as a torn tail.
	if !s.Sealed {
		if err := f.Sync(); err != nil {
			f.Close()
			return fmt.Errorf("journal: fdatasync %s: %w", s.Path, err)
		}
	}
	l.active = &activeSegment{path: s.Path, h: s.Header, f: f, offsets: offsets, tail: end, synced: end,
		proven: end, dataEnd: dataEnd, size: size, syncAt: syncAt,
		times: times, firstKnown: firstKnown}
	return nil
}

// startSegment creates a new active segment starting at l.next, at Open.
// When the log existed (its newest segment is sealed) and the disk is
// full, the segment is created without preallocation, as resume does, so
// that the application can open the log and release records. A new log
// on a full disk fails to open: it has nothing to release.
func (l *Log) startSegment(existing bool) (err error) {
	l.active, err = l.create(l.next, l.opts.SegmentSize)
	if existing && errors.Is(err, syscall.ENOSPC) {
		l.opts.Logger.Warn("journal: disk full; the new segment is not preallocated", "first", l.next)
		l.active, err = l.create(l.next, 0)
	}
	return err
}

func segmentPath(dir string, first uint64) string { return filepath.Join(dir, segment.Name(first)) }

// Recovered reports what Open repaired.
func (l *Log) Recovered() Recovery { return l.found }

// Dir is the log's directory.
func (l *Log) Dir() string { return l.dir }

// FirstIndex is the index of the oldest record (1 in a new log). The log
// is empty when FirstIndex() > LastIndex().
func (l *Log) FirstIndex() uint64 {
	l.follow() // a read-only Log keeps its view on error; Read and Readers report it
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.first
}

// LastIndex is the index of the newest record whose Append has completed
// (0 in a new log).
func (l *Log) LastIndex() uint64 {
	l.follow() // as in FirstIndex
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.last
}

// usable returns the error every new write gets in the log's current
// state. Called with mu held.
func (l *Log) usable() error {
	if l.isClosed() {
		return ErrClosed
	}
	if l.ro != nil {
		return ErrReadOnly
	}
	return l.err
}

// isClosed reports whether Close has begun: from then on every call that
// reads or changes the log gets ErrClosed, so Close takes effect at one
// point for all of them.
func (l *Log) isClosed() bool { return l.closed || l.closing.Load() }

// fail records the first failure: the log refuses writes until reopened.
// Called with mu held.
func (l *Log) fail(err error) error {
	if l.err == nil {
		l.err = fmt.Errorf("%w: %w", ErrFailed, err)
		l.wakeReaders() // a failed log has no more records to wait for
		l.opts.Logger.Error("journal: log failed; writes refused until reopened", "dir", l.dir, "err", err)
	}
	return l.err
}

// Close flushes what is pending, syncs, and closes the log, releasing the
// directory lock. It waits for a truncation in flight and cancels a
// checkpoint still writing its snapshot (which then returns ErrClosed and
// leaves the previous snapshot in place; one already committing its
// snapshot finishes and returns nil): nothing is written in the directory
// once Close has returned. Close may be called from CheckpointOptions.OnError.
// Appends and truncations called once Close has begun, and later calls,
// return ErrClosed.
// It leaves the proof that every record is durable on disk (a sync frame
// after the last write), so that recovery tells damage to any of them
// from a torn tail, and seals the newest segment after it with its footer,
// so that the next Open reads the footer instead of the records (and then
// removes it to append there again).
func (l *Log) Close() error {
	if !l.closing.CompareAndSwap(false, true) {
		return ErrClosed
	}
	if l.ro != nil {
		return l.closeReadOnly()
	}
	l.stopCheckpointer()
	l.keep.halt()
	l.opMu.Lock()
	defer l.opMu.Unlock()
	l.mu.Lock()
	// Frames gathered behind a failed write claim it was made durable:
	// exclusive writes nothing after a failure.
	err := l.exclusive(true)
	if err == nil {
		err = l.prove(true)
	}
	// A log that failed (a truncation's commit, say) while a group commit
	// was in flight returns from exclusive at once: that write and
	// fdatasync still use the segment files, which must not be closed
	// under them. No new one starts: the log is failed, or busy.
	for l.flushing {
		l.cond.Wait()
	}
	if err == nil {
		err = l.sealOnClose()
	}
	if err == nil && l.sealedOnClose {
		// Readers in other processes must learn that the segment is
		// sealed now, and unsealed again by the next Open.
		l.publish()
	}
	l.closed = true
	l.broadcast()
	l.wakeReaders()
	l.closeTail()
	l.mu.Unlock()
	// A spare being prepared sees closed and removes itself; if preparing
	// it failed meanwhile, Close reports that failure like any other.
	l.bg.Wait()
	if err == nil {
		l.mu.Lock()
		err = l.err
		l.mu.Unlock()
	}
	l.filesMu.Lock()
	if derr := l.dropSpare(); err == nil && derr != nil {
		err = fmt.Errorf("journal: remove spare segment: %w", derr)
	}
	l.closeFiles()
	if err == nil {
		err = l.writeManifest()
	}
	l.filesMu.Unlock()
	if lerr := l.lock.Close(); err == nil {
		err = lerr
	}
	return err
}

// sealOnClose seals the active segment after the sync frame that Close
// left, so that the next Open reads its footer instead of scanning its
// records (and lifts the footer to append there again). A segment without
// records, or whose data does not end with a sync frame (nothing was
// written since Open found it unsealed), is left as it is. A crash in the
// middle leaves the footer written or not, the trim made or not: recovery
// reads each as it reads a rotation cut short. Called with mu held and
// the log idle and synced.
func (l *Log) sealOnClose() error {
	a := l.active
	if len(a.offsets) == 0 || a.syncAt == 0 || a.syncAt != a.tail-segment.SectorSize {
		return l.trimOld(a)
	}
	if _, err := segment.Seal(a.f, a.h, a.tail, a.offsets, a.sealTimes()); err != nil {
		return l.fail(fmt.Errorf("journal: seal %s: %w", a.path, err))
	}
	l.sealedOnClose = true
	a.size = a.h.SealedSize(a.tail, len(a.offsets))
	return nil
}

// writeManifest writes the clean-close manifest (recovery.ManifestName),
// Close's last step once every file is sealed, synced and closed: the next
// Open reads it instead of every sealed segment's footer. A failure is
// Close's error, as every failed write is (the records are durable all the
// same, and the write is atomic: the next Open finds the manifest whole,
// or none). A log that found a sealed segment taken from the manifest
// damaged, replaced or gone writes none: its entry would repeat the
// manifest Open read, not the file, and every later Open would trust it
// again, while Options.Verify and `wal verify` judge the file as it is.
func (l *Log) writeManifest() error {
	segs := make([]recovery.Segment, 0, len(l.sealed)+1)
	for _, s := range l.sealed {
		if s.doubted.Load() {
			// Its entry would repeat the old manifest, not the file:
			// the next Open judges every segment instead.
			l.opts.Logger.Warn("journal: close: no manifest: a sealed segment failed its check", "file", s.path)
			return nil
		}
		segs = append(segs, recovery.Segment{First: s.first(), Header: s.h, Footer: s.footer, Size: s.size})
	}
	segs = append(segs, recovery.Segment{First: l.active.first()})
	if err := recovery.WriteManifest(l.fs, l.dir, l.meta.FirstIndex, segs); err != nil {
		return fmt.Errorf("journal: close: write manifest: %w", err)
	}
	return nil
}

func (l *Log) closeFiles() {
	for _, s := range l.sealed {
		if s.f != nil {
			s.f.Close()
			s.f = nil
		}
	}
	if l.active != nil && l.active.f != nil {
		l.active.f.Close()
	}
	if l.sealing != nil {
		l.sealing.f.Close()
	}
}

// Sync makes every record whose Append has returned durable. With
// Options.NoSync it waits for a group commit that fdatasyncs (at most the
// one in flight and the next, however many appends keep arriving);
// otherwise appends are durable when they return and Sync only reports
// whether the log has failed.
func (l *Log) Sync() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if err := l.usable(); err != nil {
		return err
	}
	if !l.opts.NoSync {
		return nil
	}
	if err := l.syncAll(); err != nil {
		return err
	}
	if !l.flushing && !l.busy && len(l.pend) == 0 {
		// Nothing written after the fdatasync will carry its proof.
		return l.prove(false)
	}
	return nil
}

// prove leaves on disk the proof that every record written is durable: a
// sync frame after the data, so that recovery tells damage to data a Sync
// or Close made durable from a torn tail even when nothing was appended
// after it (appended frames carry the proof too, in their synced fields).
// The frame is written only once the data is synced, so it never claims
// more than was durable. Closing syncs the frame too; otherwise the next
// sync does, and until then a power loss may take the proof (never a
// record). Called with mu held, the log idle and the active segment synced.
func (l *Log) prove(closing bool) error {
	a := l.active
	if a.proven >= a.dataEnd || a.synced < a.tail {
		return nil
	}
	mark := segment.AppendFrame(l.spare[:0], a.h.Salt, segment.TypeSync, segment.None, l.next, a.tail, nil)
	mark = append(mark, zeros[:segment.SectorSize-len(mark)]...)
	if _, err := a.f.WriteAt(mark, a.tail); err != nil {
		return l.fail(fmt.Errorf("journal: write %s at %d: %w", a.path, a.tail, err))
	}
	a.proven, a.syncAt = a.tail, a.tail
	a.tail += int64(len(mark))
	a.size = max(a.size, a.tail)
	if !closing {
		return nil
	}
	if err := a.f.Sync(); err != nil {
		return l.fail(fmt.Errorf("journal: fdatasync %s: %w", a.path, err))
	}
	a.synced = a.tail
	return nil
}

// trimOld cuts the bytes a recycled file kept from its previous segment
// off an active segment that Close leaves unsealed (one without records,
// after a rotation that an append did not follow): the next Open would
// read them as a torn tail and report one after a clean Close. Everything
// before the tail is synced, so the cut takes nothing written; the
// fdatasync makes it durable (a crash before it brings back old bytes,
// which recovery cuts as a torn tail). Called with mu held and the log
// idle and synced.
func (l *Log) trimOld(a *activeSegment) error {
	if a.old <= a.tail {
		return nil
	}
	err := a.f.Truncate(a.tail)
	if err == nil {
		err = a.f.Sync()
	}
	if err != nil {
		return l.fail(fmt.Errorf("journal: trim %s after its records: %w", a.path, err))
	}
	a.size, a.old = a.tail, 0
	return nil
}

// unsealed returns the segment whose records are located through offsets
// in memory that holds index: the active segment, or the one a rotation is
// sealing. It returns nil when a sealed segment holds index. Called with
// mu held.
func (l *Log) unsealed(index uint64) *activeSegment {
	if a := l.active; index >= a.first() {
		return a
	}
	if s := l.sealing; s != nil && index >= s.first() {
		return s
	}
	return nil
}

// recordsEnd is where the frame of a's k-th record (0-based) starts, or,
// past its last record, where its frames end. Called with mu held.
func (l *Log) recordsEnd(a *activeSegment, k int) int64 {
	switch {
	case k < len(a.offsets):
		return a.offsets[k]
	case a == l.active:
		return a.tail + int64(len(l.pend))
	}
	return a.tail
}

// recordAt says where a readable record lies: its frame spans
// [off, off+size) of f, unless s is set: then the frame is located through
// s's footer, record k, whose index is not in memory.
type recordAt struct {
	f         vfs.File
	path      string
	h         segment.Header
	off, size int64
	s         *sealedSegment
	k         int64
}

// maxIndexed is how many sealed segments keep their footer's index in
// memory for Read: 4 bytes a record, so at most SegmentSize/8 a segment
// (frames are at least 32 bytes; 8 MiB for the default 64 MiB segments,
// typically far less): enough for reads that wander over a few segments,
// and memory bounded by the segment size, not the log's length.
const maxIndexed = 4

// segmentFor locates the file and frame of a readable record. Called with
// mu held.
func (l *Log) segmentFor(index uint64) (recordAt, error) {
	if a := l.unsealed(index); a != nil {
		k := int(index - a.first())
		off, end := a.offsets[k], l.recordsEnd(a, k+1)
		return recordAt{f: a.f, path: a.path, h: a.h, off: off, size: end - off}, nil
	}
	i := sort.Search(len(l.sealed), func(i int) bool { return l.sealed[i].next() > index })
	s := l.sealed[i]
	if err := l.openSealed(s); err != nil {
		return recordAt{}, err
	}
	at := recordAt{f: s.f, path: s.path, h: s.h, k: int64(index - s.first())}
	if !s.idx.Loaded() {
		at.s = s
		return at, nil
	}
	var err error
	if at.off, at.size, err = s.idx.RecordSpan(at.k); err != nil {
		return recordAt{}, fmt.Errorf("journal: read index of %s: %w", s.path, err)
	}
	return at, nil
}

// openSealed opens s's file for the log's reads if it is not open yet (a
// segment sealed by a rotation, or taken from the manifest). Called with mu
// held.
func (l *Log) openSealed(s *sealedSegment) error {
	if s.f != nil {
		return nil
	}
	f, err := l.fs.OpenFile(s.path, os.O_RDONLY, 0)
	if err != nil {
		return openSealedError(s, err)
	}
	s.f = f
	return nil
}

// openSealedError is the error of opening sealed segment s's file. A
// missing file is damage: the log holds records there, and Open's walk
// reports a segment missing between two others as ErrCorrupt. A segment
// taken from the manifest is first opened on its first read, so a file
// removed after Open (by an operator, or a cleaner of old files) is found
// missing here, not by Open.
func openSealedError(s *sealedSegment, err error) error {
	s.doubted.Store(true)
	if errors.Is(err, fs.ErrNotExist) {
		return &CorruptionError{Path: s.path, Index: s.first(), Reason: fmt.Sprintf(
			"the sealed segment holding records %d to %d is missing (its file was removed while the log was open)",
			s.first(), s.next()-1)}
	}
	return fmt.Errorf("journal: open %s: %w", s.path, err)
}

// sealedSpan locates record at.k of sealed segment at.s, loading the
// footer's index into memory for the next reads. Called without mu, with
// filesMu held shared.
func (l *Log) sealedSpan(at *recordAt) (int64, int64, error) {
	if err := at.s.check(at.f, &l.mu); err != nil {
		return 0, 0, err
	}
	at.h = at.s.h // checked: the file's own, which check may have taken
	x, err := at.s.footer.ReadIndex(at.f)
	if err != nil {
		// Read as before, record by record: its errors say what is wrong.
		return at.s.footer.RecordSpan(at.f, at.k)
	}
	l.mu.Lock()
	l.keepIndex(at.s, x)
	l.mu.Unlock()
	return x.RecordSpan(at.k)
}

// keepIndex keeps s's index in memory, dropping the oldest kept beyond
// maxIndexed. Called with mu held.
func (l *Log) keepIndex(s *sealedSegment, x segment.Index) {
	if s.idx.Loaded() {
		return
	}
	s.idx = x
	l.indexed = append(l.indexed, s)
	if len(l.indexed) > maxIndexed {
		l.indexed[0].idx = segment.Index{}
		l.indexed = slices.Delete(l.indexed, 0, 1)
	}
}

// Read returns the record at index: exactly the bytes appended. It returns
// ErrNotFound outside [FirstIndex, LastIndex], and an error satisfying
// errors.Is(err, ErrCorrupt) if the stored bytes fail their checksum. The
// returned slice belongs to the caller. Reads do not wait for appends.
func (l *Log) Read(index uint64) ([]byte, error) {
	if err := l.follow(); err != nil {
		return nil, err
	}
	l.filesMu.RLock()
	defer l.filesMu.RUnlock()
	l.mu.Lock()
	if l.isClosed() {
		l.mu.Unlock()
		return nil, ErrClosed
	}
	if index < l.first || index > l.last {
		first, last := l.first, l.last
		l.mu.Unlock()
		return nil, fmt.Errorf("%w: index %d, log holds [%d, %d]", ErrNotFound, index, first, last)
	}
	at, err := l.segmentFor(index)
	l.mu.Unlock()
	if err != nil {
		return nil, err
	}
	if at.s != nil {
		if at.off, at.size, err = l.sealedSpan(&at); err != nil {
			return nil, fmt.Errorf("journal: read index of %s: %w", at.path, err)
		}
	}
	return segment.ReadRecord(at.f, at.path, at.h, at.off, at.size, index)
}
