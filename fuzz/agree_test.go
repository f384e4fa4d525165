package fuzz

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math"
	"math/rand/v2"
	"os"
	"path"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gojournal/journal/checkpoint"
	"github.com/gojournal/journal/internal/crashtest"
	"github.com/gojournal/journal/internal/seedtest"
	"github.com/gojournal/journal/recovery"
	"github.com/gojournal/journal/segment"
	"github.com/gojournal/journal/vfs/crashfs"
	"github.com/gojournal/journal/wal"
)

// The agreement property: what `wal verify` (recovery.Check) predicts about
// a directory is what Open with Options.Verify does to it, and salvage
// makes every directory it accepts open. Each case builds a random log on
// crashfs, crashes or closes it, damages the result in random ways, and
// then judges copies of the same state three ways: Check, Open and
// salvage.
//
//   - Check finds no damage: Open succeeds with exactly the records
//     [FirstIndex, NextIndex) Check listed, and cuts exactly the torn tail
//     Check reported.
//   - Check finds damage: Open fails with ErrCorrupt (ErrFormat for a file
//     it cannot read) naming the file and offset of Damage[0]. Salvage then
//     refuses (ErrNoSalvage) only for the kinds it documents, or leaves a
//     directory that Open opens and Check passes, ending where the plan
//     (what `recover --salvage --dry-run` prints) said.
//
// Every record any Open returns must be byte for byte one that was appended
// at its index.

// agreeFigures counts what the property test saw.
type agreeFigures struct {
	states, noDir, crashedMidOp, closed, mutations int
	recycled                                       int // logs that recycled a released segment
	clean, torn, damaged                           int
	salvaged, refused                              int
	disagreements                                  int
	// refusedFor counts salvage refusals by the kind of the damage that
	// made salvage refuse.
	refusedFor map[recovery.Kind]int
}

func (f *agreeFigures) String() string {
	return fmt.Sprintf("agreement: %d states (%d crashed mid-operation, %d closed cleanly, %d damage mutations; %d crashes before the directory existed; %d logs recycled a segment), "+
		"%d clean, %d torn, %d damaged (%d salvaged, %d refused), %d disagreements",
		f.states, f.crashedMidOp, f.closed, f.mutations, f.noDir, f.recycled, f.clean, f.torn, f.damaged, f.salvaged, f.refused, f.disagreements)
}

// agreeBudget is how many cases the default run checks, or for how long:
// JOURNAL_AGREE_CASES=N or JOURNAL_AGREE_TIME=3m run more.
func agreeBudget(t testing.TB) (cases int, until time.Time) {
	cases = 2000
	if testing.Short() {
		cases = 60
	}
	if s := os.Getenv("JOURNAL_AGREE_CASES"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil {
			t.Fatalf("JOURNAL_AGREE_CASES: %v", err)
		}
		cases = n
	}
	if s := os.Getenv("JOURNAL_AGREE_TIME"); s != "" {
		d, err := time.ParseDuration(s)
		if err != nil {
			t.Fatalf("JOURNAL_AGREE_TIME: %v", err)
		}
		return math.MaxInt, time.Now().Add(d)
	}
	return cases, time.Time{}
}

func TestAgreement(t *testing.T) {
	s := seedtest.Seed(t)
	cases, until := agreeBudget(t)
	t.Log("JOURNAL_AGREE_CASE runs one case; JOURNAL_AGREE_CASES=N or JOURNAL_AGREE_TIME=3m run more")
	var fig agreeFigures
	first, last := 0, cases-1
	if c := os.Getenv("JOURNAL_AGREE_CASE"); c != "" {
		n, err := strconv.Atoi(c)
		if err != nil {
			t.Fatalf("JOURNAL_AGREE_CASE: %v", err)
		}
		first, last = n, n
	}
	for i := first; i <= last; i++ {
		if !until.IsZero() && time.Now().After(until) {
			break
		}
		if err := agreeCase(rand.New(rand.NewPCG(s, uint64(i))), &fig); err != nil {
			fig.disagreements++
			t.Errorf("seed %d case %d: %v", s, i, err)
			if fig.disagreements >= 10 {
				break
			}
		}
	}
	t.Log(fig.String())
	t.Logf("salvage refused for: %v", fig.refusedFor)
}

