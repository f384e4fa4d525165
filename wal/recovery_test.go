package wal

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/gojournal/journal/internal/seedtest"
	"github.com/gojournal/journal/recovery"
	"github.com/gojournal/journal/segment"
)

// Recovery scenarios. Each test prepares a log on the real file system,
// closes it, damages its files the way a crash or a failing disk would, and
// reopens it; each case is named after the promise it checks. A torn tail
// (bytes past the last durable write) must be cut and reported; damage
// followed by data once made durable must fail Open with ErrCorrupt and
// leave the files as they were.

// cutModes are the two ways a crash leaves the end of a write: the file
// ends early (size not yet extended), or the file keeps its preallocated
// length and the unwritten blocks read as zeros.
var cutModes = []struct {
	name string
	cut  func(t *testing.T, path string, at int64)
}{
	{"Truncated", func(t *testing.T, path string, at int64) { truncate(t, path, at) }},
	{"Zeroed", func(t *testing.T, path string, at int64) { zero(t, path, at, -1) }},
}

// expectTail says what recovery must make of the newest segment at path
// whose bytes went from orig to mutated: its frames hold groups (one Append
// or AppendBatch each, each one write), and next is where the write after
// them would start. The log keeps the groups whose every frame is intact,
// up to the first damaged one. A damaged group is dropped whole, its intact
// leading frames counted as Torn.Records, and the tail is cut where its
// write began. Torn.Bytes spans from there to the last non-zero byte, or
// to the end of the last intact frame of the dropped group (padding
// included, as far as the file holds it), whichever is further. A nil Torn
// means nothing is cut: only zeros (or nothing) follow the groups kept.
func expectTail(path string, frames []span, groups [][]int, next int64, orig, mutated []byte) (kept uint64, torn *recovery.Torn) {
	k := 0
	for _, g := range groups {
		fs := frames[k : k+len(g)]
		k += len(g)
		n := 0
		for n < len(fs) && intact(fs[n], orig, mutated) {
			n++
		}
		if n == len(fs) {
			kept += uint64(len(g))
			continue
		}
		start := fs[0].off
		end := nonZeroEnd(mutated, start)
		if n > 0 {
			end = max(end, min(fs[n-1].next, int64(len(mutated))))
		}
		if end == start {
			return kept, nil
		}
		return kept, &recovery.Torn{Path: path, Offset: start, Bytes: end - start, Records: n}
	}
	if end := nonZeroEnd(mutated, next); end > next {
		return kept, &recovery.Torn{Path: path, Offset: next, Bytes: end - next}
	}
	return kept, nil
}

// singles describes n records appended one by one.
func singles(sizes ...int) [][]int {
	var g [][]int
	for _, n := range sizes {
		g = append(g, []int{n})
	}
	return g
}

// checkTorn compares a reported torn tail with the expected one (the
// Reason text aside).
func checkTorn(t *testing.T, got, want *recovery.Torn) {
	t.Helper()
	switch {
	case got == nil && want == nil:
	case got == nil:
		t.Errorf("Recovered().Torn = nil, want %+v", *want)
	case want == nil:
		t.Errorf("Recovered().Torn = %+v, want nil (nothing to cut)", *got)
	case got.Path != want.Path || got.Offset != want.Offset || got.Bytes != want.Bytes || got.Records != want.Records:
		t.Errorf("Recovered().Torn = {Offset:%d Bytes:%d Records:%d Reason:%q Path:%s},\n"+
			"                  want {Offset:%d Bytes:%d Records:%d Path:%s}",
			got.Offset, got.Bytes, got.Records, got.Reason, got.Path, want.Offset, want.Bytes, want.Records, want.Path)
	}
}

// recovered reopens a log left by a crash and checks the whole promise:
// Open succeeds, cuts the torn tail want (nil: nothing) and removes
// nothing; the log is exactly records [1, kept]; a second Open finds
// nothing to repair; appends continue at kept+1 and survive a further
// reopen.
func (f *fixture) recovered(kept uint64, want *recovery.Torn) {
	t := f.t
	t.Helper()
	l := f.open()
	r := l.Recovered()
	if len(r.Removed) != 0 {
		t.Errorf("Recovered().Removed = %v, want nothing", r.Removed)
	}
	checkTorn(t, r.Torn, want)
	f.forget(kept)
	f.check(l, 1, kept)
	f.close(l)

	l = f.open()
	if r := l.Recovered(); r.Torn != nil || len(r.Removed) != 0 {
		t.Fatalf("second Open repaired again: Torn %+v, Removed %v", r.Torn, r.Removed)
	}
	f.check(l, 1, kept)
	f.appendGroup(l, 11)
	f.appendGroup(l, 6, 0, 19)
	f.check(l, 1, kept+4)
	f.close(l)

	l = f.open()
	if r := l.Recovered(); r.Torn != nil || len(r.Removed) != 0 {
		t.Fatalf("Open after appends repaired: Torn %+v, Removed %v", r.Torn, r.Removed)
	}
	f.check(l, 1, kept+4)
	f.close(l)
}

