package segment

import (
	"encoding/binary"
	"fmt"
	"io"

	"github.com/cespare/xxhash/v2"
	"github.com/gojournal/journal/internal/errs"
)

// Footer locates the record index of a sealed segment. The zero Footer
// stands for none.
type Footer struct {
	Offset int64  // where the footer frame starts (the end of the records); 0: no footer
	Next   uint64 // index after the segment's last record
	Count  int64  // number of records in the segment
	Times  Times  // when records were appended (version 3; zero before)
}

// Times are the wall-clock times, in nanoseconds since the Unix epoch
// (time.Time.UnixNano), of the first and the last write of records to a
// segment; 0 stands for unknown (a segment of an older version, one sealed
// by recovery, or one resumed after a restart whose earlier appends were
// not timed). Writers keep First <= Last.
type Times struct {
	First, Last int64
}

// Known reports whether the time of the last append is known.
func (t Times) Known() bool { return t.Last != 0 }

// Note widens t to include an append at now: a clock that went backwards
// moves neither time back, so Last never decreases within a segment.
func (t Times) Note(now int64) Times {
	if t.First == 0 {
		t.First = now
	}
	t.Last = max(t.Last, now)
	return t
}

// Valid reports whether the footer was read and checked (a segment without
// a valid footer gets the zero Footer).
func (ft Footer) Valid() bool { return ft.Offset != 0 }

// Offsets reads the offsets of the first n records from the footer's index;
// n may be Count+1, the last "offset" then being the footer's own.
func (ft Footer) Offsets(r io.ReaderAt, n int) ([]int64, error) {
	count := min(int64(n), ft.Count)
	b := make([]byte, 4*count)
	if _, err := r.ReadAt(b, ft.Offset+FrameHeader); err != nil {
		return nil, err
	}
	offs := make([]int64, 0, n)
	for i := range count {
		offs = append(offs, int64(binary.LittleEndian.Uint32(b[4*i:])))
	}
	if int64(n) > count {
		offs = append(offs, ft.Offset)
	}
	return offs, nil
}

// appendFooter appends the footer frame and trailer that seal a segment
// whose records (first index h.FirstIndex) start at offsets. off is where
// the footer goes: the end of the last record frame. A version 3 footer
// carries times after the offsets.
func appendFooter(dst []byte, h Header, off int64, offsets []uint32, times Times) []byte {
	payload := appendFooterPayload(make([]byte, 0, footerPayload(h, len(offsets))), h, offsets, times)
	return appendFooterFrame(dst, h, off, len(offsets), payload)
}

// appendFooterPayload appends a footer's payload: the record offsets and,
// from version 3, the append times.
func appendFooterPayload(dst []byte, h Header, offsets []uint32, times Times) []byte {
	for _, o := range offsets {
		dst = binary.LittleEndian.AppendUint32(dst, o)
	}
	if h.timed() {
		dst = binary.LittleEndian.AppendUint64(dst, uint64(times.First))
		dst = binary.LittleEndian.AppendUint64(dst, uint64(times.Last))
	}
	return dst
}

// appendFooterFrame appends the footer frame holding payload, for a
// segment of count records, and the trailer.
func appendFooterFrame(dst []byte, h Header, off int64, count int, payload []byte) []byte {
	dst = AppendFrame(dst, h.Salt, TypeFooter, None, h.FirstIndex+uint64(count), off, payload)
	dst = binary.LittleEndian.AppendUint64(dst, uint64(off))
	return append(dst, EndMagic...)
}

// footerPayload is the payload length of the footer of a segment with
// count records.
func footerPayload(h Header, count int) int {
	if h.timed() {
		return 4*count + TimesSize
	}
	return 4 * count
}

// SealedSize is the file size of segment h sealed with a footer at off
// indexing count records.
func (h Header) SealedSize(off int64, count int) int64 {
	return off + FrameSize(footerPayload(h, count)) + TrailerSize
}

