package segment

import (
	"bytes"
	"encoding/binary"
	"errors"
	"runtime"
	"testing"

	"github.com/gojournal/journal/internal/errs"
	"github.com/gojournal/journal/internal/seedtest"
)

func TestCompressRoundTrip(t *testing.T) {
	rnd := seedtest.Rand(t)
	for _, c := range []Codec{None, S2, Zstd} {
		for _, rec := range [][]byte{nil, {0}, []byte("hello"), compressible(1 << 16), randomBytes(rnd, 100_000)} {
			stored := Compress(c, []byte("prefix"), rec)
			if !bytes.HasPrefix(stored, []byte("prefix")) {
				t.Fatalf("%v: Compress did not append to dst", c)
			}
			stored = stored[len("prefix"):]
			if c != None && binary.LittleEndian.Uint32(stored) != uint32(len(rec)) {
				t.Fatalf("%v: length prefix %d, want %d", c, binary.LittleEndian.Uint32(stored), len(rec))
			}
			got, err := Decompress(c, stored)
			if err != nil || !bytes.Equal(got, rec) {
				t.Fatalf("%v: Decompress(Compress(%d bytes)) = %d bytes, %v", c, len(rec), len(got), err)
			}
		}
	}
}

// maxPayload allows MaxRecordSize/64 + 68 bytes over the record; each codec
// must stay within the same proportion on data it cannot compress.
func TestIncompressibleRecordStaysWithinPayloadBound(t *testing.T) {
	rnd := seedtest.Rand(t)
	rec := randomBytes(rnd, 4<<20)
	for _, c := range []Codec{S2, Zstd} {
		limit := len(rec) + len(rec)/64 + 68
		if n := len(Compress(c, nil, rec)); n > limit {
			t.Errorf("%v: %d random bytes stored in %d, over the bound %d", c, len(rec), n, limit)
		}
	}
}

func TestDecompressRejects(t *testing.T) {
	rec := compressible(1000)
	withLength := func(c Codec, n uint32) []byte {
		b := Compress(c, nil, rec)
		binary.LittleEndian.PutUint32(b, n)
		return b
	}
	tests := []struct {
		name  string
		codec Codec
		data  []byte
	}{
		{"ShorterThanLengthPrefix", S2, []byte{1, 2, 3}},
		{"EmptyZstd", Zstd, nil},
		{"UnknownCodec", Codec(3), []byte{0, 0, 0, 0}},
		{"S2ClaimsMoreThanItHolds", S2, withLength(S2, uint32(len(rec)+1))},
		{"S2ClaimsLessThanItHolds", S2, withLength(S2, uint32(len(rec)-1))},
		{"ZstdClaimsMoreThanItHolds", Zstd, withLength(Zstd, uint32(len(rec)+1))},
		{"ZstdClaimsLessThanItHolds", Zstd, withLength(Zstd, uint32(len(rec)-1))},
		{"S2Garbage", S2, append(binary.LittleEndian.AppendUint32(nil, 100), 100, 0xff, 0xff, 0xff, 0xff, 0xff)},
		{"ZstdGarbage", Zstd, append(binary.LittleEndian.AppendUint32(nil, 100), "not a zstd frame"...)},
		{"S2Truncated", S2, Compress(S2, nil, rec)[:20]},
		{"ZstdTruncated", Zstd, Compress(Zstd, nil, rec)[:20]},
		{"S2OverMaxRecordSize", S2, withLength(S2, MaxRecordSize+1)},
		{"ZstdOverMaxRecordSize", Zstd, withLength(Zstd, MaxRecordSize+1)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Decompress(tt.codec, tt.data)
			if !errors.Is(err, errs.ErrCorrupt) {
				t.Fatalf("Decompress = %d bytes, %v; want errs.ErrCorrupt", len(got), err)
			}
		})
	}
}

func TestDecompressNoneReturnsPayloadAsIs(t *testing.T) {
	data := []byte("\xff\xff\xff\xffanything")
	got, err := Decompress(None, data)
	if err != nil || &got[0] != &data[0] || len(got) != len(data) {
		t.Fatalf("Decompress(None) = %q, %v; want the payload itself", got, err)
	}
}

