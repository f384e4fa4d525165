package wal

import (
	"errors"
	"fmt"
	"runtime"
	"sync"
	"syscall"
	"time"

	"github.com/gojournal/journal/segment"
	"github.com/gojournal/journal/vfs"
)

// zeros pads writes to a sector boundary.
var zeros [segment.SectorSize]byte

// scratch buffers for compressing outside the lock.
var scratch = sync.Pool{New: func() any { return new([]byte) }}

// Append appends one record and returns its index once the record is
// durable: written and fdatasync'd (with Options.NoSync: written). An empty
// record is valid. Concurrent calls are group-committed. A record larger
// than MaxRecordSize gets ErrTooLarge and nothing is written. If a
// TruncateBack running concurrently drops the record before Append
// returns, Append returns ErrTruncated, never an index that may by then
// hold another record.
func (l *Log) Append(data []byte) (uint64, error) { return l.appendOne(data, nil) }

// AppendBatch appends records atomically: after a crash either all of them
// are in the log or none is. It returns the index of the first once all are
// durable. Each record is compressed on its own, as by Append. A batch
// whose frames, uncompressed, exceed MaxBatchSize gets ErrTooLarge. If a
// concurrent TruncateBack drops any of the records before AppendBatch
// returns, it returns ErrTruncated (the records it kept, if any, stay in
// the log). An empty batch appends nothing and returns LastIndex()+1: the
// index the next record gets unless appends in flight take it first. (It
// does not count those appends: one may yet fail, and the index returned
// would then lie past the end of the log.)
func (l *Log) AppendBatch(records [][]byte) (uint64, error) { return l.appendBatch(records, nil) }

// appendOne is Append, and AppendApply when apply is not nil.
func (l *Log) appendOne(data []byte, apply func(uint64)) (uint64, error) {
	if len(data) > MaxRecordSize {
		return 0, fmt.Errorf("%w: %d bytes, the maximum is %d", ErrTooLarge, len(data), MaxRecordSize)
	}
	s := l.store(data)
	l.mu.Lock()
	index, err := l.enqueue(1, segment.FrameSize(len(s.data)), func(a *activeSegment, synced int64) {
		l.addFrame(a, segment.TypeRecord, s.codec, synced, s.data)
	})
	var t *turn
	if err == nil {
		t, err = l.settle(index, index, apply != nil)
	}
	l.mu.Unlock()
	s.release()
	if t != nil {
		l.applyInTurn(t, apply, index)
	}
	return index, err
}

// appendBatch is AppendBatch, and AppendBatchApply when apply is not nil.
func (l *Log) appendBatch(records [][]byte, apply func(uint64)) (uint64, error) {
	var size int64
	for _, r := range records {
		if len(r) > MaxRecordSize {
			return 0, fmt.Errorf("%w: %d bytes, the maximum is %d", ErrTooLarge, len(r), MaxRecordSize)
		}
		size += segment.FrameSize(len(r))
	}
	if size > MaxBatchSize {
		return 0, fmt.Errorf("%w: batch of %d bytes, the maximum is %d", ErrTooLarge, size, MaxBatchSize)
	}
	// Compressed outside the lock, like Append; stored records are never
	// larger than the originals, so the bound above still holds.
	batch := make([]stored, len(records))
	size = 0
	for i, r := range records {
		batch[i] = l.store(r)
		size += segment.FrameSize(len(batch[i].data))
	}
	defer func() {
		for _, s := range batch {
			s.release()
		}
	}()
	l.mu.Lock()
	if len(records) == 0 {
		defer l.mu.Unlock()
		return l.last + 1, l.usable()
	}
	var first uint64
	last, err := l.enqueue(uint64(len(records)), size, func(a *activeSegment, synced int64) {
		// enqueue may have waited (and released mu): the first index is
		// known only now.
		first = l.next
		for i, s := range batch {
			typ := segment.TypeBatch
			if i == len(batch)-1 {
				typ = segment.TypeRecord
			}
			l.addFrame(a, typ, s.codec, synced, s.data)
		}
	})
	var t *turn
	if err == nil {
		t, err = l.settle(first, last, apply != nil)
	}
	l.mu.Unlock()
	if t != nil {
		l.applyInTurn(t, apply, first)
	}
	return first, err
}

