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
