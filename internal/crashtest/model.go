// Package crashtest drives workloads against a wal.Log on a crash-simulating
// file system, records what was acknowledged, and checks a recovered log
// against it: the invariants of journal's crash-safety battery.
//
//   - I1 every record whose Append/AppendBatch returned nil (or that a
//     successful Sync covered) is present, byte for byte;
//   - I2 the log is a prefix of what was appended: no holes, duplicates,
//     reordering or garbage, batches all-or-nothing;
//   - I3 recovery is idempotent and the log accepts appends afterwards
//     (checked by the callers, see Verify);
//   - I4 damage inside the durable range is reported, never silently
//     dropped.
package crashtest

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"maps"
	"slices"
)

// Payload returns the record for payload id with n bytes of filler. Every
// record names its id in its first 8 bytes, so a recovered record can be
// traced to the call that appended it.
func Payload(id uint64, n int) []byte {
	b := binary.LittleEndian.AppendUint64(make([]byte, 0, 8+n), id)
	x := id*0x9e3779b97f4a7c15 + 1
	for range n {
		x ^= x << 13
		x ^= x >> 7
		x ^= x << 17
		b = append(b, byte(x))
	}
	return b
}

// PayloadID returns the id a record names, if it is long enough to name one.
func PayloadID(rec []byte) (uint64, bool) {
	if len(rec) < 8 {
		return 0, false
	}
	return binary.LittleEndian.Uint64(rec), true
}

// group is one Append (one record) or AppendBatch (several) not yet known
// to be durable.
type group struct {
	ids  []uint64
	data map[uint64][]byte
}

// Model is what a workload was told: the acknowledged log and the calls in
// flight when the crash came.
type Model struct {
	First   uint64            // FirstIndex as acknowledged
	Acked   map[uint64][]byte // index -> record, acknowledged
	pending map[uint64]*group // payload id -> its unacknowledged call
	// written holds records a NoSync log returned from Append: durable
	// only once a Sync returns nil.
	written map[uint64][]byte
	// trunc is a truncation whose call had not returned: the log may be
	// before or after it.
	trunc *truncation
	// Snapshot is the index of the last checkpoint acknowledged (0: none);
	// snapPending that of a checkpoint in flight.
	Snapshot, snapPending uint64
}

// SnapshotState is the state a workload checkpoints as of index.
func SnapshotState(index uint64) []byte { return Payload(index, 3000) }

type truncation struct {
	front bool
	index uint64
}

// NewModel is the model of an empty log.
func NewModel() *Model {
	return &Model{First: 1, Acked: map[uint64][]byte{}, pending: map[uint64]*group{}, written: map[uint64][]byte{}}
}

// Begin records a call appending records (payload ids ids) before it runs.
func (m *Model) Begin(ids []uint64, recs [][]byte) {
	g := &group{ids: ids, data: map[uint64][]byte{}}
	for i, id := range ids {
		g.data[id] = recs[i]
		m.pending[id] = g
	}
}

// Ack records that the call appending ids returned first, durably unless
// written is set (NoSync: durable at the next Sync).
func (m *Model) Ack(ids []uint64, first uint64, noSync bool) {
	g := m.pending[ids[0]]
	for i, id := range ids {
		if noSync {
			m.written[first+uint64(i)] = g.data[id]
			continue
		}
		m.Acked[first+uint64(i)] = g.data[id]
		delete(m.pending, id)
	}
}

// Synced records that a Sync returned nil: every written record is durable.
func (m *Model) Synced() {
	for i, rec := range m.written {
		m.Acked[i] = rec
		id, _ := PayloadID(rec)
		delete(m.pending, id)
	}
	clear(m.written)
}

// BeginTruncate records a truncation before it runs; EndTruncate after it
// returned nil.
func (m *Model) BeginTruncate(front bool, index uint64) { m.trunc = &truncation{front, index} }

// EndTruncate applies the truncation begun last.
func (m *Model) EndTruncate() {
	m.apply(*m.trunc)
	m.trunc = nil
}

func (m *Model) apply(t truncation) {
	dropped := func(i uint64) bool { return (t.front && i < t.index) || (!t.front && i > t.index) }
	for i := range m.Acked {
		if dropped(i) {
			delete(m.Acked, i)
		}
	}
	cut := map[*group]bool{}
	for i, rec := range m.written {
		if dropped(i) {
			// A record a truncation dropped must never come back, not
			// even as an unacknowledged one.
			delete(m.written, i)
			id, _ := PayloadID(rec)
			cut[m.pending[id]] = true
			delete(m.pending, id)
		}
	}
	for g := range cut {
		m.shrink(g)
	}
	if t.front {
		m.First = t.index
	}
}

// shrink replaces group g, some of whose records a truncation dropped, by
// the group of those it kept: a batch cut short by TruncateBack is whole
// without its dropped records. g itself is left alone, as a clone of the
// model may share it.
func (m *Model) shrink(g *group) {
	kept := &group{data: g.data}
	for _, id := range g.ids {
		if m.pending[id] == g {
			kept.ids = append(kept.ids, id)
		}
	}
	for _, id := range kept.ids {
		m.pending[id] = kept
	}
}