// TestRecoveryCutAtEveryByte cuts the newest segment at every byte of its
// last writes, the way a crash in the middle of a write leaves it.
// everyThirdAndEdges thins cuts for -short runs (CI's emulated 32-bit and
// big-endian runs, where every byte took 22 s): every third cut, and
// each frame's first, second and last bytes and its end, where the walker
// changes its mind.
func everyThirdAndEdges(cuts []int64, frames []span) []int64 {
	edges := map[int64]bool{}
	for _, fr := range frames {
		edges[fr.off], edges[fr.off+1], edges[fr.next-1], edges[fr.next] = true, true, true, true
	}
	var kept []int64
	for i, at := range cuts {
		if i%3 == 0 || edges[at] {
			kept = append(kept, at)
		}
	}
	return kept
}

func TestRecoveryCutAtEveryByte(t *testing.T) {
	tests := []struct {
		name   string
		groups [][]int // record sizes; a group of several is one AppendBatch
		last   int     // cut from the start of the last `last` groups
	}{
		// Sizes vary so frames end with 0 to 7 bytes of padding; one
		// record is empty (a frame that is all header).
		{"TornTrailingRecordIsCut", singles(40, 1, 100, 17, 8, 0, 23, 29), 3},
		{"TornOnlyRecordLeavesEmptyLog", singles(13), 1},
		{"TornBatchIsDroppedWhole", [][]int{{40}, {17}, {5, 0, 14, 12, 1}}, 1},
		{"TornBatchAfterBatchKeepsTheFirst", [][]int{{9}, {3, 16}, {24, 7}}, 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			base := newFixture(t, MinSegmentSize)
			base.build(tc.groups...)
			if n := len(base.segments()); n != 1 {
				t.Fatalf("%d segments, want 1", n)
			}
			path := base.newest()
			orig := readFile(t, path)
			frames := base.frames(path)
			if len(frames) != len(base.recs) {
				t.Fatalf("walker found %d frames, want %d", len(frames), len(base.recs))
			}
			cutFrom := 0
			for _, g := range tc.groups[len(tc.groups)-tc.last:] {
				cutFrom += len(g)
			}
			// Every byte of the last groups' frames, and a few points in
			// the zeros between them and up to where the next write would
			// start, if the format pads writes (to a sector, say).
			next := base.nextWrite()
			var cuts []int64
			tail := frames[len(frames)-cutFrom:]
			for i, fr := range tail {
				for at := fr.off; at <= fr.next; at++ {
					cuts = append(cuts, at)
				}
				gapEnd := next
				if i+1 < len(tail) {
					gapEnd = tail[i+1].off
				}
				if gapEnd > fr.next+1 {
					cuts = append(cuts, fr.next+1, (fr.next+gapEnd)/2, gapEnd-1)
				}
			}
			cuts = append(cuts, next)
			slices.Sort(cuts)
			cuts = slices.Compact(cuts)
			if testing.Short() {
				cuts = everyThirdAndEdges(cuts, tail)
			}
			for _, mode := range cutModes {
				t.Run(mode.name, func(t *testing.T) {
					runAll(t, cuts, func(at int64) string { return fmt.Sprintf("at=%d", at) }, func(t *testing.T, at int64) {
						f := base.clone(t)
						p := f.newest()
						mode.cut(t, p, at)
						kept, torn := expectTail(p, frames, tc.groups, next, orig, readFile(t, p))
						f.recovered(kept, torn)
					})
				})
			}
		})
	}
}

// TestRecoveryZeroedSector zeroes one 512-byte sector of the newest
// segment: in the last write it is a torn tail, before data synced later
// it is corruption.
func TestRecoveryZeroedSector(t *testing.T) {
	const sector = 512
	base := newFixture(t, MinSegmentSize)
	var sizes []int
	for i := range 12 {
		sizes = append(sizes, 1200+(331*i)%900)
	}
	groups := singles(sizes...)
	base.build(groups...)
	path := base.newest()
	orig := readFile(t, path)
	frames := base.frames(path)
	next := base.nextWrite()
	n := len(frames)
	// inside is the first whole sector within record i's frame.
	inside := func(i int) int64 {
		fr := frames[i-1]
		s := (fr.off + sector - 1) / sector * sector
		if s+sector > fr.end {
			t.Fatalf("no whole sector inside record %d", i)
		}
		return s
	}
	// over is the sector holding the start of record i's frame (and the
	// end of the frame before, unless writes start on a sector).
	over := func(i int) int64 { return frames[i-1].off / sector * sector }

	tests := []struct {
		name    string
		at      int64 // the sector zeroed
		corrupt bool
	}{
		{"ZeroedSectorInLastRecordIsTornTail", inside(n), false},
		{"ZeroedSectorOverLastFrameHeaderIsTornTail", over(n), false},
		{"ZeroedSectorInEarlierRecordIsCorruption", inside(n - 3), true},
		{"ZeroedSectorInFirstRecordIsCorruption", inside(1), true},
		{"ZeroedSectorInSecondToLastRecordIsCorruption", inside(n - 1), true},
		{"ZeroedSectorOverEarlierFrameHeaderIsCorruption", over(n - 4), true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := base.clone(t)
			p := f.newest()
			zero(t, p, tc.at, tc.at+sector)
			kept, torn := expectTail(p, frames, groups, next, orig, readFile(t, p))
			if !tc.corrupt {
				f.recovered(kept, torn)
				return
			}
			before := snapshot(t, f.dir)
			bad := frames[kept] // the first damaged frame
			ce := wantCorruption(t, f.openErr(), p, bad.off)
			if ce.Index != bad.index {
				t.Errorf("CorruptionError.Index = %d, want %d", ce.Index, bad.index)
			}
			sameSnapshot(t, f.dir, before)
		})
	}
}

