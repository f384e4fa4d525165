package powercut

import (
	"fmt"

	"github.com/gojournal/journal/internal/crashtest"
)

// The checker is crashtest's: the crash battery and the kill test check
// their logs with the same Model, so the three harnesses cannot disagree
// about what an acknowledged record is owed. This file only translates what
// a workload printed into that Model.

// Ack is a record the workload acknowledged: it printed the ack only after
// Append or AppendBatch returned nil.
type Ack struct {
	Index  uint64
	Writer uint32 // within the round
	Seq    uint64
}

// Round is one round's workload: its seed, and the writers it ran.
type Round struct {
	Round   uint32
	Seed    uint64
	Writers int
}

// writerID is the crashtest writer of round r's writer w: unique across
// rounds, so a record of one round never passes for another's.
func writerID(round, w uint32) uint32 { return round<<8 | w }

// Result is what Check found.
type Result struct {
	Violation  string // the first breach of I1 or I2; empty when the log is right
	Read       int    // records read
	Acked      int    // acknowledged records of this round
	AckedFound int    // of those, found at their index, byte for byte
	Unacked    int    // records of calls in flight at the cut found whole
}

// Check checks got, the log recovered after round r, against prev, the log
// as verified before the round, and the acknowledgements of the round
// (I1 and I2, see crashtest.Model). The calls the writers had in flight may
// be in the log, whole, or absent.
func Check(got, prev crashtest.Log, r Round, acks []Ack) Result {
	m := crashtest.FromLog(prev)
	ws := crashtest.NewWriters(r.Seed, Shape)
	next := map[uint32]uint64{} // per writer: records acknowledged
	res := Result{Read: len(got.Records), Acked: len(acks)}
	for _, a := range acks {
		w := writerID(r.Round, a.Writer)
		if a.Seq != next[w] {
			res.Violation = fmt.Sprintf("writer %d acknowledged seq %d after %d records", a.Writer, a.Seq, next[w])
			return res
		}
		next[w]++
		rec := ws.Record(w, a.Seq)
		if old, ok := m.Acked[a.Index]; ok {
			res.Violation = fmt.Sprintf("I1: writer %d seq %d acknowledged at index %d, which held a record (%d bytes) before the round", a.Writer, a.Seq, a.Index, len(old))
			return res
		}
		m.AckRecord(a.Index, rec)
	}
	for w := range uint32(r.Writers) {
		ws.Pending(m, writerID(r.Round, w), next[writerID(r.Round, w)])
	}
	counts, err := m.Verify(got)
	if err != nil {
		res.Violation = err.Error()
	}
	res.AckedFound = counts.Acked - len(prev.Records)
	res.Unacked = counts.Unacked
	return res
}

// Same checks that the log reopened is the log recovered (I3).
func Same(again, got crashtest.Log) string {
	if !again.Equal(got) {
		return fmt.Sprintf("I3: reopened log holds [%d, %d], recovered it held [%d, %d] (or the records differ)", again.First, again.Last, got.First, got.Last)
	}
	return ""
}
