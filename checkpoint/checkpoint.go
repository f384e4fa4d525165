package checkpoint

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/cespare/xxhash/v2"
	"github.com/klauspost/compress/zstd"

	"github.com/gojournal/journal/internal/errs"
	"github.com/gojournal/journal/vfs"
)

// FileName is the name of the snapshot file inside a log directory.
const FileName = "snapshot"

// ErrNoSnapshot is returned by Load, ReadHeader and Verify when the
// directory holds no snapshot.
var ErrNoSnapshot = errors.New("journal: no snapshot")

// WriteFile atomically and durably replaces the file at path (on the
// operating system's file system) with the bytes write produces: after a
// crash at any point the file holds either its old contents or all of the
// new ones, never a mix, and once WriteFile returns nil the new contents
// survive a power cut.
//
// It takes more than writing and closing the file, because neither close
// nor a flush makes data durable: they only hand it to the kernel, which
// writes it back when it chooses. Rewriting a file in place can therefore
// leave it half old, half new, or empty. So the data goes to a temporary
// file in the same directory, whose name starts with vfs.TempPrefix (hidden,
// and recognisable as a leftover after a crash); it is fdatasync'd, then
// renamed over path, which atomically swaps the directory entry. A rename is
// itself only a change to the directory, and until the directory is fsync'd
// a power cut can undo it (or, on some file systems, leave the new name
// pointing at an empty file), so WriteFile syncs the directory before
// returning.
//
// If path exists, the replacement keeps its permission bits (set
// explicitly, since the umask could strip some of them); otherwise the file
// is created with perm less the umask (0666 is the usual choice, like
// os.Create). Owner, special bits and extended attributes are not carried
// over. On error, or if write panics, the temporary file is removed and
// path keeps its old contents. The writer given to write is buffered and
// valid only until write returns.
func WriteFile(path string, perm fs.FileMode, write func(w io.Writer) error) error {
	return vfs.WriteFile(vfs.Default, path, perm, write)
}

// WriteOptions tunes how Write stores a snapshot. The zero value stores the
// contents as they are.
type WriteOptions struct {
	// Compress stores the contents as a zstd stream (default level, 4 MiB
	// window). It pays off for text-like state; contents that are
	// already compressed or encrypted only cost CPU.
	Compress bool
}

// Write durably replaces the snapshot in dir with one covering the log up
// to and including index (at least 1, else an error matching
// wal.ErrOutOfRange): write streams the state into w and
// returns nil once it is complete. Nothing of the contents is held in
// memory beyond small buffers, so snapshots may be far larger than RAM.
//
// The snapshot is written to a temporary file and renamed over FileName
// (see WriteFile), which is Write's single commit point: until it returns
// nil the previous snapshot, if any, is the valid one, and only then may the
// caller delete the log records the new snapshot makes obsolete. If write
// returns an error, Write returns it (wrapped) and removes the temporary
// file. A crash may leave one behind (its name starts with vfs.TempPrefix),
// which the log's recovery removes with its own leftovers when it next opens
// dir (wal.Open, wal recover).
//
// A new snapshot file gets mode 0644 (less the umask); a replaced one keeps
// the previous file's permission bits, so an operator's chmod sticks.
// Writes to one directory must not run concurrently with each other or with
// recovery; the log's directory lock serialises them.
func Write(fsys vfs.FS, dir string, index uint64, opts WriteOptions, write func(w io.Writer) error) error {
	if index == 0 {
		return fmt.Errorf("journal: write snapshot: %w: index 0 (log indexes start at 1)", errs.ErrOutOfRange)
	}
	err := vfs.WriteFile(fsys, filepath.Join(dir, FileName), 0o644, func(w io.Writer) error {
		return encode(w, index, opts.Compress, write)
	})
	if err != nil {
		return fmt.Errorf("journal: write snapshot: %w", err)
	}
	return nil
}

// encode writes one snapshot file to w: header, contents, trailer.
func encode(w io.Writer, index uint64, compress bool, write func(w io.Writer) error) error {
	var flags uint32
	if compress {
		flags |= flagZstd
	}
	buf := appendHeader(make([]byte, 0, HeaderSize+TrailerSize), index, flags)
	if _, err := w.Write(buf); err != nil {
		return err
	}
	body := &hashWriter{w: w, d: xxhash.New()}
	size := int64(0)
	if compress {
		enc, err := zstd.NewWriter(body, zstd.WithEncoderLevel(zstd.SpeedDefault), zstd.WithWindowSize(zstdWindow))
		if err != nil {
			return err
		}
		cw := &countWriter{w: enc}
		if err := write(cw); err != nil {
			enc.Close() // releases its goroutines; the file is discarded
			return err
		}
		if err := enc.Close(); err != nil {
			return err
		}
		size = cw.n
	} else {
		if err := write(body); err != nil {
			return err
		}
		size = body.n
	}
	if body.err != nil {
		// write ignored a failed Write; the contents are incomplete.
		return body.err
	}
	buf = appendTrailer(buf, buf[:HeaderSize], body.n, size, body.d.Sum64())
	_, err := w.Write(buf[HeaderSize:])
	return err
}

