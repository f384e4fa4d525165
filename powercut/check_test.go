package powercut

import (
	"slices"
	"strings"
	"testing"

	"github.com/gojournal/journal/internal/crashtest"
)

// built is a log a test builds as a workload would: whole calls of its
// writers in turn, every record acknowledged.
type built struct {
	recs  [][]byte
	acks  []Ack
	batch int // index into recs of the first record of a batch
	size  int // and its number of records
}

// appendCalls appends calls[k] calls of writer k of round r in turn, from
// index next.
func appendCalls(r Round, next uint64, calls ...int) built {
	var b built
	b.batch = -1
	streams := make([]*crashtest.Stream, len(calls))
	for w := range calls {
		streams[w] = crashtest.NewStream(r.Seed, writerID(r.Round, uint32(w)), Shape)
	}
	for more := true; more; {
		more = false
		for w := range calls {
			if calls[w] == 0 {
				continue
			}
			calls[w]--
			more = true
			c := streams[w].Next()
			if len(c.Recs) > 1 && b.batch < 0 {
				b.batch, b.size = len(b.recs), len(c.Recs)
			}
			for k, rec := range c.Recs {
				b.acks = append(b.acks, Ack{Index: next + uint64(len(b.recs)), Writer: uint32(w), Seq: c.Seq + uint64(k)})
				b.recs = append(b.recs, rec)
			}
		}
	}
	return b
}

func asLog(first uint64, recs [][]byte) crashtest.Log {
	l := crashtest.Log{First: first, Last: first + uint64(len(recs)) - 1, Records: map[uint64][]byte{}}
	for k, rec := range recs {
		l.Records[first+uint64(k)] = rec
	}
	return l
}

// The checker's verdicts on the logs a power cut may leave, as the
// workload's acknowledgements reach it.
func TestPowerCutCheckerScenarios(t *testing.T) {
	r1 := Round{Round: 1, Seed: 1, Writers: 2}
	old := appendCalls(r1, 1, 2, 1)
	before := asLog(1, old.recs)
	r2 := Round{Round: 2, Seed: 2, Writers: 3}
	var cur built
	for cur.batch < 0 || cur.batch == 0 {
		r2.Seed++
		cur = appendCalls(r2, uint64(len(old.recs))+1, 3, 3, 2)
	}
	n := len(old.recs)
	cases := []struct {
		name string
		// mutate changes the recovered log (old and round-2 records)
		// and the acks the workload printed.
		mutate func(log [][]byte, acks []Ack) ([][]byte, []Ack)
		want   string // substring of the violation; "" for none
	}{
		{"EverythingRecovered", func(l [][]byte, a []Ack) ([][]byte, []Ack) { return l, a }, ""},
		{"UnacknowledgedCallsLostAreFine", func(l [][]byte, a []Ack) ([][]byte, []Ack) {
			return l[:n+cur.batch], a[:cur.batch]
		}, ""},
		{"UnacknowledgedBatchSurvivingIsFine", func(l [][]byte, a []Ack) ([][]byte, []Ack) {
			return l[:n+cur.batch+cur.size], a[:cur.batch]
		}, ""},
		{"TwoUnacknowledgedCallsOfAWriter", func(l [][]byte, a []Ack) ([][]byte, []Ack) {
			return l, a[:cur.batch]
		}, "garbage"},
		{"AcknowledgedRecordLost", func(l [][]byte, a []Ack) ([][]byte, []Ack) { return l[:len(l)-1], a }, "I1: LastIndex"},
		{"AcknowledgedAtWrongIndex", func(l [][]byte, a []Ack) ([][]byte, []Ack) {
			a = slices.Clone(a)
			a[0].Index, a[1].Index = a[1].Index, a[0].Index
			return l, a
		}, "I1: record"},
		{"PartialBatch", func(l [][]byte, a []Ack) ([][]byte, []Ack) {
			return l[:n+cur.batch+1], a[:cur.batch]
		}, "I2: batch of"},
		{"HoleInTheMiddle", func(l [][]byte, a []Ack) ([][]byte, []Ack) {
			return slices.Delete(slices.Clone(l), n+1, n+2), a[:1]
		}, "I2:"},
		{"Duplicate", func(l [][]byte, a []Ack) ([][]byte, []Ack) {
			return slices.Insert(slices.Clone(l), n+1, l[n]), a[:1]
		}, "I2:"},
		{"ReorderedAcrossWriters", func(l [][]byte, a []Ack) ([][]byte, []Ack) {
			l = slices.Clone(l)
			l[n], l[n+1] = l[n+1], l[n]
			return l, a
		}, "I1: record"},
		{"Garbage", func(l [][]byte, a []Ack) ([][]byte, []Ack) {
			l = slices.Clone(l)
			b := slices.Clone(l[n])
			b[len(b)-1] ^= 1
			l[n] = b
			return l, nil
		}, "I2: record"},
		{"ZerosInsteadOfARecord", func(l [][]byte, a []Ack) ([][]byte, []Ack) {
			l = slices.Clone(l)
			l[n] = make([]byte, 64)
			return l, nil
		}, "garbage"},
		{"OldRecordChanged", func(l [][]byte, a []Ack) ([][]byte, []Ack) {
			l = slices.Clone(l)
			l[0], l[1] = l[1], l[0]
			return l, a
		}, "I1: record 1 differs"},
		{"OldRecordsLost", func(l [][]byte, a []Ack) ([][]byte, []Ack) { return l[:n-1], nil }, "I1: LastIndex"},
		{"RecordOfAnotherRound", func(l [][]byte, a []Ack) ([][]byte, []Ack) {
			stale := appendCalls(Round{Round: 7, Seed: 7, Writers: 1}, uint64(n)+1, 1)
			return append(slices.Clone(l[:n]), stale.recs...), nil
		}, "garbage"},
		{"AckedOverAnOldRecord", func(l [][]byte, a []Ack) ([][]byte, []Ack) {
			a = slices.Clone(a)
			a[0].Index = 1
			return l, a
		}, "before the round"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			log, a := tc.mutate(slices.Concat(old.recs, cur.recs), cur.acks)
			res := Check(asLog(1, log), before, r2, a)
			switch {
			case tc.want == "" && res.Violation != "":
				t.Fatalf("violation in a right log: %s", res.Violation)
			case tc.want != "" && !strings.Contains(res.Violation, tc.want):
				t.Fatalf("violation %q, want one containing %q", res.Violation, tc.want)
			}
		})
	}
}

func TestPowerCutCheckerCounts(t *testing.T) {
	r := Round{Round: 1, Seed: 3, Writers: 2}
	b := appendCalls(r, 1, 2, 2)
	got := asLog(1, b.recs)
	// The last call is unacknowledged but survived.
	last := len(b.acks) - 1
	for last > 0 && b.acks[last-1].Writer == b.acks[last].Writer && b.acks[last-1].Seq+1 == b.acks[last].Seq {
		last--
	}
	res := Check(got, crashtest.Log{First: 1, Last: 0, Records: map[uint64][]byte{}}, r, b.acks[:last])
	if res.Violation != "" {
		t.Fatal(res.Violation)
	}
	if res.Read != len(b.recs) || res.Acked != last || res.AckedFound != last || res.Unacked != len(b.recs)-last {
		t.Fatalf("counts %+v; want read %d, acked %d found %d, unacked %d", res, len(b.recs), last, last, len(b.recs)-last)
	}
	if v := Same(got, got); v != "" {
		t.Fatal(v)
	}
	if v := Same(asLog(1, b.recs[:len(b.recs)-1]), got); v == "" {
		t.Fatal("Same accepted a log missing its last record")
	}
}