// stored is a record as it goes to disk: compressed into a pooled buffer
// when compression is on and helps, otherwise the caller's bytes.
type stored struct {
	data  []byte
	codec segment.Codec
	buf   *[]byte // returned to scratch by release
}

// store prepares a record for its frame.
func (l *Log) store(data []byte) stored {
	buf := l.compress(data)
	if buf == nil {
		return stored{data: data, codec: segment.None}
	}
	return stored{data: *buf, codec: l.codec, buf: buf}
}

// release returns the compression buffer once the frame is encoded.
func (s stored) release() {
	if s.buf != nil {
		scratch.Put(s.buf)
	}
}

// compress returns the record compressed into a pooled buffer, or nil when
// compression is off or does not help.
func (l *Log) compress(data []byte) *[]byte {
	if l.codec == segment.None || len(data) < 64 {
		return nil
	}
	buf := scratch.Get().(*[]byte)
	*buf = segment.Compress(l.codec, (*buf)[:0], data)
	if len(*buf) >= len(data) {
		scratch.Put(buf)
		return nil
	}
	return buf
}

// addFrame encodes one record into the pending buffer. Called with mu held.
func (l *Log) addFrame(a *activeSegment, t segment.Type, c segment.Codec, synced int64, stored []byte) {
	a.offsets = append(a.offsets, a.tail+int64(len(l.pend)))
	l.pend = segment.AppendFrame(l.pend, a.h.Salt, t, c, l.next, synced, stored)
	l.pendMark = synced // marks only grow: the last frame's is the largest
	l.next++
}

// enqueue waits until size bytes of frames (n records) fit in the active
// segment (rotating it if they do not), then lets encode add them to the
// pending buffer. It returns the index of the last record added. Called
// with mu held.
func (l *Log) enqueue(n uint64, size int64, encode func(a *activeSegment, synced int64)) (uint64, error) {
	for {
		if err := l.usable(); err != nil {
			return 0, err
		}
		if l.next-1 > MaxIndex-n {
			return 0, fmt.Errorf("%w: %d records from index %d would pass MaxIndex (%d)", ErrOutOfRange, n, l.next, uint64(MaxIndex))
		}
		a := l.active
		switch {
		case l.busy:
			l.cond.Wait()
		case a.tail+int64(len(l.pend))+size <= l.opts.SegmentSize || len(a.offsets) == 0:
			encode(a, l.syncedMark(a))
			return l.next - 1, nil
		case l.flushing || l.sealing != nil:
			l.cond.Wait()
		default:
			l.rotate()
		}
	}
}

// syncedMark is the value of the synced field for frames added now: the
// offset below which the segment will be durable when they are written.
// Writes are serialised and each is fdatasync'd before the next begins, so
// with sync on that is where the pending buffer starts.
func (l *Log) syncedMark(a *activeSegment) int64 {
	if l.opts.NoSync {
		return a.synced
	}
	return a.tail
}

// waiter is an Append or AppendBatch waiting for its records [first, last]
// to become readable. Waiters form a list so that a TruncateBack can tell
// those whose records it dropped, and so that the end of a group commit
// wakes only the waiters it concerns (see wakeWaiters); they are recycled,
// so appends do not allocate.
type waiter struct {
	first, last uint64
	err         error // set by a TruncateBack that dropped some of the records
	prev, next  *waiter
	// done is set by a restart (TruncateFront outside the log) once the
	// records were written: LastIndex then moves back, and may never
	// reach last again.
	done bool
	// wake is signalled (L is the log's mu) when the wait may end, or
	// when this waiter is to start the next group commit. asleep is set
	// while it waits and cleared by whoever signals it, so that no
	// waiter is signalled twice or chosen to flush while awake.
	wake   sync.Cond
	asleep bool
	acked  bool // woken because its wait ended, not yet unregistered
	// flusher is set when wakeWaiters chose this waiter to start the next
	// group commit; one that returns instead hands the role on.
	flusher bool
}

// register adds a waiter for [first, last]. Called with mu held.
func (l *Log) register(first, last uint64) *waiter {
	w := l.idle
	if w != nil {
		l.idle = w.next
	} else {
		w = new(waiter)
		w.wake.L = &l.mu
	}
	w.first, w.last, w.err, w.done = first, last, nil, false
	w.prev, w.next = nil, l.waiting
	if w.next != nil {
		w.next.prev = w
	}
	l.waiting = w
	return w
}

