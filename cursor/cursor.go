// Package cursor keeps the positions of a log's named consumers durably:
// for each consumer, the index of the last record it acknowledged. A
// consumer that restarts (after a crash, a SIGKILL, a power loss) resumes
// with the record after its position, so every record is delivered at
// least once: a record processed but not yet acknowledged when the
// consumer stopped is delivered again. Make processing idempotent, or
// acknowledge in the same transaction as its effect.
//
// A Store is itself a small journal log (package wal) in a directory of
// its own: each acknowledgement appends one record {name, index}, so
// acknowledgements from many consumers are group-committed like appends,
// one fdatasync for all that arrive together, and an Ack returns once its
// record is durable. A background checkpoint writes the map of positions
// as a snapshot every Options.CompactBytes of acknowledgements and
// releases the records it covers, so the directory stays small and Open
// reads a snapshot and a short tail. The store's directory can be the
// log's own subdirectory (Dir) or any other, for example one owned by a
// consumer process that only reads the log.
//
// Positions are monotonic: an Ack at or below a consumer's position
// changes nothing. To replay records, Delete the consumer and Ack again.
//
// Record format (the payload of each record of the store's log): one byte
// 1 (ack) or 2 (delete), then for an ack the index as a uvarint, then the
// consumer's name (the rest of the record). Snapshot format (the contents
// of the store's snapshot, checksummed by package checkpoint): the
// uvarint 1 (this encoding's version), the uvarint number of consumers,
// then for each, sorted by name: the uvarint length of the name, the name,
// the uvarint position.
package cursor

import (
	"bytes"
	"cmp"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/gojournal/journal/wal"
)

// DirName is the subdirectory of a log directory that Dir names.
const DirName = "cursors"

// Dir is the default store directory of the log in logDir: its
// subdirectory "cursors". The log's recovery leaves it alone.
func Dir(logDir string) string { return filepath.Join(logDir, DirName) }

// MaxNameLen bounds a consumer's name, in bytes.
const MaxNameLen = 255

// DefaultCompactBytes is the default Options.CompactBytes.
const DefaultCompactBytes = 1 << 20

// defaultSegmentSize keeps the store's files small: an acknowledgement
// takes one 512-byte sector when it is committed alone.
const defaultSegmentSize = 1 << 20

var (
	// ErrInvalidName is returned by Ack and Delete for an empty name or
	// one longer than MaxNameLen.
	ErrInvalidName = errors.New("cursor: invalid consumer name")
	// ErrCorrupt is returned (wrapped) by Open and Inspect when a record
	// or the snapshot of the store does not decode: damage the checksums
	// of the log did not catch, or a directory that is not a store.
	ErrCorrupt = wal.ErrCorrupt
)

// Cursor is one consumer's position.
type Cursor struct {
	Name string
	// Index is the last record the consumer acknowledged; it resumes
	// from Index+1.
	Index uint64
}

// Options configures a Store. The zero value gives the defaults.
type Options struct {
	// CompactBytes is how many bytes of acknowledgements (as written,
	// sector padding included) trigger a background checkpoint of the
	// positions; zero means DefaultCompactBytes, negative is refused.
	CompactBytes int64
	// Log configures the store's own log. Its Checkpoint field is the
	// store's and must be left zero; SegmentSize defaults to 1 MiB. Log.FS
	// and Log.Logger are where a test or an application plugs in a file
	// system and a logger; Log.NoSync makes an Ack return before its
	// record is durable (a power loss may then move positions back, never
	// forward: delivery stays at least once).
	Log wal.Options
}

// check refuses options the store would misread or ignore.
func (o *Options) check() error {
	if o.CompactBytes < 0 {
		return fmt.Errorf("%w: cursor.Options.CompactBytes %d is negative", wal.ErrInvalidOptions, o.CompactBytes)
	}
	c := o.Log.Checkpoint
	if c.State != nil || c.EveryBytes != 0 || c.EveryInterval != 0 || c.OnError != nil || c.MaxRate != 0 || c.Compress {
		return fmt.Errorf("%w: cursor.Options.Log.Checkpoint is the store's own: leave it zero", wal.ErrInvalidOptions)
	}
	return nil
}

// Store holds the positions of named consumers. All its methods are safe
// for concurrent use.
type Store struct {
	log *wal.Log

	// gate is held shared by each Ack from before its append to after
	// its change to pos, and exclusively by Delete and by the capture of
	// a snapshot. So a snapshot taken as of the log's last index includes
	// every record up to it, while Acks run in parallel and their records
	// are group-committed: acks of different consumers commute (each
	// moves one position up), and only a Delete needs an order.
	gate sync.RWMutex
	mu   sync.Mutex // guards pos
	pos  map[string]uint64
	// closed is set by Close, so that an Ack or Delete with nothing to
	// write still tells its caller that the store is closed.
	closed atomic.Bool
}