// FuzzAgreement runs one case per input: the seed and case number of
// TestAgreement's random source.
func FuzzAgreement(f *testing.F) {
	for _, c := range [][2]uint64{{1, 0}, {1, 7}, {42, 3}, {0xdecafbad, 11}, {7, 99}} {
		f.Add(c[0], c[1])
	}
	f.Fuzz(func(t *testing.T, s, i uint64) {
		var fig agreeFigures
		if err := agreeCase(rand.New(rand.NewPCG(s, i)), &fig); err != nil {
			t.Fatalf("seed %d case %d: %v", s, i, err)
		}
	})
}

// history holds every record ever appended at each index (TruncateBack
// and crashes make an index hold one of several).
type history map[uint64][][]byte

func (h history) has(i uint64, rec []byte) bool {
	return slices.ContainsFunc(h[i], func(b []byte) bool { return bytes.Equal(b, rec) })
}

// next is the index after the highest ever appended.
func (h history) next() uint64 {
	n := uint64(1)
	for i := range h {
		n = max(n, i+1)
	}
	return n
}

// agreeCase builds, damages and judges one state. Its error describes the
// disagreement and how the state was made.
func agreeCase(rng *rand.Rand, fig *agreeFigures) error {
	b := buildLog(rng, fig)
	if _, err := b.fs.Stat(crashtest.Dir); errors.Is(err, fs.ErrNotExist) {
		// A crash before the directory was durable: no log to judge
		// (verify refuses the path; Open creates an empty log).
		fig.noDir++
		return nil
	}
	muts := damage(b.fs, rng, fig)
	fig.states++
	if err := judge(b, len(muts) == 0, fig); err != nil {
		return fmt.Errorf("%w\nbuilt: %s\ndamaged: %s", err, strings.Join(b.ops, ", "), strings.Join(muts, ", "))
	}
	return nil
}

// built is a log's directory as a crash or Close left it.
type built struct {
	fs   *crashfs.FS
	opts wal.Options
	hist history
	ops  []string
}

func payload(rng *rand.Rand, id uint64) []byte {
	var n int
	switch r := rng.IntN(20); {
	case r < 12:
		n = rng.IntN(300)
	case r < 18:
		n = rng.IntN(6000)
	case r < 19:
		n = 10000 + rng.IntN(30000)
	default:
		n = wal.MinSegmentSize + rng.IntN(8000) // larger than a segment
	}
	if rng.IntN(2) == 0 {
		return crashtest.Payload(id, n)
	}
	rec := crashtest.Payload(id, 0) // compressible: the codecs get work
	return append(rec, bytes.Repeat([]byte{byte(id)}, n)...)
}

// buildLog runs random calls against a log on a fresh crashfs, sometimes
// crashing it mid-operation, and returns what a crash (or Close) leaves.
func buildLog(rng *rand.Rand, fig *agreeFigures) *built {
	fsys := crashfs.New()
	seg := wal.MinSegmentSize * int64(1+rng.IntN(2))
	comp, noSync := rng.IntN(3), rng.IntN(3)
	opts := wal.Options{
		SegmentSize: seg,
		Compression: wal.Compression(comp),
		NoSync:      noSync == 0,
		// From the draws above, not a draw of its own, so that a case
		// number makes the same calls as before recycling existed.
		RecycleSegments: (comp+noSync)%2 == 1,
		FS:              fsys,
		Logger:          crashtest.Quiet,
	}
	b := &built{opts: opts, hist: history{}}
	b.ops = append(b.ops, fmt.Sprintf("opts{seg %d, comp %d, nosync %v, recycle %v}", opts.SegmentSize, opts.Compression, opts.NoSync, opts.RecycleSegments))
	if rng.IntN(2) == 0 {
		k := 1 + rng.IntN(300)
		fsys.SetCrashAfter(k)
		b.ops = append(b.ops, fmt.Sprintf("crash after op %d", k))
	}
	l, err := wal.Open(crashtest.Dir, &b.opts)
	if err == nil {
		b.run(l, rng)
		if l.Metrics().SegmentsRecycled > 0 {
			fig.recycled++
		}
		if !fsys.Crashed() && rng.IntN(3) > 0 {
			if l.Close() == nil {
				fig.closed++
				b.ops = append(b.ops, "close")
			}
		}
	}
	if fsys.Crashed() {
		fig.crashedMidOp++
	}
	mode := crashfs.CrashMode(rng.IntN(3))
	b.ops = append(b.ops, "crash "+mode.String())
	b.fs = fsys.Crash(mode, rng)
	return b
}

