package segment

import (
	"bytes"
	"cmp"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/gojournal/journal/vfs/crashfs"
)

type scanResult struct {
	indexes   []uint64
	records   []string
	stop      int64  // the offset where the scan stopped
	why       Stop   // why it stopped
	message   string // Why()
	sealed    bool
	committed int64
	next      uint64
	cut       int64
	cutNext   uint64
}

func scanAll(t *testing.T, sc *Scanner) scanResult {
	t.Helper()
	var r scanResult
	for sc.Next() {
		f := sc.Frame()
		rec, err := Decompress(f.Codec, f.Data)
		if err != nil {
			t.Fatalf("record %d: %v", f.Index, err)
		}
		r.indexes = append(r.indexes, f.Index)
		r.records = append(r.records, string(rec))
	}
	if err := sc.Err(); err != nil {
		t.Fatalf("scan: %v", err)
	}
	r.stop, r.why, r.message, r.sealed = sc.Offset(), sc.Stop(), sc.Why(), sc.Sealed()
	r.committed, r.next = sc.Committed()
	r.cut, r.cutNext = sc.Cut()
	return r
}

// offsetIn names an offset in the segment a test built.
type offsetIn func(b *segmentBuilder) int64

func frameStart(k int) offsetIn { return func(b *segmentBuilder) int64 { return b.frameStart(k) } }
func frameEnd(k int) offsetIn   { return func(b *segmentBuilder) int64 { return b.frameEnd(k) } }

// sectorAfter is the sector boundary that ends the write holding frame k.
func sectorAfter(k int) offsetIn {
	return func(b *segmentBuilder) int64 { return AlignSector(b.frameEnd(k)) }
}

// syncEnd and sectorAfterSync locate the end of the k-th TypeSync frame
// (1-based) and the sector boundary that ends its write.
func syncEnd(k int) offsetIn { return func(b *segmentBuilder) int64 { return b.syncEnd(k) } }
func sectorAfterSync(k int) offsetIn {
	return func(b *segmentBuilder) int64 { return AlignSector(b.syncEnd(k)) }
}