// unregister removes w from the list and keeps it for reuse. Called with
// mu held.
func (l *Log) unregister(w *waiter) {
	if w.prev != nil {
		w.prev.next = w.next
	} else {
		l.waiting = w.next
	}
	if w.next != nil {
		w.next.prev = w.prev
	}
	if w.acked {
		w.acked = false
		l.returning--
	}
	w.err, w.prev, w.next = nil, nil, l.idle
	l.idle = w
}

// broadcast wakes everyone waiting on cond (enqueue, exclusive sections,
// rotations, Sync, Close) and the waiters whose wait may end. Call it
// after the state change it announces, with mu held.
func (l *Log) broadcast() {
	l.cond.Broadcast()
	l.wakeWaiters()
}

// wakeWaiters signals the sleeping waiters that can leave waitDurable:
// those whose records are readable or were cut, or all when the log failed
// or closed; and, when no write is in flight and the log is not busy, one
// more waiter whose records are pending, to start the next group commit.
// A group commit at 64 writers used to wake all 64 through cond, most of
// them only to take mu, find their records still pending and sleep again:
// the CPU of a context switch and a contended lock each, per commit. The
// walk is over the waiting appends, a few dozen, once per commit. Called
// with mu held.
func (l *Log) wakeWaiters() {
	all := l.err != nil || l.closed
	flusher := !l.flushing && !l.busy
	l.woken = 0
	for w := l.waiting; w != nil; w = w.next {
		if !w.asleep {
			continue
		}
		done := all || w.err != nil || w.done || l.last >= w.last
		if done {
			l.woken++
			l.returning++
			w.acked = true
		}
		if done || flusher {
			w.flusher = flusher && !done
			flusher = flusher && done
			w.asleep = false
			w.wake.Signal()
		}
	}
}

// cutWaiters tells every waiter and every turn with records after index
// that a TruncateBack to index committed (err is ErrTruncated) or failed
// (err is the failure: their records' fate is unknown). Waiters a restart
// marked done are past it: their indexes belong to records before the
// restart. Called with mu held.
func (l *Log) cutWaiters(index uint64, err error) {
	for w := l.waiting; w != nil; w = w.next {
		if w.last > index && w.err == nil && !w.done {
			w.err = cutError(w.first, w.last, index, err)
		}
	}
	for t := l.turns; t != nil; t = t.next {
		if t.last > index && t.err == nil {
			t.err = cutError(t.first, t.last, index, err)
			t.ready.Signal()
		}
	}
}

// writtenWaiters marks done every waiter whose records are written: called
// by a restart once everything pending is written (so every waiter), before
// LastIndex moves back. Called with mu held.
func (l *Log) writtenWaiters() {
	for w := l.waiting; w != nil; w = w.next {
		if w.last <= l.last {
			w.done = true
		}
	}
}

// cutError is the error a call appending [first, last] gets when a
// TruncateBack to index ended with err.
func cutError(first, last, index uint64, err error) error {
	if errors.Is(err, ErrTruncated) {
		return fmt.Errorf("%w: records [%d, %d] appended, then TruncateBack(%d) dropped records after %d",
			ErrTruncated, first, last, index, index)
	}
	return err
}

// waitDurable waits until records [first, last] are readable, flushing
// when no one else is. Called with mu held.
func (l *Log) waitDurable(first, last uint64) error {
	w := l.register(first, last)
	defer func() {
		if w.flusher {
			// Chosen to start the next group commit, it returns
			// instead (its records made readable by another, or the
			// log failed in the background without a broadcast): the
			// others asleep would otherwise wait for a commit no one
			// starts.
			w.flusher = false
			l.wakeWaiters()
		}
		l.unregister(w)
	}()
	return l.await(w)
}