// run makes random calls until they are done or one fails (the crash).
func (b *built) run(l *wal.Log, rng *rand.Rand) {
	id := uint64(0)
	for range 5 + rng.IntN(40) {
		var err error
		var op string
		first, last := l.FirstIndex(), l.LastIndex()
		switch r := rng.IntN(100); {
		case r < 60:
			id++
			rec := payload(rng, id)
			b.hist[last+1] = append(b.hist[last+1], rec)
			op = fmt.Sprintf("append(%d)", len(rec))
			_, err = l.Append(rec)
		case r < 78:
			n := 2 + rng.IntN(4)
			recs := make([][]byte, n)
			for k := range recs {
				id++
				recs[k] = payload(rng, id)
				b.hist[last+1+uint64(k)] = append(b.hist[last+1+uint64(k)], recs[k])
			}
			op = fmt.Sprintf("batch(%d)", n)
			_, err = l.AppendBatch(recs)
		case r < 85:
			op, err = "sync", l.Sync()
		case r < 90:
			// Up to 3 past the end: an empty log may start anywhere.
			i := first + rng.Uint64N(last+5-first)
			if first > last && rng.IntN(2) == 0 {
				i = 1 + rng.Uint64N(first) // an empty log may move its start back
			}
			op, err = fmt.Sprintf("truncateFront(%d)", i), l.TruncateFront(i)
		case r < 95:
			i := first - 1 + rng.Uint64N(last+2-first)
			op, err = fmt.Sprintf("truncateBack(%d)", i), l.TruncateBack(i)
		default:
			i := first - 1 + rng.Uint64N(last+2-first)
			op = fmt.Sprintf("checkpoint(%d)", i)
			err = l.Checkpoint(i, func(w io.Writer) error {
				_, err := w.Write(crashtest.SnapshotState(i))
				return err
			})
		}
		if errors.Is(err, wal.ErrOutOfRange) {
			continue // not a call the log accepts here
		}
		b.ops = append(b.ops, op)
		if err != nil {
			b.ops = append(b.ops, "failed: "+err.Error())
			return
		}
	}
}

// damage applies zero to three random mutations to the log's files, made
// durable, and describes them.
func damage(fsys *crashfs.FS, rng *rand.Rand, fig *agreeFigures) []string {
	var done []string
	for range max(0, rng.IntN(6)-2) {
		if m := mutate(fsys, rng); m != "" {
			done = append(done, m)
			fig.mutations++
		}
	}
	return done
}

// logFiles lists the files a mutation may touch: segments, the meta file
// and the snapshot.
func logFiles(fsys *crashfs.FS) (files, segs []string) {
	names, _ := fsys.ReadDir(crashtest.Dir)
	for _, n := range names {
		_, seg := segment.ParseName(n)
		if seg {
			segs = append(segs, path.Join(crashtest.Dir, n))
		}
		if seg || n == recovery.MetaName || n == checkpoint.FileName {
			files = append(files, path.Join(crashtest.Dir, n))
		}
	}
	return files, segs
}