// TestRecoveryJunkTail writes junk into the preallocated space after the
// last record, as a crash during a write that never completed can leave
// it: it is cut, and every byte of it reported.
func TestRecoveryJunkTail(t *testing.T) {
	rng := seedtest.Rand(t)
	base := newFixture(t, MinSegmentSize)
	base.build(singles(30, 7, 64, 1)...)
	n := uint64(len(base.recs))
	end := base.nextWrite() // where the next write would have gone
	tests := []struct {
		name   string
		gap, n int64 // junk of n bytes, gap bytes after where the next write goes
	}{
		{"OneJunkByteIsCut", 0, 1},
		{"ShortJunkIsCut", 0, 31},
		{"JunkFrameHeaderIsCut", 0, 32},
		{"JunkIsCut", 0, 700},
		{"JunkAfterZerosIsCut", 8, 100},
		{"JunkFarAfterZerosIsCut", 20000, 3000},
		{"JunkUpToTheEndOfTheFileIsCut", MinSegmentSize - end - 4096, 4096},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := base.clone(t)
			p := f.newest()
			junk := make([]byte, tc.n)
			for i := range junk {
				junk[i] = byte(rng.Uint32())
			}
			junk[tc.n-1] |= 1 // the junk ends with a non-zero byte
			writeAt(t, p, end+tc.gap, junk)
			f.recovered(n, &recovery.Torn{Path: p, Offset: end, Bytes: tc.gap + tc.n})
		})
	}
}

// buildSealed makes a log of several segments (MinSegmentSize): three or
// more, the first ones sealed, the newest holding a dozen records or more.
func buildSealed(t *testing.T) *fixture {
	t.Helper()
	f := newFixture(t, MinSegmentSize)
	l := f.open()
	for i := 0; len(f.segments()) < 3 || len(f.frames(f.newest())) < 12; i++ {
		f.appendGroup(l, 200+(97*i)%700)
	}
	f.close(l)
	f.unclose()
	return f
}

// TestRecoveryBitFlip flips one bit of a log at rest and checks that Open
// notices: in sealed segments and before durable data it is corruption
// (ErrFormat for a damaged magic); in the last write it is a torn tail.
func TestRecoveryBitFlip(t *testing.T) {
	rng := seedtest.Rand(t)
	base := buildSealed(t)
	segs := base.segments()
	sealed, newest := segs[0], segs[len(segs)-1]
	sealedBytes := readFile(t, sealed)
	sealedFrames, footer := walk(t, sealedBytes)
	if footer < 0 {
		t.Fatalf("%s has no footer", sealed)
	}
	newestFrames := base.frames(newest)
	size := int64(len(sealedBytes))

	inRecord := func(path string, frames []span, k int) flipTarget {
		return flipTarget{path, frames[k].off, frames[k].end, frames[k]}
	}
	tests := []struct {
		name string
		at   flipTarget
		want func(t *testing.T, f *fixture, p string, at flipTarget)
	}{
		{"FlipInFirstSealedRecordIsCorruption", inRecord(sealed, sealedFrames, 0), wantSealedRecordCorrupt},
		{"FlipInMiddleSealedRecordIsCorruption", inRecord(sealed, sealedFrames, len(sealedFrames)/2), wantSealedRecordCorrupt},
		{"FlipInLastSealedRecordIsCorruption", inRecord(sealed, sealedFrames, len(sealedFrames)-1), wantSealedRecordCorrupt},
		{"FlipInSealedFooterIsCorruption", flipTarget{sealed, footer, footer + segment.FrameHeader + 4*int64(len(sealedFrames)), span{}}, wantCorrupt},
		{"FlipInSealedTrailerIsCorruption", flipTarget{sealed, size - segment.TrailerSize, size, span{}}, wantCorrupt},
		{"FlipInSealedHeaderIsCorruption", flipTarget{sealed, 8, segment.HeaderSize, span{}}, wantCorrupt},
		{"FlipInSealedHeaderMagicIsFormatError", flipTarget{sealed, 0, 8, span{}}, wantFormat},
		{"FlipInNewestHeaderIsCorruption", flipTarget{newest, 8, segment.HeaderSize, span{}}, wantCorrupt},
		{"FlipInNewestMiddleRecordIsCorruption", inRecord(newest, newestFrames, len(newestFrames)/2), wantNewestRecordCorrupt},
		{"FlipInNewestFirstRecordIsCorruption", inRecord(newest, newestFrames, 0), wantNewestRecordCorrupt},
		{"FlipInLastRecordIsTornTail", inRecord(newest, newestFrames, len(newestFrames)-1), func(t *testing.T, f *fixture, p string, at flipTarget) {
			k := len(f.recs) - 1
			f.recovered(uint64(k), &recovery.Torn{Path: p, Offset: at.frame.off, Bytes: at.frame.end - at.frame.off})
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			for range 3 {
				off := tc.at.lo + rng.Int64N(tc.at.hi-tc.at.lo)
				bit := uint(rng.IntN(8))
				t.Run(fmt.Sprintf("byte=%d/bit=%d", off, bit), func(t *testing.T) {
					f := base.clone(t)
					p := filepath.Join(f.dir, filepath.Base(tc.at.path))
					flip(t, p, off, bit)
					tc.want(t, f, p, tc.at)
				})
			}
		})
	}
}