func TestScanner(t *testing.T) {
	big := string(compressible(3<<20 + 5))
	footerEnd := func(b *segmentBuilder) int64 { return b.footerAt() + FrameSize(footerPayload(b.h, len(b.starts))) }
	junk := bytes.Repeat([]byte{0xa5}, 100)
	tests := []struct {
		name        string
		build       func(b *segmentBuilder) []byte
		wantRecords []string
		wantStop    Stop
		wantWhy     string // Why(), or its start, when it says more than wantStop.String()
		wantSealed  bool
		// Where the scan stops, the committed point and the cut point,
		// with the index following each of the last two.
		stop, committed, cut offsetIn
		next, cutNext        uint64
	}{
		{
			name:     "EmptySegmentEndsAfterTheHeaderSector",
			build:    func(b *segmentBuilder) []byte { return b.bytes() },
			wantStop: StopEOF,
			stop:     frameEnd(0), committed: frameEnd(0), cut: frameEnd(0), next: first, cutNext: first,
		},
		{
			name:     "PreallocatedSpaceIsTheEnd",
			build:    func(b *segmentBuilder) []byte { return append(b.bytes(), make([]byte, 4096)...) },
			wantStop: StopZeros,
			stop:     frameEnd(0), committed: frameEnd(0), cut: frameEnd(0), next: first, cutNext: first,
		},
		{
			name:        "OneWriteOfSingleRecords",
			build:       func(b *segmentBuilder) []byte { return b.record("a").record("bb").record("ccc").endWrite().bytes() },
			wantRecords: []string{"a", "bb", "ccc"},
			wantStop:    StopEOF,
			stop:        sectorAfter(3), committed: sectorAfter(3), cut: sectorAfter(3), next: first + 3, cutNext: first + 3,
		},
		{
			name: "WritesArePaddedToSectorBoundaries",
			build: func(b *segmentBuilder) []byte {
				return b.record("a").endWrite().record("b").record("c").endWrite().record("d").bytes()
			},
			wantRecords: []string{"a", "b", "c", "d"},
			wantStop:    StopEOF,
			// The file ends where the last write's padding would start: its
			// frames are complete, so the write counts whole.
			stop: sectorAfter(4), committed: sectorAfter(4), cut: sectorAfter(4), next: first + 4, cutNext: first + 4,
		},
		{
			name: "EveryCodecInOneSegment",
			build: func(b *segmentBuilder) []byte {
				b.add(TypeRecord, S2, compressible(5000)).endWrite().add(TypeRecord, Zstd, compressible(7000)).add(TypeRecord, None, []byte("x"))
				return b.endWrite().bytes()
			},
			wantRecords: []string{string(compressible(5000)), string(compressible(7000)), "x"},
			wantStop:    StopEOF,
			stop:        sectorAfter(3), committed: sectorAfter(3), cut: sectorAfter(3), next: first + 3, cutNext: first + 3,
		},
		{
			name: "CompleteBatchIsCommitted",
			build: func(b *segmentBuilder) []byte {
				return b.record("solo").batch("b1").batch("b2").record("b3").endWrite().bytes()
			},
			wantRecords: []string{"solo", "b1", "b2", "b3"},
			wantStop:    StopEOF,
			stop:        sectorAfter(4), committed: sectorAfter(4), cut: sectorAfter(4), next: first + 4, cutNext: first + 4,
		},
		{
			name:        "UnfinishedBatchIsReadButNotCommitted",
			build:       func(b *segmentBuilder) []byte { return b.record("solo").endWrite().batch("b1").batch("b2").bytes() },
			wantRecords: []string{"solo", "b1", "b2"},
			wantStop:    StopEOF,
			stop:        frameEnd(3), committed: frameStart(2), cut: frameStart(2), next: first + 1, cutNext: first + 1,
		},
		{
			// Zeros after a TypeBatch frame are not write padding: a
			// write never ends inside a batch. The write that holds the
			// unfinished batch was torn, so the cut point drops it whole,
			// complete batch included.
			name: "ZerosAfterAnUnfinishedBatchAreTheEnd",
			build: func(b *segmentBuilder) []byte {
				return append(b.record("solo").batch("b1").endWrite().bytes(), make([]byte, 4096)...)
			},
			wantRecords: []string{"solo", "b1"},
			wantStop:    StopZeros,
			stop:        frameEnd(2), committed: frameEnd(1), cut: frameEnd(0), next: first + 1, cutNext: first,
		},
		{
			// Valid frames of an unfinished batch follow a complete batch
			// in the same sector: the write that held both was torn, and
			// the cut is at the last sector-aligned commit point (the start
			// of that write), so no stray TypeBatch frame is left before
			// the next write.
			name: "UnfinishedBatchAfterACompleteBatchInTheSameSector",
			build: func(b *segmentBuilder) []byte {
				return append(b.record("a").endWrite().record("solo").batch("c1").batch("c2").bytes(), junk...)
			},
			wantRecords: []string{"a", "solo", "c1", "c2"},
			wantStop:    StopType,
			stop:        frameEnd(4), committed: frameEnd(2), cut: frameStart(2), next: first + 2, cutNext: first + 1,
		},
		{
			name: "ZerosAfterTheLastWriteAreTheEnd",
			build: func(b *segmentBuilder) []byte {
				return append(b.record("a").record("b").endWrite().bytes(), make([]byte, 4096)...)
			},
			wantRecords: []string{"a", "b"},
			wantStop:    StopZeros,
			stop:        sectorAfter(2), committed: sectorAfter(2), cut: sectorAfter(2), next: first + 2, cutNext: first + 2,
		},
		{
			name: "FileEndingInsideWritePaddingEndsTheScan",
			build: func(b *segmentBuilder) []byte {
				file := b.record("a").endWrite().bytes()
				return file[:b.frameEnd(1)+8]
			},
			wantRecords: []string{"a"},
			wantStop:    StopEOF,
			stop:        sectorAfter(1), committed: sectorAfter(1), cut: sectorAfter(1), next: first + 1, cutNext: first + 1,
		},
		{
			name: "JunkAfterAWriteStopsTheScan",
			build: func(b *segmentBuilder) []byte {
				return append(b.record("a").endWrite().bytes(), junk...)
			},
			wantRecords: []string{"a"},
			wantStop:    StopType,
			stop:        sectorAfter(1), committed: sectorAfter(1), cut: sectorAfter(1), next: first + 1, cutNext: first + 1,
		},
		{
			// The junk lies in the write padding of a complete batch
			// (here, a batch of one). Cut used to fall back to the last
			// sector-aligned commit point (512), dropping record "a";
			// now the padding is write padding whatever it holds, so the
			// record is kept and the cut is the sector boundary after it.
			name: "JunkRightAfterARecordStopsTheScan",
			build: func(b *segmentBuilder) []byte {
				return append(b.record("a").bytes(), junk...)
			},
			wantRecords: []string{"a"},
			wantStop:    StopType,
			stop:        frameEnd(1), committed: frameEnd(1), cut: sectorAfter(1), next: first + 1, cutNext: first + 1,
		},
		{
			// The same with a batch of several records after an earlier
			// write: every record of the complete batch is kept.
			name: "JunkInTheWritePaddingAfterACompleteBatchKeepsTheBatch",
			build: func(b *segmentBuilder) []byte {
				return append(b.record("a").endWrite().batch("b1").batch("b2").record("b3").bytes(), junk...)
			},
			wantRecords: []string{"a", "b1", "b2", "b3"},
			wantStop:    StopType,
			stop:        frameEnd(4), committed: frameEnd(4), cut: sectorAfter(4), next: first + 4, cutNext: first + 4,
		},
		{
			// Padding must be all zeros to be skipped; then the zeros
			// where the next frame would be end the log.
			name: "DamagedWritePaddingBeforeTheNextRecordIsSkipped",
			build: func(b *segmentBuilder) []byte {
				file := b.record("a").endWrite().record("b").bytes()
				file[b.frameEnd(1)+100] = 1
				return file
			},
			wantRecords: []string{"a", "b"},
			wantStop:    StopEOF,
			stop:        sectorAfter(2), committed: sectorAfter(2), cut: sectorAfter(2), next: first + 2, cutNext: first + 2,
		},
		{
			// The damaged byte is not skipped as padding (no record
			// follows it), so the scan stops at the zeros right after
			// the record. The cut used to be the last aligned commit
			// point (512), dropping "a"; the damaged byte lies in the
			// write padding of a complete batch, so "a" is now kept.
			name: "DamagedWritePaddingAtTheEndIsNotPadding",
			build: func(b *segmentBuilder) []byte {
				file := append(b.record("a").endWrite().bytes(), make([]byte, 1024)...)
				file[b.frameEnd(1)+100] = 1
				return file
			},
			wantRecords: []string{"a"},
			wantStop:    StopZeros,
			stop:        frameEnd(1), committed: frameEnd(1), cut: sectorAfter(1), next: first + 1, cutNext: first + 1,
		},
		{
			name: "TruncatedLastFrameStopsTheScan",
			build: func(b *segmentBuilder) []byte {
				file := b.record("a").endWrite().record("a longer second record").bytes()
				return file[:len(file)-12]
			},
			wantRecords: []string{"a"},
			wantStop:    StopShortPayload,
			stop:        frameStart(2), committed: frameStart(2), cut: frameStart(2), next: first + 1, cutNext: first + 1,
		},
		{
			name: "TruncatedFrameHeaderStopsTheScan",
			build: func(b *segmentBuilder) []byte {
				file := b.record("a").endWrite().record("b").bytes()
				return file[:b.frameStart(2)+20]
			},
			wantRecords: []string{"a"},
			wantStop:    StopShortHeader,
			stop:        frameStart(2), committed: frameStart(2), cut: frameStart(2), next: first + 1, cutNext: first + 1,
		},
		{
			name: "DamagedPayloadStopsTheScan",
			build: func(b *segmentBuilder) []byte {
				file := b.record("a").endWrite().record("b").endWrite().record("c").bytes()
				file[b.frameStart(2)+FrameHeader] ^= 1
				return file
			},
			wantRecords: []string{"a"},
			wantStop:    StopChecksum,
			stop:        frameStart(2), committed: frameStart(2), cut: frameStart(2), next: first + 1, cutNext: first + 1,
		},
		{
			// The frame with the wrong index lies in the write padding
			// of a complete batch: the cut used to be 512, dropping "a";
			// under the padding rule "a" is kept and the cut is the
			// sector boundary after it.
			name: "FrameWithSkippedIndexStopsTheScan",
			build: func(b *segmentBuilder) []byte {
				b.record("a")
				b.next++
				return b.record("c").bytes()
			},
			wantRecords: []string{"a"},
			wantStop:    StopIndex,
			wantWhy:     "frame carries index 102, expected 101",
			stop:        frameEnd(1), committed: frameEnd(1), cut: sectorAfter(1), next: first + 1, cutNext: first + 1,
		},
		{
			name: "FrameFromAnotherSegmentStopsTheScan",
			build: func(b *segmentBuilder) []byte {
				file := b.record("a").endWrite().bytes()
				return AppendFrame(file, testSalt+1, TypeRecord, None, first+1, DataStart, []byte("b"))
			},
			wantRecords: []string{"a"},
			wantStop:    StopChecksum,
			stop:        sectorAfter(1), committed: sectorAfter(1), cut: sectorAfter(1), next: first + 1, cutNext: first + 1,
		},
		{
			name: "LargeRecordsSpanReadChunks",
			build: func(b *segmentBuilder) []byte {
				return b.record("a").endWrite().record(big).record("c").endWrite().record(big).endWrite().bytes()
			},
			wantRecords: []string{"a", big, "c", big},
			wantStop:    StopEOF,
			stop:        sectorAfter(4), committed: sectorAfter(4), cut: sectorAfter(4), next: first + 4, cutNext: first + 4,
		},
		{
			name:        "FooterSealsTheScan",
			build:       func(b *segmentBuilder) []byte { return b.record("a").endWrite().batch("b1").record("b2").sealed() },
			wantRecords: []string{"a", "b1", "b2"},
			wantStop:    StopFooter,
			wantSealed:  true,
			stop:        footerEnd, committed: sectorAfter(3), cut: sectorAfter(3), next: first + 3, cutNext: first + 3,
		},
		{
			// TypeSync frames hold no record: the scan reads through
			// them, and the records after them (right after the frame or
			// after write padding) continue the index sequence.
			name: "RecordsContinueAfterSyncFrames",
			build: func(b *segmentBuilder) []byte {
				return b.record("a").syncFrame().record("b").syncFrame().endWrite().record("c").endWrite().bytes()
			},
			wantRecords: []string{"a", "b", "c"},
			wantStop:    StopEOF,
			stop:        sectorAfter(3), committed: sectorAfter(3), cut: sectorAfter(3), next: first + 3, cutNext: first + 3,
		},
		{
			// A TypeSync frame is a commit point: junk after it is the
			// write padding of the sync frame's write, and the cut is the
			// sector boundary after the sync frame.
			name: "SyncFrameIsACommitPoint",
			build: func(b *segmentBuilder) []byte {
				return append(b.record("a").syncFrame().bytes(), junk...)
			},
			wantRecords: []string{"a"},
			wantStop:    StopType,
			stop:        syncEnd(1), committed: syncEnd(1), cut: sectorAfterSync(1), next: first + 1, cutNext: first + 1,
		},
		{
			// Write padding after a sync frame is skipped like padding
			// after a complete batch; the file may end inside it.
			name:        "SyncFrameAtTheEndOfTheFile",
			build:       func(b *segmentBuilder) []byte { return b.record("a").syncFrame().bytes() },
			wantRecords: []string{"a"},
			wantStop:    StopEOF,
			stop:        sectorAfterSync(1), committed: sectorAfterSync(1), cut: sectorAfterSync(1), next: first + 1, cutNext: first + 1,
		},
		{
			name: "SyncFrameInsideABatchStopsTheScan",
			build: func(b *segmentBuilder) []byte {
				file := b.record("a").batch("b1").bytes()
				return AppendFrame(file, testSalt, TypeSync, None, first+2, DataStart, nil)
			},
			wantRecords: []string{"a", "b1"},
			wantStop:    StopType,
			stop:        frameEnd(2), committed: frameEnd(1), cut: frameEnd(0), next: first + 1, cutNext: first,
		},
		{
			name: "SyncFrameWithTheWrongIndexStopsTheScan",
			build: func(b *segmentBuilder) []byte {
				file := b.record("a").markDurable().bytes()
				return AppendFrame(file, testSalt, TypeSync, None, first, int64(len(file)), nil)
			},
			wantRecords: []string{"a"},
			wantStop:    StopIndex,
			wantWhy:     "frame carries index 100, expected 101",
			stop:        sectorAfter(1), committed: sectorAfter(1), cut: sectorAfter(1), next: first + 1, cutNext: first + 1,
		},
		{
			name:        "SyncFrameBeforeTheFooter",
			build:       func(b *segmentBuilder) []byte { return b.record("a").syncFrame().sealed() },
			wantRecords: []string{"a"},
			wantStop:    StopFooter,
			wantSealed:  true,
			stop:        footerEnd, committed: sectorAfterSync(1), cut: sectorAfterSync(1), next: first + 1, cutNext: first + 1,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := newSegmentBuilder(first, testSalt)
			file := tt.build(b)
			sc := newScanner(bytes.NewReader(file), int64(len(file)), b.h)
			got := scanAll(t, sc)
			if !slices.Equal(got.records, tt.wantRecords) {
				t.Errorf("records = %.40q, want %.40q", got.records, tt.wantRecords)
			}
			for i, idx := range got.indexes {
				if idx != first+uint64(i) {
					t.Errorf("record %d has index %d, want %d", i, idx, first+uint64(i))
				}
			}
			wantWhy := cmp.Or(tt.wantWhy, tt.wantStop.String())
			if got.why != tt.wantStop || !strings.HasPrefix(got.message, wantWhy) {
				t.Errorf("Stop = %v, Why = %q; want %v, %q", got.why, got.message, tt.wantStop, wantWhy)
			}
			if want := tt.stop(b); got.stop != want || got.sealed != tt.wantSealed {
				t.Errorf("stopped at %d (sealed %v), want %d (sealed %v)", got.stop, got.sealed, want, tt.wantSealed)
			}
			if want := tt.committed(b); got.committed != want || got.next != tt.next {
				t.Errorf("Committed = %d, %d; want %d, %d", got.committed, got.next, want, tt.next)
			}
			if want := tt.cut(b); got.cut != want || got.cutNext != tt.cutNext || got.cut%SectorSize != 0 {
				t.Errorf("Cut = %d, %d; want %d, %d", got.cut, got.cutNext, want, tt.cutNext)
			}
			// Unfinished: records of a batch were read past the last
			// commit point.
			if unfinished := got.next != first+uint64(len(got.records)); sc.Unfinished() != unfinished {
				t.Errorf("Unfinished = %v, want %v", sc.Unfinished(), unfinished)
			}
		})
	}
}