func mutate(fsys *crashfs.FS, rng *rand.Rand) string {
	files, segs := logFiles(fsys)
	if len(files) == 0 {
		return ""
	}
	name := files[rng.IntN(len(files))]
	f, err := fsys.OpenFile(name, os.O_RDWR, 0)
	if err != nil {
		return ""
	}
	defer func() {
		f.Sync()
		f.Close()
		fsys.SyncDir(crashtest.Dir)
	}()
	size, _ := f.Size()
	base := path.Base(name)
	switch r := rng.IntN(16); {
	case r < 6 && size > 0: // a bit flip
		off := rng.Int64N(size)
		bit := rng.IntN(8)
		buf := []byte{0}
		f.ReadAt(buf, off)
		buf[0] ^= 1 << bit
		f.WriteAt(buf, off)
		return fmt.Sprintf("flip %s@%d bit %d", base, off, bit)
	case r < 8 && size > 0: // a zeroed sector
		off := rng.Int64N(size) &^ (segment.SectorSize - 1)
		f.WriteAt(make([]byte, segment.SectorSize), off)
		return fmt.Sprintf("zero sector %s@%d", base, off)
	case r < 10: // truncated
		n := rng.Int64N(size + 1)
		f.Truncate(n)
		return fmt.Sprintf("truncate %s to %d of %d", base, n, size)
	case r < 12: // junk appended
		junk := make([]byte, 1+rng.IntN(1500))
		for i := range junk {
			junk[i] = byte(rng.Uint32())
		}
		f.WriteAt(junk, size)
		return fmt.Sprintf("append %d junk bytes to %s", len(junk), base)
	case r < 13 && len(segs) > 0: // a segment deleted
		victim := segs[rng.IntN(len(segs))]
		fsys.Remove(victim)
		return "delete " + path.Base(victim)
	case r < 14 && len(segs) > 0: // a newer format version
		victim := segs[rng.IntN(len(segs))]
		g, err := fsys.OpenFile(victim, os.O_RDWR, 0)
		if err != nil {
			return ""
		}
		g.WriteAt([]byte{byte(segment.Version + 1 + rng.IntN(5))}, 8)
		g.Sync()
		g.Close()
		return "newer version in " + path.Base(victim)
	case r < 15 && len(segs) > 0: // a copy of a segment under another segment's name
		return copySegment(fsys, rng, segs)
	default: // a foreign file under a segment name
		first := uint64(1) + rng.Uint64N(200)
		if len(segs) > 0 && rng.IntN(2) == 0 {
			first, _ = segment.ParseName(path.Base(segs[rng.IntN(len(segs))]))
		}
		p := path.Join(crashtest.Dir, segment.Name(first))
		g, err := fsys.OpenFile(p, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o644)
		if err != nil {
			return ""
		}
		g.WriteAt([]byte("not a journal segment\n"), 0)
		g.Sync()
		g.Close()
		return "foreign file " + path.Base(p)
	}
}

// copySegment writes a copy of a random segment under another name, before,
// among or after the log's segments (an operator's stray copy): its header
// and footer are valid, and name other indexes than its file name.
func copySegment(fsys *crashfs.FS, rng *rand.Rand, segs []string) string {
	src := segs[rng.IntN(len(segs))]
	f, err := fsys.OpenFile(src, os.O_RDONLY, 0)
	if err != nil {
		return ""
	}
	size, _ := f.Size()
	b := make([]byte, size)
	f.ReadAt(b, 0)
	f.Close()
	first, _ := segment.ParseName(path.Base(src))
	at := max(1, first+rng.Uint64N(400)-min(first-1, 200))
	if at == first {
		at++
	}
	dst := path.Join(crashtest.Dir, segment.Name(at))
	g, err := fsys.OpenFile(dst, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return ""
	}
	g.WriteAt(b, 0)
	g.Sync()
	g.Close()
	return fmt.Sprintf("copy %s to %s", path.Base(src), path.Base(dst))
}

