package segment

import (
	"errors"
	"fmt"
	"io"
	"os"
	"sync"

	"github.com/gojournal/journal/internal/errs"
	"github.com/gojournal/journal/vfs"
)

// Handle is one segment file opened for reading: its header, size and
// footer, its records by position, scans of its frames. It owns one read
// buffer, shared by everything it reads, so examining a segment costs one
// buffer however it is examined. A Handle is not safe for concurrent use.
type Handle struct {
	f    vfs.File
	path string
	h    Header
	w    window
	held bool // w.buf came from buffers
}

// buffers recycles the read buffers of Handles. Each grows to what the
// reads made through it needed (a chunk for a scan, the footer for the
// examination of a sealed segment), so examining sealed segments never
// allocates a whole chunk.
var buffers = sync.Pool{New: func() any { return new([]byte) }}

// OpenHandle opens the segment at path read-only and checks its header. A
// file too short to hold a header, or whose header is damaged, gives a
// *CorruptionError; a foreign file or an unknown version gives ErrFormat.
// Other errors are I/O errors.
func OpenHandle(fsys vfs.FS, path string) (*Handle, error) {
	f, err := fsys.OpenFile(path, os.O_RDONLY, 0)
	if err != nil {
		return nil, fmt.Errorf("journal: open segment: %w", err)
	}
	size, err := f.Size()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("journal: stat %s: %w", path, err)
	}
	s := &Handle{f: f, path: path, w: window{r: f, size: size, data: f.Data}}
	// Only the header: a walk that needs nothing else of a sealed segment
	// reads its footer next, at the other end.
	head, err := s.win().exactly(0, HeaderSize)
	if err == nil {
		s.h, err = decodeHeader(head)
		err = headerError(path, err)
	}
	if err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}

// win is the Handle's window, with a read buffer (see Idle).
func (s *Handle) win() *window {
	if !s.held {
		s.w.buf, s.held = (*buffers.Get().(*[]byte))[:0], true
	}
	return &s.w
}

// Idle returns the read buffer to the pool until the Handle reads again,
// so that a walk holding many Handles open between uses holds one buffer,
// not one each.
func (s *Handle) Idle() {
	if !s.held {
		return
	}
	buf := s.w.buf[:0]
	s.w.buf, s.w.off, s.held = nil, 0, false
	if cap(buf) <= readChunk { // not one grown for a huge record
		buffers.Put(&buf)
	}
}

// Detach ends the Handle and returns its file, open, for the caller to
// read and close: a log keeps the file of each sealed segment that
// recovery examined rather than opening it again.
func (s *Handle) Detach() vfs.File {
	s.Idle()
	f := s.f
	s.f = nil
	return f
}

// headerError places a header problem in its file.
func headerError(path string, err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, errs.ErrFormat):
		return fmt.Errorf("%s: %w", path, err)
	case errors.Is(err, errs.ErrCorrupt):
		return &errs.CorruptionError{Path: path, Reason: err.Error()[len(errs.ErrCorrupt.Error())+2:]}
	}
	return fmt.Errorf("journal: read %s: %w", path, err)
}

// Close releases the file and the buffer.
func (s *Handle) Close() error {
	if s.f == nil {
		return nil
	}
	s.Idle()
	err := s.f.Close()
	s.f = nil
	return err
}

// Path is the file's path.
func (s *Handle) Path() string { return s.path }

// Header is the segment's header.
func (s *Handle) Header() Header { return s.h }

// Size is the file's size when it was opened (or last refreshed).
func (s *Handle) Size() int64 { return s.w.size }

// Refresh forgets what was read and takes the file's size again, so that
// the next reads see what another process wrote since.
func (s *Handle) Refresh() error {
	size, err := s.f.Size()
	if err != nil {
		return fmt.Errorf("journal: stat %s: %w", s.path, err)
	}
	s.w.size, s.w.off, s.w.buf = size, 0, s.w.buf[:0]
	return nil
}

// Footer reads and checks the footer (see readFooter).
func (s *Handle) Footer() (Footer, string, error) {
	ft, why, err := readFooter(s.win(), s.w.size, s.h)
	if err != nil {
		err = fmt.Errorf("journal: read %s: %w", s.path, err)
	}
	return ft, why, err
}

// Scan scans the frames from the first.
func (s *Handle) Scan() *Scanner { return s.ScanFrom(DataStart, s.h.FirstIndex) }

// ScanFrom scans from the frame of record index at off.
func (s *Handle) ScanFrom(off int64, index uint64) *Scanner {
	return scannerAt(s.win(), s.h, off, index)
}

// Tail examines the bytes after a scan stopped at from (see scanTail).
func (s *Handle) Tail(from int64) (Tail, error) {
	t, err := tailIn(s.win(), s.h, from)
	if err != nil {
		err = fmt.Errorf("journal: read %s: %w", s.path, err)
	}
	return t, err
}

// Find returns the first frame at or after from (at a multiple of
// FrameAlign) that passes checks 1 to 8 and that accept takes.
func (s *Handle) Find(from int64, accept func(Frame) bool) (Frame, bool, error) {
	f, ok, _, err := findFrame(s.win(), s.h, from, accept)
	if err != nil {
		err = fmt.Errorf("journal: read %s: %w", s.path, err)
	}
	return f, ok, err
}

// Record reads record k (0-based) of a sealed segment through its footer,
// checks its frame and returns the frame and the record, decompressed.
func (s *Handle) Record(ft Footer, k int64) (Frame, []byte, error) {
	off, size, err := ft.RecordSpan(s.win(), k)
	if err != nil {
		if errors.Is(err, errs.ErrCorrupt) || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			return Frame{Offset: ft.Offset}, nil, &errs.CorruptionError{Path: s.path, Offset: ft.Offset,
				Index: s.h.FirstIndex + uint64(k), Reason: fmt.Sprintf("footer entry for record %d is damaged", s.h.FirstIndex+uint64(k))}
		}
		return Frame{}, nil, fmt.Errorf("journal: read %s: %w", s.path, err)
	}
	f, rec, err := readRecord(s.win(), s.path, s.h, off, size, s.h.FirstIndex+uint64(k))
	return f, rec, err
}

// Offsets returns the offsets of the first n records of a sealed segment
// (n may be one more than it holds: the footer's offset ends the list).
func (s *Handle) Offsets(ft Footer, n int) ([]int64, error) {
	offs, err := ft.Offsets(s.win(), n)
	if err != nil {
		return nil, fmt.Errorf("journal: read index of %s: %w", s.path, err)
	}
	return offs, nil
}

// ReadAt reads from the file through the Handle's buffer.
func (s *Handle) ReadAt(p []byte, off int64) (int, error) { return s.win().ReadAt(p, off) }