// await waits until w's records are readable. A waiter may be woken long
// after its records were written (it must first take mu), so the answer
// cannot rest on LastIndex alone: a truncation meanwhile may have moved it
// either way. Called with mu held.
func (l *Log) await(w *waiter) error {
	gathered := false
	for {
		switch {
		case w.err != nil:
			// Checked first: LastIndex may pass last again once later
			// appends take the dropped indexes.
			return w.err
		case w.done || l.last >= w.last:
			return nil
		case l.err != nil:
			return l.err
		case l.closed:
			return ErrClosed
		case l.flushing || l.busy:
			// Whoever holds the flush or the log wakes us when done.
			w.asleep, w.flusher = true, false
			w.wake.Wait()
		case !gathered && l.woken > 1:
			gathered = true
			l.gather()
		default:
			w.flusher = false
			l.flush(false)
		}
	}
}

// gather lets the appends that the last group commit acknowledged run
// before this one takes the pending buffer: their callers, writing as fast
// as they can, append again at once, and their records then join this
// commit instead of waiting through it for the next. Without it, at 64
// writers, each commit took only the records that arrived during the
// previous fdatasync (about half of the writers), and so cost twice the
// fdatasyncs per record. It holds the flush (flushing is set, so no one
// else starts one) and yields the processor, again while some of those
// appends have yet to return (at most maxGatherYields times: on two
// processors a single yield often resumes before they ran): no timer, and
// no wait at all when the last commit acknowledged no more than one
// append. Called with mu held and no flush in flight; the caller checks
// the state again.
func (l *Log) gather() {
	l.flushing = true
	for range maxGatherYields {
		l.mu.Unlock()
		runtime.Gosched()
		l.mu.Lock()
		if l.returning == 0 {
			break
		}
	}
	l.flushing = false
	if l.busy || l.usable() != nil {
		// Not flushing after all: whoever waited for this flush to end
		// must hear that it did.
		l.broadcast()
	}
}

// syncAll makes every record readable now durable, in NoSync mode: it asks
// for a group commit that fdatasyncs and waits until one that started after
// the request has finished. It waits for at most the commit in flight and
// the next one, however many appends keep arriving. Called with mu held.
func (l *Log) syncAll() error {
	l.syncWanted++
	defer func() { l.syncWanted-- }()
	want := l.syncsBegun + 1
	for l.syncsDone < want {
		switch {
		case l.err != nil:
			return l.err
		case l.closed:
			return ErrClosed
		case l.flushing || l.busy:
			l.cond.Wait()
		default:
			l.flush(true)
		}
	}
	return nil
}

// exclusive waits for a rotation or truncation in flight to end, then
// holds appends off (busy) and writes everything pending, fdatasync'd when
// sync is set or the log syncs anyway: the log is idle and, with sync, all
// of it durable. Appends that arrive meanwhile wait, so it waits for at
// most two group commits. Unless it fails, the caller ends the exclusive
// section with endExclusive. Called with mu held.
func (l *Log) exclusive(sync bool) error {
	for l.busy {
		l.cond.Wait()
	}
	if l.err != nil {
		return l.err
	}
	l.busy = true
	for {
		a := l.active
		switch {
		case l.err != nil:
			l.endExclusive()
			return l.err
		case l.flushing || l.sealing != nil:
			l.cond.Wait()
		case len(l.pend) > 0 || (sync && a.synced < a.tail):
			l.flush(sync)
		default:
			return nil
		}
	}
}

// endExclusive lets appends continue. Called with mu held.
func (l *Log) endExclusive() {
	l.busy = false
	l.broadcast()
}

// takePending hands the pending buffer to a write at the active segment's
// tail, padded with zeros to a sector boundary so that the next write
// shares no sector with this one. Called with mu held.
func (l *Log) takePending() (buf []byte, off int64, last uint64) {
	if n := len(l.pend); n > 0 {
		end := l.active.tail + int64(n)
		l.pend = append(l.pend, zeros[:segment.AlignSector(end)-end]...)
	}
	buf, l.pend = l.pend, l.spare[:0]
	l.spare, l.writeMark = nil, l.pendMark
	off = l.active.tail
	l.active.tail += int64(len(buf))
	return buf, off, l.next - 1
}

// recycle keeps a written buffer for reuse. Called with mu held.
func (l *Log) recycle(buf []byte) {
	if cap(buf) <= maxSpare {
		l.spare = buf[:0]
	}
}

