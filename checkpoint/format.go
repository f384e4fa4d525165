package checkpoint

import (
	"encoding/binary"
	"fmt"
	"time"

	"github.com/cespare/xxhash/v2"
	"github.com/gojournal/journal/internal/errs"
)

// On-disk constants. Every integer is little-endian. Changing any of these
// changes the format and needs a new Version.
const (
	// Version is the snapshot format version written by this package.
	Version = 1

	// HeaderSize is the length of the header that opens a snapshot file,
	// and TrailerSize that of the trailer that closes it.
	HeaderSize  = 24 // magic 8 + version 4 + flags 4 + index 8
	TrailerSize = 40 // stored length 8 + content length 8 + contents sum 8 + meta sum 8 + end magic 8

	// flagZstd marks contents stored as a zstd stream. Every other flag
	// bit is reserved and must be zero.
	flagZstd = 1 << 0

	// maxZstdWindow is the largest zstd window a snapshot may use:
	// readers refuse larger ones, so a damaged frame header cannot make
	// them allocate more.
	maxZstdWindow = 8 << 20
	// zstdWindow is the window this package writes with: half the limit,
	// which keeps the encoder near 11 MiB of heap (8 MiB took about 19 in
	// TestLargeSnapshotIsStreamed) and leaves room to raise it without a
	// new version.
	zstdWindow = 4 << 20
)

// versions are the snapshot format versions this build reads.
var versions = []uint32{Version}

// Magic opens every snapshot file; EndMagic closes every complete one.
const (
	Magic    = "\x89JSNP\r\n\x1a"
	EndMagic = "\x89JSND\r\n\x1a"
)

// Header describes a snapshot file, as checked when it is opened: its
// header and trailer are intact and agree with the file's size. The
// contents' checksum is checked only by reading them (Load, Verify).
type Header struct {
	Version    uint32    // format version of the file
	Index      uint64    // last log index whose effects the snapshot holds
	Compressed bool      // contents are stored as a zstd stream
	Size       int64     // length of the contents as written (uncompressed)
	StoredSize int64     // bytes the contents take in the file
	FileSize   int64     // StoredSize + HeaderSize + TrailerSize
	ModTime    time.Time // when the file was written; zero if the FS does not say
}

// appendHeader appends the encoded header to dst.
func appendHeader(dst []byte, index uint64, flags uint32) []byte {
	dst = append(dst, Magic...)
	dst = binary.LittleEndian.AppendUint32(dst, Version)
	dst = binary.LittleEndian.AppendUint32(dst, flags)
	return binary.LittleEndian.AppendUint64(dst, index)
}

// appendTrailer appends the trailer for the encoded header hdr to dst.
func appendTrailer(dst, hdr []byte, stored, size int64, sum uint64) []byte {
	start := len(dst)
	dst = binary.LittleEndian.AppendUint64(dst, uint64(stored))
	dst = binary.LittleEndian.AppendUint64(dst, uint64(size))
	dst = binary.LittleEndian.AppendUint64(dst, sum)
	dst = binary.LittleEndian.AppendUint64(dst, metaSum(hdr, dst[start:]))
	return append(dst, EndMagic...)
}

// metaSum is the checksum binding the header to the trailer: xxhash64,
// seed 0, over the header's 24 bytes followed by the trailer's first 24.
func metaSum(hdr, trl []byte) uint64 {
	d := xxhash.New()
	d.Write(hdr[:HeaderSize])
	d.Write(trl[:24])
	return d.Sum64()
}

// decode checks the header and trailer of a snapshot of fileSize bytes and
// returns what they say, plus the contents' checksum. trl is nil when the
// file is too short to hold one. path names the file in errors.
func decode(path string, hdr, trl []byte, fileSize int64) (Header, uint64, error) {
	// Magic and version sit at the same offsets in every version, so they
	// are checked before anything whose layout a newer version may change.
	// A file that ends like a snapshot but does not start like one is a
	// damaged snapshot, not a foreign file.
	if n := min(len(hdr), len(Magic)); string(hdr[:n]) != Magic[:n] {
		if trl != nil && string(trl[32:]) == EndMagic {
			return Header{}, 0, corrupt(path, 0, fmt.Sprintf("bad magic %q", hdr[:n]))
		}
		return Header{}, 0, fmt.Errorf("journal: %s: %w: not a snapshot (bad magic %q)", path, errs.ErrFormat, hdr[:n])
	}
	if len(hdr) >= 12 {
		if err := errs.CheckVersion("snapshot", binary.LittleEndian.Uint32(hdr[8:]), versions); err != nil {
			return Header{}, 0, fmt.Errorf("journal: %s: %w", path, err)
		}
	}
	if fileSize < HeaderSize+TrailerSize || len(hdr) < HeaderSize || trl == nil {
		return Header{}, 0, corrupt(path, fileSize, fmt.Sprintf("snapshot is %d bytes, shorter than its header and trailer (%d): truncated", fileSize, HeaderSize+TrailerSize))
	}
	end := fileSize - TrailerSize
	if string(trl[32:]) != EndMagic {
		return Header{}, 0, corrupt(path, end+32, "no end magic: snapshot truncated, torn or extended")
	}
	if binary.LittleEndian.Uint64(trl[24:]) != metaSum(hdr, trl) {
		return Header{}, 0, corrupt(path, end+24, "header/trailer checksum mismatch")
	}
	flags := binary.LittleEndian.Uint32(hdr[12:])
	if flags&^flagZstd != 0 {
		return Header{}, 0, fmt.Errorf("journal: %s: %w: unknown snapshot flags %#x", path, errs.ErrFormat, flags)
	}
	h := Header{
		Version:    binary.LittleEndian.Uint32(hdr[8:]),
		Index:      binary.LittleEndian.Uint64(hdr[16:]),
		Compressed: flags&flagZstd != 0,
		StoredSize: int64(binary.LittleEndian.Uint64(trl[0:])),
		Size:       int64(binary.LittleEndian.Uint64(trl[8:])),
		FileSize:   fileSize,
	}
	switch {
	case h.StoredSize != end-HeaderSize:
		return Header{}, 0, corrupt(path, end, fmt.Sprintf("trailer records %d bytes of contents, the file holds %d", uint64(h.StoredSize), end-HeaderSize))
	case h.Size < 0:
		return Header{}, 0, corrupt(path, end+8, fmt.Sprintf("content length %d out of range", uint64(h.Size)))
	case !h.Compressed && h.Size != h.StoredSize:
		return Header{}, 0, corrupt(path, end+8, fmt.Sprintf("uncompressed contents of %d bytes stored in %d", h.Size, h.StoredSize))
	case h.Index == 0:
		return Header{}, 0, corrupt(path, 16, "snapshot index 0 (log indexes start at 1)")
	}
	return h, binary.LittleEndian.Uint64(trl[16:]), nil
}

// corrupt describes damage at offset off of the snapshot at path.
func corrupt(path string, off int64, reason string) error {
	return &errs.CorruptionError{Path: path, Offset: off, Reason: reason}
}