// hashWriter passes the stored contents through, counting and hashing them.
// Its first error sticks.
type hashWriter struct {
	w   io.Writer
	d   *xxhash.Digest
	n   int64
	err error
}

func (h *hashWriter) Write(p []byte) (int, error) {
	if h.err != nil {
		return 0, h.err
	}
	n, err := h.w.Write(p)
	h.d.Write(p[:n])
	h.n += int64(n)
	h.err = err
	return n, err
}

// countWriter counts the contents on their way into the compressor.
type countWriter struct {
	w io.Writer
	n int64
}

func (c *countWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

// Load opens the snapshot in dir and returns the log index it covers and a
// reader of its contents (decompressed if needed). It returns an error
// matching ErrNoSnapshot if there is none.
//
// Opening checks everything but the contents: the header and trailer must
// be intact and agree with the file's size, so a torn, truncated, extended
// or foreign file is refused here, with an error matching ErrCorrupt
// (damage) or ErrFormat (not a snapshot, or a newer format version).
//
// The contents' checksum can only be checked once all of them have been
// read, so the reader checks it when it reaches the end: it returns io.EOF
// only if the checksum and length match, and an error matching
// ErrCorrupt otherwise (compressed contents that do not decode
// fail as soon as that is seen). Callers must therefore read to the end
// and treat any error other than io.EOF, corruption or I/O, as meaning
// everything they read from the reader is void. Errors are sticky.
//
// The reader is not safe for concurrent use. Close releases the file and
// must be called. Load does not modify dir, so it is safe on a directory
// whose log is not open (the CLI's inspection commands).
func Load(fsys vfs.FS, dir string) (index uint64, r io.ReadCloser, err error) {
	rd, err := open(fsys, dir)
	if err != nil {
		return 0, nil, err
	}
	return rd.h.Index, rd, nil
}

// ReadHeader describes the snapshot in dir, checking its header and trailer
// as Load does but not its contents (see Verify). It returns an error
// matching ErrNoSnapshot if there is none.
func ReadHeader(fsys vfs.FS, dir string) (Header, error) {
	f, _, h, _, err := openChecked(fsys, dir)
	if err != nil {
		return Header{}, err
	}
	f.Close()
	return h, nil
}

// Verify checks the whole snapshot in dir by streaming it: header, trailer,
// the contents' checksum, and for compressed contents that they decode to
// the recorded length. It returns the header (when that much was readable)
// and nil if the snapshot is valid.
func Verify(fsys vfs.FS, dir string) (Header, error) {
	r, err := open(fsys, dir)
	if err != nil {
		return Header{}, err
	}
	defer r.Close()
	buf := make([]byte, 256<<10)
	for {
		if _, err := r.Read(buf); err == io.EOF {
			return r.h, nil
		} else if err != nil {
			return r.h, err
		}
	}
}

// reader streams a snapshot's contents, checking them at the end.
type reader struct {
	f    vfs.File
	path string
	h    Header
	sum  uint64 // the contents' checksum recorded in the trailer

	body *hashReader
	src  io.Reader     // what Read draws from: buffered body, or dec
	dec  *zstd.Decoder // nil unless compressed
	n    int64         // content bytes returned so far
	err  error         // sticky; io.EOF once the contents checked out
}

// open opens the snapshot in dir, checks its header and trailer, and
// prepares to stream its contents.
func open(fsys vfs.FS, dir string) (*reader, error) {
	f, path, h, sum, err := openChecked(fsys, dir)
	if err != nil {
		return nil, err
	}
	r := &reader{f: f, path: path, h: h, sum: sum}
	r.body = &hashReader{r: io.NewSectionReader(f, HeaderSize, h.StoredSize), d: xxhash.New()}
	br := bufio.NewReaderSize(r.body, 256<<10)
	r.src = br
	if h.Compressed {
		r.dec, err = zstd.NewReader(br, zstd.WithDecoderMaxWindow(maxZstdWindow), zstd.WithDecoderLowmem(true))
		if err != nil {
			f.Close()
			return nil, fmt.Errorf("journal: open snapshot %s: %w", path, err)
		}
		r.src = r.dec
	}
	return r, nil
}

// openChecked opens the snapshot in dir and checks its header and trailer.
// It returns the open file, its path, what the header and trailer say, and
// the contents' checksum.
func openChecked(fsys vfs.FS, dir string) (vfs.File, string, Header, uint64, error) {
	path := filepath.Join(dir, FileName)
	if fi, err := fsys.Stat(path); err == nil && !fi.Mode().IsRegular() {
		// A directory (or device, or socket) is no snapshot: a foreign
		// file, not an I/O error a caller might retry.
		what := "not a regular file"
		if fi.IsDir() {
			what = "a directory"
		}
		return nil, path, Header{}, 0, fmt.Errorf("journal: %s: %w: not a snapshot (%s)", path, errs.ErrFormat, what)
	}
	f, err := fsys.OpenFile(path, os.O_RDONLY, 0)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, path, Header{}, 0, fmt.Errorf("%w in %s", ErrNoSnapshot, dir)
	}
	if err != nil {
		return nil, path, Header{}, 0, fmt.Errorf("journal: open snapshot: %w", err)
	}
	h, sum, err := check(f, path)
	if err != nil {
		f.Close()
		return nil, path, Header{}, 0, err
	}
	if fi, err := fsys.Stat(path); err == nil {
		h.ModTime = fi.ModTime()
	}
	return f, path, h, sum, nil
}