// flipTarget is where a bit flip goes: one bit of [lo, hi) of the file at
// path, inside the record frame when there is one.
type flipTarget struct {
	path   string
	lo, hi int64
	frame  span
}

// wantCorrupt: Open fails with ErrCorrupt naming the damaged file, which is
// left as it was.
func wantCorrupt(t *testing.T, f *fixture, p string, _ flipTarget) {
	before := snapshot(t, f.dir)
	wantNamed(t, f.openErr(), ErrCorrupt, p)
	sameSnapshot(t, f.dir, before)
}

// wantFormat: Open fails with ErrFormat naming the file.
func wantFormat(t *testing.T, f *fixture, p string, _ flipTarget) {
	before := snapshot(t, f.dir)
	wantNamed(t, f.openErr(), ErrFormat, p)
	sameSnapshot(t, f.dir, before)
}

// wantNewestRecordCorrupt: damage in the newest segment followed by
// records synced after it fails Open with a *CorruptionError naming the
// file, the frame's offset and its index; nothing is cut.
func wantNewestRecordCorrupt(t *testing.T, f *fixture, p string, at flipTarget) {
	before := snapshot(t, f.dir)
	ce := wantCorruption(t, f.openErr(), p, at.frame.off)
	if ce.Index != at.frame.index {
		t.Errorf("CorruptionError.Index = %d, want %d", ce.Index, at.frame.index)
	}
	sameSnapshot(t, f.dir, before)
}

// wantSealedRecordCorrupt: a damaged record in a sealed segment is
// reported with a *CorruptionError naming the segment and the frame's
// offset: by Read (a default Open reads only sealed segments' footers), and
// by Open itself with Options.Verify. Nothing is cut.
func wantSealedRecordCorrupt(t *testing.T, f *fixture, p string, at flipTarget) {
	before := snapshot(t, f.dir)
	l, err := Open(f.dir, &f.opts)
	if err != nil {
		t.Fatalf("Open without Verify: %v", err)
	}
	_, err = l.Read(at.frame.index)
	l.Close()
	wantCorruption(t, err, p, at.frame.off)
	// Close wrote the manifest, which describes the footers (intact) and
	// not the records: it is the one file that may change.
	if err := os.Remove(filepath.Join(f.dir, recovery.ManifestName)); err != nil {
		t.Fatalf("Close wrote no manifest: %v", err)
	}
	verify := f.opts
	verify.Verify = true
	_, err = Open(f.dir, &verify)
	wantCorruption(t, err, p, at.frame.off)
	sameSnapshot(t, f.dir, before)
}