// flush writes the pending buffer with one pwrite (and, about once per
// 512 KiB of frames, one of zeros ahead of them: see zeroAhead) and one
// fdatasync (in NoSync mode only when sync is set or a Sync asked for
// one), releasing mu
// meanwhile so the next batch can gather. Called with mu held and no flush
// in flight.
func (l *Log) flush(sync bool) {
	a := l.active
	buf, off, last := l.takePending()
	sync = sync || !l.opts.NoSync || l.syncWanted > 0
	if sync {
		l.syncsBegun++
	}
	l.flushing = true
	l.mu.Unlock()
	took, err := l.write(a, buf, off, sync)
	l.mu.Lock()
	// The records of a segment are acknowledged only once the rotation
	// that started it has made its name durable.
	for l.sealing != nil && l.err == nil {
		l.cond.Wait()
	}
	if err == nil && l.err != nil {
		err = l.err
	}
	l.flushing = false
	l.recycle(buf)
	if err != nil {
		l.fail(err)
	} else {
		l.published(a, off+int64(len(buf)), len(buf), last, sync, took)
	}
	l.broadcast()
}

// write writes buf at off in the active segment (zeroing ahead of it, see
// zeroAhead) and, if sync, fdatasyncs, returning how long the fdatasync
// took. Called without mu.
func (l *Log) write(a *activeSegment, buf []byte, off int64, sync bool) (time.Duration, error) {
	if len(buf) > 0 {
		if _, err := a.f.WriteAt(buf, off); err != nil {
			return 0, fmt.Errorf("journal: write %s at %d: %w", a.path, off, err)
		}
		if err := a.zeroAhead(off + int64(len(buf))); err != nil {
			return 0, fmt.Errorf("journal: write zeros ahead in %s: %w", a.path, err)
		}
	}
	if !sync {
		return 0, nil
	}
	// Two clock reads per group commit, none per Append.
	start := time.Now()
	if err := a.f.Sync(); err != nil {
		return 0, fmt.Errorf("journal: fdatasync %s: %w", a.path, err)
	}
	took := time.Since(start)
	l.warnSlowSync(a.path, took)
	return took, nil
}

// zeroAheadSize is how far ahead of the data zeroAhead writes zeros.
const zeroAheadSize = 1 << 20

// zeroBlock is what zeroAhead writes (never modified).
var zeroBlock [zeroAheadSize]byte

// zeroAhead writes zeros over the preallocated space after end, the end of
// a write of frames, up to zeroAheadSize past it, once less than half of
// that is left: one extra pwrite every zeroAheadSize/2 bytes of frames or
// more, under the same fdatasync. Space fallocate reserved is unwritten:
// the first write into each block changes the file's extent map (ext4 and
// XFS mark the block written), so the fdatasync that follows must commit
// the file system's journal as well as flush the data. Writing the blocks
// ahead of time moves that commit to one fdatasync in many: the others
// overwrite written blocks and have only data to flush. Zeros read as the
// end of the log, as the unwritten space did (no frame has type or length
// zero), so recovery reads them as before, only at most zeroAheadSize
// more bytes of them. It never writes past a.size, so it never grows the
// file (a segment not preallocated, on a full disk, gets no zeros).
// Called by write: writes to a segment are serialised, and a.size does
// not change while one is in flight.
func (a *activeSegment) zeroAhead(end int64) error {
	if end+zeroAheadSize/2 <= a.zeroed {
		return nil
	}
	from, to := max(a.zeroed, end), min(end+zeroAheadSize, a.size)
	if to <= from {
		return nil
	}
	if _, err := a.f.WriteAt(zeroBlock[:to-from], from); err != nil {
		return err
	}
	a.zeroed = to
	return nil
}

// published makes records up to last readable after a write of n bytes
// ending at end, fdatasync'd in took if synced. Called with mu held.
func (l *Log) published(a *activeSegment, end int64, n int, last uint64, synced bool, took time.Duration) {
	l.stats.Records += last - l.last
	l.metrics.RecordsPerWrite.add(last - l.last)
	l.stats.Writes++
	l.stats.Bytes += uint64(n)
	l.noteAppended(n)
	if last > l.last {
		// One wall-clock reading per group commit of records: the
		// segment's append times (format version 3).
		a.times = a.times.Note(time.Now().UnixNano())
	}
	l.last = last
	if n > 0 {
		// The frames just written prove the file durable as far as
		// their synced fields say.
		a.dataEnd, a.proven = end, max(a.proven, l.writeMark)
		a.size = max(a.size, end)
	}
	l.prepareSpare()
	if synced {
		l.noteSync(took)
		l.stats.Syncs++
		l.syncsDone++
		a.synced = end
		// The fdatasync covered every write before it to this segment,
		// and earlier segments were synced when sealed.
		l.setDurable(last)
	}
}

