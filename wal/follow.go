package wal

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"github.com/gojournal/journal/recovery"
	"github.com/gojournal/journal/segment"
	"github.com/gojournal/journal/vfs"
)

// Readers in other processes.
//
// The process that has the log open (Open) publishes how far the log is
// durable in the tail file (recovery.TailName documents its format): after
// each group commit that fdatasyncs, each rotation and truncation, and at
// Open and Close, it rewrites the file's 64 bytes in place with one pwrite
// and no fsync. The page cache makes the new bytes visible to every
// process at once, so publishing costs a commit one small write and no
// extra fdatasync.
//
// A process that opens the directory with OpenReadOnly reads that file
// before each step of a Reader (one pread), and checks its view of the
// segments against it: the same active segment and a durable index that
// did not move back mean only new durable records (it reads their frames from where it
// stopped to the published end); anything else (a rotation, a
// TruncateBack, which always starts a new active segment, a durable index
// that moved back) makes it list and scan the directory again, bounded
// by the published durable end. A view is installed only if the tail file
// said the same before and after the directory was read, so a reader never
// combines two states of the log.

// followPoll is how often a Reader of a read-only Log waiting in
// NextContext looks at the tail file for new records.
const followPoll = time.Millisecond

// ErrReadOnly is returned by the methods that change the log (Append,
// AppendBatch and their Apply forms, Sync, TruncateFront, TruncateBack,
// Checkpoint) of a Log opened with OpenReadOnly.
var ErrReadOnly = errors.New("journal: log is open read-only")

// publisher writes the tail file of a Log opened for writing.
type publisher struct {
	f   vfs.File
	buf []byte
}

// openTail creates or opens the tail file and publishes the state Open
// recovered. Called at Open, once recovery is
// done.
func (l *Log) openTail() error {
	f, err := l.fs.OpenFile(filepath.Join(l.dir, recovery.TailName), os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return fmt.Errorf("journal: open tail file: %w", err)
	}
	l.pub = publisher{f: f}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.publish()
	if l.err != nil {
		l.closeTail()
	}
	return l.err
}

// publish rewrites the tail file with the log's state. Its failure fails
// the log, as every failed write does: the records are as durable as
// before, but readers in other processes would no longer learn of them.
// Called with mu held, after the change it describes is durable.
func (l *Log) publish() {
	p := &l.pub
	if p.f == nil || l.err != nil {
		return
	}
	a := l.active
	end := int64(segment.DataStart)
	if l.durable >= a.first() {
		// Where the last write of frames ended, not the tail: a sync
		// frame Close or Sync wrote after it would make a clean reopen
		// publish different bytes.
		end = a.dataEnd
		if n := int(l.durable + 1 - a.first()); n < len(a.offsets) {
			end = a.offsets[n]
		}
	}
	t := recovery.Tail{FirstIndex: l.first, Durable: l.durable,
		ActiveFirst: a.first(), ActiveSalt: a.h.Salt, ActiveEnd: end, Sealed: l.sealedOnClose}
	p.buf = t.Encode(p.buf)
	if _, err := p.f.WriteAt(p.buf, 0); err != nil {
		l.fail(fmt.Errorf("journal: write %s: %w", p.f.Name(), err))
	}
}

// closeTail closes the tail file at Close. Its content stays: Close
// changes nothing a reader sees (the last commit published it all).
func (l *Log) closeTail() {
	if l.pub.f != nil {
		l.pub.f.Close()
		l.pub.f = nil
	}
}

// follower is the state of a Log opened with OpenReadOnly.
type follower struct {
	mu   sync.Mutex // serialises refreshes
	tail vfs.File   // the tail file; nil while there is none
	seen recovery.Tail
	has  bool // seen came from the tail file
	// stuck is set when the last read of the tail file found it torn
	// through every re-read (a crash garbled it): the next read tries
	// once, not again and again on every poll, until it reads whole.
	stuck bool
	seq   uint64 // counts installed views, so a Reader can tell it changed
	back  uint64 // the meta file's Back when the view was scanned
}

