package powercut

import (
	"fmt"
)

// LogReader is the part of *wal.Log the checker reads.
type LogReader interface {
	FirstIndex() uint64
	LastIndex() uint64
	Read(index uint64) ([]byte, error)
}

// Ack is a record the workload acknowledged: it printed the ack only after
// Append or AppendBatch returned nil.
type Ack struct {
	Index  uint64
	Writer uint32
	Seq    uint64
}

// Model is the log as last verified: Recs[i] is the record at First+i.
type Model struct {
	First uint64
	Recs  []Ident
}

// Next is the index after the model's last record.
func (m Model) Next() uint64 { return m.First + uint64(len(m.Recs)) }

// Bytes is the payload volume of the modelled log.
func (m Model) Bytes() int64 {
	var n int64
	for _, id := range m.Recs {
		n += recordHeader + int64(id.Size)
	}
	return n
}

// Result is what Check found.
type Result struct {
	Violations []string // I1 and I2 breaches, the first maxViolations; empty when the log is right
	Count      int      // violations found, shown or not
	Read       int      // records read and decoded
	New        int      // records of this round found in the log
	Acked      int      // acknowledged records of this round
	AckedFound int      // of those, found at their index, byte for byte
	Unacked    int      // records of this round present without an ack
}

// maxViolations bounds the messages kept; the count goes on.
const maxViolations = 20

func (r *Result) violate(format string, args ...any) {
	r.Count++
	switch {
	case r.Count <= maxViolations:
		r.Violations = append(r.Violations, fmt.Sprintf(format, args...))
	case r.Count == maxViolations+1:
		r.Violations = append(r.Violations, "... (more violations not shown)")
	}
}