// A claimed decoded length over MaxRecordSize must be refused before the
// output buffer is allocated.
func TestDecompressRefusesHugeClaimBeforeAllocating(t *testing.T) {
	for _, claim := range []uint32{MaxRecordSize + 1, 1 << 31, ^uint32(0)} {
		for _, c := range []Codec{S2, Zstd} {
			data := binary.LittleEndian.AppendUint32(nil, claim)
			data = append(data, Compress(c, nil, []byte("small"))[4:]...)
			allocated := bytesAllocatedBy(func() {
				if _, err := Decompress(c, data); !errors.Is(err, errs.ErrCorrupt) {
					t.Errorf("%v claiming %d bytes: error %v, want errs.ErrCorrupt", c, claim, err)
				}
			})
			if allocated > 64<<10 {
				t.Errorf("%v claiming %d bytes: allocated %d bytes before refusing", c, claim, allocated)
			}
		}
	}
}

func bytesAllocatedBy(f func()) uint64 {
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	f()
	runtime.ReadMemStats(&after)
	return after.TotalAlloc - before.TotalAlloc
}

// A payload whose decoded length is a lie the payload itself gives away
// (the 4-byte prefix disagreeing with the S2 block's own length, or a zstd
// frame claiming more than its bytes can decode to) must be refused before
// the claimed size is allocated: otherwise a 20-byte frame with a valid
// checksum makes every Read of it allocate up to MaxRecordSize (256 MiB).
// An S2 block whose own length agrees with the prefix still costs the
// claimed size: the block format gives no cheaper bound.
func TestDecompressCostFollowsThePayload(t *testing.T) {
	Decompress(Zstd, Compress(Zstd, nil, []byte("warm up"))) // the shared coder, outside the count
	const claim = MaxRecordSize
	zstdLie := binary.LittleEndian.AppendUint32(nil, claim)
	// A zstd frame header (RFC 8878 3.1.1.1): magic, a descriptor with a
	// 4-byte content size and Single_Segment set, the content size, then
	// one raw last block of 5 bytes.
	zstdLie = append(zstdLie, 0x28, 0xb5, 0x2f, 0xfd, 0xa0)
	zstdLie = binary.LittleEndian.AppendUint32(zstdLie, claim)
	zstdLie = append(zstdLie, 5<<3|1, 0, 0, 'a', 'b', 'c', 'd', 'e')
	// The prefix alone lies; the S2 block says 5.
	prefixLie := binary.LittleEndian.AppendUint32(nil, claim)
	prefixLie = append(prefixLie, Compress(S2, nil, []byte("small"))[4:]...)
	for _, tt := range []struct {
		name  string
		codec Codec
		data  []byte
	}{
		{"S2PrefixOnly", S2, prefixLie},
		{"ZstdContentSizeAgrees", Zstd, zstdLie},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var err error
			allocated := bytesAllocatedBy(func() { _, err = Decompress(tt.codec, tt.data) })
			if !errors.Is(err, errs.ErrCorrupt) {
				t.Fatalf("Decompress of a %d-byte payload claiming %d bytes: %v, want errs.ErrCorrupt", len(tt.data), claim, err)
			}
			if allocated > 1<<20 {
				t.Fatalf("Decompress of a %d-byte payload claiming %d bytes allocated %d bytes before refusing it", len(tt.data), claim, allocated)
			}
		})
	}
}

// The most compressible records a writer can store, large ones
// included, still pass checkClaim's bounds: zeros and one repeated byte
// are where a real payload comes nearest to zstdMaxRatio (a ratio per
// 128 KiB block, so 32 MiB shows it as well as MaxRecordSize would).
func TestMostCompressibleRecordsRoundTrip(t *testing.T) {
	for _, size := range []int{64, 128 << 10, 1<<20 + 1, 32 << 20} {
		for _, fill := range []byte{0, 'x'} {
			rec := bytes.Repeat([]byte{fill}, size)
			for _, c := range []Codec{S2, Zstd} {
				stored := Compress(c, nil, rec)
				got, err := Decompress(c, stored)
				if err != nil || !bytes.Equal(got, rec) {
					t.Fatalf("%v: %d bytes of %q stored in %d: Decompress = %d bytes, %v", c, size, fill, len(stored), len(got), err)
				}
			}
		}
	}
}
