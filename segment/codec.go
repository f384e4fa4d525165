package segment

import (
	"encoding/binary"
	"fmt"
	"runtime"
	"sync"

	"github.com/gojournal/journal/internal/errs"
	"github.com/klauspost/compress/s2"
	"github.com/klauspost/compress/zstd"
)

var (
	zstdOnce sync.Once
	zstdEnc  *zstd.Encoder
	zstdDec  *zstd.Decoder
)

// zstdCodec returns the shared encoder and decoder. Appenders compress
// concurrently (outside the log's lock) and readers decompress
// concurrently, so each holds GOMAXPROCS block coders: EncodeAll and
// DecodeAll take one from the library's pool for the call and run on the
// caller's goroutine, which is the way klauspost/compress documents for
// many small buffers. A concurrency of 1 made every appender queue for a
// single encoder. A sync.Pool of encoders was not taken: the GC empties it,
// and each encoder is about 300 KiB of tables to rebuild.
//
// Memory: each encoder holds a 256 KiB match table from the first use, plus
// a history of 1 to 4 MiB once it has compressed a record over 64 KiB (a
// multi-block frame); each decoder allocates as it decodes, bounded by
// MaxRecordSize.
func zstdCodec() (*zstd.Encoder, *zstd.Decoder) {
	zstdOnce.Do(func() {
		n := runtime.GOMAXPROCS(0)
		var err error
		zstdEnc, err = zstd.NewWriter(nil, zstd.WithEncoderLevel(zstd.SpeedFastest), zstd.WithEncoderConcurrency(n))
		if err != nil {
			panic(err) // only invalid options fail
		}
		zstdDec, err = zstd.NewReader(nil, zstd.WithDecoderConcurrency(n),
			zstd.WithDecodeAllCapLimit(true), zstd.WithDecoderMaxMemory(MaxRecordSize))
		if err != nil {
			panic(err)
		}
	})
	return zstdEnc, zstdDec
}

// Compress appends the stored form of src under codec c to dst: the
// decoded length (uint32) followed by the compressed bytes. With None it
// appends src unchanged.
func Compress(c Codec, dst, src []byte) []byte {
	if c == None {
		return append(dst, src...)
	}
	dst = binary.LittleEndian.AppendUint32(dst, uint32(len(src)))
	switch c {
	case S2:
		start := len(dst)
		need := s2.MaxEncodedLen(len(src))
		dst = append(dst, make([]byte, need)...)
		enc := s2.Encode(dst[start:], src)
		return dst[:start+len(enc)]
	case Zstd:
		enc, _ := zstdCodec()
		return enc.EncodeAll(src, dst)
	}
	panic(fmt.Sprintf("segment: unknown codec %d", c))
}

// Decompress returns the record stored in data under codec c. The decoded
// length is checked against MaxRecordSize, and against what the compressed
// bytes say of it (checkClaim), before anything is allocated, so a damaged
// or hostile payload cannot exhaust memory.
func Decompress(c Codec, data []byte) ([]byte, error) {
	if c == None {
		return data, nil
	}
	if len(data) < 4 {
		return nil, fmt.Errorf("%w: compressed payload shorter than its length prefix", errs.ErrCorrupt)
	}
	n := binary.LittleEndian.Uint32(data)
	if n > MaxRecordSize {
		return nil, fmt.Errorf("%w: decoded length %d exceeds the maximum record size", errs.ErrCorrupt, n)
	}
	if err := checkClaim(c, n, data[4:]); err != nil {
		return nil, err
	}
	out := make([]byte, 0, n)
	var err error
	switch c {
	case S2:
		out, err = s2.Decode(out[:n], data[4:])
	case Zstd:
		_, dec := zstdCodec()
		out, err = dec.DecodeAll(data[4:], out)
	}
	if err != nil {
		return nil, fmt.Errorf("%w: %s payload: %v", errs.ErrCorrupt, c, err)
	}
	if len(out) != int(n) {
		return nil, fmt.Errorf("%w: %s payload decodes to %d bytes, header says %d", errs.ErrCorrupt, c, len(out), n)
	}
	return out, nil
}

// zstdMaxRatio bounds how many bytes one byte of a zstd payload decodes
// to (RFC 8878): a block decodes to at most 128 KiB (Block_Maximum_Size),
// and a block that decodes to anything takes at least 4 bytes (its 3-byte
// header and at least 1 byte of content: the RLE byte, or the literals and
// sequences section headers).
const zstdMaxRatio = (128 << 10) / 4

// checkClaim refuses, before the output is allocated, a decoded length n
// that the compressed bytes contradict: an S2 block's own decoded length
// (its leading uvarint) must be n; a zstd payload can decode to no more
// than zstdMaxRatio times its size, and its first frame's content size,
// when the frame header gives one, cannot exceed n. Without this, a frame
// of a few bytes with a valid checksum makes each read of it allocate up
// to MaxRecordSize before the decoder finds the lie.
func checkClaim(c Codec, n uint32, comp []byte) error {
	switch c {
	case S2:
		dn, err := s2.DecodedLen(comp)
		if err != nil {
			return fmt.Errorf("%w: s2 payload: %v", errs.ErrCorrupt, err)
		}
		if dn != int(n) {
			return fmt.Errorf("%w: s2 payload decodes to %d bytes, header says %d", errs.ErrCorrupt, dn, n)
		}
	case Zstd:
		if uint64(n) > zstdMaxRatio*uint64(len(comp)) {
			return fmt.Errorf("%w: a %d-byte zstd payload cannot decode to the %d bytes its header says", errs.ErrCorrupt, len(comp), n)
		}
		var h zstd.Header
		if h.Decode(comp) == nil && !h.Skippable && h.HasFCS && h.FrameContentSize > uint64(n) {
			return fmt.Errorf("%w: zstd frame holds %d bytes, header says %d", errs.ErrCorrupt, h.FrameContentSize, n)
		}
	default:
		return fmt.Errorf("%w: unknown codec %d", errs.ErrCorrupt, c)
	}
	return nil
}