// Open opens the store in dir, creating it if needed, and loads the
// positions: the snapshot, then the acknowledgements after it. The
// directory is locked, like a log's, until Close.
func Open(dir string, opts *Options) (*Store, error) {
	var o Options
	if opts != nil {
		o = *opts
	}
	if err := o.check(); err != nil {
		return nil, err
	}
	s := &Store{pos: make(map[string]uint64)}
	lo := o.Log
	lo.SegmentSize = cmp.Or(lo.SegmentSize, defaultSegmentSize)
	lo.Checkpoint = wal.CheckpointOptions{
		EveryBytes: cmp.Or(o.CompactBytes, DefaultCompactBytes),
		State:      s.state,
		MaxRate:    -1, // a few KiB: no reason to pace it
	}
	l, err := wal.Open(dir, &lo)
	if err != nil {
		return nil, fmt.Errorf("cursor: %w", err)
	}
	s.log = l
	if err := s.load(); err != nil {
		l.Close()
		return nil, fmt.Errorf("cursor: open %s: %w", dir, err)
	}
	return s, nil
}

// load reads the snapshot and replays the records after it.
func (s *Store) load() error {
	index, rc, err := s.log.Snapshot()
	switch {
	case errors.Is(err, wal.ErrNoSnapshot):
	case err != nil:
		return err
	default:
		err = decodeSnapshot(rc, s.pos)
		if cerr := rc.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return err
		}
	}
	r := s.log.NewReader(max(index+1, s.log.FirstIndex()))
	defer r.Close()
	for r.Next() {
		if err := applyRecord(s.pos, r.Record()); err != nil {
			return fmt.Errorf("record %d: %w", r.Index(), err)
		}
	}
	return r.Err()
}

// Close closes the store's log. Acks in flight either complete or return
// wal.ErrClosed; every Ack, Delete and Compact after it returns
// wal.ErrClosed, even one that would have nothing to write.
func (s *Store) Close() error {
	s.closed.Store(true)
	return s.log.Close()
}

