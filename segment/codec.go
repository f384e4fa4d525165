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
// length is checked against MaxRecordSize before anything is allocated, so
// a damaged or hostile payload cannot exhaust memory.
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
	out := make([]byte, 0, n)
	var err error
	switch c {
	case S2:
		var dn int
		if dn, err = s2.DecodedLen(data[4:]); err == nil && dn != int(n) {
			return nil, fmt.Errorf("%w: s2 payload decodes to %d bytes, header says %d", errs.ErrCorrupt, dn, n)
		}
		if err == nil {
			out, err = s2.Decode(out[:n], data[4:])
		}
	case Zstd:
		_, dec := zstdCodec()
		out, err = dec.DecodeAll(data[4:], out)
	default:
		return nil, fmt.Errorf("%w: unknown codec %d", errs.ErrCorrupt, c)
	}
	if err != nil {
		return nil, fmt.Errorf("%w: %s payload: %v", errs.ErrCorrupt, c, err)
	}
	if len(out) != int(n) {
		return nil, fmt.Errorf("%w: %s payload decodes to %d bytes, header says %d", errs.ErrCorrupt, c, len(out), n)
	}
	return out, nil
}