// TestRecoveryReadDetectsDamage damages records while the log is open:
// Read must report ErrCorrupt, never return wrong bytes.
func TestRecoveryReadDetectsDamage(t *testing.T) {
	f := buildSealed(t)
	segs := f.segments()
	sealed, newest := segs[0], segs[len(segs)-1]
	sealedFrames, footer := walk(t, readFile(t, sealed))
	newestFrames := f.frames(newest)
	l := f.open()
	defer f.close(l)
	last := uint64(len(f.recs))

	// readOK checks that Read(i) returns record i or, failing that, an
	// error satisfying ErrCorrupt; it reports which. ctx says what was
	// damaged.
	readOK := func(t *testing.T, i uint64, ctx string) (corrupt bool) {
		t.Helper()
		got, err := l.Read(i)
		switch {
		case err == nil && bytes.Equal(got, f.recs[i-1]):
			return false
		case err == nil:
			t.Fatalf("%s: Read(%d) returned wrong bytes: %d bytes %.20q..., want %.20q...", ctx, i, len(got), got, f.recs[i-1])
		case !errors.Is(err, ErrCorrupt):
			t.Errorf("%s: Read(%d): %v; want the record or errors.Is(err, ErrCorrupt)", ctx, i, err)
		}
		return true
	}
	// damaged flips each byte of [lo, hi) of path in turn (one bit of
	// it) and checks that Read(i) reports a *CorruptionError naming path,
	// the frame's offset and i, while its neighbours still read fine.
	damaged := func(t *testing.T, path string, fr span, lo, hi int64, bit uint) {
		t.Helper()
		for off := lo; off < hi; off++ {
			flip(t, path, off, bit)
			_, err := l.Read(fr.index)
			ce := wantCorruption(t, err, path, fr.off)
			if ce.Index != fr.index {
				t.Errorf("CorruptionError.Index = %d, want %d", ce.Index, fr.index)
			}
			for _, j := range []uint64{fr.index - 1, fr.index + 1} {
				if j >= 1 && j <= last && readOK(t, j, "") {
					t.Fatalf("Read(%d) failed after damage to record %d only", j, fr.index)
				}
			}
			flip(t, path, off, bit)
			if readOK(t, fr.index, "") {
				t.Fatalf("Read(%d) still fails after the damage was undone", fr.index)
			}
		}
	}

	t.Run("FlippedSealedRecordPayloadFailsRead", func(t *testing.T) {
		for _, fr := range []span{sealedFrames[0], sealedFrames[len(sealedFrames)/2], sealedFrames[len(sealedFrames)-1]} {
			damaged(t, sealed, fr, fr.off+segment.FrameHeader, fr.end, 5)
		}
	})
	t.Run("FlippedSealedRecordHeaderFailsRead", func(t *testing.T) {
		fr := sealedFrames[7]
		for bit := range uint(8) {
			damaged(t, sealed, fr, fr.off, fr.off+segment.FrameHeader, bit)
		}
	})
	t.Run("FlippedActiveRecordFailsRead", func(t *testing.T) {
		for _, fr := range []span{newestFrames[0], newestFrames[len(newestFrames)-1]} {
			damaged(t, newest, fr, fr.off, fr.end, 2)
		}
	})
	// The footer's index of record offsets is read when a Read first
	// needs it (and kept for a few segments; forgotten here before each
	// Read, so each reads the damaged entry): damage to it must not make
	// Read return another record's bytes or fail with anything but
	// ErrCorrupt.
	t.Run("FlippedFooterIndexNeverReadsWrongBytes", func(t *testing.T) {
		k := len(sealedFrames) / 2
		fr := sealedFrames[k]
		entry := footer + segment.FrameHeader + 4*int64(k)
		l.Read(fr.index) // the index in memory: damage to the file no longer matters
		flip(t, sealed, entry, 0)
		if readOK(t, fr.index, "index in memory") {
			t.Errorf("Read(%d) failed with the segment's index in memory, read before the damage", fr.index)
		}
		flip(t, sealed, entry, 0)
		for bit := range uint(32) {
			off, b := entry+int64(bit/8), bit%8
			flip(t, sealed, off, b)
			forgetIndexes(l)
			ctx := fmt.Sprintf("bit %d of the footer entry of record %d flipped", bit, fr.index)
			if !readOK(t, fr.index, ctx) {
				t.Errorf("%s: Read(%d) returned the record from a wrong offset", ctx, fr.index)
			}
			readOK(t, fr.index-1, ctx)
			readOK(t, fr.index+1, ctx)
			flip(t, sealed, off, b)
			forgetIndexes(l)
			if readOK(t, fr.index, "undone") {
				t.Fatalf("Read(%d) still fails after the damage was undone", fr.index)
			}
		}
	})
}

// TestRecoveryForeignFiles puts files into the directory that are not
// segments of this format version: Open must refuse with ErrFormat and
// leave them alone.
func TestRecoveryForeignFiles(t *testing.T) {
	rng := seedtest.Rand(t)
	garbage := func(n int) []byte {
		b := make([]byte, n)
		for i := range b {
			b[i] = byte(rng.Uint32())
		}
		b[0] = 'G' // never the magic
		return b
	}
	tests := []struct {
		name    string
		prepare func(t *testing.T, f *fixture) string // returns the offending file
	}{
		{"GarbageSegmentFileIsFormatError", func(t *testing.T, f *fixture) string {
			p := filepath.Join(f.dir, segment.Name(1))
			writeFile(t, p, garbage(4096))
			return p
		}},
		{"GarbageSegmentAfterTheLogIsFormatError", func(t *testing.T, f *fixture) string {
			f.build(singles(10, 20, 30)...)
			p := filepath.Join(f.dir, segment.Name(4))
			writeFile(t, p, garbage(MinSegmentSize))
			return p
		}},
		{"FutureVersionIsFormatError", func(t *testing.T, f *fixture) string {
			f.build(singles(10, 20, 30)...)
			p := f.newest()
			rewriteHeader(t, p, func(h []byte) { binary.LittleEndian.PutUint32(h[8:], segment.Version+1) })
			return p
		}},
		{"FutureVersionOfSealedSegmentIsFormatError", func(t *testing.T, f *fixture) string {
			f.build(singles(slices.Repeat([]int{5000}, 30)...)...)
			p := f.segments()[0]
			rewriteHeader(t, p, func(h []byte) { binary.LittleEndian.PutUint32(h[8:], segment.Version+1) })
			return p
		}},
		{"UnknownHeaderFlagIsFormatError", func(t *testing.T, f *fixture) string {
			f.build(singles(10, 20, 30)...)
			p := f.newest()
			rewriteHeader(t, p, func(h []byte) { binary.LittleEndian.PutUint32(h[12:], 1) })
			return p
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, MinSegmentSize)
			p := tc.prepare(t, f)
			before := snapshot(t, f.dir)
			wantNamed(t, f.openErr(), ErrFormat, p)
			sameSnapshot(t, f.dir, before)
		})
	}

	// A segment file too short to hold a header is a damaged segment,
	// whatever it holds, as the format says: ErrCorrupt naming the file.
	for _, short := range []string{"", "x", "\n", "not a journal\n", segment.Magic, string(garbage(24))} {
		t.Run(fmt.Sprintf("ShortSegmentFileIsCorrupt/%d", len(short)), func(t *testing.T) {
			f := newFixture(t, MinSegmentSize)
			p := filepath.Join(f.dir, segment.Name(1))
			writeFile(t, p, []byte(short))
			before := snapshot(t, f.dir)
			err := f.openErr()
			wantNamed(t, err, ErrCorrupt, p)
			if !strings.Contains(err.Error(), "shorter than its 40-byte header") {
				t.Errorf("error %q does not say the header is short", err)
			}
			sameSnapshot(t, f.dir, before)
		})
	}

	t.Run("UnrelatedFilesAreLeftAlone", func(t *testing.T) {
		f := newFixture(t, MinSegmentSize)
		f.build(singles(10, 20)...)
		others := map[string][]byte{
			"notes.txt":                      []byte("hello"),
			segment.Name(1) + ".bak":         garbage(100),
			"1.wal":                          garbage(100),
			"0000000000000000000x.wal":       garbage(100),
			"00000000000000000000.wal":       garbage(100), // index 0 names no segment
			"000000000000000000001.wal":      garbage(100), // 21 digits
			filepath.Base(f.newest()) + "~1": garbage(10),
		}
		for name, b := range others {
			writeFile(t, filepath.Join(f.dir, name), b)
		}
		l := f.open()
		f.check(l, 1, 2)
		f.appendGroup(l, 3)
		f.close(l)
		for name, b := range others {
			if got := readFile(t, filepath.Join(f.dir, name)); !bytes.Equal(got, b) {
				t.Errorf("%s was changed", name)
			}
		}
	})
}

