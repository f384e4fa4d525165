package segment

import (
	"encoding/binary"
	"fmt"
	"slices"
	"sync"

	"github.com/cespare/xxhash/v2"
	"github.com/gojournal/journal/internal/errs"
)

// On-disk constants. Every integer is little-endian. Changing any of these
// changes the format and needs a new Version.
const (
	// Version is the segment format version written by this package;
	// readVersions lists those it reads.
	// Version 2 adds TypeSync frames; a version 1 file never holds one.
	// Version 3 adds the segment's append times to the footer (Times).
	Version = 3

	HeaderSize  = 40 // magic 8 + version 4 + flags 4 + first index 8 + salt 8 + checksum 8
	FrameHeader = 32 // checksum 8 + index 8 + synced 8 + length 4 + type 1 + codec 1 + reserved 2
	TrailerSize = 16 // footer offset 8 + end magic 8
	TimesSize   = 16 // version 3 footer payload after the offsets: first append 8 + last append 8
	FrameAlign  = 8  // frames start at multiples of 8; padding is zero
	SectorSize  = 512
	// DataStart is where the first frame goes: the header has a sector
	// of its own. Every write starts at a multiple of SectorSize and is
	// padded with zeros to one, so a torn write never damages bytes an
	// earlier write made durable, even where a sector is torn whole.
	DataStart = SectorSize

	// MaxRecordSize is the largest record (before compression) accepted.
	MaxRecordSize = 256 << 20
	// MaxSegmentSize bounds a segment file so record offsets fit the
	// footer's 32-bit entries, with room for one oversized batch.
	MaxSegmentSize = 2 << 30
	// MaxBatchSize bounds the encoded size of one batch (all its frames).
	MaxBatchSize = 1 << 30

	// maxPayload bounds a stored payload: a record plus the worst-case
	// compression expansion and the 4-byte decoded length.
	maxPayload = MaxRecordSize + MaxRecordSize/64 + 64 + 4
)

// readVersions are the segment format versions this build reads. Version,
// the one it writes, is always among them; reading another one is adding
// it here (and its decoder). Version 2 only adds TypeSync frames, which a
// version 1 file never holds, so one decoder reads both; version 3 only
// adds the times to the footer, which readFooter reads by the header's
// version.
var readVersions = []uint32{1, 2, Version}

// Readable reports whether this build reads segments of format version v.
func Readable(v uint32) bool { return slices.Contains(readVersions, v) }

// Magic opens every segment file; EndMagic closes every sealed one.
const (
	Magic    = "\x89JRNL\r\n\x1a"
	EndMagic = "\x89JEND\r\n\x1a"
)

// Ext is the file name extension of segment files.
const Ext = ".wal"

// Type says what a frame holds. Zero is never valid, so zeroed
// (preallocated) space reads as the end of the log.
type Type uint8

const (
	// TypeRecord is a record that ends its batch: once it is valid, the
	// batch it closes is complete.
	TypeRecord Type = 1
	// TypeBatch is a record that is followed by more records of the same
	// batch. A batch whose closing TypeRecord frame is missing is dropped
	// whole by recovery.
	TypeBatch Type = 2
	// TypeFooter is the index written when a segment is sealed.
	TypeFooter Type = 3
	// TypeSync (format version 2) records that the segment was durable up
	// to the frame's own offset when it was written: a log in NoSync mode
	// writes one after the fdatasync of Sync and Close, so that damage to
	// data a Sync made durable is told apart from a torn tail even when
	// nothing was appended after it. It holds no record and no payload.
	TypeSync Type = 4
)

// Codec says how a frame's payload is compressed.
type Codec uint8

const (
	None Codec = 0 // stored as is
	S2   Codec = 1 // github.com/klauspost/compress/s2 block format
	Zstd Codec = 2 // a zstd frame (github.com/klauspost/compress/zstd)
)

// String names the codec.
func (c Codec) String() string {
	switch c {
	case None:
		return "none"
	case S2:
		return "s2"
	case Zstd:
		return "zstd"
	}
	return fmt.Sprintf("codec(%d)", uint8(c))
}

// Header is the fixed-size header that opens a segment file.
type Header struct {
	FirstIndex uint64 // index of the first record the segment holds
	Salt       uint64 // random per file; seeds every frame checksum
	// Version is the format version of the file, as read; 0 in a header
	// not yet written stands for Version. The footer a segment is sealed
	// with follows its header's version, so a segment written by an
	// older build is sealed the way that build reads it.
	Version uint32
}

// version is the format version h is written in.
func (h Header) version() uint32 {
	if h.Version == 0 {
		return Version
	}
	return h.Version
}

// timed reports whether the segment's footer holds its append times.
func (h Header) timed() bool { return h.version() >= 3 }

// appendHeader appends the encoded header to dst.
func appendHeader(dst []byte, h Header) []byte {
	start := len(dst)
	dst = append(dst, Magic...)
	dst = binary.LittleEndian.AppendUint32(dst, h.version())
	dst = binary.LittleEndian.AppendUint32(dst, 0) // flags: none defined
	dst = binary.LittleEndian.AppendUint64(dst, h.FirstIndex)
	dst = binary.LittleEndian.AppendUint64(dst, h.Salt)
	return binary.LittleEndian.AppendUint64(dst, xxhash.Sum64(dst[start:]))
}

