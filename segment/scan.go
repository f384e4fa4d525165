package segment

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"

	"github.com/gojournal/journal/internal/errs"
)

// readChunk is how much a Scanner reads at a time.
const readChunk = 1 << 20

// window reads a file in large pieces and hands out slices of it.
type window struct {
	r    io.ReaderAt
	size int64
	buf  []byte
	off  int64 // file offset of buf[0]
	// data, when set, says where the file may hold data (vfs.File.Data),
	// so that a search can step over space never written.
	data func(off int64) (start, end int64, known bool, err error)
}

// at returns up to n bytes from offset off (fewer at the end of the file).
// The slice is valid until the next call.
func (w *window) at(off, n int64) ([]byte, error) { return w.fill(off, n, readChunk) }

// exactly is at without reading ahead: it reads no byte past off+n.
func (w *window) exactly(off, n int64) ([]byte, error) { return w.fill(off, n, n) }

// fill returns up to n bytes from off, reading at least ahead bytes when it
// must read.
func (w *window) fill(off, n, ahead int64) ([]byte, error) {
	n = min(n, w.size-off)
	if n <= 0 {
		return nil, nil
	}
	if off >= w.off && off+n <= w.off+int64(len(w.buf)) {
		return w.buf[off-w.off : off-w.off+n], nil
	}
	want := min(max(n, ahead), w.size-off)
	buf := w.buf
	if int64(cap(buf)) < want {
		buf = make([]byte, want)
	}
	buf = buf[:want]
	// What the buffer holds from off on is kept, not read again: a frame
	// crossing the end of one read costs no second read of its start, so
	// a scan reads each byte once.
	keep := 0
	if off >= w.off && off < w.off+int64(len(w.buf)) {
		keep = copy(buf, w.buf[off-w.off:])
	}
	got, err := w.r.ReadAt(buf[keep:], off+int64(keep))
	if err != nil && err != io.EOF {
		w.buf = buf[:0]
		return nil, err
	}
	// A file shorter than its stated size ends the data early, never
	// with bytes left over from an earlier read of other offsets.
	w.buf, w.off = buf[:keep+got], off
	return w.buf[:min(n, int64(keep+got))], nil
}

// ReadAt serves reads through the window's buffer; reads past its size
// end with io.EOF, as a file of that size would.
func (w *window) ReadAt(p []byte, off int64) (int, error) {
	b, err := w.at(off, int64(len(p)))
	n := copy(p, b)
	if err == nil && n < len(p) {
		err = io.EOF
	}
	return n, err
}

// Scanner reads the frames of one segment in order, checking each: its
// checksum, that its index is the next one, that its fields are in range.
// It stops at the first frame that is not valid, at the end of the file, or
// after a valid footer.
type Scanner struct {
	w     *window
	h     Header
	off   int64
	next  uint64
	frame Frame
	stop  Stop
	bad   Frame // the fields of the frame that stopped the scan, as read
	err   error
	// open is set while valid frames of an unfinished batch have been read
	// after the last commit point.
	open bool

	// The last point at which every batch begun was complete, and the
	// last such point that is sector-aligned.
	commitOff, alignedOff   int64
	commitNext, alignedNext uint64
}

// newScanner scans the segment with header h whose file (size bytes) r
// reads.
func newScanner(r io.ReaderAt, size int64, h Header) *Scanner {
	return NewScannerAt(r, size, h, DataStart, h.FirstIndex)
}

// NewScannerAt scans from the frame of record index at off, reading no
// further than end. Readers use it to resume mid-segment.
func NewScannerAt(r io.ReaderAt, end int64, h Header, off int64, index uint64) *Scanner {
	return scannerAt(&window{r: r, size: end}, h, off, index)
}

