// Command kv is a small key-value store on journal, written to be copied:
// the state is a map in memory, every Put and Delete is appended to the
// log before it is applied, the map is checkpointed in the background, and
// a restart loads the latest snapshot and replays the log after it.
//
//	go run ./examples/kv -dir /tmp/kv put greeting hello
//	go run ./examples/kv -dir /tmp/kv get greeting
//	go run ./examples/kv -dir /tmp/kv list
package main

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"maps"
	"slices"
	"sync"

	"github.com/gojournal/journal/wal"
)

// Store is a durable map from string to string. Its methods are safe for
// concurrent use.
type Store struct {
	log *wal.Log

	mu      sync.RWMutex
	data    map[string]string
	applied uint64 // index of the last record applied to data
}

// Operation codes of log records.
const (
	opPut    = 1
	opDelete = 2
)

// OpenStore opens (or creates) the store in dir: it loads the latest
// snapshot, replays the log records after it, and checkpoints in the
// background every checkpointBytes bytes of log.
func OpenStore(dir string, checkpointBytes int64) (*Store, error) {
	s := &Store{data: map[string]string{}}
	l, err := wal.Open(dir, &wal.Options{Checkpoint: wal.CheckpointOptions{
		EveryBytes: checkpointBytes,
		State:      s.state,
	}})
	if err != nil {
		return nil, err
	}
	s.log = l
	if err := s.restore(); err != nil {
		l.Close()
		return nil, err
	}
	return s, nil
}

// restore loads the snapshot and replays the log after it.
func (s *Store) restore() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	index, r, err := s.log.Snapshot()
	switch {
	case errors.Is(err, wal.ErrNoSnapshot):
		index = s.log.FirstIndex() - 1
	case err != nil:
		return err
	default:
		err = decodeSnapshot(r, s.data)
		if cerr := r.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return fmt.Errorf("kv: load snapshot: %w", err)
		}
	}
	s.applied = index
	replay := s.log.NewReader(index + 1)
	defer replay.Close()
	for replay.Next() {
		if err := s.apply(replay.Record()); err != nil {
			return fmt.Errorf("kv: replay record %d: %w", replay.Index(), err)
		}
		s.applied = replay.Index()
	}
	return replay.Err()
}

// Put sets key to value; it returns once the change is durable.
func (s *Store) Put(key, value string) error { return s.commit(opPut, key, value) }

// Delete removes key; it returns once the change is durable.
func (s *Store) Delete(key string) error { return s.commit(opDelete, key, "") }

// commit appends one operation and applies it. AppendApply runs the apply
// in log order once the record is durable, so a replay rebuilds the same
// map, without holding the map's lock across the fdatasync: concurrent
// commits share one fdatasync (group commit) instead of taking turns.
func (s *Store) commit(op byte, key, value string) error {
	rec := encodeOp(op, key, value)
	var err error
	if _, aerr := s.log.AppendApply(rec, func(index uint64) {
		s.mu.Lock()
		defer s.mu.Unlock()
		s.applied = index
		err = s.apply(rec)
	}); aerr != nil {
		return aerr
	}
	return err
}

// Get returns the value of key.
func (s *Store) Get(key string) (string, bool) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	v, ok := s.data[key]
	return v, ok
}

// Keys returns the keys in order.
func (s *Store) Keys() []string {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return slices.Sorted(maps.Keys(s.data))
}

// Close closes the store.
func (s *Store) Close() error { return s.log.Close() }

// state captures the map for a background checkpoint. This example copies
// it; a real database would take a copy-on-write view instead.
func (s *Store) state() (uint64, func(w io.Writer) error, error) {
	s.mu.RLock()
	index, data := s.applied, maps.Clone(s.data)
	s.mu.RUnlock()
	return index, func(w io.Writer) error { return encodeSnapshot(w, data) }, nil
}

func (s *Store) apply(rec []byte) error {
	op, key, value, err := decodeOp(rec)
	if err != nil {
		return err
	}
	if op == opPut {
		s.data[key] = value
	} else {
		delete(s.data, key)
	}
	return nil
}

// encodeOp lays out a record: op, then key and value, each length-prefixed.
func encodeOp(op byte, key, value string) []byte {
	b := []byte{op}
	b = binary.AppendUvarint(b, uint64(len(key)))
	b = append(b, key...)
	b = binary.AppendUvarint(b, uint64(len(value)))
	return append(b, value...)
}

func decodeOp(rec []byte) (op byte, key, value string, err error) {
	if len(rec) == 0 || (rec[0] != opPut && rec[0] != opDelete) {
		return 0, "", "", fmt.Errorf("kv: bad record")
	}
	r := bufio.NewReader(bytes.NewReader(rec[1:]))
	if key, err = readString(r); err == nil {
		value, err = readString(r)
	}
	return rec[0], key, value, err
}

// encodeSnapshot streams the map: a count, then each key and value.
func encodeSnapshot(w io.Writer, data map[string]string) error {
	bw := bufio.NewWriter(w)
	var buf [binary.MaxVarintLen64]byte
	bw.Write(buf[:binary.PutUvarint(buf[:], uint64(len(data)))])
	for k, v := range data {
		for _, s := range []string{k, v} {
			bw.Write(buf[:binary.PutUvarint(buf[:], uint64(len(s)))])
			bw.WriteString(s)
		}
	}
	return bw.Flush()
}

func decodeSnapshot(r io.Reader, into map[string]string) error {
	br := bufio.NewReader(r)
	n, err := binary.ReadUvarint(br)
	for ; err == nil && n > 0; n-- {
		var k, v string
		if k, err = readString(br); err == nil {
			v, err = readString(br)
		}
		into[k] = v
	}
	if err != nil {
		return err
	}
	// Read to the end: the snapshot's checksum is verified there.
	_, err = io.Copy(io.Discard, br)
	return err
}

func readString(r *bufio.Reader) (string, error) {
	n, err := binary.ReadUvarint(r)
	if err != nil {
		return "", err
	}
	if n > wal.MaxRecordSize {
		return "", fmt.Errorf("kv: string of %d bytes", n)
	}
	b := make([]byte, n)
	_, err = io.ReadFull(r, b)
	return string(b), err
}

func main() {
	dir := flag.String("dir", "kv-data", "store directory")
	flag.Parse()
	s, err := OpenStore(*dir, 1<<20)
	if err != nil {
		log.Fatal(err)
	}
	defer s.Close()
	args := flag.Args()
	switch {
	case len(args) == 3 && args[0] == "put":
		err = s.Put(args[1], args[2])
	case len(args) == 2 && args[0] == "delete":
		err = s.Delete(args[1])
	case len(args) == 2 && args[0] == "get":
		v, ok := s.Get(args[1])
		if !ok {
			err = fmt.Errorf("%s: not found", args[1])
		}
		fmt.Println(v)
	case len(args) == 1 && args[0] == "list":
		for _, k := range s.Keys() {
			v, _ := s.Get(k)
			fmt.Printf("%s=%s\n", k, v)
		}
	default:
		err = errors.New("usage: kv [-dir DIR] put KEY VALUE | delete KEY | get KEY | list")
	}
	if err != nil {
		s.Close()
		log.Fatal(err)
	}
}