// judge checks Check against Open and salvage, each on its own copy of the
// state.
func judge(b *built, crashOnly bool, fig *agreeFigures) error {
	rep, err := recovery.Check(b.fs, crashtest.Dir, recovery.CheckOptions{})
	if err != nil {
		return fmt.Errorf("Check: %w", err)
	}
	if crashOnly && rep.Damaged() {
		// A crash alone never damages a log: it must always open.
		return fmt.Errorf("a crash state, not damaged since, is damaged: %s", rep.Damage[0])
	}
	if !rep.Damaged() {
		if rep.Torn != nil {
			fig.torn++
		} else {
			fig.clean++
		}
		return agreeOpens(b, rep)
	}
	fig.damaged++
	if err := agreeRefuses(b, rep); err != nil {
		return err
	}
	return agreeSalvage(b, fig)
}

func (b *built) open(fsys *crashfs.FS) (*wal.Log, error) {
	opts := b.opts
	opts.FS, opts.Verify = fsys, true
	return wal.Open(crashtest.Dir, &opts)
}

// readAll reads every record of l, checking each against the history, and
// returns their indexes.
func readAll(l *wal.Log, hist history) ([]uint64, error) {
	var got []uint64
	r := l.NewReader(l.FirstIndex())
	defer r.Close()
	for r.Next() {
		if !hist.has(r.Index(), r.Record()) {
			return got, fmt.Errorf("record %d (%d bytes) is not one that was appended there", r.Index(), len(r.Record()))
		}
		got = append(got, r.Index())
	}
	return got, r.Err()
}

// agreeOpens: Check found no damage, so Open must open the records Check
// listed, cutting the torn tail Check reported.
func agreeOpens(b *built, rep *recovery.State) error {
	l, err := b.open(b.fs.Crash(crashfs.SyncedOnly, nil))
	if err != nil {
		return fmt.Errorf("Check found no damage (torn %+v), but Open failed: %w", rep.Torn, err)
	}
	defer l.Close()
	first, next := rep.FirstIndex, rep.NextIndex()
	if l.FirstIndex() != first || l.LastIndex()+1 != next {
		return fmt.Errorf("Check listed records [%d, %d), Open holds [%d, %d]", first, next, l.FirstIndex(), l.LastIndex()+1)
	}
	got, err := readAll(l, b.hist)
	if err != nil {
		return fmt.Errorf("Check found no damage, reading the opened log: %w", err)
	}
	if uint64(len(got)) != next-first || (len(got) > 0 && (got[0] != first || got[len(got)-1] != next-1)) {
		return fmt.Errorf("Check listed records [%d, %d), the opened log read %d records", first, next, len(got))
	}
	if cut := l.Recovered().Torn; !sameTorn(rep.Torn, cut) {
		return fmt.Errorf("Check reported torn tail %+v, Open cut %+v", deref(rep.Torn), deref(cut))
	}
	return nil
}

func sameTorn(a, b *recovery.Torn) bool { return (a == nil) == (b == nil) && (a == nil || *a == *b) }

func deref(t *recovery.Torn) any {
	if t == nil {
		return nil
	}
	return *t
}

// agreeRefuses: Check found damage, so Open must fail naming Damage[0].
func agreeRefuses(b *built, rep *recovery.State) error {
	d := rep.Damage[0]
	l, err := b.open(b.fs.Crash(crashfs.SyncedOnly, nil))
	if err == nil {
		l.Close()
		return fmt.Errorf("Check found damage (%s), but Open succeeded", d)
	}
	want := wal.ErrCorrupt
	if errors.Is(d.Err(), wal.ErrFormat) {
		want = wal.ErrFormat
	}
	if !errors.Is(err, want) {
		return fmt.Errorf("Check found damage (%s, kind %s), Open failed with %v, not %v", d, d.Kind, err, want)
	}
	var ce *wal.CorruptionError
	if errors.As(err, &ce) {
		if ce.Path != d.Path || ce.Offset != d.Offset || ce.Index != d.Index {
			return fmt.Errorf("Check's first damage is %s, Open's error names %s at %d (record %d): %v", d, ce.Path, ce.Offset, ce.Index, err)
		}
	} else if !strings.Contains(err.Error(), path.Base(d.Path)) {
		return fmt.Errorf("Check's first damage is %s, Open's error does not name the file: %v", d, err)
	}
	return nil
}