// readFooter reads and checks the footer of a sealed segment of size bytes.
// It reads the footer in pieces, so memory stays small however many records
// the segment holds. When the file has no valid footer (not sealed, or the
// footer is damaged) it returns the zero Footer and says why, in words that
// name the footer or its trailer (for messages, as they are); err reports
// I/O errors only.
func readFooter(r io.ReaderAt, size int64, h Header) (ft Footer, reason string, err error) {
	if size < HeaderSize+FrameHeader+TrailerSize {
		return ft, "footer missing: too short to be sealed", nil
	}
	var tr [TrailerSize]byte
	if _, err := r.ReadAt(tr[:], size-TrailerSize); err != nil {
		return ft, "", err
	}
	if string(tr[8:]) != EndMagic {
		return ft, "footer missing: no trailer", nil
	}
	off := int64(binary.LittleEndian.Uint64(tr[:]))
	if off < DataStart || off > size-TrailerSize-FrameHeader || off%SectorSize != 0 {
		return ft, fmt.Sprintf("footer trailer points to offset %d", off), nil
	}
	var hdr [FrameHeader]byte
	if _, err := r.ReadAt(hdr[:], off); err != nil {
		return ft, "", err
	}
	f, n, stop := parseFrameHeader(hdr[:], off)
	count := (n - (footerPayload(h, 0))) / 4
	switch {
	case stop != StopNone:
		return ft, "footer: " + stop.String(), nil
	case f.Type != TypeFooter:
		return ft, "footer trailer does not point to a footer", nil
	case count < 0 || footerPayload(h, count) != n || h.SealedSize(off, count) != size:
		return ft, "footer length does not match the file size", nil
	case f.Index != h.FirstIndex+uint64(count):
		return ft, "footer record count does not match its index", nil
	}
	sum, err := checksumAt(r, h.Salt, hdr[8:], off+FrameHeader, int64(n))
	if err != nil {
		return ft, "", err
	}
	if sum != binary.LittleEndian.Uint64(hdr[:]) {
		return ft, "footer checksum mismatch", nil
	}
	ft = Footer{Offset: off, Next: f.Index, Count: int64(count)}
	if h.timed() {
		if ft.Times, err = readTimes(r, off+FrameHeader+4*int64(count)); err != nil {
			return Footer{}, "", err
		}
	}
	return ft, "", nil
}

// readTimes reads a version 3 footer's times at off (the checksum over
// them was checked).
func readTimes(r io.ReaderAt, off int64) (Times, error) {
	var b [TimesSize]byte
	if _, err := r.ReadAt(b[:], off); err != nil {
		return Times{}, err
	}
	return Times{First: int64(binary.LittleEndian.Uint64(b[:])), Last: int64(binary.LittleEndian.Uint64(b[8:]))}, nil
}

// checksumAt computes a frame checksum over head followed by n bytes read
// from r at off. Through a window (as Open reads every sealed segment's
// footer) it hashes the window's buffer in place: no copy, no buffer of
// its own. A file that ends early ends the sum, which then cannot match.
func checksumAt(r io.ReaderAt, salt uint64, head []byte, off, n int64) (uint64, error) {
	d := digests.Get().(*xxhash.Digest)
	defer digests.Put(d)
	d.ResetWithSeed(salt)
	d.Write(head)
	w, ok := r.(*window)
	if !ok {
		w = &window{r: r, size: off + n}
	}
	for n > 0 {
		b, err := w.at(off, min(n, readChunk)) // the buffer stays at most a chunk
		if err != nil || len(b) == 0 {
			return d.Sum64(), err
		}
		d.Write(b)
		off, n = off+int64(len(b)), n-int64(len(b))
	}
	return d.Sum64(), nil
}

// RecordSpan returns where the k-th record (0-based) of a sealed segment
// starts and how long its frame is, read from the footer's index.
func (ft Footer) RecordSpan(r io.ReaderAt, k int64) (off, size int64, err error) {
	if k < 0 || k >= ft.Count {
		return 0, 0, fmt.Errorf("segment: record %d of %d out of range", k, ft.Count)
	}
	// The last record's frame ends at the footer; the times that may
	// follow the offsets are not an offset.
	var b [8]byte
	n := 8
	if k == ft.Count-1 {
		n = 4
	}
	if _, err := r.ReadAt(b[:n], ft.Offset+FrameHeader+4*k); err != nil {
		return 0, 0, err
	}
	off = int64(binary.LittleEndian.Uint32(b[:]))
	end := ft.Offset
	if n == 8 {
		end = int64(binary.LittleEndian.Uint32(b[4:]))
	}
	return ft.span(k, off, end)
}