// TestRecoveryLeftoverTempFiles leaves the temporary files a crash during
// segment creation or a meta update leaves behind: Open removes them and
// lists them in Recovered().Removed.
func TestRecoveryLeftoverTempFiles(t *testing.T) {
	tests := []struct {
		name   string
		groups [][]int
	}{
		{"TempFilesBesideTheLogAreRemoved", singles(10, 20, 30)},
		{"TempFilesInAnEmptyDirectoryAreRemoved", nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, MinSegmentSize)
			if err := os.MkdirAll(f.dir, 0o755); err != nil {
				t.Fatal(err)
			}
			if tc.groups != nil {
				f.build(tc.groups...)
			}
			next := uint64(len(f.recs)) + 1
			temps := []string{
				filepath.Join(f.dir, ".tmp-"+segment.Name(next)),
				filepath.Join(f.dir, ".tmp-"+recovery.MetaName+"-3k9x2a"),
			}
			half := []byte(segment.Magic + "\x01\x00\x00\x00\x00\x00\x00\x00\x07\x00\x00\x00") // a header cut short
			writeFile(t, temps[0], half)
			writeFile(t, temps[1], []byte("partial"))

			l := f.open()
			removed := slices.Sorted(slices.Values(l.Recovered().Removed))
			if !slices.Equal(removed, temps) {
				t.Errorf("Recovered().Removed = %v, want %v", removed, temps)
			}
			for _, p := range temps {
				if exists(t, p) {
					t.Errorf("%s still exists", p)
				}
			}
			f.check(l, 1, uint64(len(f.recs)))
			f.appendGroup(l, 7)
			f.close(l)
			l = f.open()
			if r := l.Recovered(); r.Torn != nil || len(r.Removed) != 0 {
				t.Errorf("second Open repaired again: %+v", r)
			}
			f.check(l, 1, uint64(len(f.recs)))
			f.close(l)
		})
	}
}

// TestRecoveryMissingSegment deletes a segment file: records the log held
// must not vanish silently.
func TestRecoveryMissingSegment(t *testing.T) {
	base := buildSealed(t)
	if len(base.segments()) < 4 {
		// Add records until there are four segments.
		l := base.open()
		for len(base.segments()) < 4 {
			base.appendN(l, 20, 900)
		}
		base.close(l)
	}
	tests := []struct {
		name string
		k    func(n int) int // which of n segments to delete
	}{
		{"MissingMiddleSegmentIsCorruption", func(int) int { return 1 }},
		{"MissingSecondToLastSegmentIsCorruption", func(n int) int { return n - 2 }},
		// Without a TruncateFront (no meta file), a log starts at
		// record 1: losing the first segment is losing records.
		{"MissingFirstSegmentIsCorruption", func(int) int { return 0 }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := base.clone(t)
			segs := f.segments()
			gone := segs[tc.k(len(segs))]
			first, _ := segment.ParseName(filepath.Base(gone))
			if err := os.Remove(gone); err != nil {
				t.Fatal(err)
			}
			before := snapshot(t, f.dir)
			l, err := Open(f.dir, &f.opts)
			if err == nil {
				a, b := l.FirstIndex(), l.LastIndex()
				l.Close()
				t.Fatalf("Open succeeded without %s (records from %d); the log holds [%d, %d], want ErrCorrupt",
					filepath.Base(gone), first, a, b)
			}
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("Open: %v; want ErrCorrupt", err)
			}
			var ce *CorruptionError
			if errors.As(err, &ce) && ce.Index != first {
				t.Errorf("CorruptionError.Index = %d, want %d (the first missing record): %v", ce.Index, first, err)
			}
			sameSnapshot(t, f.dir, before)
		})
	}

	t.Run("SegmentsReleasedByTruncateFrontAreNotMissing", func(t *testing.T) {
		f := base.clone(t)
		segs := f.segments()
		second, _ := segment.ParseName(filepath.Base(segs[1]))
		l := f.open()
		if err := l.TruncateFront(second + 1); err != nil {
			t.Fatal(err)
		}
		f.close(l)
		if exists(t, segs[0]) {
			t.Fatalf("TruncateFront(%d) left %s", second+1, segs[0])
		}
		l = f.open()
		f.check(l, second+1, uint64(len(f.recs)))
		f.close(l)
	})
}

