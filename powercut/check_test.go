package powercut

import (
	"fmt"
	"slices"
	"strings"
	"testing"
)

// fakeLog is a log held in memory.
type fakeLog struct {
	first uint64
	recs  [][]byte
}

func (f *fakeLog) FirstIndex() uint64 { return f.first }
func (f *fakeLog) LastIndex() uint64  { return f.first + uint64(len(f.recs)) - 1 }
func (f *fakeLog) Read(i uint64) ([]byte, error) {
	if i < f.first || i > f.LastIndex() {
		return nil, fmt.Errorf("index %d not found", i)
	}
	return f.recs[i-f.first], nil
}

// appends builds what a round appends: each op is a writer and a batch
// size (1 for Append). It returns the records in log order from index
// next and the acks for all of them.
func appends(round uint32, next uint64, ops ...[2]int) ([][]byte, []Ack) {
	var recs [][]byte
	var acks []Ack
	seq := map[uint32]uint64{}
	prev := map[uint32]uint64{}
	for _, op := range ops {
		w, n := uint32(op[0]), op[1]
		first := next + uint64(len(recs))
		for k := range n {
			id := Ident{Round: round, Writer: w, BatchLen: uint16(n), Seq: seq[w] + uint64(k), Prev: prev[w], Size: uint32(10 * k)}
			if n > 1 {
				id.BatchPos = uint16(k)
			}
			recs = append(recs, Encode(id))
			acks = append(acks, Ack{Index: first + uint64(k), Writer: w, Seq: seq[w] + uint64(k)})
		}
		seq[w] += uint64(n)
		prev[w] = first + uint64(n) - 1
	}
	return recs, acks
}

// model decodes records into a model starting at first.
func model(t *testing.T, first uint64, recs [][]byte) Model {
	m := Model{First: first}
	for _, b := range recs {
		id, err := Decode(b)
		if err != nil {
			t.Fatal(err)
		}
		m.Recs = append(m.Recs, id)
	}
	return m
}