func TestNewScannerAtResumesMidSegment(t *testing.T) {
	b := newSegmentBuilder(first, testSalt).record("a").endWrite().batch("b1").record("b2").batch("c1")
	file := append(b.endWrite().bytes(), make([]byte, 64)...)
	tests := []struct {
		name          string
		from          int // frame to resume at (1-based)
		end           int64
		wantRecords   []string
		wantStop      Stop
		wantCommitted int64
	}{
		{"FromTheSecondWrite", 2, int64(len(file)), []string{"b1", "b2", "c1"}, StopZeros, b.frameEnd(3)},
		{"FromTheMiddleOfAWrite", 3, int64(len(file)), []string{"b2", "c1"}, StopZeros, b.frameEnd(3)},
		{"FromTheLastFrame", 4, int64(len(file)), []string{"c1"}, StopZeros, b.frameStart(4)},
		{"StopsAtEnd", 2, b.frameStart(4), []string{"b1", "b2"}, StopEOF, AlignSector(b.frameEnd(3))},
		{"EndInsideAFrame", 2, b.frameStart(4) + 20, []string{"b1", "b2"}, StopShortHeader, b.frameEnd(3)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sc := NewScannerAt(bytes.NewReader(file), tt.end, b.h, b.frameStart(tt.from), first+uint64(tt.from-1))
			got := scanAll(t, sc)
			if !slices.Equal(got.records, tt.wantRecords) || got.why != tt.wantStop || got.committed != tt.wantCommitted {
				t.Fatalf("read %q, stop %v, committed %d; want %q, %v, %d",
					got.records, got.why, got.committed, tt.wantRecords, tt.wantStop, tt.wantCommitted)
			}
		})
	}
}