// check reads and decodes the header and trailer of the open snapshot f.
func check(f vfs.File, path string) (Header, uint64, error) {
	size, err := f.Size()
	if err != nil {
		return Header{}, 0, fmt.Errorf("journal: open snapshot %s: %w", path, err)
	}
	var b [HeaderSize + TrailerSize]byte
	hdr, trl := b[:HeaderSize], []byte(nil)
	n, err := f.ReadAt(hdr, 0)
	if err != nil && err != io.EOF {
		return Header{}, 0, fmt.Errorf("journal: read snapshot %s: %w", path, err)
	}
	hdr = hdr[:n]
	if size >= HeaderSize+TrailerSize {
		trl = b[HeaderSize:]
		if n, err := f.ReadAt(trl, size-TrailerSize); n < len(trl) {
			if err == io.EOF {
				return Header{}, 0, corrupt(path, size, "file shrank while being opened")
			}
			return Header{}, 0, fmt.Errorf("journal: read snapshot %s: %w", path, err)
		}
	}
	return decode(path, hdr, trl, size)
}

// Read reads the contents; see Load for the end-of-file contract.
func (r *reader) Read(p []byte) (int, error) {
	if r.err != nil {
		return 0, r.err
	}
	n, err := r.src.Read(p)
	if over := r.n + int64(n) - r.h.Size; over > 0 {
		// Only a damaged compressed stream can get here; stop it
		// before it produces more than the trailer promised.
		n -= int(over)
		r.n += int64(n)
		r.err = corrupt(r.path, HeaderSize, fmt.Sprintf("contents decode to more than the %d bytes recorded", r.h.Size))
		return n, r.err
	}
	r.n += int64(n)
	switch {
	case err == io.EOF:
		r.err = r.finish()
	case err != nil:
		r.err = r.fail(err)
	}
	return n, r.err
}

// finish checks the contents once they have all been read.
func (r *reader) finish() error {
	switch {
	case r.body.n != r.h.StoredSize:
		return corrupt(r.path, HeaderSize+r.body.n, fmt.Sprintf("contents end after %d of %d stored bytes", r.body.n, r.h.StoredSize))
	case r.body.d.Sum64() != r.sum:
		return corrupt(r.path, HeaderSize, fmt.Sprintf("contents checksum mismatch (%d bytes from offset %d)", r.h.StoredSize, HeaderSize))
	case r.n != r.h.Size:
		return corrupt(r.path, HeaderSize, fmt.Sprintf("contents decode to %d bytes, trailer records %d", r.n, r.h.Size))
	}
	return io.EOF
}

// fail classifies an error from the source: the file's I/O error, or
// damage the decompressor found.
func (r *reader) fail(err error) error {
	if r.body.err != nil {
		return fmt.Errorf("journal: read snapshot %s: %w", r.path, r.body.err)
	}
	if r.dec != nil {
		// The decoder reads ahead, so where it stopped only bounds
		// where the damage is.
		return corrupt(r.path, HeaderSize, fmt.Sprintf("zstd contents: %v (found before offset %d)", err, HeaderSize+r.body.n))
	}
	return fmt.Errorf("journal: read snapshot %s: %w", r.path, err)
}

// Close releases the decoder and the file. Reads after Close fail.
func (r *reader) Close() error {
	if r.f == nil {
		return nil
	}
	if r.dec != nil {
		r.dec.Close()
	}
	err := r.f.Close()
	r.f = nil
	if r.err == nil {
		r.err = fmt.Errorf("journal: read snapshot %s: %w", r.path, fs.ErrClosed)
	}
	return err
}

// hashReader reads the stored contents, counting and hashing them, and
// remembers the first I/O error.
type hashReader struct {
	r   *io.SectionReader
	d   *xxhash.Digest
	n   int64
	err error
}

func (h *hashReader) Read(p []byte) (int, error) {
	n, err := h.r.Read(p)
	h.d.Write(p[:n])
	h.n += int64(n)
	if err != nil && err != io.EOF && h.err == nil {
		h.err = err
	}
	return n, err
}