// decodeHeader parses and checks a segment header. A foreign file or a
// newer version gives ErrFormat; a damaged header gives ErrCorrupt.
func decodeHeader(b []byte) (Header, error) {
	if len(b) < HeaderSize {
		return Header{}, fmt.Errorf("%w: segment of %d bytes is shorter than its %d-byte header", errs.ErrCorrupt, len(b), HeaderSize)
	}
	if string(b[:8]) != Magic {
		return Header{}, fmt.Errorf("%w (bad magic %q)", errs.ErrForeign, b[:8])
	}
	if sum := binary.LittleEndian.Uint64(b[32:]); sum != xxhash.Sum64(b[:32]) {
		return Header{}, fmt.Errorf("%w: segment header checksum mismatch", errs.ErrCorrupt)
	}
	version := binary.LittleEndian.Uint32(b[8:])
	if err := errs.CheckVersion("segment", version, readVersions); err != nil {
		return Header{}, err
	}
	if flags := binary.LittleEndian.Uint32(b[12:]); flags != 0 {
		return Header{}, fmt.Errorf("%w: unknown segment header flags %#x", errs.ErrFormat, flags)
	}
	h := Header{FirstIndex: binary.LittleEndian.Uint64(b[16:]), Salt: binary.LittleEndian.Uint64(b[24:]), Version: version}
	if h.FirstIndex == 0 {
		return Header{}, fmt.Errorf("%w: segment header names first index 0", errs.ErrCorrupt)
	}
	return h, nil
}

// Frame describes one frame as read from disk.
type Frame struct {
	Offset int64  // where the frame starts in its segment
	Index  uint64 // record index (for a footer: the index after the last record)
	Synced int64  // the segment was durable up to here when the frame was written
	Type   Type
	Codec  Codec
	Data   []byte // stored payload (still compressed); aliases the read buffer
}

// Size is the frame's length on disk, padding included.
func (f Frame) Size() int64 { return FrameSize(len(f.Data)) }

// FrameSize is the on-disk length of a frame with an n-byte payload.
func FrameSize(n int) int64 {
	return (FrameHeader + int64(n) + FrameAlign - 1) &^ (FrameAlign - 1)
}

// AppendFrame appends one checksummed frame to dst. synced is the offset up
// to which the segment is known durable (it never exceeds the frame's own
// offset).
func AppendFrame(dst []byte, salt uint64, t Type, c Codec, index uint64, synced int64, data []byte) []byte {
	start := len(dst)
	dst = binary.LittleEndian.AppendUint64(dst, 0) // checksum, filled below
	dst = binary.LittleEndian.AppendUint64(dst, index)
	dst = binary.LittleEndian.AppendUint64(dst, uint64(synced))
	dst = binary.LittleEndian.AppendUint32(dst, uint32(len(data)))
	dst = append(dst, byte(t), byte(c), 0, 0)
	dst = append(dst, data...)
	binary.LittleEndian.PutUint64(dst[start:], checksum(salt, dst[start+8:]))
	pad := int(FrameSize(len(data))) - (len(dst) - start)
	for range pad {
		dst = append(dst, 0)
	}
	return dst
}

var digests = sync.Pool{New: func() any { return xxhash.NewWithSeed(0) }}

// checksum is the frame checksum: xxhash64 seeded with the segment's salt.
func checksum(salt uint64, b []byte) uint64 {
	d := digests.Get().(*xxhash.Digest)
	d.ResetWithSeed(salt)
	d.Write(b)
	sum := d.Sum64()
	digests.Put(d)
	return sum
}

// parseFrameHeader checks the fixed part of a frame at offset off without
// the checksum. It returns the payload length.
func parseFrameHeader(b []byte, off int64) (Frame, int, Stop) {
	f := Frame{
		Offset: off,
		Index:  binary.LittleEndian.Uint64(b[8:]),
		Synced: int64(binary.LittleEndian.Uint64(b[16:])),
		Type:   Type(b[28]),
		Codec:  Codec(b[29]),
	}
	n := binary.LittleEndian.Uint32(b[24:])
	switch {
	case f.Type < TypeRecord || f.Type > TypeSync:
		return f, 0, StopType
	case f.Codec > Zstd || (f.Type >= TypeFooter && f.Codec != None):
		return f, 0, StopCodec
	case b[30] != 0 || b[31] != 0:
		return f, 0, StopReserved
	case n > maxPayload || (f.Type == TypeSync && n != 0):
		return f, 0, StopLength
	case f.Synced < HeaderSize || f.Synced > off:
		return f, 0, StopSynced
	}
	return f, int(n), StopNone
}

// parseFrame checks the frame at the start of b, which holds the segment's
// bytes from offset off on (up to the end of the readable data). It returns
// the frame, or why it is not a valid frame (see Stop.Incomplete for when
// more bytes might make it valid).
func parseFrame(b []byte, salt uint64, off int64) (Frame, Stop) {
	if len(b) < FrameHeader {
		return Frame{Offset: off}, StopShortHeader
	}
	f, n, stop := parseFrameHeader(b, off)
	if stop != StopNone {
		return f, stop
	}
	if int64(len(b)) < FrameHeader+int64(n) {
		return f, StopShortPayload
	}
	if checksum(salt, b[8:FrameHeader+n]) != binary.LittleEndian.Uint64(b) {
		return f, StopChecksum
	}
	f.Data = b[FrameHeader : FrameHeader+n]
	return f, StopNone
}