// agreeSalvage salvages a copy as `wal recover --salvage` does, and checks
// that the plan (what --dry-run prints) is what happened.
func agreeSalvage(b *built, fig *agreeFigures) error {
	fsys := b.fs.Crash(crashfs.SyncedOnly, nil)
	rep, err := recovery.Check(fsys, crashtest.Dir, recovery.CheckOptions{})
	if err != nil {
		return fmt.Errorf("Check before salvage: %w", err)
	}
	plan, err := recovery.PlanSalvageFor(fsys, rep, rep.Snapshot)
	if errors.Is(err, recovery.ErrNoSalvage) {
		fig.refused++
		i := slices.IndexFunc(rep.Damage, func(d recovery.Damage) bool { return refusable(d, rep.Snapshot) })
		if i < 0 {
			return fmt.Errorf("salvage refused damage it does not document refusing (%s): %v", rep.Damage[0], err)
		}
		if fig.refusedFor == nil {
			fig.refusedFor = map[recovery.Kind]int{}
		}
		fig.refusedFor[rep.Damage[i].Kind]++
		return nil
	}
	if err != nil {
		return fmt.Errorf("PlanSalvage: %w", err)
	}
	if plan.Empty() {
		return fmt.Errorf("Check found damage (%s), but salvage plans nothing", rep.Damage[0])
	}
	wantFirst, wantNext := plan.Result() // what the dry run prints
	if c := plan.Cut; c != nil && c.Records > 0 && c.Index+c.Records > b.hist.next() {
		return fmt.Errorf("salvage (%s) would give up %d records from %d, but only indexes below %d were ever appended",
			describePlan(plan), c.Records, c.Index, b.hist.next())
	}
	if err := plan.Apply(fsys, time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)); err != nil {
		return fmt.Errorf("salvage Apply: %w", err)
	}
	fig.salvaged++
	after, err := recovery.Check(fsys, crashtest.Dir, recovery.CheckOptions{})
	if err != nil {
		return fmt.Errorf("Check after salvage: %w", err)
	}
	if after.Damaged() {
		return fmt.Errorf("salvage (%s) left damage: %s", describePlan(plan), after.Damage[0])
	}
	l, err := b.open(fsys)
	if err != nil {
		return fmt.Errorf("salvage (%s) left a log Open refuses: %w", describePlan(plan), err)
	}
	defer l.Close()
	if l.FirstIndex() != wantFirst || l.LastIndex()+1 != wantNext {
		return fmt.Errorf("salvage planned (%s) records [%d, %d), the log opened holds [%d, %d] (torn after: %+v)",
			describePlan(plan), wantFirst, wantNext, l.FirstIndex(), l.LastIndex()+1, deref(l.Recovered().Torn))
	}
	if _, err := readAll(l, b.hist); err != nil {
		return fmt.Errorf("after salvage (%s): %w", describePlan(plan), err)
	}
	return nil
}

// refusable reports whether salvage documents refusing this damage: a
// newer version, the meta file, the snapshot, or records missing at the
// start of a log that must continue a snapshot.
func refusable(d recovery.Damage, snapshot uint64) bool {
	switch d.Kind {
	case recovery.KindVersion, recovery.KindMeta, recovery.KindSnapshot:
		return true
	case recovery.KindMissing:
		return snapshot != 0
	}
	return false
}

func describePlan(p *recovery.SalvagePlan) string {
	var s []string
	for _, r := range p.Reseal {
		s = append(s, "reseal "+path.Base(r))
	}
	if r := p.Restart; r != nil {
		s = append(s, fmt.Sprintf("restart at %d (fresh %v) for %s", r.First, r.Fresh, r.Damage))
	}
	if c := p.Cut; c != nil {
		s = append(s, fmt.Sprintf("cut %s at %d, index %d, %d records, later %d, fresh %d, snapshot %d, for %s",
			path.Base(c.Path), c.Offset, c.Index, c.Records, len(c.Later), c.Fresh, c.Snapshot, c.Damage))
	}
	return strings.Join(s, "; ")
}