func scannerAt(w *window, h Header, off int64, index uint64) *Scanner {
	return &Scanner{
		w: w, h: h, off: off, next: index,
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
	f, stop := parseFrame(full, s.h.Salt, off)
	return stop == StopNone && f.Index == s.next
}

// commit marks s.off as a point where every batch begun is complete.
func (s *Scanner) commit() {
	s.open = false
	s.commitOff, s.commitNext = s.off, s.next
	if s.off%SectorSize == 0 {
		s.alignedOff, s.alignedNext = s.off, s.next
	}
}

// Next advances to the next valid record frame. It returns false at the end
// of the valid data: see Stop, Err and Sealed for why.
func (s *Scanner) Next() bool {
	for {
		if s.err != nil || s.stop != StopNone {
			return false
		}
		// Padding first: a write whose frames are all there is complete
		// even where the end of the file cuts its padding short.
		if s.skipPadding() {
			continue
		}
		f, ok := s.frameHere()
		if !ok {
			return false
		}
		s.off += f.Size()
		switch f.Type {
		case TypeFooter:
			s.stop = StopFooter
			return false
		case TypeSync:
			s.commit()
			continue
		}
		s.frame = f
		s.next++
		if f.Type == TypeRecord {
			s.commit()
		} else {
			s.open = true
		}
		return true
	}
}

// frameHere checks the frame at s.off, setting the stop when it is not
// the valid frame expected there.
func (s *Scanner) frameHere() (Frame, bool) {
	if s.off >= s.w.size {
		s.stop = StopEOF
		return Frame{}, false
	}
	head, err := s.w.at(s.off, FrameHeader)
	if err != nil {
		s.err = err
		return Frame{}, false
	}
	if isZero(head) {
		s.stop = StopZeros
		return Frame{}, false
	}
	f, stop := parseFrame(head, s.h.Salt, s.off)
	if stop == StopShortPayload {
		full, err := s.w.at(s.off, FrameHeader+int64(len32(head)))
		if err != nil {
			s.err = err
			return Frame{}, false
		}
		f, stop = parseFrame(full, s.h.Salt, s.off)
	}
	switch {
	case stop != StopNone:
		s.stop = stop
	case f.Index != s.next:
		s.stop = StopIndex
	case f.Type >= TypeFooter && s.open:
		// A footer or sync frame never interrupts a batch.
		s.stop = StopType
	default:
		return f, true
	}
	s.bad = f
	return Frame{}, false
}

// Frame is the record frame Next moved to. Its Data is valid until the next
// call to Next.
func (s *Scanner) Frame() Frame { return s.frame }

// Err is the I/O error that stopped the scan, if any.
func (s *Scanner) Err() error { return s.err }

// Stop says why the scan stopped (StopNone while it has not).
func (s *Scanner) Stop() Stop { return s.stop }

// Why describes the stop in words, for messages.
func (s *Scanner) Why() string {
	switch s.stop {
	case StopIndex:
		return fmt.Sprintf("frame carries index %d, expected %d", s.bad.Index, s.next)
	case StopType:
		return fmt.Sprintf("%s %d", s.stop, s.bad.Type)
	case StopCodec:
		return fmt.Sprintf("%s %d", s.stop, s.bad.Codec)
	case StopSynced:
		return fmt.Sprintf("synced offset %d out of range", s.bad.Synced)
	}
	return s.stop.String()
}

// Offset is where the scan stopped: the first byte not part of a valid
// frame (after a footer: the end of the footer frame).
func (s *Scanner) Offset() int64 { return s.off }

// Sealed reports whether the scan ended at a valid footer.
func (s *Scanner) Sealed() bool { return s.stop == StopFooter }

// Committed returns the end of the last complete batch and the index that
// follows it. A batch whose closing frame is missing ends after this point.
func (s *Scanner) Committed() (off int64, next uint64) { return s.commitOff, s.commitNext }

// Unfinished reports whether valid frames of a batch whose closing frame is
// missing were read after the last commit point.
func (s *Scanner) Unfinished() bool { return s.open }

// Cut returns where the valid data ends for writing: a sector boundary
// after which nothing is kept, and the index that follows the records
// kept. Every record of a complete batch is kept, and the boundary is the
// one after it: bytes between a complete batch and that boundary are write
// padding, whatever they hold, so junk there never costs a record. Only
// when valid frames of an unfinished batch lie in that padding (a torn
// write that held more than one batch) is the cut made at the last
// sector-aligned commit point instead, dropping the torn write whole, so
// that no stray frame of the unfinished batch can precede the next write.
// Cutting at the returned boundary never touches a sector that holds data
// kept.
func (s *Scanner) Cut() (off int64, next uint64) {
	if s.open {
		return s.alignedOff, s.alignedNext
	}
	return alignSector(s.commitOff), s.commitNext
}

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

// scanTail examines [from, size) of a segment after a scan stopped at from.
// It looks at every aligned offset for a valid frame of this segment, so it
// can tell a torn tail (junk or frames of the same unfinished write) from
// damage followed by durable data.
func scanTail(r io.ReaderAt, size int64, h Header, from int64) (Tail, error) {
	return tailIn(&window{r: r, size: size}, h, from)
}

func tailIn(w *window, h Header, from int64) (Tail, error) {
	t := Tail{End: from}
	f, found, end, err := findFrame(w, h, from, func(f Frame) bool { return f.Synced > from })
	t.End = max(end, from)
	if found {
		t.Durable = &f
	}
	return t, err
}

// findFrame tries every multiple of FrameAlign in [from, size) for a frame
// of this segment that passes checks 1 to 8 and that accept takes, and
// returns the first. end is just past the last non-zero byte seen (as far
// as the search went). Where the window knows where data lies, it reads
// only that: space never written reads as zeros, where no frame starts
// (its checksum would be zero) and which moves no end.
func findFrame(w *window, h Header, from int64, accept func(Frame) bool) (f Frame, found bool, end int64, err error) {
	r, size := w.r, w.size
	end = from
	for next := from; next < size; {
		p, n, err := w.nextData(next)
		if err != nil || p >= size {
			return f, false, end, err
		}
		chunk, err := w.exactly(p, n)
		if err != nil {
			return f, false, end, err
		}
		if len(chunk) == 0 {
			break // the file is shorter than its stated size
		}
		next = p + int64(len(chunk))
		if bytes.Equal(chunk, zeroChunk[:len(chunk)]) {
			continue // preallocated space: nothing to look at
		}
		end = p + int64(lastNonZero(chunk)) + 1
		// The chunk is copied: validFrameAt may read past it, and the
		// window's buffer must not change under the search.
		chunk = append([]byte(nil), chunk...)
		for q := alignUp(p); q < p+int64(len(chunk)); q += FrameAlign {
			if rest := chunk[q-p:]; len(rest) >= 8 && binary.LittleEndian.Uint64(rest) == 0 {
				continue // no frame has a zero checksum
			}
			g, ok, err := validFrameAt(r, chunk[q-p:], size, h, q)
			if err != nil {
				return f, false, end, err
			}
			if ok && accept(g) {
				g.Data = append([]byte(nil), g.Data...)
				return g, true, end, nil
			}
		}
	}
	return f, false, end, nil
}

// nextData returns the first offset at or after off that may hold data and
// how much to read there: up to readChunk bytes, no further than the data
// the file system reports. Without that knowledge every byte may.
func (w *window) nextData(off int64) (start, n int64, err error) {
	if w.data == nil {
		return off, readChunk, nil
	}
	start, end, known, err := w.data(off)
	if err != nil || !known {
		return off, readChunk, err
	}
	start = max(start, off)
	if n = end - start; n <= 0 {
		n = readChunk // an answer that names no range: read on
	}
	return start, min(n, readChunk), nil
}

// shortIsEnd is nil for a read that ended at the end of the file (which
// ends the data) and err otherwise.
func shortIsEnd(err error) error {
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return nil
	}
	return err
}

