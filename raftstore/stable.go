package raftstore

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"

	"github.com/gojournal/journal/wal"
)

// stable is the StableStore: a journal log of key/value records, one per
// Set, and a map of every key's latest value. When CompactAfter records
// have accumulated, a checkpoint of the map releases them. Its record and
// snapshot formats:
//
//	record:   version (1), uvarint key length, key, value (the rest)
//	snapshot: version (1), then per key: uvarint key length, key,
//	          uvarint value length, value
type stable struct {
	mu      sync.RWMutex
	log     *wal.Log
	values  map[string][]byte
	compact int
}

const stableVersion = 1

func openStable(dir string, entryOpts wal.Options, compactAfter int) (*stable, error) {
	// Raft's votes and terms must be durable: never NoSync. Small
	// segments, as the log stays short.
	o := wal.Options{FS: entryOpts.FS, Logger: entryOpts.Logger, SegmentSize: wal.MinSegmentSize}
	l, err := wal.Open(dir, &o)
	if err != nil {
		return nil, err
	}
	st := &stable{log: l, values: map[string][]byte{}, compact: compactAfter}
	if st.compact <= 0 {
		st.compact = 1024
	}
	if err := st.load(); err != nil {
		l.Close()
		return nil, err
	}
	return st, nil
}

// load reads the snapshot, if any, then every record after it.
func (st *stable) load() error {
	_, r, err := st.log.Snapshot()
	switch {
	case errors.Is(err, wal.ErrNoSnapshot):
	case err != nil:
		return err
	default:
		err = readSnapshot(bufio.NewReader(r), st.values)
		if cerr := r.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return fmt.Errorf("raftstore: read stable snapshot: %w", err)
		}
	}
	for i := st.log.FirstIndex(); i <= st.log.LastIndex(); i++ {
		rec, err := st.log.Read(i)
		if err != nil {
			return err
		}
		key, val, err := decodeStable(rec, i)
		if err != nil {
			return err
		}
		st.values[string(key)] = val
	}
	return nil
}

func readSnapshot(r *bufio.Reader, into map[string][]byte) error {
	v, err := r.ReadByte()
	if err != nil {
		return err
	}
	if v != stableVersion {
		return fmt.Errorf("%w: stable snapshot version %d, this build reads %d", ErrFormat, v, stableVersion)
	}
	for {
		key, err := readChunk(r)
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		val, err := readChunk(r)
		if err != nil {
			return errors.Join(err, io.ErrUnexpectedEOF)
		}
		into[string(key)] = val
	}
}

// maxChunk bounds a length read from a snapshot before it is allocated
// (the snapshot's checksum was verified, but a length is never trusted).
// Every key and value came from one stable record, so none is larger than
// a record; a tighter bound would refuse a snapshot of values Set took.
const maxChunk = wal.MaxRecordSize

func readChunk(r *bufio.Reader) ([]byte, error) {
	n, err := binary.ReadUvarint(r)
	if err != nil {
		return nil, err
	}
	if n > maxChunk {
		return nil, fmt.Errorf("%w: stable snapshot holds a %d-byte value", ErrFormat, n)
	}
	b := make([]byte, n)
	if _, err := io.ReadFull(r, b); err != nil {
		return nil, errors.Join(err, io.ErrUnexpectedEOF)
	}
	return b, nil
}

func decodeStable(rec []byte, index uint64) (key, val []byte, err error) {
	if len(rec) < 2 || rec[0] != stableVersion {
		return nil, nil, fmt.Errorf("%w: stable record %d", ErrFormat, index)
	}
	n, k := binary.Uvarint(rec[1:])
	if k <= 0 || n > uint64(len(rec)-1-k) {
		return nil, nil, fmt.Errorf("%w: stable record %d: key length", ErrFormat, index)
	}
	key = rec[1+k : 1+k+int(n)]
	return key, rec[1+k+int(n):], nil
}

// set durably records key = val, then compacts if it is time.
func (st *stable) set(key, val []byte) error {
	rec := make([]byte, 0, 1+binary.MaxVarintLen64+len(key)+len(val))
	rec = append(rec, stableVersion)
	rec = binary.AppendUvarint(rec, uint64(len(key)))
	rec = append(append(rec, key...), val...)
	st.mu.Lock()
	defer st.mu.Unlock()
	index, err := st.log.Append(rec)
	if err != nil {
		return err
	}
	st.values[string(key)] = append([]byte(nil), val...)
	if index-st.log.FirstIndex()+1 >= uint64(st.compact) {
		return st.checkpoint(index)
	}
	return nil
}

// checkpoint writes every value as of index and releases the records up
// to it. Called with mu held.
func (st *stable) checkpoint(index uint64) error {
	return st.log.Checkpoint(index, func(w io.Writer) error {
		b := []byte{stableVersion}
		for k, v := range st.values {
			b = binary.AppendUvarint(b, uint64(len(k)))
			b = append(b, k...)
			b = binary.AppendUvarint(b, uint64(len(v)))
			b = append(b, v...)
			if len(b) >= 64<<10 {
				if _, err := w.Write(b); err != nil {
					return err
				}
				b = b[:0]
			}
		}
		_, err := w.Write(b)
		return err
	})
}

func (st *stable) get(key []byte) []byte {
	st.mu.RLock()
	defer st.mu.RUnlock()
	return append([]byte(nil), st.values[string(key)]...)
}

func (st *stable) close() error { return st.log.Close() }

// keys is the raft.StableStore of one store: a stable log's keys, each
// under prefix (none for a Store, the group's id for a group of a Shared
// store: uvarints are prefix-free, so groups never share a key). Store and
// GroupStore take its methods by embedding it.
type keys struct {
	stable *stable
	prefix []byte
	closed *atomic.Bool // the store's: once set, every call gets wal.ErrClosed
}

func (k keys) key(key []byte) []byte { return append(k.prefix[:len(k.prefix):len(k.prefix)], key...) }

func (k keys) usable() error {
	if k.closed.Load() {
		return wal.ErrClosed
	}
	return nil
}

// Set durably stores val under key.
func (k keys) Set(key, val []byte) error {
	if err := k.usable(); err != nil {
		return err
	}
	return k.stable.set(k.key(key), val)
}

// Get returns the value stored under key: an empty slice with a nil error
// when there is none (raft would otherwise look for the text "not found").
func (k keys) Get(key []byte) ([]byte, error) {
	if err := k.usable(); err != nil {
		return nil, err
	}
	return k.stable.get(k.key(key)), nil
}

// SetUint64 durably stores val under key, as 8 big-endian bytes (the
// same key space as Set).
func (k keys) SetUint64(key []byte, val uint64) error {
	return k.Set(key, binary.BigEndian.AppendUint64(nil, val))
}

// GetUint64 returns the value SetUint64 stored under key: 0 with a nil
// error when there is none.
func (k keys) GetUint64(key []byte) (uint64, error) {
	v, err := k.Get(key)
	if err != nil {
		return 0, err
	}
	switch len(v) {
	case 0:
		return 0, nil
	case 8:
		return binary.BigEndian.Uint64(v), nil
	}
	return 0, fmt.Errorf("raftstore: GetUint64(%q): the value is %d bytes, not 8", key, len(v))
}
