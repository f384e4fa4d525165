package segment

import (
	"bytes"
	"encoding/binary"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gojournal/journal/internal/errs"
	"github.com/gojournal/journal/vfs"
)

func TestFooterRoundTrip(t *testing.T) {
	tests := []struct {
		name  string
		build func(b *segmentBuilder)
	}{
		{"NoRecords", func(b *segmentBuilder) {}},
		{"OneRecord", func(b *segmentBuilder) { b.record("hello") }},
		{"EmptyRecords", func(b *segmentBuilder) { b.record("").record("").record("") }},
		{"BatchesAndRecordsInSeveralWrites", func(b *segmentBuilder) {
			b.record("a").endWrite().batch("b1").batch("b2").record("b3").endWrite().record("c")
		}},
		{"CompressedRecords", func(b *segmentBuilder) {
			b.add(TypeRecord, S2, compressible(10_000)).add(TypeBatch, Zstd, compressible(20_000)).add(TypeRecord, None, []byte("x"))
		}},
		{"LargeRecord", func(b *segmentBuilder) {
			b.record("a").add(TypeRecord, None, compressible(2<<20)).endWrite().record("c")
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := newSegmentBuilder(first, testSalt)
			tt.build(b)
			file := b.sealed()
			r, size := bytes.NewReader(file), int64(len(file))
			if size != b.h.SealedSize(b.footerAt(), len(b.starts)) {
				t.Fatalf("sealed file is %d bytes, SealedSize says %d", size, b.h.SealedSize(b.footerAt(), len(b.starts)))
			}
			ft, reason, err := readFooter(r, size, b.h)
			if err != nil || !ft.Valid() || reason != "" {
				t.Fatalf("readFooter: %q, %v", reason, err)
			}
			want := Footer{Offset: b.footerAt(), Next: b.next, Count: int64(len(b.starts))}
			if ft != want {
				t.Fatalf("readFooter = %+v, want %+v", ft, want)
			}
			for k := range ft.Count {
				off, n, err := ft.RecordSpan(r, k)
				wantOff, wantN := b.span(int(k))
				if err != nil || off != wantOff || n != wantN {
					t.Fatalf("RecordSpan(%d) = %d, %d, %v; want %d, %d", k, off, n, err, wantOff, wantN)
				}
				rec, err := ReadRecord(r, "seg", b.h, off, n, first+uint64(k))
				if err != nil || !bytes.Equal(rec, b.records[k]) {
					t.Fatalf("ReadRecord(%d) = %.20q, %v; want %.20q", k, rec, err, b.records[k])
				}
			}
			for _, k := range []int64{-1, ft.Count} {
				if _, _, err := ft.RecordSpan(r, k); err == nil {
					t.Errorf("RecordSpan(%d) of %d records: no error", k, ft.Count)
				}
			}
		})
	}
}