func alignUp(off int64) int64 { return (off + FrameAlign - 1) &^ (FrameAlign - 1) }

func alignSector(off int64) int64 { return (off + SectorSize - 1) &^ (SectorSize - 1) }

// zeroChunk is compared with what scanTail reads (it stays in zero pages).
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
// b holds the bytes from off on as far as they were read. A frame that
// runs past the end of the file is not one, whether the size said so or a
// read ended early: a file shorter than its stated size ends the data
// there, as the window's reads do (a log another process has open cuts
// its newest segment's preallocated space when it seals it, and wal dump
// and wal verify failed with "read X: EOF" on a live, healthy log).
func validFrameAt(r io.ReaderAt, b []byte, size int64, h Header, off int64) (Frame, bool, error) {
	if len(b) < FrameHeader {
		var head [FrameHeader]byte
		if size-off < FrameHeader {
			return Frame{}, false, nil
		}
		if _, err := r.ReadAt(head[:], off); err != nil {
			return Frame{}, false, shortIsEnd(err)
		}
		b = head[:]
	}
	if _, n, stop := parseFrameHeader(b, off); stop != StopNone || off+FrameHeader+int64(n) > size {
		return Frame{}, false, nil
	} else if len(b) < FrameHeader+n {
		full := make([]byte, FrameHeader+n)
		if _, err := r.ReadAt(full, off); err != nil {
			return Frame{}, false, shortIsEnd(err)
		}
		b = full
	}
	f, stop := parseFrame(b, h.Salt, off)
	return f, stop == StopNone, nil
}