// OpenReadOnly opens the log in dir for reading only, from this process or
// another while a process has it open with Open. It takes no lock and
// writes nothing, so it works on a read-only file system. Read, FirstIndex,
// LastIndex, Readers (NextContext and Follow included) and Snapshot work;
// the methods that change the log return ErrReadOnly; Close releases its
// files.
//
// It sees only what the writer has made durable, as published in the tail
// file (see recovery.TailName): a Reader returns a record only once the
// writer's fdatasync covered it. It follows rotations and truncations: a
// Reader overtaken by the writer's TruncateFront or Checkpoint gets
// ErrCompacted, one whose current record a TruncateBack dropped
// ErrTruncated, as in the writer's process. A truncation takes effect for
// it when the writer publishes it, before the writer's call returns: a
// Reader step that begins after TruncateFront or TruncateBack returned in
// the writer never returns a record it dropped. It also follows a writer
// that closes and reopens the log: the writer's Close does not stop its
// Readers (only this Log's Close does), they wait for the next records. A
// Reader waiting in NextContext looks for new records every millisecond;
// each Reader step costs one pread of the tail file. Without a tail file (a log not opened
// since by a build that publishes one) or when it does not match the
// directory (its writer crashed), it shows the log as Open would recover
// it. It does not repair anything: a log that needs repair (a torn tail)
// is shown without the torn part; damage gives ErrCorrupt as from Open.
// A directory that does not exist (yet) gives an error that is
// fs.ErrNotExist; an empty one opens as an empty log whose Readers wait
// for the first writer's records.
//
// The writer's Options can be passed unchanged: OpenReadOnly refuses
// invalid values with ErrInvalidOptions naming the field, as Open does,
// but uses only FS and Verify (which checks every record, as in Open, when
// it opens; records the writer adds later are checked as they are read).
// The fields that govern writing (SegmentSize, NoSync, Compression,
// SlowSync, Checkpoint, Retention) are ignored: a record's compression is
// read from its frame. Logger is not used either: a read-only Log reports
// what it finds through its errors and logs nothing.
func OpenReadOnly(dir string, opts *Options) (*Log, error) {
	o, err := opts.withDefaults()
	if err != nil {
		return nil, err
	}
	l := &Log{dir: dir, opts: o, fs: o.FS, codec: o.Compression.codec(), ro: &follower{}}
	l.cond.L = &l.mu
	if err := l.refresh(); err != nil {
		l.closeFiles()
		if l.ro.tail != nil {
			l.ro.tail.Close()
		}
		return nil, err
	}
	return l, nil
}

// readTail reads the tail file, again while it is being rewritten (its
// checksum tells a read that raced the writer's pwrite). ok is
// false when there is none, and when it stays torn: a power loss left it
// empty or garbled (it is never synced), and no writer has opened the log
// since to rewrite it, so it is treated as absent and the view is the log
// as Open would recover it.
func (l *Log) readTail() (t recovery.Tail, ok bool, err error) {
	ro := l.ro
	if ro.tail == nil {
		if ro.tail, ok, err = recovery.OpenTail(l.fs, l.dir); !ok {
			return t, false, err
		}
	}
	path := filepath.Join(l.dir, recovery.TailName)
	tries := 100
	if ro.stuck {
		tries = 1
	}
	for range tries {
		if t, err = recovery.ReadTail(ro.tail, path); !errors.Is(err, recovery.ErrTailTorn) {
			ro.stuck = false
			return t, err == nil, err
		}
		time.Sleep(10 * time.Microsecond)
	}
	ro.stuck = true
	return recovery.Tail{}, false, nil
}

// refresh brings a read-only Log's view up to what the tail file says,
// and wakes the Readers waiting when it changed.
func (l *Log) refresh() error {
	ro := l.ro
	ro.mu.Lock()
	defer ro.mu.Unlock()
	if l.closed {
		return nil // the Reader or call reports ErrClosed
	}
	t, has, err := l.readTail()
	if err != nil {
		return err
	}
	if ro.seq > 0 && (!has || t == ro.seen) {
		return nil // no tail file: the view Open-like recovery gave stays
	}
	// Only new frames in the same open segment extend the view; a segment
	// sealed or unsealed (Close, then the next Open) needs a new one.
	if ro.seq > 0 && ro.has && t.ActiveFirst == ro.seen.ActiveFirst && t.ActiveSalt == ro.seen.ActiveSalt &&
		!t.Sealed && !ro.seen.Sealed && t.Durable >= ro.seen.Durable && l.extend(t) == nil {
		return nil
	}
	return l.reload(t, has)
}