// Ack records that consumer name has processed every record up to index
// and returns once that is durable. Positions are monotonic: when index
// is at or below the consumer's position, Ack writes nothing and returns
// nil. Concurrent Acks (of one consumer or many) are group-committed; the
// position after them is the highest acknowledged.
func (s *Store) Ack(name string, index uint64) error {
	if err := s.check(name); err != nil {
		return err
	}
	if cur, ok := s.Position(name); ok && index <= cur {
		return nil
	}
	// One allocation of the record's exact size: the log copies it, but
	// escape analysis cannot tell.
	rec := make([]byte, 1, 1+binary.MaxVarintLen64+len(name))
	rec[0] = opAck
	rec = append(binary.AppendUvarint(rec, index), name...)
	s.gate.RLock()
	defer s.gate.RUnlock()
	if _, err := s.log.Append(rec); err != nil {
		return fmt.Errorf("cursor: %w", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	advance(s.pos, name, index) // what applyRecord does with rec
	return nil
}

// advance moves consumer name's position in pos up to index: a position
// never moves back.
func advance(pos map[string]uint64, name string, index uint64) {
	pos[name] = max(pos[name], index)
}

// Delete forgets consumer name, durably. Deleting a consumer that does
// not exist writes nothing.
func (s *Store) Delete(name string) error {
	if err := s.check(name); err != nil {
		return err
	}
	s.gate.Lock()
	defer s.gate.Unlock()
	if _, ok := s.Position(name); !ok {
		return nil
	}
	return s.append(append([]byte{opDelete}, name...))
}

// append writes one record and applies it once durable. Called with gate
// held.
func (s *Store) append(rec []byte) error {
	if _, err := s.log.Append(rec); err != nil {
		return fmt.Errorf("cursor: %w", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	// rec was encoded here: it always decodes.
	_ = applyRecord(s.pos, rec)
	return nil
}

// Position returns consumer name's position: the last index it
// acknowledged; ok is false when the consumer is unknown (it starts at
// the beginning of the log).
func (s *Store) Position(name string) (index uint64, ok bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	index, ok = s.pos[name]
	return index, ok
}

// List returns every consumer's position, sorted by name.
func (s *Store) List() []Cursor {
	s.mu.Lock()
	defer s.mu.Unlock()
	return sorted(s.pos)
}

// Acked returns the highest index that every consumer has acknowledged
// (the smallest position); ok is false when there are no consumers. It
// fits wal.RetentionOptions.Acked: records up to it may be released
// without any consumer missing one.
func (s *Store) Acked() (index uint64, ok bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, p := range s.pos {
		if !ok || p < index {
			index, ok = p, true
		}
	}
	return index, ok
}

// Compact writes the positions as the store's snapshot now and releases
// the records it covers, as the background checkpoint does every
// Options.CompactBytes. A store with no acknowledgement yet has nothing to
// compact.
func (s *Store) Compact() error {
	index, write, _ := s.state()
	if index == 0 {
		return nil
	}
	if err := s.log.Checkpoint(index, write); err != nil {
		return fmt.Errorf("cursor: %w", err)
	}
	return nil
}

// Log is the store's own log, for its Metrics and CheckpointErr.
func (s *Store) Log() *wal.Log { return s.log }

// state is the store's checkpoint: a copy of the positions as of the last
// record of the store's log. It waits for the Acks in flight, which have
// appended or are about to append records, to apply them.
func (s *Store) state() (uint64, func(io.Writer) error, error) {
	s.gate.Lock()
	defer s.gate.Unlock()
	s.mu.Lock()
	defer s.mu.Unlock()
	cursors, index := sorted(s.pos), s.log.LastIndex()
	return index, func(w io.Writer) error {
		_, err := w.Write(encodeSnapshot(cursors))
		return err
	}, nil
}

func sorted(pos map[string]uint64) []Cursor {
	cs := make([]Cursor, 0, len(pos))
	for name, index := range pos {
		cs = append(cs, Cursor{Name: name, Index: index})
	}
	slices.SortFunc(cs, func(a, b Cursor) int { return cmp.Compare(a.Name, b.Name) })
	return cs
}

// check refuses an Ack or Delete on a closed store or of an invalid name.
func (s *Store) check(name string) error {
	if s.closed.Load() {
		return fmt.Errorf("cursor: %w", wal.ErrClosed)
	}
	return checkName(name)
}

func checkName(name string) error {
	if len(name) == 0 || len(name) > MaxNameLen {
		return fmt.Errorf("%w: %q (1 to %d bytes)", ErrInvalidName, name, MaxNameLen)
	}
	return nil
}

// Record operations (the first byte of each record).
const (
	opAck    = 1
	opDelete = 2
)

// snapshotVersion is the first uvarint of a snapshot's contents.
const snapshotVersion = 1

// applyRecord applies one record of the store's log to pos. An ack never
// moves a position back.
func applyRecord(pos map[string]uint64, rec []byte) error {
	if len(rec) < 2 {
		return fmt.Errorf("%w: cursor record of %d bytes", ErrCorrupt, len(rec))
	}
	switch rec[0] {
	case opAck:
		index, n := binary.Uvarint(rec[1:])
		name := rec[1+max(n, 0):]
		if n <= 0 || checkName(string(name)) != nil {
			return fmt.Errorf("%w: malformed cursor ack record", ErrCorrupt)
		}
		advance(pos, string(name), index)
	case opDelete:
		delete(pos, string(rec[1:]))
	default:
		return fmt.Errorf("%w: unknown cursor record type %d", ErrCorrupt, rec[0])
	}
	return nil
}

func encodeSnapshot(cursors []Cursor) []byte {
	b := binary.AppendUvarint(nil, snapshotVersion)
	b = binary.AppendUvarint(b, uint64(len(cursors)))
	for _, c := range cursors {
		b = binary.AppendUvarint(b, uint64(len(c.Name)))
		b = append(b, c.Name...)
		b = binary.AppendUvarint(b, c.Index)
	}
	return b
}

// decodeSnapshot reads a snapshot's contents into pos.
func decodeSnapshot(r io.Reader, pos map[string]uint64) error {
	b, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	rd := bytes.NewReader(b)
	bad := func(what string) error { return fmt.Errorf("%w: cursor snapshot: %s", ErrCorrupt, what) }
	if v, err := binary.ReadUvarint(rd); err != nil || v != snapshotVersion {
		return bad("unknown version")
	}
	count, err := binary.ReadUvarint(rd)
	if err != nil || count > uint64(len(b)) {
		return bad("bad count")
	}
	for range count {
		n, err := binary.ReadUvarint(rd)
		if err != nil || n == 0 || n > MaxNameLen || n > uint64(rd.Len()) {
			return bad("bad name length")
		}
		name := make([]byte, n)
		rd.Read(name)
		index, err := binary.ReadUvarint(rd)
		if err != nil {
			return bad("truncated")
		}
		pos[string(name)] = index
	}
	if rd.Len() != 0 {
		return bad("trailing bytes")
	}
	return nil
}