// ReadRecord reads and checks the record frame of the given index at off
// (size bytes, padding included) and returns the record, decompressed, in
// a slice of its own. name names the file in errors.
func ReadRecord(r io.ReaderAt, name string, h Header, off, size int64, index uint64) ([]byte, error) {
	if err := checkSpan(name, off, size, index); err != nil {
		return nil, err
	}
	buf := make([]byte, size)
	n, err := r.ReadAt(buf, off)
	if n == len(buf) && err == io.EOF {
		err = nil
	}
	_, rec, err := checkRecord(buf[:n], err, name, h, off, index)
	return rec, err
}

// readRecord is ReadRecord through a window: the record may alias the
// window's buffer (valid until its next read).
func readRecord(w *window, name string, h Header, off, size int64, index uint64) (Frame, []byte, error) {
	if err := checkSpan(name, off, size, index); err != nil {
		return Frame{Offset: off}, nil, err
	}
	b, err := w.at(off, size)
	if err == nil && int64(len(b)) < size {
		err = io.ErrUnexpectedEOF
	}
	return checkRecord(b, err, name, h, off, index)
}

func checkSpan(name string, off, size int64, index uint64) error {
	if size < FrameHeader || size > FrameSize(maxPayload)+SectorSize {
		return &errs.CorruptionError{Path: name, Offset: off, Index: index, Reason: fmt.Sprintf("frame size %d out of range", size)}
	}
	return nil
}

// checkRecord checks the record frame of index read at off into b (rerr
// is the read's error) and decompresses it.
func checkRecord(b []byte, rerr error, name string, h Header, off int64, index uint64) (Frame, []byte, error) {
	if errors.Is(rerr, io.EOF) || errors.Is(rerr, io.ErrUnexpectedEOF) {
		return Frame{Offset: off}, nil, &errs.CorruptionError{Path: name, Offset: off, Index: index, Reason: "record extends past the end of the file"}
	} else if rerr != nil {
		return Frame{Offset: off}, nil, fmt.Errorf("journal: read record %d from %s: %w", index, name, rerr)
	}
	f, stop := parseFrame(b, h.Salt, off)
	reason := ""
	switch {
	case stop != StopNone:
		reason = stop.String()
	case f.Type != TypeRecord && f.Type != TypeBatch:
		reason = "not a record frame"
	case f.Index != index:
		reason = fmt.Sprintf("frame carries index %d", f.Index)
	}
	if reason != "" {
		return f, nil, &errs.CorruptionError{Path: name, Offset: off, Index: index, Reason: reason}
	}
	rec, err := Decompress(f.Codec, f.Data)
	if err != nil {
		return f, nil, &errs.CorruptionError{Path: name, Offset: off, Index: index, Reason: err.Error()}
	}
	return f, rec, nil
}
