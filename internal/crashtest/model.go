// Package crashtest drives workloads against a wal.Log on a crash-simulating
// file system, records what was acknowledged, and checks a recovered log
// against it: the invariants of journal's crash-safety battery.
//
// Model is the one checker of acknowledged records: the crash battery
// (fuzz/), the SIGKILL test (wal_test.go) and the power-cut test (powercut/)
// all check their recovered logs with it, so they cannot disagree about
// what an acknowledged record is owed. Workloads in other processes draw
// their calls from Streams, which the checker replays (Writers). LinModel
// and Concurrent are the concurrent model check: histories of racing calls,
// a power cut, and a linearizability check with porcupine.
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
// traced to the call that appended it. The filler mixes runs with random
// bytes, so compression has something to do.
func Payload(id uint64, n int) []byte {
	b := binary.LittleEndian.AppendUint64(make([]byte, 0, 8+n), id)
	x := id*0x9e3779b97f4a7c15 + 1
	for len(b) < 8+n {
		x ^= x << 13
		x ^= x >> 7
		x ^= x << 17
		run := min(1+int(x>>58), 8+n-len(b))
		if x&1 == 0 {
			b = append(b, bytes.Repeat([]byte{byte(x >> 8)}, run)...)
			continue
		}
		for k := range run {
			b = append(b, byte(x>>(8*(k%7)+8)))
		}
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

// AckRecord records that rec was acknowledged at index (a workload that
// reports acknowledgements record by record, such as a child process).
func (m *Model) AckRecord(index uint64, rec []byte) {
	m.Acked[index] = rec
	if id, ok := PayloadID(rec); ok {
		delete(m.pending, id)
	}
}

// FromLog is the model of a log verified to hold got: every record in it
// counts as acknowledged from now on.
func FromLog(got Log) *Model {
	m := NewModel()
	m.First, m.Snapshot = got.First, got.Snapshot
	maps.Copy(m.Acked, got.Records)
	return m
}

// SettleFront records that an Open found FirstIndex first: the
// TruncateFront in flight took effect if first is its index, and did not
// otherwise. It is for workloads that truncate only the front.
func (m *Model) SettleFront(first uint64) {
	if m.trunc != nil && m.trunc.front && first == m.trunc.index {
		m.apply(*m.trunc)
	}
	m.trunc = nil
}

// Firsts lists the values FirstIndex may have after a crash: as
// acknowledged, or as the truncation in flight would leave it.
func (m *Model) Firsts() []uint64 {
	if m.trunc != nil && m.trunc.front {
		return []uint64{m.First, m.trunc.index}
	}
	return []uint64{m.First}
}

// LastAcked is the highest acknowledged index (FirstIndex-1 if none).
func (m *Model) LastAcked() uint64 { return m.lastAcked() }

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

// Counts says what Verify found.
type Counts struct {
	Records int // records in the recovered log
	Acked   int // acknowledged records found intact at their indexes
	Unacked int // records of calls in flight found whole
}

// Check reports how got breaks I1 or I2, or nil. With a truncation in
// flight, the log may be as before or as after it.
func (m *Model) Check(got Log) error {
	_, err := m.Verify(got)
	return err
}

// Verify is Check, counting what it found.
func (m *Model) Verify(got Log) (Counts, error) {
	if got.Snapshot != m.Snapshot && (got.Snapshot != m.snapPending || got.Snapshot == 0) {
		return Counts{}, fmt.Errorf("I1: snapshot as of %d, acknowledged %d (in flight: %d)", got.Snapshot, m.Snapshot, m.snapPending)
	}
	if got.Snapshot != 0 && got.First > got.Snapshot+1 {
		return Counts{}, fmt.Errorf("I2: snapshot as of %d but the log starts at %d", got.Snapshot, got.First)
	}
	c, err := m.check(got)
	if err == nil || m.trunc == nil {
		return c, err
	}
	after := m.clone()
	after.apply(*m.trunc)
	c, err2 := after.check(got)
	if err2 != nil {
		return c, fmt.Errorf("neither before (%v) nor after (%v) the truncation in flight", err, err2)
	}
	return c, nil
}

func (m *Model) clone() *Model {
	c := *m
	c.Acked = maps.Clone(m.Acked)
	c.written = maps.Clone(m.written)
	c.pending = maps.Clone(m.pending)
	return &c
}

func (m *Model) check(got Log) (Counts, error) {
	c := Counts{Records: len(got.Records)}
	if got.First != m.First {
		return c, fmt.Errorf("I2: FirstIndex %d, acknowledged %d", got.First, m.First)
	}
	if last := m.lastAcked(); got.Last < last {
		return c, fmt.Errorf("I1: LastIndex %d, but record %d was acknowledged", got.Last, last)
	}
	used := map[*group][]uint64{} // group -> indexes it was found at
	var open *group               // the unacknowledged call being read
	for i := got.First; i <= got.Last; i++ {
		rec, ok := got.Records[i]
		if !ok {
			return c, fmt.Errorf("I2: hole at %d in [%d, %d]", i, got.First, got.Last)
		}
		if want, ok := m.Acked[i]; ok {
			if !bytes.Equal(rec, want) {
				return c, fmt.Errorf("I1: record %d differs from what was acknowledged (%d bytes, want %d)", i, len(rec), len(want))
			}
			c.Acked++
			open = nil
			continue
		}
		if open != nil && len(used[open]) < len(open.ids) {
			// the next record of the call: exactly, even if empty
			if want := open.data[open.ids[len(used[open])]]; !bytes.Equal(rec, want) {
				return c, fmt.Errorf("I2: record %d breaks the batch begun at %d (%d bytes, want %d)", i, used[open][0], len(rec), len(want))
			}
			used[open] = append(used[open], i)
			c.Unacked++
			continue
		}
		g, err := m.matchPending(i, rec, used)
		if err != nil {
			return c, err
		}
		open = g
		used[g] = []uint64{i}
		c.Unacked++
	}
	return c, checkBatches(used)
}

func (m *Model) lastAcked() uint64 {
	if len(m.Acked) == 0 {
		return m.First - 1
	}
	return max(m.First-1, slices.Max(slices.Collect(maps.Keys(m.Acked))))
}

// matchPending checks that an unacknowledged record at index i starts a
// call that was in flight, exactly, and that the call is found only once.
func (m *Model) matchPending(i uint64, rec []byte, used map[*group][]uint64) (*group, error) {
	id, ok := PayloadID(rec)
	g := m.pending[id]
	if !ok || g == nil {
		return nil, fmt.Errorf("I2: record %d (%d bytes) was never appended or was acknowledged elsewhere: garbage", i, len(rec))
	}
	if !bytes.Equal(rec, g.data[id]) {
		return nil, fmt.Errorf("I2: record %d is a damaged copy of payload %d", i, id)
	}
	if len(used[g]) > 0 || g.ids[0] != id {
		return nil, fmt.Errorf("I2: record %d holds payload %d twice or out of its batch's order", i, id)
	}
	return g, nil
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