func TestScanTail(t *testing.T) {
	junk := bytes.Repeat([]byte{0x5c}, 100)
	big := compressible(1<<20 + 100)
	tests := []struct {
		name string
		// build writes the segment; damage (if set) then spoils the
		// frame with that 1-based number, where the scan must stop.
		build       func(b *segmentBuilder) []byte
		damage      int
		wantStop    offsetIn
		wantEnd     func(b *segmentBuilder, file []byte) int64 // when no durable frame is found
		wantDurable uint64                                     // index of the proving frame; 0: none
		durableAt   offsetIn                                   // where it is, when not a record frame
	}{
		{
			name:     "NothingAfterTheRecords",
			build:    func(b *segmentBuilder) []byte { return b.record("a").bytes() },
			wantStop: sectorAfter(1), // the end of the file counts as the write's padding
			wantEnd:  func(b *segmentBuilder, _ []byte) int64 { return AlignSector(b.frameEnd(1)) },
		},
		{
			name:     "ZerosAreNotATail",
			build:    func(b *segmentBuilder) []byte { return append(b.record("a").endWrite().bytes(), make([]byte, 8192)...) },
			wantStop: sectorAfter(1),
			wantEnd:  func(b *segmentBuilder, _ []byte) int64 { return AlignSector(b.frameEnd(1)) },
		},
		{
			name: "TornJunkIsATornTail",
			build: func(b *segmentBuilder) []byte {
				return append(append(b.record("a").markDurable().bytes(), junk...), make([]byte, 4096)...)
			},
			wantStop: sectorAfter(1),
			wantEnd:  func(b *segmentBuilder, _ []byte) int64 { return AlignSector(b.frameEnd(1)) + int64(len(junk)) },
		},
		{
			// One unfinished write of three frames: all carry the synced
			// offset of the write's start, the damage, so nothing is
			// proven.
			name: "FramesOfTheSameTornWriteProveNothing",
			build: func(b *segmentBuilder) []byte {
				return b.record("a").markDurable().record("b").record("c").record("d").bytes()
			},
			damage:   2,
			wantStop: frameStart(2),
			wantEnd:  endOfNonZero,
		},
		{
			name: "LaterWriteSyncedPastTheDamageProvesCorruption",
			build: func(b *segmentBuilder) []byte {
				return b.record("a").markDurable().record("b").markDurable().record("c").bytes()
			},
			damage:      2,
			wantStop:    frameStart(2),
			wantDurable: first + 2,
		},
		{
			name: "DurableFrameFoundPastJunkAndTornFrames",
			build: func(b *segmentBuilder) []byte {
				b.record("a").markDurable().record("b").record("c").markDurable().record("d").markDurable().record("e")
				file := b.bytes()
				copy(file[b.frameStart(2):], bytes.Repeat([]byte{0xee}, int(b.frameStart(4)-b.frameStart(2))))
				return file
			},
			wantStop:    frameStart(2),
			wantDurable: first + 3, // "d": written after the damaged write was synced
		},
		{
			// Write padding that was made durable and then damaged is
			// damage followed by durable data, though no record is hurt.
			name: "DamagedWritePaddingBeforeADurableWrite",
			build: func(b *segmentBuilder) []byte {
				file := b.record("a").markDurable().record("b").markDurable().record("c").bytes()
				file[b.frameEnd(1)+100] = 0x01 // not skipped: record b is damaged too
				file[b.frameStart(2)+FrameHeader] ^= 0x01
				return file
			},
			wantStop:    frameEnd(1),
			wantDurable: first + 2,
		},
		{
			name: "FrameOfAnotherSegmentProvesNothing",
			build: func(b *segmentBuilder) []byte {
				file := append(b.record("a").markDurable().bytes(), junk[:8]...)
				return AppendFrame(file, testSalt+1, TypeRecord, None, first+1, int64(len(file)), []byte("foreign"))
			},
			wantStop: sectorAfter(1),
			wantEnd:  endOfNonZero,
		},
		{
			name: "DurableFrameBeyondTheFirstReadChunk",
			build: func(b *segmentBuilder) []byte {
				return b.record("a").markDurable().record("b").add(TypeRecord, None, big).markDurable().record("d").bytes()
			},
			damage:      2,
			wantStop:    frameStart(2),
			wantDurable: first + 3,
		},
		{
			// The proving frame starts inside the first read chunk and
			// ends past it.
			name: "DurableFrameCrossingAReadChunk",
			build: func(b *segmentBuilder) []byte {
				return b.record("a").markDurable().record("b").markDurable().add(TypeRecord, None, big).bytes()
			},
			damage:      2,
			wantStop:    frameStart(2),
			wantDurable: first + 2,
		},
		{
			// Space never written (a hole, with File.Data) between the
			// damage and a durable frame is stepped over, not taken for
			// the end.
			name: "DurableFrameAfterZeros",
			build: func(b *segmentBuilder) []byte {
				b.record("a").markDurable().record("b").markDurable()
				b.buf = append(b.buf, make([]byte, 2<<20+3*SectorSize)...)
				return b.record("c").bytes()
			},
			damage:      2,
			wantStop:    frameStart(2),
			wantDurable: first + 2,
		},
		{
			// The reason TypeSync frames exist: a NoSync log that syncs
			// and then appends nothing more still leaves a frame whose
			// synced offset lies past the damage.
			name: "SyncFrameAfterTheDamageProvesCorruption",
			build: func(b *segmentBuilder) []byte {
				return b.record("a").markDurable().record("b").syncFrame().bytes()
			},
			damage:      2,
			wantStop:    frameStart(2),
			wantDurable: first + 2,
			durableAt:   func(b *segmentBuilder) int64 { return b.syncs[0] },
		},
		{
			// Records written after a sync frame carry the sync frame's
			// offset as their synced offset: damage to them is a torn
			// tail unless a later sync proves otherwise.
			name: "TornRecordsAfterASyncFrameAreATornTail",
			build: func(b *segmentBuilder) []byte {
				return b.record("a").syncFrame().record("b").record("c").bytes()
			},
			damage:   2,
			wantStop: frameStart(2),
			wantEnd:  endOfNonZero,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := newSegmentBuilder(first, testSalt)
			file := tt.build(b)
			if tt.damage != 0 {
				file[b.frameStart(tt.damage)+FrameHeader] ^= 0x01
			}
			sc := newScanner(bytes.NewReader(file), int64(len(file)), b.h)
			for sc.Next() {
			}
			stop := sc.Offset()
			if want := tt.wantStop(b); stop != want {
				t.Fatalf("scan stopped at %d (%s), want %d", stop, sc.Why(), want)
			}
			tail, err := scanTail(bytes.NewReader(file), int64(len(file)), b.h, stop)
			if err != nil {
				t.Fatal(err)
			}
			// The same search through a file system that knows where
			// data lies, with the zero sectors never written, must find
			// the same: it skips only what reads as zeros.
			if holes := tailWithHoles(t, b.h, file, stop); holes.End != tail.End || (holes.Durable == nil) != (tail.Durable == nil) ||
				holes.Durable != nil && holes.Durable.Offset != tail.Durable.Offset {
				t.Errorf("with holes the tail is %+v, without %+v", holes, tail)
			}
			durableAt := func(d *Frame) int64 { return b.frameStart(int(d.Index-first) + 1) }
			if tt.durableAt != nil {
				durableAt = func(*Frame) int64 { return tt.durableAt(b) }
			}
			switch d := tail.Durable; {
			case tt.wantDurable == 0 && d != nil:
				t.Errorf("Tail.Durable = frame %d at %d (synced %d), want none", d.Index, d.Offset, d.Synced)
			case tt.wantDurable == 0:
				if want := tt.wantEnd(b, file); tail.End != want {
					t.Errorf("Tail.End = %d, want %d", tail.End, want)
				}
			case d == nil:
				t.Errorf("Tail.Durable = none, want frame %d", tt.wantDurable)
			case d.Index != tt.wantDurable || d.Synced <= stop || d.Offset != durableAt(d):
				t.Errorf("Tail.Durable = frame %d at %d (synced %d), want frame %d synced past %d",
					d.Index, d.Offset, d.Synced, tt.wantDurable, stop)
			}
		})
	}
}

func endOfNonZero(_ *segmentBuilder, file []byte) int64 { return int64(lastNonZero(file) + 1) }

// tailWithHoles writes file into a crashfs file, leaving every all-zero
// sector unwritten and preallocating 3 MiB more, and searches the tail
// after stop through a Handle, which asks the file where data lies.
func tailWithHoles(t *testing.T, h Header, file []byte, stop int64) Tail {
	t.Helper()
	mem := crashfs.New()
	f, err := mem.OpenFile("seg", os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	for off := 0; off < len(file); off += SectorSize {
		sector := file[off:min(off+SectorSize, len(file))]
		if !isZero(sector) {
			if _, err := f.WriteAt(sector, int64(off)); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := f.Preallocate(int64(len(file)) + 3<<20); err != nil {
		t.Fatal(err)
	}
	f.Close()
	hd, err := OpenHandle(mem, "seg")
	if err != nil {
		t.Fatal(err)
	}
	defer hd.Close()
	if hd.Header() != h {
		t.Fatalf("header %+v, want %+v", hd.Header(), h)
	}
	tail, err := hd.Tail(stop)
	if err != nil {
		t.Fatal(err)
	}
	return tail
}