func TestReadFooterReportsDamageAsReason(t *testing.T) {
	b := newSegmentBuilder(first, testSalt).record("a").record("b").record("c")
	footerAt := b.footerAt()
	tests := []struct {
		name       string
		mutate     func(file []byte) []byte
		wantReason string
	}{
		{"OpenSegmentHasNoTrailer", func(file []byte) []byte { return b.bytes() }, "no trailer"},
		{"HeaderOnlyIsTooShort", func(file []byte) []byte { return file[:HeaderSize] }, "too short to be sealed"},
		{"EndMagicDamaged", func(file []byte) []byte { file[len(file)-1] ^= 1; return file }, "no trailer"},
		{"LastByteCutOff", func(file []byte) []byte { return file[:len(file)-1] }, "no trailer"},
		{"ZerosAfterTrailer", func(file []byte) []byte { return append(file, make([]byte, 64)...) }, "no trailer"},
		{"TrailerOffsetNotOnASector", setTrailerOffset(footerAt - 8), "trailer points to offset"},
		{"TrailerOffsetInsideHeader", setTrailerOffset(8), "trailer points to offset 8"},
		{"TrailerOffsetInHeaderSector", setTrailerOffset(0), "trailer points to offset 0"},
		{"TrailerOffsetPastTheEnd", setTrailerOffset(1 << 40), "trailer points to offset"},
		{"TrailerPointsAtARecord", setTrailerOffset(DataStart), "trailer does not point to a footer"},
		{"FooterTypeZeroed", setFooterByte(footerAt, 28, 0), "footer: bad frame type"},
		{"FooterCompressed", setFooterByte(footerAt, 29, byte(S2)), "footer: bad codec"},
		{"FooterSyncedPastItself", setFooterUint64(footerAt, 16, uint64(footerAt)+8), "footer: synced offset"},
		{"FooterLengthNotAMultipleOfFour", setFooterUint32(footerAt, 24, 11), "footer length does not match the file size"},
		{"FooterLengthDisagreesWithFileSize", setFooterUint32(footerAt, 24, 8), "footer length does not match the file size"},
		{"FooterIndexDisagreesWithCount", setFooterUint64(footerAt, 8, first+4), "footer record count does not match its index"},
		{"FooterPayloadBitFlipped", func(file []byte) []byte { file[footerAt+FrameHeader+5] ^= 0x20; return file }, "footer checksum mismatch"},
		{"FooterChecksumBitFlipped", func(file []byte) []byte { file[footerAt] ^= 0x20; return file }, "footer checksum mismatch"},
		{"FooterFromAnotherSegment", func(file []byte) []byte {
			other := newSegmentBuilder(first, testSalt+1).record("a").record("b").record("c").sealed()
			return append(file[:footerAt], other[footerAt:]...)
		}, "footer checksum mismatch"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			file := tt.mutate(b.sealed())
			ft, reason, err := readFooter(bytes.NewReader(file), int64(len(file)), b.h)
			if err != nil {
				t.Fatalf("readFooter error %v; damage must be a reason, not an error", err)
			}
			if ft.Valid() || ft != (Footer{}) {
				t.Fatalf("readFooter = %+v for a damaged footer, want the zero Footer", ft)
			}
			if !strings.Contains(reason, tt.wantReason) || reason == "" {
				t.Fatalf("readFooter reason %q, want %q", reason, tt.wantReason)
			}
		})
	}
}

func setTrailerOffset(off int64) func([]byte) []byte {
	return func(file []byte) []byte {
		binary.LittleEndian.PutUint64(file[len(file)-TrailerSize:], uint64(off))
		return file
	}
}

func setFooterByte(footerAt int64, i int, v byte) func([]byte) []byte {
	return func(file []byte) []byte {
		file[footerAt+int64(i)] = v
		resealFrame(file[footerAt:], testSalt)
		return file
	}
}

func setFooterUint32(footerAt int64, i int, v uint32) func([]byte) []byte {
	return func(file []byte) []byte {
		binary.LittleEndian.PutUint32(file[footerAt+int64(i):], v)
		resealFrame(file[footerAt:], testSalt)
		return file
	}
}

func setFooterUint64(footerAt int64, i int, v uint64) func([]byte) []byte {
	return func(file []byte) []byte {
		binary.LittleEndian.PutUint64(file[footerAt+int64(i):], v)
		resealFrame(file[footerAt:], testSalt)
		return file
	}
}

func TestReadRecordRejects(t *testing.T) {
	b := newSegmentBuilder(first, testSalt).record("a").add(TypeRecord, S2, compressible(3000)).endWrite().record("c")
	const footer = 3 // number of the footer among the frames (0-based)
	span := func(k int) (int64, int64) {
		if k == footer {
			return b.footerAt(), FrameSize(footerPayload(b.h, footer))
		}
		return b.span(k)
	}
	tests := []struct {
		name       string
		mutate     func(file []byte) []byte
		frame      int   // which frame's span to read (0-based)
		size       int64 // overrides the span's size when not 0
		index      uint64
		wantReason string
	}{
		{name: "WrongIndex", index: first + 1, wantReason: "frame carries index 100"},
		{name: "DamagedFrame", mutate: func(file []byte) []byte { file[b.frameStart(1)+FrameHeader] ^= 1; return file }, index: first, wantReason: "checksum mismatch"},
		{name: "FooterIsNotARecord", frame: footer, index: first + 3, wantReason: "not a record frame"},
		{name: "SizeShorterThanAFrameHeader", size: FrameHeader - 8, index: first, wantReason: "frame size 24 out of range"},
		{name: "SizeOverTheLargestFrameAndPadding", size: FrameSize(maxPayload) + SectorSize + 8, index: first, wantReason: "out of range"},
		{name: "SizeShorterThanTheFrame", size: FrameHeader, index: first, wantReason: "truncated frame payload"},
		{name: "UndecodablePayload", mutate: func(file []byte) []byte {
			// Valid checksum, but the s2 block claims another length.
			f := file[b.frameStart(2):]
			f[FrameHeader+4] ^= 0x01
			resealFrame(f, testSalt)
			return file
		}, frame: 1, index: first + 1, wantReason: "s2 payload"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			file := b.sealed()
			if tt.mutate != nil {
				file = tt.mutate(file)
			}
			off, size := span(tt.frame)
			if tt.size != 0 {
				size = tt.size
			}
			rec, err := ReadRecord(bytes.NewReader(file), "seg.wal", b.h, off, size, tt.index)
			var ce *errs.CorruptionError
			if !errors.As(err, &ce) || !errors.Is(err, errs.ErrCorrupt) {
				t.Fatalf("ReadRecord = %.40q, %v; want a *errs.CorruptionError", rec, err)
			}
			if ce.Path != "seg.wal" || ce.Offset != off || ce.Index != tt.index || !strings.Contains(ce.Reason, tt.wantReason) {
				t.Fatalf("errs.CorruptionError %+v, want seg.wal at %d, index %d, reason %q", ce, off, tt.index, tt.wantReason)
			}
		})
	}
}