// setDurable lets Readers see records up to index and wakes those waiting.
// Called with mu held.
func (l *Log) setDurable(index uint64) {
	l.durable = index
	l.wakeReaders()
	l.publish()
}

// wakeReaders wakes the Readers waiting for the log to change: the only
// work a commit does for Readers, one channel close, and only when one
// waits. Called with mu held.
func (l *Log) wakeReaders() {
	if l.moved != nil {
		close(l.moved)
		l.moved = nil
	}
}

// rotate flushes what is pending into the full active segment and makes a
// spare file, prepared ahead of time, the next active segment. The full
// segment's footer, the new segment's header and its name are made durable
// by a background rotation (finishRotation) while appends gather in the
// new segment: they wait for the rotation only to be acknowledged, not to
// be written. Appends wait only while the last write of the full segment
// is in flight. Called with mu held and no flush or rotation in flight.
func (l *Log) rotate() {
	a := l.active
	buf, off, last := l.takePending()
	l.flushing, l.busy = true, true
	l.syncsBegun++
	l.mu.Unlock()
	// Sealed segments are always durable, NoSync or not.
	took, err := l.write(a, buf, off, true)
	l.mu.Lock()
	l.flushing = false
	l.recycle(buf)
	if err == nil {
		l.published(a, off+int64(len(buf)), len(buf), last, true, took)
		err = l.nextSegment(a, last+1)
	}
	l.busy = false
	if err != nil {
		l.fail(err)
	}
	l.broadcast()
}

// spareFile is a file prepared to become the next segment.
type spareFile struct {
	f    vfs.File
	path string
	// written is how far the file's blocks are known written: 0 for a
	// fresh spare, the bytes a recycled one kept (segment.Recycle), which
	// zeroAhead need not write again.
	written int64
}

// nextSegment makes the spare the active segment, for records from first
// on, and starts the rotation that seals full and installs the spare.
// Without a spare ready it prepares one now. Called with mu held and the
// log busy.
func (l *Log) nextSegment(full *activeSegment, first uint64) error {
	for l.preparing {
		l.cond.Wait()
	}
	sp := l.ready
	l.ready, l.spareFull = nil, false
	if sp == nil {
		l.mu.Unlock()
		f, path, err := segment.CreateSpare(l.fs, l.dir, l.opts.SegmentSize)
		l.mu.Lock()
		if err != nil {
			return err
		}
		sp = &spareFile{f: f, path: path}
	}
	h := segment.NewHeader(first)
	next := &activeSegment{path: segmentPath(l.dir, first), h: h, f: sp.f, offsets: l.spareOffsets,
		tail: segment.DataStart, synced: segment.DataStart, proven: segment.DataStart, dataEnd: segment.DataStart,
		size: l.opts.SegmentSize, firstKnown: true, zeroed: sp.written, old: sp.written}
	l.sealing, l.active, l.spareOffsets = full, next, nil
	l.bg.Add(1)
	go l.finishRotation(full, next, sp.path)
	return nil
}

