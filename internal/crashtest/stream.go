package crashtest

import "math/rand/v2"

// Workloads that run in another process (the kill test, powercut) cannot
// tell the checker which calls were in flight when they died. Their writers
// draw calls from a Stream instead: a pure function of a seed and the
// writer, so the checker replays it (Writers) and knows every record a
// writer appended or was appending, byte for byte, from the few numbers the
// workload reported.

// Shape is how a Stream draws its calls.
type Shape struct {
	// Batch draws the number of records of the next call.
	Batch func(r *rand.Rand) int
	// Size draws a record's size after its 8-byte payload id.
	Size func(r *rand.Rand) int
}

// Call is one Append or AppendBatch of a writer.
type Call struct {
	Seq   uint64   // the writer's sequence number of the first record
	Recs  [][]byte // the records
	Batch bool     // made with AppendBatch (always when several records)
}

// IDs are the payload ids of the call's records.
func (c Call) IDs(writer uint32) []uint64 {
	ids := make([]uint64, len(c.Recs))
	for k := range ids {
		ids[k] = RecordID(writer, c.Seq+uint64(k))
	}
	return ids
}

// RecordID is the payload id of a writer's seq-th record.
func RecordID(writer uint32, seq uint64) uint64 { return uint64(writer)<<32 | seq&(1<<32-1) }

// Stream is the sequence of calls of one writer.
type Stream struct {
	writer uint32
	shape  Shape
	rng    *rand.Rand
	seq    uint64
}

// NewStream starts the stream of writer under seed.
func NewStream(seed uint64, writer uint32, shape Shape) *Stream {
	return &Stream{writer: writer, shape: shape, rng: rand.New(rand.NewPCG(seed, uint64(writer)))}
}

// Next draws the next call. A batch member after the first is sometimes
// empty (an empty record is valid and must survive like any other).
func (s *Stream) Next() Call {
	n := max(1, s.shape.Batch(s.rng))
	c := Call{Seq: s.seq, Recs: make([][]byte, n), Batch: n > 1 || s.rng.IntN(8) == 0}
	for k := range c.Recs {
		size := s.shape.Size(s.rng)
		if k > 0 && s.rng.IntN(4) == 0 {
			c.Recs[k] = []byte{}
			continue
		}
		c.Recs[k] = Payload(RecordID(s.writer, s.seq+uint64(k)), size)
	}
	s.seq += uint64(n)
	return c
}

// Writers replays the streams of a workload's writers.
type Writers struct {
	seed  uint64
	shape Shape
	cur   map[uint32]*replay
}

type replay struct {
	s    *Stream
	call Call // the last call drawn
}

// NewWriters replays the streams drawn under seed with shape.
func NewWriters(seed uint64, shape Shape) *Writers {
	return &Writers{seed: seed, shape: shape, cur: map[uint32]*replay{}}
}

// CallAt returns the writer's call holding its seq-th record. Calls are
// cheapest asked for in order.
func (w *Writers) CallAt(writer uint32, seq uint64) Call {
	r := w.cur[writer]
	if r == nil || seq < r.call.Seq {
		r = &replay{s: NewStream(w.seed, writer, w.shape)}
		r.call = r.s.Next()
		w.cur[writer] = r
	}
	for seq >= r.call.Seq+uint64(len(r.call.Recs)) {
		r.call = r.s.Next()
	}
	return r.call
}

// Record returns the bytes of the writer's seq-th record.
func (w *Writers) Record(writer uint32, seq uint64) []byte {
	c := w.CallAt(writer, seq)
	return c.Recs[seq-c.Seq]
}

// Pending registers with m the call a writer had in flight when it died:
// the one after its next seq-1 (next: how many of its records were
// acknowledged).
func (w *Writers) Pending(m *Model, writer uint32, next uint64) {
	c := w.CallAt(writer, next)
	if c.Seq != next {
		// next lies inside a call: it was acknowledged in part, which a
		// workload reporting whole calls never does.
		panic("crashtest: a call acknowledged in part")
	}
	m.Begin(c.IDs(writer), c.Recs)
}