// span checks the footer entry of record k, which says its frame lies in
// [off, end). The footer was checked when the segment was opened; its
// entries are checked again because the file may have been damaged since.
func (ft Footer) span(k, off, end int64) (int64, int64, error) {
	if off < DataStart || off%FrameAlign != 0 || end > ft.Offset || end-off < FrameHeader {
		return 0, 0, fmt.Errorf("%w: footer entry for record %d says [%d, %d)", errs.ErrCorrupt, k, off, end)
	}
	return off, end - off, nil
}

// Index is the footer's index of a sealed segment held in memory (4 bytes
// a record), so that reads by position need not read the footer each
// time.
type Index struct {
	ft   Footer
	offs []uint32
}

// ReadIndex reads the footer's index whole.
func (ft Footer) ReadIndex(r io.ReaderAt) (Index, error) {
	b := make([]byte, 4*ft.Count)
	if _, err := r.ReadAt(b, ft.Offset+FrameHeader); err != nil {
		return Index{}, err
	}
	offs := make([]uint32, ft.Count)
	for i := range offs {
		offs[i] = binary.LittleEndian.Uint32(b[4*i:])
	}
	return Index{ft: ft, offs: offs}, nil
}

// Loaded reports whether x holds an index (the zero Index does not).
func (x Index) Loaded() bool { return x.offs != nil || x.ft.Count == 0 && x.ft.Valid() }

// RecordSpan is Footer.RecordSpan from the index in memory: the same
// answers, the same checks, no read.
func (x Index) RecordSpan(k int64) (off, size int64, err error) {
	if k < 0 || k >= int64(len(x.offs)) {
		return 0, 0, fmt.Errorf("segment: record %d of %d out of range", k, len(x.offs))
	}
	end := x.ft.Offset
	if k+1 < int64(len(x.offs)) {
		end = int64(x.offs[k+1])
	}
	return x.ft.span(k, int64(x.offs[k]), end)
}

// CheckSealed checks a sealed segment of size bytes, read through r, against
// what was recorded of it elsewhere (a clean-close manifest, see package
// recovery), h and ft, and returns the file's own header and footer. It
// judges the file as Open's walk and `wal verify` judge a sealed segment
// (a valid header, a valid footer, checksums included), so the two never
// disagree: a file holding the records the record said (h's first index to
// ft.Next) is sound even when its header or footer differ from it (another
// salt, footer offset or append times: a copy of the segment restored from
// elsewhere, or a record that is stale), and the caller takes the file's
// own. Damage, or a file holding other records, gives a *CorruptionError
// naming path; a header that is not this format's (foreign, or a newer
// version) gives ErrFormat, as when Open reads it; other errors are I/O
// errors.
func CheckSealed(r io.ReaderAt, path string, size int64, h Header, ft Footer) (Header, Footer, error) {
	corrupt := func(off int64, reason string) (Header, Footer, error) {
		return Header{}, Footer{}, &errs.CorruptionError{Path: path, Offset: off, Reason: reason}
	}
	var head [HeaderSize]byte
	if size < HeaderSize {
		return corrupt(0, fmt.Sprintf("sealed segment of %d bytes is shorter than its header", size))
	}
	if _, err := r.ReadAt(head[:], 0); err != nil {
		return Header{}, Footer{}, fmt.Errorf("journal: read %s: %w", path, err)
	}
	got, err := decodeHeader(head[:])
	switch {
	case err != nil:
		return Header{}, Footer{}, headerError(path, err)
	case got.FirstIndex != h.FirstIndex:
		return corrupt(0, fmt.Sprintf("header names first index %d, not %d, the one recorded at close", got.FirstIndex, h.FirstIndex))
	}
	found, why, err := readFooter(r, size, got)
	switch {
	case err != nil:
		return Header{}, Footer{}, fmt.Errorf("journal: read %s: %w", path, err)
	case !found.Valid():
		return corrupt(ft.Offset, why)
	case found.Next != ft.Next:
		return corrupt(found.Offset, fmt.Sprintf("footer ends the segment before index %d, not %d as recorded at close: segments missing or overlapping",
			found.Next, ft.Next))
	}
	return got, found, nil
}