// TestRecoveryLimits checks option bounds and record sizes at the edges.
func TestRecoveryLimits(t *testing.T) {
	t.Run("SegmentSizeOutOfRangeIsInvalidOptions", func(t *testing.T) {
		for _, size := range []int64{1, MinSegmentSize - 1, -1, -MinSegmentSize, MaxSegmentSize + 1} {
			dir := filepath.Join(t.TempDir(), "log")
			l, err := Open(dir, &Options{SegmentSize: size, Logger: quiet})
			if err == nil {
				l.Close()
			}
			if !errors.Is(err, ErrInvalidOptions) {
				t.Errorf("Open with SegmentSize %d: %v; want ErrInvalidOptions", size, err)
			}
			if exists(t, dir) {
				t.Errorf("Open with SegmentSize %d created %s", size, dir)
			}
		}
		f := newFixture(t, MinSegmentSize) // the minimum itself is fine
		f.build(singles(1)...)
	})

	t.Run("RecordOverMaxRecordSizeIsRefusedAndNothingWritten", func(t *testing.T) {
		f := newFixture(t, MinSegmentSize)
		f.build(singles(10, 20)...)
		l := f.open()
		before := snapshot(t, f.dir)
		big := make([]byte, MaxRecordSize+1)
		if i, err := l.Append(big); !errors.Is(err, ErrTooLarge) {
			t.Fatalf("Append(%d bytes) = %d, %v; want ErrTooLarge", len(big), i, err)
		}
		if i, err := l.AppendBatch([][]byte{payload(3, 5), big}); !errors.Is(err, ErrTooLarge) {
			t.Fatalf("AppendBatch with a %d-byte record = %d, %v; want ErrTooLarge", len(big), i, err)
		}
		if i, err := l.Append(big[:MaxRecordSize+1]); !errors.Is(err, ErrTooLarge) {
			t.Fatalf("second Append(%d bytes) = %d, %v; want ErrTooLarge", len(big), i, err)
		}
		big = nil
		sameSnapshot(t, f.dir, before)
		f.check(l, 1, 2) // LastIndex unchanged
		f.appendGroup(l, 30)
		f.close(l)
		l = f.open()
		if r := l.Recovered(); r.Torn != nil {
			t.Errorf("reopen cut a torn tail: %+v", r.Torn)
		}
		f.check(l, 1, 3)
		f.close(l)
	})

	t.Run("RecordLargerThanSegmentSizeGetsItsOwnSegment", func(t *testing.T) {
		f := newFixture(t, MinSegmentSize)
		f.build([]int{100}, []int{200}, []int{200 << 10}, []int{300}, []int{400})
		l := f.open()
		f.check(l, 1, 5)
		f.close(l)
		p := filepath.Join(f.dir, segment.Name(3))
		if !exists(t, p) {
			t.Fatalf("no segment starts at the 200 KiB record 3: %v", listDir(t, f.dir))
		}
		if frames := f.frames(p); len(frames) != 1 {
			t.Errorf("%s holds %d records, want only the 200 KiB one", filepath.Base(p), len(frames))
		}
		if !exists(t, filepath.Join(f.dir, segment.Name(4))) {
			t.Errorf("record 4 does not start a new segment: %v", listDir(t, f.dir))
		}
		l = f.open()
		f.check(l, 1, 5)
		f.close(l)
	})

	t.Run("RecordLargerThanSegmentSizeInNewestSegmentSurvivesReopen", func(t *testing.T) {
		f := newFixture(t, MinSegmentSize)
		f.build([]int{100}, []int{200 << 10})
		l := f.open()
		f.check(l, 1, 2)
		f.appendGroup(l, 50)
		f.close(l)
		l = f.open()
		f.check(l, 1, 3)
		f.close(l)
	})
}

// pendingLog is the log the TruncateBack scenarios start from: several
// segments, with a batch in a sealed segment and one in the newest.
func pendingLog(t *testing.T) *fixture {
	t.Helper()
	f := newFixture(t, MinSegmentSize)
	var groups [][]int
	groups = append(groups, singles(slices.Repeat([]int{1000}, 100)...)...) // 1..100
	groups = append(groups, []int{300, 301, 302, 303, 304, 305})            // 101..106
	groups = append(groups, singles(slices.Repeat([]int{1500}, 30)...)...)  // 107..136
	groups = append(groups, []int{50, 51, 52, 53, 54})                      // 137..141
	groups = append(groups, singles(60, 61, 62)...)                         // 142..144
	f.build(groups...)
	return f
}