// errViewStale: a follower's view cannot be extended to what the tail file
// says; refresh takes a new one.
var errViewStale = errors.New("journal: the view does not hold the segment the tail file names")

// extend installs t when only the durable end and the first index moved:
// it indexes the frames from where the view ends to t's end.
func (l *Log) extend(t recovery.Tail) error {
	l.mu.Lock()
	a, from, index := l.active, l.active.tail, l.durable+1
	l.mu.Unlock()
	if a.f == nil || a.first() != t.ActiveFirst {
		// The view is not of the segment the tail file names open: it
		// was taken from a directory that held that segment sealed (its
		// writer killed between sealing it at Close and publishing that),
		// and the next writer unsealed it. Only a new view fits.
		return errViewStale
	}
	var offsets []int64
	if t.Durable >= index {
		sc := segment.NewScannerAt(a.f, t.ActiveEnd, a.h, from, index)
		for uint64(len(offsets)) < t.Durable+1-index && sc.Next() {
			offsets = append(offsets, sc.Frame().Offset)
		}
		if uint64(len(offsets)) != t.Durable+1-index {
			return fmt.Errorf("journal: %s: %d of the records [%d, %d] found", a.path, len(offsets), index, t.Durable)
		}
	}
	l.install(func() {
		a.offsets = append(a.offsets, offsets...)
		a.tail = max(a.tail, t.ActiveEnd)
		l.last, l.durable, l.next = max(l.last, t.Durable), max(l.durable, t.Durable), max(l.next, t.Durable+1)
		l.dropBelow(t.FirstIndex)
	}, t, true)
	return nil
}

// reload lists and scans the directory, bounded by t, and installs the
// view if the tail file still says t afterwards; otherwise it tries again
// (the writer changed the directory meanwhile). When the tail file
// persistently does not match the directory (its writer crashed), or
// there is none, the view is the log as Open would recover it.
//
// A scan (or the opening of the newest segment) that fails while the tail
// file stays the same may have met a truncation the writer has yet to
// publish (a segment sealed anew and cut short, files deleted): it is
// tried again as awaitView waits, and the error stands only after that.
func (l *Log) reload(t recovery.Tail, has bool) error {
	start := time.Now()
	// Options.Verify checks every record when the Log opens, as Open
	// does; a later view only adds records the writer has since made
	// durable, read (and checked) when a Reader gets to them.
	verify := l.opts.Verify && l.ro.seq == 0
	for attempt := 0; ; attempt++ {
		st, err := recovery.Scan(l.fs, l.dir, recovery.Options{Verify: verify})
		t2, has2, err2 := l.readTail()
		switch {
		case err2 != nil:
			return err2
		case has2 != has || t2 != t:
			t, has = t2, has2 // the writer moved on: scan again
			continue
		case err == nil:
			view, matched := viewOf(st, t, has)
			if !matched && attempt < 20 {
				time.Sleep(time.Millisecond) // a writer between two steps
				continue
			}
			if err = l.adopt(st, view, t, has); err == nil {
				return nil
			}
		}
		if d := time.Since(start); d > 10*time.Second || (d > 100*time.Millisecond && !l.truncating()) {
			return err
		}
		time.Sleep(followPoll)
	}
}

// viewOf bounds a scanned directory by the tail file: the newest segment
// must be the active one it names, and keeps the records up to its
// durable index. It reports false when they do not match; the scan is
// then returned whole.
func viewOf(st *recovery.State, t recovery.Tail, has bool) (recovery.State, bool) {
	v := *st
	v.Segments = slices.Clone(st.Segments)
	n := len(v.Segments)
	if !has || n == 0 {
		return v, !has
	}
	s := &v.Segments[n-1]
	if t.Sealed {
		// Close sealed the newest segment: it is whole, as its footer says.
		matched := s.Sealed && s.First == t.ActiveFirst && s.Header.Salt == t.ActiveSalt && s.Next == t.Durable+1
		return v, matched
	}
	if s.Sealed || s.First != t.ActiveFirst || s.Header.Salt != t.ActiveSalt || t.Durable+1 < s.First ||
		t.Durable+1 > s.Next {
		return v, false
	}
	k := int(t.Durable + 1 - s.First)
	s.Offsets, s.Next, s.End = s.Offsets[:k], t.Durable+1, t.ActiveEnd
	v.FirstIndex = max(v.FirstIndex, t.FirstIndex)
	return v, true
}

