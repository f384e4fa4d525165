package segment

import (
	"bytes"
	"cmp"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// readChunk is how much a Scanner reads at a time.
const readChunk = 1 << 20

// window reads a file in large pieces and hands out slices of it.
type window struct {
	r    io.ReaderAt
	size int64
	buf  []byte
	off  int64 // file offset of buf[0]
}

// at returns up to n bytes from offset off (fewer at the end of the file).
// The slice is valid until the next call.
func (w *window) at(off, n int64) ([]byte, error) {
	n = min(n, w.size-off)
	if n <= 0 {
		return nil, nil
	}
	if off >= w.off && off+n <= w.off+int64(len(w.buf)) {
		return w.buf[off-w.off : off-w.off+n], nil
	}
	want := min(max(n, readChunk), w.size-off)
	if int64(cap(w.buf)) < want {
		w.buf = make([]byte, want)
	}
	got, err := w.r.ReadAt(w.buf[:want], off)
	if err != nil && err != io.EOF {
		w.buf = w.buf[:0]
		return nil, err
	}
	// A file shorter than its stated size ends the data early, never
	// with bytes left over from an earlier read.
	w.buf, w.off = w.buf[:got], off
	return w.buf[:min(n, int64(got))], nil
}

// Scanner reads the frames of one segment in order, checking each: its
// checksum, that its index is the next one, that its fields are in range.
// It stops at the first frame that is not valid, at the end of the file, or
// after a valid footer.
type Scanner struct {
	w      window
	h      Header
	off    int64
	next   uint64
	frame  Frame
	footer bool
	reason string
	err    error

	// The last point at which every batch begun was complete, and the
	// last such point that is sector-aligned.
	commitOff, alignedOff   int64
	commitNext, alignedNext uint64
}

// NewScanner scans the segment with header h whose file (size bytes) r
// reads.
func NewScanner(r io.ReaderAt, size int64, h Header) *Scanner {
	return NewScannerAt(r, size, h, DataStart, h.FirstIndex)
}

// NewScannerAt scans from the frame of record index at off, reading no
// further than end. Readers use it to resume mid-segment.
func NewScannerAt(r io.ReaderAt, end int64, h Header, off int64, index uint64) *Scanner {
	return &Scanner{
		w: window{r: r, size: end}, h: h, off: off, next: index,
		commitOff: off, commitNext: index, alignedOff: off, alignedNext: index,
	}
}

// skipPadding moves past the zeros that pad a write to the next sector
// boundary. Padding only follows a complete batch; a frame never starts with
// 8 zero bytes (its checksum), so zeros up to the boundary are padding. So
// are damaged padding bytes when the next record's frame follows them: no
// record lives there, and the records after it must not be given up.
func (s *Scanner) skipPadding() bool {
	if s.off != s.commitOff || s.off%SectorSize == 0 {
		return false
	}
	end := alignSector(s.off)
	pad, err := s.w.at(s.off, end-s.off)
	if err != nil {
		s.err = err
		return false
	}
	if !isZero(pad) && !s.nextFrameAt(end) {
		return false
	}
	s.off = end
	s.commit()
	return true
}

// nextFrameAt reports whether the frame of the next record (or the footer)
// starts at off.
func (s *Scanner) nextFrameAt(off int64) bool {
	head, err := s.w.at(off, FrameHeader)
	if err != nil || len(head) < FrameHeader {
		return false
	}
	full, err := s.w.at(off, FrameHeader+int64(len32(head)))
	if err != nil {
		return false
	}
	f, reason, _ := ParseFrame(full, s.h.Salt, off)
	return reason == "" && f.Index == s.next
}

// commit marks s.off as a point where every batch begun is complete.
func (s *Scanner) commit() {
	s.commitOff, s.commitNext = s.off, s.next
	if s.off%SectorSize == 0 {
		s.alignedOff, s.alignedNext = s.off, s.next
	}
}

// Next advances to the next valid record frame. It returns false at the end
// of the valid data: see Reason, Err and Sealed for why.
func (s *Scanner) Next() bool {
	if s.err != nil || s.reason != "" || s.footer {
		return false
	}
	// Padding first: a write whose frames are all there is complete even
	// where the end of the file cuts its padding short.
	if s.skipPadding() {
		return s.Next()
	}
	if s.off >= s.w.size {
		return false
	}
	head, err := s.w.at(s.off, FrameHeader)
	if err != nil || s.err != nil {
		s.err = cmp.Or(s.err, err)
		return false
	}
	if isZero(head) {
		s.reason = "zeroed space"
		return false
	}
	f, reason, _ := ParseFrame(head, s.h.Salt, s.off)
	if reason == "truncated frame payload" {
		full, err := s.w.at(s.off, FrameHeader+int64(len32(head)))
		if err != nil {
			s.err = err
			return false
		}
		f, reason, _ = ParseFrame(full, s.h.Salt, s.off)
	}
	switch {
	case reason != "":
		s.reason = reason
		return false
	case f.Index != s.next:
		s.reason = fmt.Sprintf("frame carries index %d, expected %d", f.Index, s.next)
		return false
	}
	s.frame = f
	s.off += f.Size()
	if f.Type == TypeFooter {
		s.footer = true
		return false
	}
	s.next++
	if f.Type == TypeRecord {
		s.commit()
	}
	return true
}

// Frame is the record frame Next moved to. Its Data is valid until the next
// call to Next.
func (s *Scanner) Frame() Frame { return s.frame }

// Err is the I/O error that stopped the scan, if any.
func (s *Scanner) Err() error { return s.err }

// Reason says why the scan stopped before the end of the file: "" at the
// end of the file or a footer, "zeroed space" at zeros, otherwise the check
// that failed at Offset.
func (s *Scanner) Reason() string { return s.reason }

// Offset is where the scan stopped: the first byte not part of a valid
// frame (after a footer: the end of the footer frame).
func (s *Scanner) Offset() int64 { return s.off }

// Sealed reports whether the scan ended at a valid footer.
func (s *Scanner) Sealed() bool { return s.footer }

// Committed returns the end of the last complete batch and the index that
// follows it. A batch whose closing frame is missing ends after this point.
func (s *Scanner) Committed() (off int64, next uint64) { return s.commitOff, s.commitNext }

// Cut returns where a torn tail is cut: the last sector boundary at which
// every batch begun was complete, and the index that follows it. Every
// write of the log starts at a sector boundary and is padded to one, so
// every completed write ends at such a point, and cutting there never
// touches a sector that holds data kept.
func (s *Scanner) Cut() (off int64, next uint64) { return s.alignedOff, s.alignedNext }

func len32(head []byte) uint32 {
	return uint32(head[24]) | uint32(head[25])<<8 | uint32(head[26])<<16 | uint32(head[27])<<24
}

func isZero(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}

// Tail describes the bytes after the point where a scan stopped.
type Tail struct {
	// End is the offset just past the last non-zero byte at or after the
	// scan's stop (equal to the stop offset when only zeros follow). When
	// Durable is set, End only reaches as far as the search went.
	End int64
	// Durable, when non-nil, is a valid frame of this segment written after
	// the stop offset had been made durable (its Synced field lies past the
	// stop). Its existence proves the damage is in data once acknowledged:
	// corruption, not a torn write.
	Durable *Frame
}

// ScanTail examines [from, size) of a segment after a scan stopped at from.
// It looks at every aligned offset for a valid frame of this segment, so it
// can tell a torn tail (junk or frames of the same unfinished write) from
// damage followed by durable data.
func ScanTail(r io.ReaderAt, size int64, h Header, from int64) (Tail, error) {
	t := Tail{End: from}
	w := window{r: r, size: size}
	for p := from; p < size; p += readChunk {
		chunk, err := w.at(p, readChunk)
		if err != nil {
			return t, err
		}
		if bytes.Equal(chunk, zeroChunk[:len(chunk)]) {
			continue // preallocated space: nothing to look at
		}
		t.End = p + int64(lastNonZero(chunk)) + 1
		for q := alignUp(p); q < p+int64(len(chunk)); q += FrameAlign {
			if rest := chunk[q-p:]; len(rest) >= 8 && binary.LittleEndian.Uint64(rest) == 0 {
				continue // no frame has a zero checksum
			}
			f, ok, err := validFrameAt(r, chunk[q-p:], size, h, q)
			if err != nil {
				return t, err
			}
			if ok && f.Synced > from {
				t.Durable = &f
				return t, nil
			}
		}
	}
	return t, nil
}

func alignUp(off int64) int64 { return (off + FrameAlign - 1) &^ (FrameAlign - 1) }

func alignSector(off int64) int64 { return (off + SectorSize - 1) &^ (SectorSize - 1) }

// zeroChunk is compared with what ScanTail reads (it stays in zero pages).
var zeroChunk [readChunk]byte

func lastNonZero(b []byte) int {
	for i := len(b) - 1; i >= 0; i-- {
		if b[i] != 0 {
			return i
		}
	}
	return -1
}

// validFrameAt reports whether a valid frame of this segment starts at off;
// b holds the bytes from off on as far as they were read.
func validFrameAt(r io.ReaderAt, b []byte, size int64, h Header, off int64) (Frame, bool, error) {
	if len(b) < FrameHeader {
		var head [FrameHeader]byte
		if size-off < FrameHeader {
			return Frame{}, false, nil
		}
		if _, err := r.ReadAt(head[:], off); err != nil {
			return Frame{}, false, err
		}
		b = head[:]
	}
	if _, n, reason := parseFrameHeader(b, off); reason != "" || off+FrameHeader+int64(n) > size {
		return Frame{}, false, nil
	} else if len(b) < FrameHeader+n {
		full := make([]byte, FrameHeader+n)
		if _, err := r.ReadAt(full, off); err != nil {
			return Frame{}, false, err
		}
		b = full
	}
	f, reason, _ := ParseFrame(b, h.Salt, off)
	return f, reason == "", nil
}

// ReadRecord reads and checks the record frame of the given index at off
// (size bytes, padding included) and returns the record, decompressed. name
// names the file in errors.
func ReadRecord(r io.ReaderAt, name string, h Header, off, size int64, index uint64) ([]byte, error) {
	if size < FrameHeader || size > FrameSize(maxPayload)+SectorSize {
		return nil, &CorruptionError{Path: name, Offset: off, Index: index, Reason: fmt.Sprintf("frame size %d out of range", size)}
	}
	buf := make([]byte, size)
	if _, err := r.ReadAt(buf, off); errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return nil, &CorruptionError{Path: name, Offset: off, Index: index, Reason: "record extends past the end of the file"}
	} else if err != nil {
		return nil, fmt.Errorf("journal: read record %d from %s: %w", index, name, err)
	}
	f, reason, _ := ParseFrame(buf, h.Salt, off)
	switch {
	case reason != "":
	case f.Type != TypeRecord && f.Type != TypeBatch:
		reason = "not a record frame"
	case f.Index != index:
		reason = fmt.Sprintf("frame carries index %d", f.Index)
	}
	if reason != "" {
		return nil, &CorruptionError{Path: name, Offset: off, Index: index, Reason: reason}
	}
	rec, err := Decompress(f.Codec, f.Data)
	if err != nil {
		return nil, &CorruptionError{Path: name, Offset: off, Index: index, Reason: err.Error()}
	}
	return rec, nil
}