// Check reads the whole log and checks it against m, the log as verified
// before the round, and against the acknowledgements of the round:
//
//   - I1: every acknowledged record is at the index Append returned,
//     byte for byte;
//   - I2: the log is m followed by a gap-free prefix of what the round
//     appended: each record exactly what a writer of this round appended
//     (no garbage); each writer's records in sequence with none missing,
//     repeated or reordered, each naming the index of the writer's
//     previous record (so no record moved); every batch whole.
//
// Violations of I1 are listed first. It returns the model extended with
// the round's records.
func Check(l LogReader, m Model, round uint32, acks []Ack) (Model, Result) {
	var r Result
	first, last := l.FirstIndex(), l.LastIndex()

	// Read everything; the round's records follow m.
	type entry struct {
		index uint64
		id    Ident
	}
	var fresh []entry
	var damage []string
	found := map[uint64]Ident{}
	type key struct {
		writer uint32
		seq    uint64
	}
	where := map[key]uint64{} // index of each record of the round
	out := Model{First: m.First, Recs: m.Recs[:len(m.Recs):len(m.Recs)]}
	for i := first; i <= last; i++ {
		b, err := l.Read(i)
		if err != nil {
			damage = append(damage, fmt.Sprintf("I2: read index %d: %v", i, err))
			continue
		}
		id, err := Decode(b)
		if err != nil {
			damage = append(damage, fmt.Sprintf("I2: garbage at index %d: %v", i, err))
			continue
		}
		r.Read++
		if i < m.Next() {
			if i >= m.First {
				if want := m.Recs[i-m.First]; id != want {
					damage = append(damage, fmt.Sprintf("I2: index %d holds %s, it held %s", i, id, want))
				}
			}
			continue
		}
		r.New++
		found[i] = id
		where[key{id.Writer, id.Seq}] = i
		fresh = append(fresh, entry{i, id})
		out.Recs = append(out.Recs, id)
	}

	// I1.
	for _, a := range acks {
		r.Acked++
		want := fmt.Sprintf("round %d writer %d seq %d", round, a.Writer, a.Seq)
		id, ok := found[a.Index]
		switch {
		case a.Index < m.Next():
			r.violate("I1: acknowledged %s at index %d, which the log held before the round", want, a.Index)
		case a.Index > last:
			r.violate("I1: acknowledged %s at index %d is lost: the log ends at index %d", want, a.Index, last)
		case !ok:
			r.violate("I1: acknowledged %s at index %d is unreadable", want, a.Index)
		case id.Round != round || id.Writer != a.Writer || id.Seq != a.Seq:
			at := "is nowhere in the log"
			if j, ok := where[key{a.Writer, a.Seq}]; ok {
				at = fmt.Sprintf("is at index %d", j)
			}
			r.violate("I1: acknowledged %s at index %d, but the index holds %s; the acknowledged record %s", want, a.Index, id, at)
		default:
			r.AckedFound++
		}
	}
	r.Unacked = r.New - r.AckedFound

	// I2.
	if first != m.First {
		r.violate("I2: log starts at index %d, expected %d", first, m.First)
	}
	if last+1 < m.Next() {
		r.violate("I2: log ends at index %d, but it held records up to %d when recovered before this round", last, m.Next()-1)
	}
	for _, d := range damage {
		r.violate("%s", d)
	}
	type writer struct {
		next uint64 // sequence number of the writer's next record
		prev uint64 // index of its last record
	}
	writers := map[uint32]*writer{}
	var batch struct {
		open       bool
		writer     uint32
		start      uint64
		got, count uint16
	}
	for _, e := range fresh {
		i, id := e.index, e.id
		if id.Round != round {
			r.violate("I2: index %d holds a record of round %d (%s); only round %d appended after index %d", i, id.Round, id, round, m.Next()-1)
			continue
		}
		w := writers[id.Writer]
		if w == nil {
			w = &writer{}
			writers[id.Writer] = w
		}
		switch {
		case batch.open && (id.Writer != batch.writer || id.BatchPos != batch.got || id.BatchLen != batch.count):
			r.violate("I2: batch of writer %d starting at index %d has %d of %d records, then index %d holds %s", batch.writer, batch.start, batch.got, batch.count, i, id)
			batch.open = false
		case !batch.open && id.BatchPos != 0:
			r.violate("I2: index %d holds %s without the start of its batch", i, id)
		}
		if id.Seq != w.next {
			r.violate("I2: index %d holds %s, but writer %d's next record is seq %d (hole, duplicate or reordering)", i, id, id.Writer, w.next)
		}
		if id.Prev != w.prev {
			r.violate("I2: index %d holds %s, whose writer was told its previous record went to index %d (what Append or AppendBatch returned), but that record is at index %d",
				i, id, id.Prev, w.prev)
		}
		w.next = id.Seq + 1
		switch {
		case id.BatchPos+1 == id.BatchLen:
			batch.open = false
			w.prev = i
		case id.BatchPos == 0:
			batch.open, batch.writer, batch.start, batch.got, batch.count = true, id.Writer, i, 1, id.BatchLen
		default:
			batch.got++
		}
	}
	if batch.open {
		r.violate("I2: the log ends inside a batch: writer %d's batch at index %d has %d of %d records", batch.writer, batch.start, batch.got, batch.count)
	}
	return out, r
}

// Same checks that the log is exactly m (I3: a reopened log is the log
// that was recovered).
func Same(l LogReader, m Model) []string {
	var r Result
	if first, last := l.FirstIndex(), l.LastIndex(); first != m.First || last+1 != m.Next() {
		r.violate("I3: reopened log holds [%d, %d], recovered it held [%d, %d]", first, last, m.First, m.Next()-1)
	}
	for i := m.First; i < m.Next(); i++ {
		b, err := l.Read(i)
		if err != nil {
			r.violate("I3: reopened log: read index %d: %v", i, err)
			continue
		}
		id, err := Decode(b)
		if err != nil {
			r.violate("I3: reopened log: garbage at index %d: %v", i, err)
			continue
		}
		if want := m.Recs[i-m.First]; id != want {
			r.violate("I3: reopened log: index %d holds %s, recovered it held %s", i, id, want)
		}
	}
	return r.Violations
}