// adopt installs a scanned view.
func (l *Log) adopt(st *recovery.State, v recovery.State, t recovery.Tail, has bool) error {
	var sealed []*sealedSegment
	var active *activeSegment
	for i, s := range v.Segments {
		if i < len(v.Segments)-1 || s.Sealed {
			sealed = append(sealed, &sealedSegment{path: s.Path, h: s.Header, footer: s.Footer, size: s.Size})
			continue
		}
		f, err := l.fs.OpenFile(s.Path, os.O_RDONLY, 0)
		if err != nil {
			return fmt.Errorf("journal: open %s: %w", s.Path, err)
		}
		// size is the file's, as scanned: Metrics reports it (a follower
		// that left it 0 reported the newest segment without its bytes).
		active = &activeSegment{path: s.Path, h: s.Header, f: f, offsets: s.Offsets, tail: s.End, size: s.Size}
	}
	if active == nil {
		// The newest segment is sealed (or there is none): the view ends
		// with an empty active segment after it.
		active = &activeSegment{h: segment.Header{FirstIndex: v.NextIndex()}}
	}
	next := v.NextIndex()
	l.install(func() {
		l.closeFiles()
		l.sealed, l.active = sealed, active
		l.first, l.snapshot = v.FirstIndex, st.Snapshot
		l.ro.back = st.Meta.Back
		l.last, l.durable, l.next = next-1, next-1, next
		l.dropBelow(l.first)
	}, t, has)
	return nil
}

// install applies a new view under filesMu and mu, and wakes the Readers.
func (l *Log) install(apply func(), t recovery.Tail, has bool) {
	l.filesMu.Lock()
	l.mu.Lock()
	apply()
	l.ro.seen, l.ro.has = t, has
	l.ro.seq++
	l.wakeReaders()
	l.mu.Unlock()
	l.filesMu.Unlock()
}

// dropBelow forgets the sealed segments holding only records below first.
// Called with filesMu and mu held.
func (l *Log) dropBelow(first uint64) {
	l.first = max(l.first, first)
	k := 0
	for k < len(l.sealed) && l.sealed[k].next() <= l.first {
		if f := l.sealed[k].f; f != nil {
			f.Close()
		}
		k++
	}
	l.sealed = l.sealed[k:]
}

// viewSeq is the number of views a read-only Log has installed; 0 for a
// Log open for writing.
func (l *Log) viewSeq() uint64 {
	if l.ro == nil {
		return 0
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.ro.seq
}

// follow refreshes the view of a read-only Log; nothing for a writer's.
func (l *Log) follow() error {
	if l.ro == nil || l.closing.Load() {
		return nil
	}
	return l.refresh()
}

// closeReadOnly is Close of a read-only Log: it waits for a refresh in
// flight and closes the files.
func (l *Log) closeReadOnly() error {
	l.ro.mu.Lock()
	defer l.ro.mu.Unlock()
	l.filesMu.Lock()
	defer l.filesMu.Unlock()
	l.mu.Lock()
	defer l.mu.Unlock()
	l.closed = true
	l.wakeReaders()
	l.closeFiles()
	if l.ro.tail != nil {
		l.ro.tail.Close()
	}
	return nil
}

// awaitView is called when a read failed in view seq: the writer may have
// changed the files (TruncateBack seals a segment anew and deletes
// others; TruncateFront deletes segments) before publishing the change.
// It waits for a new view, up to 100 ms, or up to 10 s while the meta
// file shows a truncation the view does not (committed, not yet
// published). It reports whether the view changed; if not, the error
// stands.
func (l *Log) awaitView(seq uint64) bool {
	start := time.Now()
	for {
		if err := l.follow(); err != nil {
			return false
		}
		if l.viewSeq() != seq {
			return true
		}
		if d := time.Since(start); d > 10*time.Second || (d > 100*time.Millisecond && !l.truncating()) {
			return false
		}
		time.Sleep(followPoll)
	}
}

// truncating reports whether the meta file shows a truncation the view
// does not have.
func (l *Log) truncating() bool {
	m, err := recovery.ReadMeta(l.fs, l.dir)
	if err != nil {
		return false
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	return m.BackPending || m.Back != l.ro.back || m.FirstIndex > l.first
}