// A segment written in sector-padded writes and sealed through the real
// file system reads back through it.
func TestSealOnDisk(t *testing.T) {
	dir := t.TempDir()
	f, h, err := Create(vfs.Default, dir, 7, 1<<16)
	if err != nil {
		t.Fatal(err)
	}
	var offsets []int64
	records := []string{"alpha", "beta", strings.Repeat("gamma", 1000)}
	end := int64(DataStart)
	for i, rec := range records {
		// One write per record, padded to a sector boundary.
		offsets = append(offsets, end)
		c := Codec(i % 3)
		buf := AppendFrame(nil, h.Salt, TypeRecord, c, 7+uint64(i), end, Compress(c, nil, []byte(rec)))
		buf = append(buf, make([]byte, AlignSector(end+int64(len(buf)))-end-int64(len(buf)))...)
		if _, err := f.WriteAt(buf, end); err != nil {
			t.Fatal(err)
		}
		end += int64(len(buf))
	}
	times := Times{First: 1767225600e9, Last: 1767225601e9}
	ft, err := Seal(f, h, end, offsets, times)
	if err != nil {
		t.Fatal(err)
	}
	if want := (Footer{Offset: end, Next: 10, Count: 3, Times: times}); ft != want {
		t.Fatalf("Seal = %+v, want %+v", ft, want)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}

	f, err = vfs.Default.OpenFile(filepath.Join(dir, Name(7)), os.O_RDONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	size, err := f.Size()
	if err != nil || size != h.SealedSize(end, 3) {
		t.Fatalf("sealed file is %d bytes (%v), want %d: Seal trims the preallocated space", size, err, h.SealedSize(end, 3))
	}
	got, reason, err := readFooter(f, size, h)
	if err != nil || !got.Valid() || got != ft {
		t.Fatalf("readFooter = %+v, %q, %v; want %+v", got, reason, err, ft)
	}
	for k := range ft.Count {
		off, n, err := ft.RecordSpan(f, k)
		if err != nil {
			t.Fatal(err)
		}
		rec, err := ReadRecord(f, f.Name(), h, off, n, 7+uint64(k))
		if err != nil || string(rec) != records[k] {
			t.Fatalf("record %d = %.20q, %v", 7+k, rec, err)
		}
	}
	sc := newScanner(f, size, h)
	n := 0
	for sc.Next() {
		n++
	}
	if n != 3 || !sc.Sealed() || sc.Err() != nil {
		t.Fatalf("scan read %d records, sealed %v, err %v, stop %s", n, sc.Sealed(), sc.Err(), sc.Why())
	}
}

// TruncateBack seals a segment at the sector boundary after the last record
// it keeps; what lies between is ignored.
func TestSealAfterFewerRecordsIgnoresTheRest(t *testing.T) {
	dir := t.TempDir()
	f, h, err := Create(vfs.Default, dir, 1, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	b := &segmentBuilder{h: h, next: 1, synced: DataStart}
	b.buf = append(appendHeader(nil, h), make([]byte, DataStart-HeaderSize)...)
	b.record("keep 1").record("keep 2").record("drop 3").record("drop 4").endWrite()
	if _, err := f.WriteAt(b.buf, 0); err != nil {
		t.Fatal(err)
	}
	at := AlignSector(b.frameStart(3))
	ft, err := Seal(f, h, at, []int64{b.frameStart(1), b.frameStart(2)}, Times{First: 1, Last: 2})
	if err != nil {
		t.Fatal(err)
	}
	size, _ := f.Size()
	got, reason, err := readFooter(f, size, h)
	if err != nil || !got.Valid() || got != ft || ft.Next != 3 {
		t.Fatalf("readFooter = %+v, %q, %v; Seal returned %+v", got, reason, err, ft)
	}
	for k, want := range []string{"keep 1", "keep 2"} {
		off, n, _ := ft.RecordSpan(f, int64(k))
		if rec, err := ReadRecord(f, f.Name(), h, off, n, uint64(k+1)); err != nil || string(rec) != want {
			t.Fatalf("record %d = %q, %v; want %q", k+1, rec, err, want)
		}
	}
}

// A segment is sealed in its header's version: a version 2 segment (one
// an older build wrote and this build resumed) gets a footer without
// times that a version 2 reader accepts; a version 3 one keeps its times.
func TestSealFollowsTheHeaderVersion(t *testing.T) {
	times := Times{First: 100, Last: 200}
	for _, v := range []uint32{1, 2, 3} {
		b := newSegmentBuilder(first, testSalt)
		b.h.Version = v
		b.buf = append(appendHeader(nil, b.h), b.buf[HeaderSize:]...)
		b.times = times
		file := b.record("a").record("b").sealed()
		wantTimes := times
		if v < 3 {
			wantTimes = Times{}
			if want := b.footerAt() + FrameSize(8) + TrailerSize; int64(len(file)) != want {
				t.Fatalf("version %d: sealed file is %d bytes, want %d (no times)", v, len(file), want)
			}
		}
		h, err := decodeHeader(file)
		if err != nil || h.Version != v {
			t.Fatalf("version %d: decodeHeader = %+v, %v", v, h, err)
		}
		ft, why, err := readFooter(bytes.NewReader(file), int64(len(file)), h)
		if err != nil || ft.Count != 2 || ft.Times != wantTimes {
			t.Fatalf("version %d: readFooter = %+v, %q, %v; want 2 records, times %+v", v, ft, why, err, wantTimes)
		}
		// A footer read with the wrong version's layout is no footer.
		other := h
		other.Version = map[uint32]uint32{1: 3, 2: 3, 3: 2}[v]
		if ft, _, _ := readFooter(bytes.NewReader(file), int64(len(file)), other); ft.Valid() {
			t.Fatalf("version %d footer read as version %d: %+v", v, other.Version, ft)
		}
	}
}

// Times.Note never moves the last append back, whatever the clock does,
// and keeps First <= Last.
func TestTimesNoteWithAClockGoingBackwards(t *testing.T) {
	var ts Times
	for _, now := range []int64{500, 700, 300, 900, 100} {
		ts = ts.Note(now)
	}
	if ts != (Times{First: 500, Last: 900}) {
		t.Fatalf("Times = %+v, want first 500, last 900", ts)
	}
	if ts := (Times{}).Note(42); ts != (Times{First: 42, Last: 42}) || !ts.Known() {
		t.Fatalf("first note: %+v", ts)
	}
}

// A footer larger than a read chunk (300,000 records: 1.2 MiB of offsets)
// is checked in pieces through a Handle's window; damage in its last
// piece fails the checksum.
func TestLargeFooterChecksum(t *testing.T) {
	dir := t.TempDir()
	f, h, err := Create(vfs.Default, dir, 1, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	const count = 300_000
	offsets := make([]int64, count)
	for i := range offsets {
		offsets[i] = DataStart + int64(i)*FrameAlign*4 // never read: only the footer is
	}
	at := AlignSector(offsets[count-1] + FrameAlign*4)
	ft, err := Seal(f, h, at, offsets, Times{})
	if err != nil {
		t.Fatal(err)
	}
	if 4*count <= readChunk {
		t.Fatalf("footer of %d bytes fits one read chunk (%d): the test needs more", 4*count, readChunk)
	}
	footer := func() (Footer, string) {
		t.Helper()
		hd, err := OpenHandle(vfs.Default, filepath.Join(dir, Name(1)))
		if err != nil {
			t.Fatal(err)
		}
		defer hd.Close()
		got, why, err := hd.Footer()
		if err != nil {
			t.Fatal(err)
		}
		return got, why
	}
	if got, why := footer(); got != ft {
		t.Fatalf("Footer = %+v (%s), want %+v", got, why, ft)
	}
	if _, err := f.WriteAt([]byte{0xff}, ft.Offset+FrameHeader+4*(count-2)); err != nil {
		t.Fatal(err)
	}
	if got, why := footer(); got.Valid() || why != "footer checksum mismatch" {
		t.Fatalf("Footer with its last offset damaged = %+v, %q; want none, checksum mismatch", got, why)
	}
}