// TestRecoveryPendingTruncateBack simulates a crash right after
// TruncateBack's commit point (the meta file says BackPending) and checks
// that Open finishes the truncation, durably and idempotently.
func TestRecoveryPendingTruncateBack(t *testing.T) {
	base := pendingLog(t)
	segs := base.segments()
	firsts := make([]uint64, len(segs))
	for i, p := range segs {
		firsts[i], _ = segment.ParseName(filepath.Base(p))
	}
	if len(segs) < 3 {
		t.Fatalf("want 3 segments or more, got %d", len(segs))
	}
	if s := base.segmentOf(101); s == segs[len(segs)-1] || base.segmentOf(106) != s {
		t.Fatalf("batch 101..106 not inside one sealed segment")
	}
	if base.segmentOf(137) != segs[len(segs)-1] {
		t.Fatalf("batch 137..141 not in the newest segment")
	}
	tests := []struct {
		name string
		back uint64
	}{
		{"PendingTruncateBackInNewestSegment", 143},
		{"PendingTruncateBackMidBatchInNewestSegment", 139},
		{"PendingTruncateBackToBatchStartInNewestSegment", 137},
		{"PendingTruncateBackInFirstSegment", 10},
		{"PendingTruncateBackToLastRecordOfASegment", firsts[1] - 1},
		{"PendingTruncateBackToFirstRecordOfASegment", firsts[1]},
		{"PendingTruncateBackMidBatchInSealedSegment", 103},
		{"PendingTruncateBackToEmptyLog", 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := base.clone(t)
			b := tc.back
			// Segments holding only records after b+1 must go; one that
			// starts at b+1 may go or stay empty.
			var gone, may []string
			for i, p := range f.segments() {
				if firsts[i] > b+1 {
					gone = append(gone, p)
				}
				if firsts[i] > b {
					may = append(may, p)
				}
			}
			crash := func() {
				m, err := recovery.ReadMeta(f.opts.FS, f.dir)
				if err != nil {
					t.Fatal(err)
				}
				m.Back, m.BackPending = b, true
				if err := recovery.WriteMeta(f.opts.FS, f.dir, m); err != nil {
					t.Fatal(err)
				}
			}
			crash()
			l := f.open()
			r := l.Recovered()
			if r.Torn != nil {
				t.Errorf("Recovered().Torn = %+v, want nil", *r.Torn)
			}
			for _, p := range gone {
				if !slices.Contains(r.Removed, p) {
					t.Errorf("Recovered().Removed = %v lacks %s", r.Removed, filepath.Base(p))
				}
			}
			for _, p := range r.Removed {
				if !slices.Contains(may, p) {
					t.Errorf("Recovered().Removed lists %s, which holds records up to %d", p, b)
				}
			}
			for _, p := range gone {
				if exists(t, p) {
					t.Errorf("%s still exists", filepath.Base(p))
				}
			}
			f.forget(b)
			f.check(l, 1, b)
			f.close(l)
			if m, err := recovery.ReadMeta(f.opts.FS, f.dir); err != nil || m.BackPending || m.Back != b {
				t.Fatalf("meta after recovery = %+v, %v; want Back %d, not pending", m, err, b)
			}

			// A crash before the final meta write (of TruncateBack or
			// of the repair) repeats the repair: the same log, at most
			// a segment after b (empty) removed again.
			crash()
			l = f.open()
			if r := l.Recovered(); r.Torn != nil {
				t.Errorf("repeated repair: Torn %+v; want nil", *r.Torn)
			}
			for _, p := range l.Recovered().Removed {
				if first, _ := segment.ParseName(filepath.Base(p)); first <= b {
					t.Errorf("repeated repair removed %s, which holds records up to %d", p, b)
				}
			}
			f.check(l, 1, b)
			f.appendGroup(l, 33)
			f.appendGroup(l, 44, 45)
			f.close(l)

			// The records up to b survive a further reopen, and a torn
			// append after them is cut without touching them.
			l = f.open()
			if r := l.Recovered(); r.Torn != nil || len(r.Removed) != 0 {
				t.Errorf("clean reopen repaired: Torn %+v, Removed %v", r.Torn, r.Removed)
			}
			f.check(l, 1, b+3)
			f.appendGroup(l, 77)
			f.close(l)
			path, fr := f.frameOf(b + 4)
			truncate(t, path, fr.off+(fr.end-fr.off)/2)
			f.recovered(b+3, &recovery.Torn{Path: path, Offset: fr.off, Bytes: (fr.end - fr.off) / 2})
		})
	}

	// The same through the API: TruncateBack into a batch, no crash.
	t.Run("TruncateBackMidBatchSurvivesReopenAndTornAppend", func(t *testing.T) {
		for _, b := range []uint64{139, 103} {
			f := base.clone(t)
			l := f.open()
			if err := l.TruncateBack(b); err != nil {
				t.Fatal(err)
			}
			f.forget(b)
			f.check(l, 1, b)
			f.close(l)
			l = f.open()
			f.check(l, 1, b)
			f.appendGroup(l, 88)
			f.close(l)
			path, fr := f.frameOf(b + 1)
			zero(t, path, fr.off+40, -1)
			f.recovered(b, &recovery.Torn{Path: path, Offset: fr.off, Bytes: 40})
		}
	})
}