// BeginCheckpoint records a checkpoint at index before it runs; it
// releases the records up to index. EndCheckpoint records its success.
func (m *Model) BeginCheckpoint(index uint64) {
	m.snapPending = index
	if index+1 > m.First {
		m.BeginTruncate(true, index+1)
	}
}

// EndCheckpoint records that the checkpoint begun last returned nil.
func (m *Model) EndCheckpoint() {
	m.Snapshot, m.snapPending = m.snapPending, 0
	if m.trunc != nil {
		m.EndTruncate()
	}
}

// AbortCheckpoint records that the checkpoint begun last failed before
// releasing anything: its snapshot may or may not have replaced the old one
// (a failed directory sync), and no record was released.
func (m *Model) AbortCheckpoint() { m.trunc = nil }

// Log is a recovered log's contents.
type Log struct {
	First, Last uint64
	Records     map[uint64][]byte
	Snapshot    uint64 // index of the snapshot found, 0 if none
}

// Equal reports whether two recovered logs hold the same records.
func (l Log) Equal(o Log) bool {
	return l.First == o.First && l.Last == o.Last && l.Snapshot == o.Snapshot && maps.EqualFunc(l.Records, o.Records, bytes.Equal)
}

// Check reports how got breaks I1 or I2, or nil. With a truncation in
// flight, the log may be as before or as after it.
func (m *Model) Check(got Log) error {
	if got.Snapshot != m.Snapshot && (got.Snapshot != m.snapPending || got.Snapshot == 0) {
		return fmt.Errorf("I1: snapshot as of %d, acknowledged %d (in flight: %d)", got.Snapshot, m.Snapshot, m.snapPending)
	}
	if got.Snapshot != 0 && got.First > got.Snapshot+1 {
		return fmt.Errorf("I2: snapshot as of %d but the log starts at %d", got.Snapshot, got.First)
	}
	err := m.check(got)
	if err == nil || m.trunc == nil {
		return err
	}
	after := m.clone()
	after.apply(*m.trunc)
	if err2 := after.check(got); err2 != nil {
		return fmt.Errorf("neither before (%v) nor after (%v) the truncation in flight", err, err2)
	}
	return nil
}

func (m *Model) clone() *Model {
	c := *m
	c.Acked = maps.Clone(m.Acked)
	c.written = maps.Clone(m.written)
	c.pending = maps.Clone(m.pending)
	return &c
}

func (m *Model) check(got Log) error {
	if got.First != m.First {
		return fmt.Errorf("I2: FirstIndex %d, acknowledged %d", got.First, m.First)
	}
	if last := m.lastAcked(); got.Last < last {
		return fmt.Errorf("I1: LastIndex %d, but record %d was acknowledged", got.Last, last)
	}
	used := map[*group][]uint64{} // group -> indexes it was found at
	for i := got.First; i <= got.Last; i++ {
		rec, ok := got.Records[i]
		if !ok {
			return fmt.Errorf("I2: hole at %d in [%d, %d]", i, got.First, got.Last)
		}
		if want, ok := m.Acked[i]; ok {
			if !bytes.Equal(rec, want) {
				return fmt.Errorf("I1: record %d differs from what was acknowledged (%d bytes, want %d)", i, len(rec), len(want))
			}
			continue
		}
		if err := m.matchPending(i, rec, used); err != nil {
			return err
		}
	}
	return checkBatches(used)
}

func (m *Model) lastAcked() uint64 {
	if len(m.Acked) == 0 {
		return m.First - 1
	}
	return max(m.First-1, slices.Max(slices.Collect(maps.Keys(m.Acked))))
}

// matchPending checks that an unacknowledged record at index i is one that a
// call in flight appended, exactly and once.
func (m *Model) matchPending(i uint64, rec []byte, used map[*group][]uint64) error {
	id, ok := PayloadID(rec)
	g := m.pending[id]
	if !ok || g == nil {
		return fmt.Errorf("I2: record %d (%d bytes) was never appended or was acknowledged elsewhere: garbage", i, len(rec))
	}
	if !bytes.Equal(rec, g.data[id]) {
		return fmt.Errorf("I2: record %d is a damaged copy of payload %d", i, id)
	}
	if pos := slices.Index(g.ids, id); pos != len(used[g]) {
		return fmt.Errorf("I2: record %d holds payload %d twice or out of its batch's order", i, id)
	}
	used[g] = append(used[g], i)
	return nil
}

// checkBatches checks that every unacknowledged call found is there whole,
// at consecutive indexes.
func checkBatches(used map[*group][]uint64) error {
	for g, at := range used {
		if len(at) != len(g.ids) {
			return fmt.Errorf("I2: batch of %d records partly present (%d) at %v", len(g.ids), len(at), at)
		}
		for k := 1; k < len(at); k++ {
			if at[k] != at[k-1]+1 {
				return fmt.Errorf("I2: batch split across indexes %v", at)
			}
		}
	}
	return nil
}