// finishRotation seals the full segment and installs the next one. The
// footer must be durable before the next segment's name is (recovery
// requires every segment but the newest to be sealed), and the header
// before the name (a file under a segment's name always has a durable
// header): the two syncs run side by side, then the rename and the
// directory sync. A crash anywhere leaves the full segment newest, sealed
// or not, and the spare a temporary file recovery removes; or both
// segments, the next with a durable header and no acknowledged record.
func (l *Log) finishRotation(full, next *activeSegment, spare string) {
	defer l.bg.Done()
	stamped := make(chan error, 1)
	go func() { stamped <- segment.Stamp(next.f, next.h) }()
	sealed, err := seal(full)
	if serr := <-stamped; err == nil && serr != nil {
		err = fmt.Errorf("journal: write header of %s: %w", next.path, serr)
	}
	if err == nil {
		if err = segment.Install(l.fs, spare, l.dir, next.first()); err != nil {
			err = fmt.Errorf("journal: install segment %s: %w", next.path, err)
		}
	}
	if err == nil {
		l.opts.Logger.Info("journal: rotated", "sealed", sealed.path, "records", sealed.footer.Count,
			"bytes", sealed.size, "next", next.path)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if err != nil {
		// The full segment stays where reads find it; every write
		// waiting for the rotation gets the failure.
		l.fail(err)
	} else {
		l.sealing = nil
		l.sealed = append(l.sealed, sealed)
		l.metrics.Rotations++
		l.publish()
		l.keep.poke() // a sealed segment more: retention may release one
		// Reads copy offsets out under mu: none holds this slice now.
		l.spareOffsets = full.offsets[:0]
	}
	l.broadcast()
}

// prepareSpare starts preparing a spare file for the next rotation, once
// the active segment is half full, unless one is ready or on its way (or
// the disk was found full: then the rotation tries).
// Called with mu held.
func (l *Log) prepareSpare() {
	if l.ready != nil || l.preparing || l.spareFull || l.err != nil || l.isClosed() || l.active.tail < l.opts.SegmentSize/2 {
		return
	}
	l.preparing = true
	l.bg.Add(1)
	go func() {
		defer l.bg.Done()
		f, path, err := segment.CreateSpare(l.fs, l.dir, l.opts.SegmentSize)
		l.mu.Lock()
		defer l.mu.Unlock()
		// Broadcast once the outcome below is recorded.
		defer l.broadcast()
		l.preparing = false
		switch {
		case errors.Is(err, syscall.ENOSPC):
			// The disk is full: the log goes on in its active segment
			// (the application may release records), and the rotation
			// tries again, failing the log if there is still no room.
			l.opts.Logger.Warn("journal: disk full; no spare segment prepared", "err", err)
			l.spareFull = true
		case err != nil:
			// Any other failure of a file operation leaves the disk's
			// state unknown: the log fails, as after a failed write.
			l.fail(err)
		case l.isClosed():
			f.Close()
			if err := l.fs.Remove(path); err != nil {
				l.fail(err) // Close reports it
			}
		default:
			l.ready = &spareFile{f: f, path: path}
		}
	}()
}

// dropSpare closes and removes the spare file, if any. Called at Close,
// with the background work finished. (Were the removal lost, the next
// Open would remove the spare as a leftover temporary file.)
func (l *Log) dropSpare() error {
	sp := l.ready
	if sp == nil {
		return nil
	}
	l.ready = nil
	sp.f.Close()
	return l.fs.Remove(sp.path)
}

// seal writes the footer that indexes a full segment at its tail (a sector
// boundary), trims the preallocated space after it and syncs.
func seal(a *activeSegment) (*sealedSegment, error) {
	ft, err := segment.Seal(a.f, a.h, a.tail, a.offsets, a.sealTimes())
	if err != nil {
		return nil, fmt.Errorf("journal: seal %s: %w", a.path, err)
	}
	return &sealedSegment{path: a.path, h: a.h, footer: ft, f: a.f, size: a.h.SealedSize(a.tail, len(a.offsets))}, nil
}

// sealTimes are the append times the segment's footer records.
func (a *activeSegment) sealTimes() segment.Times {
	t := a.times
	if !a.firstKnown {
		t.First = 0
	}
	return t
}

// create makes a new active segment for records from first on,
// preallocated to prealloc bytes.
func (l *Log) create(first uint64, prealloc int64) (*activeSegment, error) {
	f, h, err := segment.Create(l.fs, l.dir, first, prealloc)
	if err != nil {
		return nil, err
	}
	return &activeSegment{path: segmentPath(l.dir, first), h: h, f: f,
		tail: segment.DataStart, synced: segment.DataStart, proven: segment.DataStart, dataEnd: segment.DataStart,
		size: max(prealloc, segment.HeaderSize), firstKnown: true}, nil
}

// maxGatherYields bounds how often gather yields while acknowledged
// appends have yet to return: at 64 writers it took records per
// fdatasync from 48 (one yield) to 63.
const maxGatherYields = 4