func TestPowerCutCheckerScenarios(t *testing.T) {
	old, _ := appends(1, 1, [2]int{0, 1}, [2]int{1, 3}, [2]int{0, 1})
	before := model(t, 1, old)
	// Round 2 appends after index 5: writer 0 one record, writer 1 a
	// batch of 3, writer 2 one record, writer 0 one more.
	recs, acks := appends(2, 6, [2]int{0, 1}, [2]int{1, 3}, [2]int{2, 1}, [2]int{0, 1})

	cases := []struct {
		name string
		// mutate changes the recovered log (old and round-2 records)
		// and the acks the workload printed.
		mutate func(log [][]byte, acks []Ack) ([][]byte, []Ack)
		want   string // substring of a violation; "" for none
	}{
		{"EverythingRecovered", func(l [][]byte, a []Ack) ([][]byte, []Ack) { return l, a }, ""},
		{"UnacknowledgedTailLostIsFine", func(l [][]byte, a []Ack) ([][]byte, []Ack) { return l[:len(l)-1], a[:len(a)-1] }, ""},
		{"WholeBatchLostBeforeAckIsFine", func(l [][]byte, a []Ack) ([][]byte, []Ack) { return l[:6], a[:1] }, ""},
		{"AcknowledgedRecordLost", func(l [][]byte, a []Ack) ([][]byte, []Ack) { return l[:len(l)-1], a }, "I1: acknowledged round 2 writer 0 seq 1 at index 11 is lost"},
		{"AcknowledgedAtWrongIndex", func(l [][]byte, a []Ack) ([][]byte, []Ack) {
			a = slices.Clone(a)
			a[1].Index, a[2].Index = a[2].Index, a[1].Index
			return l, a
		}, "the acknowledged record is at index 8"},
		{"PartialBatch", func(l [][]byte, a []Ack) ([][]byte, []Ack) { return l[:8], a[:1] }, "I2: the log ends inside a batch: writer 1's batch at index 7 has 2 of 3 records"},
		{"HoleInTheMiddle", func(l [][]byte, a []Ack) ([][]byte, []Ack) {
			return slices.Delete(slices.Clone(l), 5, 6), nil
		}, "I2: index 10 holds round 2 writer 0 seq 1, but writer 0's next record is seq 0"},
		{"ReturnedIndexWrong", func(l [][]byte, a []Ack) ([][]byte, []Ack) {
			// Writer 0's second record says its first went to
			// index 5 (a wrong index returned by Append).
			l = slices.Clone(l)
			l[10] = Encode(Ident{Round: 2, Writer: 0, BatchLen: 1, Seq: 1, Prev: 5})
			return l, nil
		}, "I2: index 11 holds round 2 writer 0 seq 1, whose writer was told its previous record went to index 5 (what Append or AppendBatch returned), but that record is at index 6"},
		{"RecordMoved", func(l [][]byte, a []Ack) ([][]byte, []Ack) {
			// Writer 2's record vanished and writer 0's moved into
			// its place: only the acks can tell.
			return slices.Delete(slices.Clone(l), 9, 10), a
		}, "I1: acknowledged round 2 writer 2 seq 0 at index 10, but the index holds round 2 writer 0 seq 1; the acknowledged record is nowhere in the log"},
		{"Duplicate", func(l [][]byte, a []Ack) ([][]byte, []Ack) {
			return slices.Insert(slices.Clone(l), 10, l[9]), nil
		}, "but writer 2's next record is seq 1"},
		{"ReorderedWithinAWriter", func(l [][]byte, a []Ack) ([][]byte, []Ack) {
			l = slices.Clone(l)
			l[5], l[10] = l[10], l[5]
			return l, nil
		}, "I2: index 6 holds round 2 writer 0 seq 1, but writer 0's next record is seq 0"},
		{"ReorderedAcrossWriters", func(l [][]byte, a []Ack) ([][]byte, []Ack) {
			l = slices.Clone(l)
			l[9], l[10] = l[10], l[9]
			return l, a
		}, "I1: acknowledged round 2 writer 2 seq 0 at index 10, but the index holds round 2 writer 0 seq 1; the acknowledged record is at index 11"},
		{"Garbage", func(l [][]byte, a []Ack) ([][]byte, []Ack) {
			l = slices.Clone(l)
			b := slices.Clone(l[6])
			b[len(b)-1] ^= 1
			l[6] = b
			return l, nil
		}, "I2: garbage at index 7"},
		{"ZerosInsteadOfARecord", func(l [][]byte, a []Ack) ([][]byte, []Ack) {
			l = slices.Clone(l)
			l[5] = make([]byte, 64)
			return l, nil
		}, "I2: garbage at index 6"},
		{"OldRecordChanged", func(l [][]byte, a []Ack) ([][]byte, []Ack) {
			l = slices.Clone(l)
			l[1], l[2] = l[2], l[1]
			return l, a
		}, "I2: index 2 holds round 1 writer 1 seq 1 (batch 2/3), it held round 1 writer 1 seq 0 (batch 1/3)"},
		{"OldRecordsLost", func(l [][]byte, a []Ack) ([][]byte, []Ack) { return l[:3], nil }, "I2: log ends at index 3, but it held records up to 5"},
		{"RecordOfAnotherRound", func(l [][]byte, a []Ack) ([][]byte, []Ack) {
			stale, _ := appends(7, 6, [2]int{0, 1})
			return append(slices.Clone(l[:5]), stale...), nil
		}, "I2: index 6 holds a record of round 7"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			log, a := tc.mutate(slices.Concat(old, recs), acks)
			_, res := Check(&fakeLog{first: 1, recs: log}, before, 2, a)
			got := strings.Join(res.Violations, "\n")
			switch {
			case tc.want == "" && got != "":
				t.Fatalf("violations in a right log:\n%s", got)
			case tc.want != "" && !strings.Contains(got, tc.want):
				t.Fatalf("violations:\n%s\nwant one containing %q", got, tc.want)
			}
		})
	}
}

func TestPowerCutCheckerCounts(t *testing.T) {
	recs, acks := appends(1, 1, [2]int{0, 1}, [2]int{1, 2}, [2]int{0, 1})
	next, res := Check(&fakeLog{first: 1, recs: recs}, Model{First: 1}, 1, acks[:2])
	if len(res.Violations) > 0 {
		t.Fatal(res.Violations)
	}
	if res.Read != 4 || res.New != 4 || res.Acked != 2 || res.AckedFound != 2 || res.Unacked != 2 {
		t.Fatalf("counts %+v", res)
	}
	if next.First != 1 || len(next.Recs) != 4 {
		t.Fatalf("model [%d, +%d], want [1, +4]", next.First, len(next.Recs))
	}
	if v := Same(&fakeLog{first: 1, recs: recs}, next); len(v) > 0 {
		t.Fatal(v)
	}
	if v := Same(&fakeLog{first: 1, recs: recs[:3]}, next); len(v) == 0 {
		t.Fatal("Same accepted a log missing its last record")
	}
}

func TestPowerCutRecordRoundTrip(t *testing.T) {
	for _, size := range []uint32{0, 1, 7, 8, 9, 4096, 70 << 10} {
		id := Ident{Round: 3, Writer: 2, BatchPos: 1, BatchLen: 4, Seq: 99, Prev: 1234, Size: size}
		b := Encode(id)
		got, err := Decode(b)
		if err != nil || got != id {
			t.Fatalf("size %d: Decode = %+v, %v; want %+v", size, got, err, id)
		}
		if _, err := Decode(b[:len(b)-1]); err == nil {
			t.Fatalf("size %d: a truncated record decoded", size)
		}
	}
}
